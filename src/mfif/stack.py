"""Fusing real focus stacks: many frames, alignment, bounded memory, tiles.

The pipeline (each frame is decoded once and never held in memory with all the others)::

    read frame -> (align: warp to the reference, crop) -> frame cache on disk (native dtype)
    for each tile (with overlap): read that tile of every frame -> fuse -> feather into output

* **Frame cache.** Frames are decoded one at a time and written, in their native dtype
  (``uint8``, ``uint16`` or ``float32``: no 8-bit step for 16-bit stacks), into a
  memory-mapped file in a temporary folder; tiles are then read back from it. Resident memory
  is therefore set by the tile, not by the number or size of frames.
* **Alignment.** Transforms are estimated by :func:`mfif.align.align_stack` on small gray
  copies (longer side ``work_size``), scaled to full resolution, and each frame is warped as it
  enters the cache, then cropped to the rectangle every frame covers.
* **Tiles.** With a tile smaller than the image, each tile is fused with an overlap margin on
  every side; the fused tiles are blended with linear ramps across the overlaps (no seams) and
  label maps (decision / depth) take each pixel from the tile whose core holds it. Options
  that are fractions of the image area (``min_region``) are rescaled to the tile so that a
  tile removes the same absolute region sizes as a whole-image pass. ``tile=0`` picks the
  largest tile whose working set fits ``max_memory``.

References
----------
.. [1] P. Aimonen, focus-stack (task-per-stage C++ focus stacking tool), 2019-2024.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from .align import _warp, align_stack, transform_parameters
from .errors import UsageError
from .io import check_sources, from_float, read_image, to_float
from .result import FusionResult

#: Bytes of working memory per pixel per frame that a fusion method needs (float32 colour
#: frame, its gray copy, focus/score maps and the CNN's tile activations amortised); a
#: deliberately generous estimate used only to choose a tile size.
BYTES_PER_PIXEL_PER_FRAME = 96
BYTES_PER_PIXEL_FIXED = 160


@dataclass
class StackResult:
    """Output of :func:`fuse_stack`: the fused image in the frames' dtype and inspectable maps."""

    fused: np.ndarray
    decision: np.ndarray | None
    maps: dict = field(default_factory=dict)
    alignment: object | None = None
    tiles: int = 1
    tile_size: int = 0
    info: dict = field(default_factory=dict)


def _small_gray(img: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    g = to_float(img)
    if g.ndim == 3:
        g = cv2.cvtColor(g[..., :3], cv2.COLOR_RGB2GRAY)
    h, w = g.shape
    s = min(1.0, work_size / max(h, w))
    if s < 1.0:
        g = cv2.resize(g, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return g, s


def _scale_transform(t: np.ndarray, s: float) -> np.ndarray:
    """A transform estimated between copies scaled by ``s``, expressed at full resolution.

    With pixel centres at integers, small = s * (full + 0.5) - 0.5, i.e. ``small = A @ full``.
    """
    a = np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]])
    return np.linalg.inv(a) @ np.asarray(t, np.float64) @ a


class FrameCache:
    """Frames of one stack in a memory-mapped file (native dtype), filled one frame at a time."""

    def __init__(self, n: int, shape: tuple[int, ...], dtype, directory: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="mfif-stack-", dir=directory)
        self.path = os.path.join(self.dir, "frames.u")
        try:
            self.data = np.lib.format.open_memmap(self.path, mode="w+", dtype=dtype, shape=(n,) + tuple(shape))
        except OSError as exc:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise UsageError(f"cannot create the frame cache in {self.dir}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.data = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def choose_tile(h: int, w: int, n: int, *, max_memory_mb: float, overlap: int) -> int:
    """Largest square tile (multiple of 64) whose estimated working set fits ``max_memory_mb``."""
    budget = max_memory_mb * 1e6
    per_px = BYTES_PER_PIXEL_PER_FRAME * n + BYTES_PER_PIXEL_FIXED
    side = int(math.sqrt(max(budget / per_px, 1.0)))
    if side >= max(h, w) + 2 * overlap:
        return 0  # one tile covers everything
    return max(256, (side - 2 * overlap) // 64 * 64)


def _tiles(h: int, w: int, tile: int, overlap: int):
    """Yield (core box, padded box) pairs covering the image."""
    if tile <= 0 or (tile >= h and tile >= w):
        yield (0, 0, h, w), (0, 0, h, w)
        return
    ny, nx = math.ceil(h / tile), math.ceil(w / tile)
    for i in range(ny):
        for j in range(nx):
            y0, x0 = i * tile, j * tile
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            yield (y0, x0, y1, x1), (max(0, y0 - overlap), max(0, x0 - overlap), min(h, y1 + overlap), min(w, x1 + overlap))


def _ramp(n: int, lo_pad: int, hi_pad: int, overlap: int) -> np.ndarray:
    """1-D feathering weights of a padded tile: linear over each overlap, 1 in the core."""
    r = np.ones(n, np.float32)
    if overlap <= 0:
        return r
    if lo_pad:
        k = min(lo_pad * 2, n)
        r[:k] = np.minimum(r[:k], (np.arange(k, dtype=np.float32) + 0.5) / k)
    if hi_pad:
        k = min(hi_pad * 2, n)
        r[n - k:] = np.minimum(r[n - k:], (np.arange(k, dtype=np.float32)[::-1] + 0.5) / k)
    return r


def fuse_stack(paths: Sequence[str | os.PathLike], *, method: str = "sff", params: dict | None = None,
               align: bool = False, align_model: str = "similarity", reference: str | int = "middle",
               tile: int = 0, overlap: int = 64, max_memory_mb: float = 4096, want_maps: bool = False,
               cache_dir: str | None = None, progress: Callable[[str, int, int], None] | None = None,
               log: Callable[[str], None] | None = None) -> StackResult:
    """Fuse a focus stack given as files, with optional alignment and tiling.

    Parameters
    ----------
    paths : sequence of path-like
        The frames (two or more), in focus order.
    method : str, keyword-only
        Fusion method (see ``mfif methods``).
    params : dict, keyword-only
        Method options.
    align : bool, keyword-only
        Register every frame to the ``reference`` frame first (hand-held stacks).
    align_model : str, keyword-only
        ``similarity`` (default), ``translation``, ``affine`` or ``homography``.
    tile : int, keyword-only
        Tile side in pixels; 0 chooses from ``max_memory_mb`` (one tile when it fits).
    overlap : int, keyword-only
        Overlap margin (px) on each side of a tile.
    max_memory_mb : float, keyword-only
        Working-memory budget used to choose the tile size.
    want_maps : bool, keyword-only
        Also assemble every stage map (scores, weights...) at full size.
    progress : callable, keyword-only
        ``progress(stage, done, total)`` with stage ``"read"`` or ``"fuse"``.

    Returns
    -------
    StackResult
        ``fused`` in the frames' dtype; ``decision`` (source index per pixel) when the method
        has one.
    """
    from .api import fuse
    from .methods import get_method, parse_params

    params = dict(params or {})
    m = get_method(method)
    parse_params(m, params)
    log = log or (lambda s: None)
    prog = progress or (lambda *a: None)
    paths = [Path(p) for p in paths]
    n = len(paths)
    if n < 2:
        raise UsageError(f"need at least 2 sources, got {n}")
    t_start = time.perf_counter()
    first = read_image(paths[0])
    shape, dtype = first.shape, first.dtype
    alignment = None
    box = (0, 0, shape[1], shape[0])
    transforms = None
    if align:
        work_size = 1024  # the working size align_stack is tuned for (its own default)
        smalls, scale = [], 1.0
        for i, p in enumerate(paths):
            img = first if i == 0 else read_image(p)
            check_sources([first, img], [str(paths[0]), str(p)])
            g, scale = _small_gray(img, work_size)
            smalls.append(g)
            prog("align", i + 1, n)
        del img
        alignment = align_stack(smalls, model=align_model, reference=reference, crop=True,
                                names=[p.name for p in paths], work_size=work_size)
        transforms = [_scale_transform(t, scale) for t in alignment.transforms]
        x0, y0, x1, y1 = alignment.valid_box
        box = (math.ceil(x0 / scale), math.ceil(y0 / scale), min(shape[1], math.floor(x1 / scale)),
               min(shape[0], math.floor(y1 / scale)))
        for i, t in enumerate(transforms):
            sc, rot, tx, ty = transform_parameters(t)
            log(f"frame {i} ({paths[i].name}): scale {sc:.4f} rotation {rot:+.3f} deg shift ({tx:+.2f}, {ty:+.2f}) px "
                f"residual {alignment.residuals[i] / scale:.2f} px ECC {alignment.correlations[i]:.4f}")
    bx0, by0, bx1, by1 = box
    h, w = by1 - by0, bx1 - bx0
    out_shape = (h, w) + tuple(shape[2:])
    with FrameCache(n, out_shape, dtype, cache_dir) as cache:
        for i, p in enumerate(paths):
            img = first if i == 0 else read_image(p)
            if i:
                check_sources([first, img], [str(paths[0]), str(p)])
            if transforms is not None and not np.allclose(transforms[i], np.eye(3)):
                img = _warp(img, transforms[i], (shape[1], shape[0]), cv2.INTER_CUBIC, cv2.BORDER_REFLECT)
            cache.data[i] = img[by0:by1, bx0:bx1]
            prog("read", i + 1, n)
        del img, first
        t_read = time.perf_counter() - t_start
        t_tile = tile if tile else choose_tile(h, w, n, max_memory_mb=max_memory_mb, overlap=overlap)
        tiles = list(_tiles(h, w, t_tile, overlap))
        single = len(tiles) == 1
        acc = None if single else np.zeros(out_shape, np.float32)
        wsum = None if single else np.zeros((h, w), np.float32)
        decision = None
        maps: dict[str, np.ndarray] = {}
        if not single and "min_region" in {p.name for p in m.params}:
            base = params.get("min_region", next(p.default for p in m.params if p.name == "min_region"))
            tile_params_for = lambda area: {**params, "min_region": min(0.5, float(base) * h * w / area)}  # noqa: E731
        else:
            tile_params_for = lambda area: params  # noqa: E731
        for k, ((cy0, cx0, cy1, cx1), (py0, px0, py1, px1)) in enumerate(tiles):
            srcs = [cache.data[i, py0:py1, px0:px1] for i in range(n)]
            res: FusionResult = fuse(srcs, method=method, **tile_params_for((py1 - py0) * (px1 - px0)))
            f = res.fused
            if single:
                acc = f
            else:
                ry = _ramp(py1 - py0, cy0 - py0, py1 - cy1, overlap)
                rx = _ramp(px1 - px0, cx0 - px0, px1 - cx1, overlap)
                wt = ry[:, None] * rx[None, :]
                acc[py0:py1, px0:px1] += f * (wt[..., None] if f.ndim == 3 else wt)
                wsum[py0:py1, px0:px1] += wt
            core = (slice(cy0 - py0, cy1 - py0), slice(cx0 - px0, cx1 - px0))
            if res.decision is not None:
                if decision is None:
                    decision = np.zeros((h, w), np.int16)
                decision[cy0:cy1, cx0:cx1] = res.decision[core]
            if want_maps:
                for name, arr in res.stage_maps().items():
                    if name not in maps:
                        maps[name] = np.zeros((h, w), arr.dtype)
                    maps[name][cy0:cy1, cx0:cx1] = arr[core]
            prog("fuse", k + 1, len(tiles))
    if not single:
        acc /= (wsum[..., None] if acc.ndim == 3 else wsum)
    fused = from_float(np.clip(acc, 0.0, 1.0), dtype) if dtype != np.float32 else acc
    info = {"seconds": time.perf_counter() - t_start, "seconds_read": t_read, "frames": n, "size": (w, h)}
    return StackResult(fused=fused, decision=decision, maps=maps, alignment=alignment, tiles=len(tiles),
                       tile_size=t_tile, info=info)
