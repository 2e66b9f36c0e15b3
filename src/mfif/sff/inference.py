"""Step 1 of SFF fusion: dense focus-score maps over whole images, tiled for bounded memory.

The network is run once per tile over every source (features are computed once per source
and shared by every pairwise comparison). Each output of the dense pass is the classifier's
decision for one 22x22 window; a window's probability is spread over its footprint and
overlapping windows are averaged, which gives a full-resolution score map (Liu et al. 2017
do the same with 16x16 patches).

Tiles are cut at multiples of 8 px of the padded image, with an overlap of one window, so the
tiled result is identical to a single pass over the whole image.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Sequence

import numpy as np
import torch

from .model import PATCH
from .resources import grid_tiles


def pairwise_from_projections(net, proj: list[tuple[torch.Tensor, torch.Tensor]], *,
                              chunk_bytes: int = 1 << 19) -> torch.Tensor:
    """Mean probability that each source beats every other one, from per-source projections.

    The head runs over bands of grid rows of about ``chunk_bytes`` per projection, every pair
    within a band before the next: its temporaries then stay in cache instead of streaming
    whole-tile 256-channel maps through memory once per pair. Row bands do not change any
    value.
    """
    n = len(proj)
    h, w, c = proj[0][0].shape[1:]
    rows = max(1, chunk_bytes // (w * c * 4))
    scores = torch.zeros((n, h, w), dtype=torch.float32)
    for r0 in range(0, h, rows):
        band = [(u[:, r0:r0 + rows], v[:, r0:r0 + rows]) for u, v in proj]
        s = scores[:, r0:r0 + rows]
        for i in range(n):
            for j in range(i + 1, n):
                p = torch.sigmoid(net.pair_logit(band[i], band[j]))[0]
                s[i] += p
                s[j] += 1.0 - p
    return scores / (n - 1)


def score_grid(net, grays: Sequence[np.ndarray], *, stride: int = 4, tile: int = 384, threads: int = 0,
               progress: Callable[[int, int], None] | None = None, device: str = "cpu") -> np.ndarray:
    """Window-level scores of every source on the dense grid.

    Tiles are independent, so they are spread over ``threads`` worker threads, each running
    PyTorch with one intra-op thread: on small tiles this keeps every core busy without the
    synchronisation of intra-op parallelism, and a tile of a few hundred pixels keeps a layer's
    activations in cache (docs/benchmark.md has the measurements behind the default tile).

    Parameters
    ----------
    net : SFFNet
        Network in eval mode.
    grays : sequence of ndarray
        N gray float32 ``HxW`` images in [0, 1].
    stride : {4, 8}
        Grid stride in pixels.
    tile : int
        Tile side in input pixels (rounded to a multiple of 8); bounds peak memory.
    threads : int
        Worker threads (0 = all cores).
    progress : callable, optional
        Called as ``progress(done, total)`` after each tile.
    device : str
        PyTorch device the network is on (``cpu``, ``cuda``, ``mps``); off the CPU the tiles
        run one after the other (the device is parallel itself).

    Returns
    -------
    ndarray
        ``(N, Kh, Kw)`` float32 where ``[:, k, l]`` scores the window whose top-left corner is
        at ``(stride*k - 11, stride*l - 11)`` in image coordinates (images are reflect-padded
        by 11 px), i.e. the window centred near pixel ``(stride*k, stride*l)``.
    """
    workers = threads if threads and threads > 0 else (os.cpu_count() or 1)
    if device != "cpu":
        workers = 1
    h, w = grays[0].shape
    half = PATCH // 2
    kh, kw, per_tile = grid_tiles(h, w, stride=stride, tile=tile)
    # Pad so that every window start s*k (k < kh) has a full window, plus alignment slack.
    ph = (kh - 1) * stride + PATCH
    pw = (kw - 1) * stride + PATCH
    padded = []
    for g in grays:
        p = np.pad(g, ((half, ph - h - half), (half, pw - w - half)), mode="reflect")
        padded.append(torch.from_numpy(np.ascontiguousarray(p, dtype=np.float32)))
    out = np.zeros((len(grays), kh, kw), np.float32)
    boxes = [(k0, min(kh, k0 + per_tile), l0, min(kw, l0 + per_tile))
             for k0 in range(0, kh, per_tile) for l0 in range(0, kw, per_tile)]

    def run(box):
        k0, k1, l0, l1 = box
        y0, y1 = k0 * stride, (k1 - 1) * stride + PATCH
        x0, x1 = l0 * stride, (l1 - 1) * stride + PATCH
        with torch.inference_mode():
            proj = []
            for p in padded:
                x = p[y0:y1, x0:x1][None, None].contiguous(memory_format=torch.channels_last).to(device)
                proj.append(tuple(t.cpu() for t in net.project(net.features(x, dense_stride=stride))))
            s = pairwise_from_projections(net, proj)
        out[:, k0:k1, l0:l1] = s[:, : k1 - k0, : l1 - l0].numpy()  # disjoint blocks: thread-safe

    workers = max(1, min(workers, len(boxes)))
    before = torch.get_num_threads()
    torch.set_num_threads(1 if workers > 1 else before)
    try:
        if workers == 1:
            for i, box in enumerate(boxes):
                run(box)
                if progress is not None:
                    progress(i + 1, len(boxes))
        else:
            pool = ThreadPoolExecutor(workers)
            try:
                for i, done in enumerate(as_completed([pool.submit(run, b) for b in boxes])):
                    done.result()  # re-raises a worker's exception
                    if progress is not None:
                        progress(i + 1, len(boxes))
            finally:
                # on Ctrl-C (or a worker's error) drop the tiles not started yet: only the ones
                # running finish, so the pass stops within one tile's time
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        torch.set_num_threads(before)
    return out


def grid_to_map(grid: np.ndarray, shape: tuple[int, int], *, stride: int = 4, footprint: int = PATCH) -> np.ndarray:
    """Full-resolution map from window scores: each window's score is spread over its central
    ``footprint`` x ``footprint`` pixels and overlapping windows are averaged.

    Parameters
    ----------
    grid : ndarray
        ``(N, Kh, Kw)`` window scores from :func:`score_grid`.
    shape : (int, int)
        Image height and width.

    Returns
    -------
    ndarray
        ``(N, H, W)`` float32.
    """
    h, w = shape
    g = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[:, None]
    f = int(footprint)
    row, col = torch.ones((1, 1, 1, f)), torch.ones((1, 1, f, 1))

    def spread(x):  # the f x f box is separable: one 1-D pass per axis (11x fewer operations)
        x = torch.nn.functional.conv_transpose2d(x, row, stride=(1, stride))
        return torch.nn.functional.conv_transpose2d(x, col, stride=(stride, 1))

    with torch.inference_mode():
        acc = spread(g)[:, 0]
        cnt = spread(torch.ones_like(g[:1]))[0, 0]
    # window k is centred at pixel stride*k - 0.5; its footprint starts at stride*k - f/2.
    off = f // 2
    acc = acc[:, off: off + h, off: off + w]
    cnt = cnt[off: off + h, off: off + w]
    return (acc / cnt).numpy().astype(np.float32)
