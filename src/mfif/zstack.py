"""Z-stacks as Dask arrays: multi-page TIFF, OME-TIFF, OME-Zarr and folders of files, read lazily.

A z-stack (a microscope's focal series, a gigapixel slide scanned at several depths) becomes one
``dask.array`` of shape ``(Z, Y, X)`` or ``(Z, Y, X, C)``, chunked in Y and X only: every chunk
holds the full Z, which is what a fusion of that chunk needs. Nothing is decoded until a chunk is
computed, and then only the TIFF tiles or Zarr chunks under it.

* **Multi-page TIFF and OME-TIFF**: the full-resolution top-level pages are the planes
  (:func:`mfif.io.tiff_planes`; reduced-resolution copies and sub-IFDs are skipped). A chunk is
  read through tifffile's Zarr store of its page (``TiffFile.aszarr``) opened with zarr, sliced to
  the chunk. The store holds an open file handle, which does not travel to worker processes, so
  the Dask array is built over :class:`TiffPlanes`, a small picklable object (path, pages) that
  opens the store in the process that reads (and keeps it open there, :func:`_page_arrays`).
* **OME-Zarr (NGFF 0.4 / 0.5)**: level 0 of the first multiscale image, ``dask.array.from_zarr``;
  the ``axes`` metadata says which axis is Z (required), channel (``c``, moved last) and time
  (``t``, of size 1).
* **Files**: one image per file (a folder, a glob or a list, as ``mfif fuse`` takes them), over
  :class:`FilePlanes`: plain TIFF planes are read tile by tile like a multi-page TIFF's pages;
  other files are decoded whole once per process (:func:`mfif.io.read_image`) and sliced.

Every reader checks what it can from headers before any pixel is read: at least two planes, one
size, gray or RGB, a pixel type mfif fuses; bad input is a :class:`~mfif.errors.UsageError`.

References
----------
.. [1] J. Moore et al., "OME-NGFF: a next-generation file format for expanding bioimaging
   data-access strategies", Nature Methods 18, 1496-1498 (2021); https://ngff.openmicroscopy.org
.. [2] C. Gohlke, tifffile (``TiffFile.aszarr``), https://github.com/cgohlke/tifffile
"""
from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import tifffile

from .errors import UsageError
from .io import check_sources, display_path, expand_sources, image_info, is_multipage_tiff, read_image, tiff_planes
from .io.planes import AS_FLOAT, KEEP, tiff_stack_layout

__all__ = ["ZStack", "is_zarr", "is_zstack", "open_zstack", "TiffPlanes", "FilePlanes", "read_planes", "ngff_attrs"]


@dataclass
class ZStack:
    """A z-stack opened lazily: the Dask array ``(Z, Y, X[, C])``, where it came from, plane names."""

    array: object  # dask.array.Array
    source: str
    names: list

    @property
    def n(self) -> int:
        return int(self.array.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Zarr group or array folder (``zarr.json``, ``.zgroup`` or ``.zarray``)."""
    p = Path(path)
    return p.is_dir() and any((p / k).is_file() for k in ("zarr.json", ".zgroup", ".zattrs", ".zarray"))


def is_zstack(specs: Sequence[str | os.PathLike]) -> bool:
    """Whether ``specs`` (``mfif fuse``'s sources) is one z-stack file: a multi-page TIFF or a Zarr."""
    return len(specs) == 1 and (is_zarr(specs[0]) or is_multipage_tiff(specs[0]))


# --------------------------------------------------------------------------------------------
# Multi-page TIFF / OME-TIFF
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _page_arrays(path: str, mtime_ns: int, pages: tuple) -> list:
    """The zarr arrays of ``pages`` of a TIFF, opened once per process (and per file version; up
    to 64 files open at once, a folder of TIFF planes being one file a plane)."""
    import zarr

    out = []
    for i in pages:
        z = zarr.open(tifffile.imread(path, aszarr=True, key=i), mode="r")
        out.append(z if hasattr(z, "shape") else z["0"])  # a page with sub-IFDs opens as a group
    return out


def read_planes(key, n: int, read) -> np.ndarray:
    """A NumPy index ``key`` of a ``(Z, Y, X[, C])`` array-like of ``n`` planes, plane by plane:
    ``read(i, rest)`` gives plane ``i`` indexed by the rest of the key; a slice of Z stacks them."""
    key = key if isinstance(key, tuple) else (key,)
    zkey, rest = key[0], key[1:]
    if isinstance(zkey, slice):
        return np.stack([read(i, rest) for i in range(n)[zkey]])
    return read(zkey, rest)


class TiffPlanes:
    """Array-like ``(Z, Y, X[, C])`` over the full-resolution pages of a TIFF, for ``dask.array.from_array``.

    Picklable (a path and page indices): each process that computes a chunk opens the pages'
    Zarr stores itself and reads only the TIFF tiles (or strips) under the chunk.
    """

    def __init__(self, path: str, pages: Sequence[int], shape: tuple, dtype, native, keep=None):
        self.path, self.pages = str(path), tuple(pages)
        self.shape, self.dtype, self.native = (len(self.pages),) + tuple(shape), np.dtype(dtype), np.dtype(native)
        self.ndim = len(self.shape)
        self.keep = keep  # the stored samples kept (alpha dropped), or None: all

    def _plane(self, arrays, i: int, rest: tuple) -> np.ndarray:
        if self.keep is None:
            return np.asarray(arrays[i][rest]).astype(self.dtype, copy=False)
        yx, ch = rest[:2], rest[2:]  # read the pixels' every sample, then keep the colour ones
        out = np.asarray(arrays[i][yx])[..., self.keep]
        return (out[(slice(None),) * (out.ndim - len(ch)) + ch] if ch else out).astype(self.dtype, copy=False)

    def __getitem__(self, key):
        arrays = _page_arrays(self.path, os.stat(self.path).st_mtime_ns, self.pages)
        return read_planes(key, self.shape[0], lambda i, rest: self._plane(arrays, i, rest))


def _tiff_zstack(path: Path, chunk: int) -> ZStack:
    import dask.array as da

    lay = tiff_stack_layout(path)  # the header checks, shared with the local engine's planes
    shape = lay.shape if lay.keep is None else lay.frame_shape
    planes = TiffPlanes(lay.path, lay.pages, shape, lay.dtype, lay.native, keep=lay.keep)
    arr = da.from_array(planes, chunks=_chunks(planes.shape, chunk), lock=False, asarray=False, name=False)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    return ZStack(arr, str(path), [f"{path.name} plane {k + 1}" for k in range(len(lay.pages))])


def _chunks(shape: tuple, chunk: int) -> tuple:
    """Chunks of a ``(Z, Y, X[, C])`` array: full Z and C, ``chunk`` px in Y and X."""
    return (shape[0], chunk, chunk) + tuple(shape[3:])


# --------------------------------------------------------------------------------------------
# OME-Zarr
# --------------------------------------------------------------------------------------------
def ngff_attrs(path: str | os.PathLike) -> dict:
    """The OME-NGFF attributes of a Zarr group (0.4: the group's own; 0.5: under ``"ome"``)."""
    p = Path(path)
    for name in ("zarr.json", ".zattrs"):
        f = p / name
        if f.is_file():
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError) as exc:
                raise UsageError(f"{display_path(f)}: unreadable Zarr metadata ({exc})") from None
            attrs = doc.get("attributes", doc) if name == "zarr.json" else doc
            return attrs.get("ome", attrs)
    return {}


def _zarr_zstack(path: Path, chunk: int) -> ZStack:
    import dask.array as da

    attrs = ngff_attrs(path)
    ms = attrs.get("multiscales")
    if not ms or not isinstance(ms, list) or not ms[0].get("datasets"):
        raise UsageError(f"{display_path(path)}: not an OME-Zarr image (no 'multiscales' metadata with datasets)")
    axes = [a["name"].lower() if isinstance(a, dict) else str(a).lower() for a in ms[0].get("axes", [])]
    if "z" not in axes:
        raise UsageError(f"{display_path(path)}: OME-Zarr axes {','.join(axes) or '(none)'} have no z axis; "
                         "a z-stack needs one (axes t,c,z,y,x as NGFF names them)")
    if not {"y", "x"} <= set(axes) or set(axes) - {"t", "c", "z", "y", "x"}:
        raise UsageError(f"{display_path(path)}: OME-Zarr axes {','.join(axes)} are not t,c,z,y,x; mfif fuses "
                         "one z-stack of 2-D planes")
    component = ms[0]["datasets"][0]["path"]
    try:
        arr = da.from_zarr(str(path), component=component)
    except Exception as exc:
        raise UsageError(f"{display_path(path)}: cannot open level {component} ({type(exc).__name__}: {exc})") from None
    if arr.ndim != len(axes):
        raise UsageError(f"{display_path(path)}: level {component} has {arr.ndim} dimensions, axes name {len(axes)}")
    if "t" in axes:
        t = axes.index("t")
        if arr.shape[t] != 1:
            raise UsageError(f"{display_path(path)}: {arr.shape[t]} time points; mfif fuses one z-stack (t of size 1)")
        arr, axes = arr[(slice(None),) * t + (0,)], axes[:t] + axes[t + 1:]
    order = [axes.index(a) for a in ("z", "y", "x", "c") if a in axes]
    arr = arr.transpose(order)
    if arr.ndim == 4 and arr.shape[3] not in (1, 3):
        raise UsageError(f"{display_path(path)}: {arr.shape[3]} channels; mfif fuses gray and RGB")
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.shape[0] < 2:
        raise UsageError(f"{display_path(path)}: one plane only; a z-stack needs at least 2 focal planes (z)")
    dtype = np.dtype(arr.dtype)
    if dtype.type not in KEEP:
        if dtype.type not in AS_FLOAT:
            raise UsageError(f"{display_path(path)}: {dtype} pixels are not supported; use 8/16-bit unsigned or float")
        arr = arr.astype(np.float32)
    arr = arr.rechunk(_chunks(arr.shape, chunk))
    return ZStack(arr, str(path), [f"{path.name} z={k}" for k in range(arr.shape[0])])


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
_DECODE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _decoded_files(paths: tuple, stamps: tuple) -> tuple:
    """Every file of a stack decoded whole (:func:`mfif.io.read_image`), once per process and version."""
    return tuple(read_image(p) for p in paths)


def window_page(path: str | os.PathLike) -> int | None:
    """The page of a TIFF file that can be read window by window, or None.

    Plain TIFFs qualify: one full-resolution page, gray or RGB (no alpha) stored contiguously,
    upright (orientation 1), pixels kept as stored (8/16-bit unsigned or float32); these read the
    same through tifffile's Zarr store, tile by tile, as :func:`mfif.io.read_image` reads them
    whole. Anything else (palette, min-is-white, signed, rotated, other formats) is None.
    """
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None
    from .io.read import _tiff_plan

    try:
        with tifffile.TiffFile(str(path)) as tf:
            first, native, out, photometric, orientation = _tiff_plan(Path(path), tf)
            pages = tiff_planes(tf)
            spp = int(first.samplesperpixel)
            planar = int(getattr(first, "planarconfig", 1) or 1)
            depth = int(getattr(first, "imagedepth", 1) or 1)
    except Exception:  # unreadable here: the whole-file reader reports it
        return None
    if (photometric, spp) not in ((1, 1), (2, 3)) or orientation != 1 or native != out or planar != 1 or depth > 1:
        return None
    return pages[0]


class FilePlanes:
    """Array-like ``(Z, Y, X[, C])`` over image files, one plane per file, for ``dask.array.from_array``.

    Picklable (the paths). Plain TIFF files (:func:`window_page`) are read window by window
    through tifffile's Zarr store, so a folder of tiled TIFF planes is read lazily, tile by tile,
    like a multi-page TIFF. Other files (PNG, JPEG and the rest cannot be read in part) are
    decoded whole once by each process that reads them and kept for the windows that follow: a
    stack of those costs each worker process its decoded size, as decoding does anyway.
    """

    def __init__(self, paths: Sequence[str], shape: tuple, dtype):
        self.paths = tuple(str(p) for p in paths)
        self.shape, self.dtype = (len(self.paths),) + tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self.pages = tuple(window_page(p) for p in self.paths)

    def _plane(self, i: int, rest: tuple) -> np.ndarray:
        path, page = self.paths[i], self.pages[i]
        if page is not None:
            z = _page_arrays(path, os.stat(path).st_mtime_ns, (page,))[0]
            return np.asarray(z[rest]).astype(self.dtype, copy=False)
        whole = tuple(p for p, pg in zip(self.paths, self.pages) if pg is None)
        stamps = tuple(os.stat(p).st_mtime_ns for p in whole)
        with _DECODE_LOCK:  # threads of one process decode the files once, not once each
            images = _decoded_files(whole, stamps)
        return images[whole.index(path)][rest]

    def __getitem__(self, key):
        return read_planes(key, self.shape[0], self._plane)


def _files_zstack(paths: list[Path], chunk: int) -> ZStack:
    import dask.array as da

    if len(paths) < 2:
        raise UsageError(f"need at least 2 sources, got {len(paths)}" + (f" ({paths[0]})" if paths else ""))
    infos = [image_info(p) for p in paths]
    check_sources(infos, [str(p) for p in paths])
    planes = FilePlanes(paths, infos[0].shape, infos[0].dtype)
    arr = da.from_array(planes, chunks=_chunks(planes.shape, chunk), lock=False, asarray=False, name=False)
    return ZStack(arr, str(paths[0].parent), [str(p) for p in paths])


def open_zstack(specs: str | os.PathLike | Sequence[str | os.PathLike], *, chunk: int = 1024) -> ZStack:
    """Open a z-stack lazily as a Dask array ``(Z, Y, X[, C])`` chunked ``chunk`` px in Y and X.

    Parameters
    ----------
    specs : path-like or sequence of path-like
        One multi-page TIFF / OME-TIFF (its full-resolution pages are the planes), one OME-Zarr
        folder (level 0; its ``axes`` name Z), or image files, folders and globs (one plane per
        file, :func:`mfif.io.expand_sources`).
    chunk : int, keyword-only
        Chunk side in Y and X (px); Z (and C) are never split.

    Returns
    -------
    ZStack

    Raises
    ------
    UsageError
        Fewer than 2 planes, planes of different sizes or pixel types, an OME-Zarr without a z
        axis, a layout or pixel type mfif does not fuse; one line naming the file.
    """
    specs = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    chunk = int(chunk)
    if chunk < 1:
        raise UsageError(f"chunk must be a positive number of pixels, got {chunk}")
    if len(specs) == 1 and is_zarr(specs[0]):
        return _zarr_zstack(Path(specs[0]), chunk)
    if len(specs) == 1 and Path(specs[0]).suffix.lower() in (".tif", ".tiff") and Path(specs[0]).is_file():
        return _tiff_zstack(Path(specs[0]), chunk)  # its pages are the planes (one page: refused)
    return _files_zstack(expand_sources(specs), chunk)
