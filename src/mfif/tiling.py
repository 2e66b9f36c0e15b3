"""Tile planning for the engines: how big a tile may be, and how tiles are cut and feathered.

An engine fuses an image larger than memory allows in overlapping tiles. What it needs to know
about a method it asks the registry (:class:`mfif.methods.Method`), never the method's code:
its ``halo`` (context in px a tile needs on each side), the options that are fractions of the
image area (rescaled to a tile), and its :class:`Resources` (a :class:`MemoryModel` per tile
pixel and frame, the memory of an inner pass over tiles of its own, and option changes that
keep that pass within a budget). This module turns those declarations into a tile size
(:func:`choose_tile`) and cuts and feathers tiles (:func:`tiles`, :func:`ramp`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["MemoryModel", "Resources", "DEFAULT_MEMORY", "tile_memory", "estimate_memory", "choose_tile",
           "TilePlan", "plan_tiles", "tiles", "ramp"]


@dataclass(frozen=True)
class MemoryModel:
    """Peak working set (bytes) of one fusion method on one tile, used to choose the tile size.

    For a padded tile of ``P`` pixels and ``n`` RGB frames::

        const + max(P * (per_frame * n + fixed),              # the method's own arrays
                    P * cnn_frame * n + cnn_per_frame * n * G)  # during a CNN pass
              + cnn_fixed * C

    A method with a CNN pass over internal tiles of its own (SFF) runs several of them at a time
    (one per worker thread), of ``C`` input pixels and ``G`` output grid points together
    (the method's :meth:`Resources.inner_tiles`): ``cnn_per_frame`` is what a
    worker keeps per frame and grid point for its whole internal tile (SFF: two 256-channel
    float32 projections, 2048 B, and allocator slack), ``cnn_fixed`` its transient activations
    per input pixel (which the allocator keeps afterwards, so they count in both phases), and
    ``cnn_frame`` what stays allocated per tile pixel and frame meanwhile (frames as float32,
    gray copies, the CNN's input). The other terms cover the method's arrays (frames, gray
    copies, scores, weights, temporaries). All are measured upper envelopes
    (``benchmarks/bench_stack.py mem``; docs/stacks.md), not exact counts.
    """

    per_frame: float
    fixed: float
    const: float = 16e6
    cnn_frame: float = 0.0
    cnn_per_frame: float = 0.0
    cnn_fixed: float = 0.0


#: The model of methods without a measured one: a generous classic-method estimate.
DEFAULT_MEMORY = MemoryModel(per_frame=96.0, fixed=160.0)


class Resources:
    """What a method needs per tile, as its registry entry declares it.

    The base class is a fixed :class:`MemoryModel` and no inner pass; a method with an inner
    pass over tiles of its own (SFF's CNN) subclasses it.
    """

    def __init__(self, model: MemoryModel = DEFAULT_MEMORY):
        self.model = model

    def memory_model(self, params: dict) -> MemoryModel:
        """The model for these (complete) options."""
        return self.model

    def inner_tiles(self, params: dict, h: int, w: int) -> tuple[int, int, int]:
        """(input pixels, output grid points, workers) of the inner tiles that run at once on
        an ``h x w`` tile; zeros without an inner pass."""
        return 0, 0, 0

    def inner_memory(self, params: dict, n: int, h: int, w: int) -> float:
        """Bytes the inner pass's workers hold on an ``h x w`` tile of ``n`` frames."""
        m = self.memory_model(params)
        if not (m.cnn_per_frame or m.cnn_fixed):
            return 0.0
        px, grid, _ = self.inner_tiles(params, h, w)
        return m.cnn_per_frame * n * grid + m.cnn_fixed * px

    def fit(self, params: dict, given: dict, n: int, h: int, w: int, *, budget: float) -> dict:
        """Option changes that keep the inner pass within part of ``budget`` bytes (``{}``: none).

        ``params`` are the complete options, ``given`` those the user set (never overridden).
        """
        return {}


def tile_memory(resources: Resources, params: dict, n: int, h: int, w: int) -> float:
    """:class:`MemoryModel` estimate (bytes) of fusing one ``h x w`` tile of ``n`` frames."""
    m = resources.memory_model(params)
    p = h * w
    own = p * (m.per_frame * n + m.fixed)
    if not (m.cnn_per_frame or m.cnn_fixed):
        return m.const + own
    px, grid, _ = resources.inner_tiles(params, h, w)
    cnn = p * m.cnn_frame * n + m.cnn_per_frame * n * grid
    return m.const + max(own, cnn) + m.cnn_fixed * px


def estimate_memory(h: int, w: int, n: int, *, tile: int, overlap: int, resources: Resources,
                    params: dict, channels: int = 3, itemsize: int = 1) -> float:
    """Estimated peak working set (bytes) of a tiled fusion of ``n`` frames of ``h x w``.

    This is what a memory budget bounds: memory on top of the process's baseline (the
    interpreter, the libraries and any model, loaded). It is one padded tile of every frame
    fused by the method (:class:`MemoryModel`) plus, with several tiles, the int16 decision
    map, the output image in the frames' dtype (twice, for writing it) and the float32
    accumulator and weight sum of one row of padded tiles (the local engine keeps only the rows
    tiles still write), with the rows it carries to the next row of tiles and the rows it
    converts at once; with one tile, the output twice.
    """
    single = tile <= 0 or (tile >= h and tile >= w)
    th, tw = (h, w) if single else (min(h, tile + 2 * overlap), min(w, tile + 2 * overlap))
    tile_bytes = tile_memory(resources, params, n, th, tw)
    out_px = channels * itemsize
    if single:
        return tile_bytes + h * w * 2 * out_px
    acc_px = 4 * channels + 4
    band = (th + min(th, 2 * overlap)) * w * acc_px + min(h, tile) * w * out_px
    return tile_bytes + h * w * (2 + 2 * out_px) + band


def choose_tile(h: int, w: int, n: int, *, max_memory_mb: float, overlap: int, resources: Resources,
                params: dict, channels: int = 3, itemsize: int = 1) -> int:
    """Largest tile side (multiple of 64, at least 256) whose working set fits ``max_memory_mb``.

    Returns 0 when the whole image fits in one tile, 256 when even that does not fit.
    """
    budget = max_memory_mb * 1e6
    kw = dict(overlap=overlap, resources=resources, params=params, channels=channels, itemsize=itemsize)
    if estimate_memory(h, w, n, tile=0, **kw) <= budget:
        return 0
    lo, hi = 256, max(256, (max(h, w) - 1) // 64 * 64)
    if estimate_memory(h, w, n, tile=lo, **kw) > budget:
        return lo
    while hi - lo > 64:  # the estimate grows with the tile: bisect on multiples of 64
        mid = (lo + hi) // 128 * 64
        if estimate_memory(h, w, n, tile=mid, **kw) <= budget:
            lo = mid
        else:
            hi = mid
    return hi if estimate_memory(h, w, n, tile=hi, **kw) <= budget else lo


@dataclass(frozen=True)
class TilePlan:
    """How an engine cuts one fusion: tile side (0: one tile), overlap, option changes, estimate."""

    tile: int
    overlap: int
    fitted: dict
    need_mb: float


def plan_tiles(method, given: dict, n: int, h: int, w: int, *, max_memory_mb: float, tile: int = 0,
               overlap: int | None = None, channels: int = 3, itemsize: int = 1, frames: bool = False) -> TilePlan:
    """Plan a tiled fusion from what ``method`` (a :class:`mfif.methods.Method`) declares.

    With ``tile=0`` the method's inner pass is first fitted to the budget
    (:meth:`Resources.fit`, options the user gave in ``given`` kept), then the largest tile whose
    estimated working set fits ``max_memory_mb`` is chosen (:func:`choose_tile`). ``overlap``
    defaults to the method's ``halo``. ``need_mb`` is the estimate for the chosen tile, which
    exceeds the budget only when even the smallest tile (or the ``tile`` given) does.
    ``frames``: the engine hands the method a frame source (the method's ``frames_resources``).
    """
    resources = method.load_resources(frames=frames)
    overlap = method.halo if overlap is None else int(overlap)
    fitted = {} if tile else resources.fit(method.options(given), given, n, h, w, budget=max_memory_mb * 1e6)
    kw = dict(overlap=overlap, resources=resources, params=method.options({**given, **fitted}),
              channels=channels, itemsize=itemsize)
    t = tile if tile else choose_tile(h, w, n, max_memory_mb=max_memory_mb, **kw)
    return TilePlan(tile=t, overlap=overlap, fitted=fitted, need_mb=estimate_memory(h, w, n, tile=t, **kw) / 1e6)


def tiles(h: int, w: int, tile: int, overlap: int) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """(core box, padded box) pairs ``(y0, x0, y1, x1)`` covering an ``h x w`` image."""
    if tile <= 0 or (tile >= h and tile >= w):
        yield (0, 0, h, w), (0, 0, h, w)
        return
    ny, nx = math.ceil(h / tile), math.ceil(w / tile)
    for i in range(ny):
        for j in range(nx):
            y0, x0 = i * tile, j * tile
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            yield (y0, x0, y1, x1), (max(0, y0 - overlap), max(0, x0 - overlap), min(h, y1 + overlap), min(w, x1 + overlap))


def ramp(n: int, lo_pad: int, hi_pad: int, overlap: int) -> np.ndarray:
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
