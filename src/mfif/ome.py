"""Pyramidal outputs of the Dask engine: OME-Zarr (NGFF 0.4) and tiled OME-TIFF with sub-IFDs.

Both are written from a lazy Dask array without ever holding the image in memory:

1. **Level 0** is stored into a Zarr array in a hidden folder beside the target
   (``.NAME.part-XXXX``), by the workers, chunk by chunk (``dask.array.to_zarr``; 512-px Zarr
   chunks, each written by one task). On a cluster the target folder must be one the workers
   share (docs/scale.md).
2. **Reduced levels** are made from the level before, read back from the store (never by
   recomputing the fusion): a 2x2 mean (``dask.array.coarsen``, rounded back to the pixel type)
   for images, every second pixel for label maps (a mean of plane indices is no plane index),
   down to 1024 px or less on the longer side and at least 3 levels.
3. **OME-Zarr**: the NGFF ``multiscales`` metadata (axes, datasets with ``scale``
   coordinate transformations) is written last and the folder renamed into place.
   **OME-TIFF**: the levels are streamed tile by tile (512 px) into a BigTIFF with OME-XML, level
   0 in the main IFD and the reduced levels as its sub-IFDs (``subifds=``), written to a temporary
   name and renamed into place; the Zarr levels are then removed.

NGFF orders axes by type (time, channel, space): a colour image is stored ``c, y, x``.

References
----------
.. [1] OME-NGFF 0.4 specification, https://ngff.openmicroscopy.org/0.4/
.. [2] OME-TIFF specification (sub-resolutions in SubIFDs),
   https://docs.openmicroscopy.org/ome-model/latest/ome-tiff/specification.html
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .errors import UsageError
from .io import check_target, display_path
from .io.paths import _same_file

__all__ = ["PYRAMID_SUFFIXES", "pyramid_kind", "level_shapes", "check_pyramid_target", "write_pyramid",
           "TILE", "MIN_LEVELS", "LAST_LEVEL_MAX"]

#: Output names that get a pyramid, and the writer each one selects.
PYRAMID_SUFFIXES = {".ome.zarr": "zarr", ".ome.tif": "tiff", ".ome.tiff": "tiff"}
#: Tile (TIFF) and chunk (Zarr) side, px.
TILE = 512
#: At least this many levels, and more until the last is at most LAST_LEVEL_MAX px a side.
MIN_LEVELS = 3
LAST_LEVEL_MAX = 1024


def pyramid_kind(path: str | os.PathLike) -> str | None:
    """``"zarr"``, ``"tiff"`` or None (a plain image) from an output name."""
    name = Path(path).name.lower()
    return next((k for s, k in PYRAMID_SUFFIXES.items() if name.endswith(s)), None)


def level_shapes(h: int, w: int) -> list[tuple[int, int]]:
    """``(h, w)`` of every level: halved (rounded down) until the longer side is at most
    :data:`LAST_LEVEL_MAX` and there are at least :data:`MIN_LEVELS`, while a side stays >= 1."""
    out = [(h, w)]
    while (len(out) < MIN_LEVELS or max(out[-1]) > LAST_LEVEL_MAX) and min(out[-1]) >= 2:
        out.append((out[-1][0] // 2, out[-1][1] // 2))
    return out


def check_pyramid_target(path: str | os.PathLike, *, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Check that a pyramid can be written at ``path`` (creates nothing).

    An existing ``.ome.zarr`` folder is replaced once the new one is complete; it must not be an
    input nor hold one.

    Raises
    ------
    UsageError
        One line naming ``path``.
    """
    p = Path(path)
    kind = pyramid_kind(p)
    if kind is None:
        raise UsageError(f"{display_path(p)}: a pyramid is written as .ome.zarr or .ome.tif")
    for q in protect:
        q = Path(q)
        if _same_file(p, q) or (kind == "zarr" and _inside(q, p)):
            raise UsageError(f"{display_path(p)}: refusing to overwrite an input")
    if kind == "zarr":
        if p.exists() and not (p.is_dir() and (p / ".zattrs").is_file()):
            raise UsageError(f"{display_path(p)}: exists and is not an OME-Zarr folder mfif can replace")
        check_target(p.parent / (p.name + ".check"))  # the folder it goes in is writable
        return p
    return check_target(p, protect=protect)


def _inside(q: Path, folder: Path) -> bool:
    try:
        return q.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _reduce(level, *, labels: bool):
    """The next level of a ``(c, y, x)`` Dask array: 2x2 mean (images) or every second pixel (labels)."""
    import dask.array as da

    h, w = level.shape[1] // 2 * 2, level.shape[2] // 2 * 2
    if labels:
        return level[:, :h:2, :w:2]
    mean = da.coarsen(np.mean, level[:, :h, :w].astype(np.float32), {1: 2, 2: 2}, trim_excess=True)
    if np.dtype(level.dtype).kind == "f":
        return mean.astype(level.dtype)
    info = np.iinfo(level.dtype)
    return da.clip(da.rint(mean), info.min, info.max).astype(level.dtype)


def _ngff(name: str, channels: int, n_levels: int) -> dict:
    axes = ([{"name": "c", "type": "channel"}] if channels > 1 else []) + [
        {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    lead = [1.0] if channels > 1 else []
    datasets = [{"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": lead + [2.0 ** k] * 2}]}
                for k in range(n_levels)]
    return {"multiscales": [{"version": "0.4", "name": name, "axes": axes, "datasets": datasets,
                             "type": "mean" if name != "depth" else "nearest",
                             "metadata": {"software": "mfif"}}]}


class PyramidWriter:
    """One pyramidal output being written: :meth:`level0` (lazy), then :meth:`finish` or :meth:`abort`.

    Parameters
    ----------
    path : path-like
        ``.ome.zarr`` or ``.ome.tif`` (:func:`pyramid_kind`); checked with
        :func:`check_pyramid_target` first.
    labels : bool, keyword-only
        A label map (the depth map): reduced by taking every second pixel.
    """

    def __init__(self, path: str | os.PathLike, *, labels: bool = False, name: str = "fused"):
        self.path, self.labels, self.name = Path(path), labels, name
        self.kind = pyramid_kind(self.path)
        self.tmp = self.path.parent / f".{self.path.name}.part-{os.urandom(4).hex()}"
        self.store = self.tmp if self.kind == "zarr" else self.tmp.with_name(self.tmp.name + ".zarr")
        self.gray = True
        self.shape = None

    def level0(self, image):
        """A Delayed that stores ``image`` ``(Y, X[, C])`` as level 0 (compute it with the others)."""
        import dask.array as da

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.gray = image.ndim == 2
        arr = image[None] if self.gray else da.moveaxis(image, 2, 0)
        self.shape, self.dtype = arr.shape, np.dtype(arr.dtype)
        arr = arr.rechunk((arr.shape[0], TILE, TILE))
        return da.to_zarr(arr, str(self.store), component="0", compute=False, zarr_format=2)

    def finish(self, compute: Callable) -> Path:
        """Reduced levels (``compute`` runs Dask collections on the current scheduler), metadata,
        the OME-TIFF when asked, and the rename into place."""
        import dask.array as da
        import zarr

        levels = level_shapes(self.shape[1], self.shape[2])
        for k in range(1, len(levels)):
            prev = da.from_zarr(str(self.store), component=str(k - 1))
            nxt = _reduce(prev, labels=self.labels).rechunk((self.shape[0], TILE, TILE))
            compute(da.to_zarr(nxt, str(self.store), component=str(k), compute=False, zarr_format=2))
        if self.kind == "zarr":
            g = zarr.open_group(str(self.store), mode="r+", zarr_format=2)
            g.attrs.update(_ngff(self.name, 1 if self.gray else self.shape[0], len(levels)))
            return self._replace_folder()
        self._write_tiff(len(levels))
        shutil.rmtree(self.store, ignore_errors=True)
        return self.path

    def _replace_folder(self) -> Path:
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{os.urandom(4).hex()}")
            os.replace(self.path, old)
        os.replace(self.tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def _write_tiff(self, n_levels: int) -> None:
        import tifffile
        import zarr

        g = zarr.open_group(str(self.store), mode="r", zarr_format=2)
        photometric = "minisblack" if self.gray else "rgb"
        axes = "YX" if self.gray else "YXS"
        try:
            with tifffile.TiffWriter(str(self.tmp), bigtiff=True, ome=True) as tw:
                for k in range(n_levels):
                    z = g[str(k)]
                    c, h, w = z.shape
                    shape = (h, w) if self.gray else (h, w, c)
                    kw = dict(subifds=n_levels - 1, metadata={"axes": axes, "Name": self.name}) if k == 0 else \
                        dict(subfiletype=1)
                    tw.write(_tiles(z, self.gray), shape=shape, dtype=z.dtype, tile=(TILE, TILE),
                             photometric=photometric, compression="zlib", **kw)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            raise UsageError(f"{display_path(self.path)}: cannot write ({exc.strerror or exc})") from None
        finally:
            if self.tmp.exists():
                self.tmp.unlink()

    def abort(self) -> None:
        """Remove what was written (the target is untouched)."""
        for p in (self.store, self.tmp):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()


def _tiles(z, gray: bool):
    """The tiles of a stored ``(c, y, x)`` level in row-major order, ``TILE`` px, edges zero-padded,
    read one band of rows at a time."""
    c, h, w = z.shape
    for y in range(0, h, TILE):
        band = np.asarray(z[:, y:y + TILE, :])
        band = band[0] if gray else np.moveaxis(band, 0, -1)
        for x in range(0, w, TILE):
            t = band[:, x:x + TILE]
            if t.shape[:2] != (TILE, TILE):
                pad = [(0, TILE - t.shape[0]), (0, TILE - t.shape[1])] + [(0, 0)] * (t.ndim - 2)
                t = np.pad(t, pad)
            yield np.ascontiguousarray(t)


def write_pyramid(path: str | os.PathLike, image, *, compute: Callable, labels: bool = False,
                  name: str = "fused") -> Path:
    """Write one lazy image ``(Y, X[, C])`` as a pyramid at ``path`` (:class:`PyramidWriter`).

    To store several outputs of one fusion without recomputing it, use :class:`PyramidWriter`
    and compute their :meth:`~PyramidWriter.level0` together.
    """
    w = PyramidWriter(path, labels=labels, name=name)
    try:
        compute(w.level0(image))
        return w.finish(compute)
    except BaseException:
        w.abort()
        raise
