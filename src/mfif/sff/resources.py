"""What the tiling engines need to know about SFF: its memory per tile and its CNN's inner tiles.

Declared in the registry (``resources="mfif.sff.resources:RESOURCES"``); importing this module
does not import PyTorch.
"""
from __future__ import annotations

import dataclasses
import os

from ..tiling import MemoryModel, Resources

__all__ = ["PATCH", "SFF_MEMORY", "RESOURCES", "SFFResources", "grid_tiles"]

PATCH = 22  #: side of the square patch the classifier sees (its receptive field)


def grid_tiles(h: int, w: int, *, stride: int, tile: int) -> tuple[int, int, int]:
    """The dense CNN pass's score grid on an ``h x w`` image and its internal tiles.

    Returns ``(kh, kw, per)``: a ``kh x kw`` grid of windows every ``stride`` px, cut into
    internal tiles of ``per x per`` grid points (from the ``tile`` option in input px, rounded
    to a multiple of 8 px and at least 64; ``per`` even at stride 4, so that tile starts stay
    at multiples of 8 px).
    """
    kh, kw = h // stride + 1, w // stride + 1
    t = max(8 * (int(tile) // 8), 64)
    per = max((t - PATCH) // stride + 1, 1)
    per -= per % 2
    per = max(per, 2 if stride == 4 else 1)
    return kh, kw, per

#: SFF with ``scale=1``; ``cnn_frame`` has a part at the CNN's resolution (``scale**2`` of it).
SFF_MEMORY = MemoryModel(per_frame=60.0, fixed=4.0, const=16e6, cnn_frame=31.0, cnn_per_frame=3000.0,
                         cnn_fixed=900.0)
SFF_CNN_RES_PER_FRAME = 8.0  #: bytes per tile pixel and frame of ``cnn_frame`` at the CNN's resolution


class SFFResources(Resources):
    """SFF's memory model, adjusted to its ``scale`` option, and its CNN pass's inner tiles."""

    def __init__(self):
        super().__init__(SFF_MEMORY)

    def memory_model(self, params: dict) -> MemoryModel:
        extra = SFF_CNN_RES_PER_FRAME * (float(params["scale"]) ** 2 - 1.0)
        return dataclasses.replace(SFF_MEMORY, cnn_frame=SFF_MEMORY.cnn_frame + extra)

    def inner_tiles(self, params: dict, h: int, w: int) -> tuple[int, int, int]:
        """The ``workers`` largest internal tiles of :func:`mfif.sff.inference.score_grid`
        together: internal tiles of the ``tile`` option at the ``scale`` option's resolution, on
        a grid of ``stride`` px, ``threads`` workers (0: all cores), at most one per tile."""
        scale, stride = float(params["scale"]), int(params["stride"])
        if scale < 1.0:
            h, w = max(PATCH, round(h * scale)), max(PATCH, round(w * scale))
        kh, kw, per = grid_tiles(h, w, stride=stride, tile=int(params["tile"]))
        sides_h = [min(per, kh - k) for k in range(0, kh, per)]
        sides_w = [min(per, kw - k) for k in range(0, kw, per)]
        boxes = sorted(((a * b, ((a - 1) * stride + PATCH) * ((b - 1) * stride + PATCH))
                        for a in sides_h for b in sides_w), reverse=True)
        threads = int(params["threads"]) or (os.cpu_count() or 1)
        workers = max(1, min(threads, len(boxes)))
        top = boxes[:workers]
        return sum(p for _, p in top), sum(g for g, _ in top), workers

    def fit(self, params: dict, given: dict, n: int, h: int, w: int, *, budget: float) -> dict:
        """Lower the CNN pass's internal ``tile`` (in steps of 64 px, to 192 px) while the pass
        takes more than a quarter of the budget, then its ``threads`` while it takes more than
        half; neither changes the result (internal tiles are exact), and options the user set
        are kept."""
        o = dict(params)
        out = {}
        if "tile" not in given:
            while self.inner_memory(o, n, h, w) > budget / 4 and int(o["tile"]) - 64 >= 192:
                o["tile"] = out["tile"] = int(o["tile"]) - 64
        if not int(given.get("threads") or 0):
            workers = self.inner_tiles(o, h, w)[2]
            while workers > 1 and self.inner_memory({**o, "threads": workers}, n, h, w) > budget / 2:
                workers -= 1
                out["threads"] = workers
        return out


RESOURCES = SFFResources()
