"""The ``sff`` fusion method: the paper's four steps.

1. **Focus detection** -- the CNN scores corresponding 22x22 windows of the sources on a
   4-px grid; overlapping windows are averaged into a full-resolution score map.
2. **Initial segmentation** -- the score map is thresholded at 0.5 (two sources) or arg-maxed
   (more sources) into a decision map.
3. **Consistency verification** -- regions smaller than ``min_region`` of the image are
   absorbed by their surroundings, except (mfif's addition, ``keep_confident``) those in
   which the CNN is confident and that are at least ``min_region_floor`` of the image: small
   objects in focus survive, the classifier's unsure islands do not. Then (mfif's addition,
   ``refine_band``) pixels within a few pixels of a decision boundary are re-decided by a
   fine-scale focus measure (the CNN sees 22x22 windows and cannot place a boundary to the
   pixel) where that measure is decisive against the sources' estimated noise
   (``refine_noise``), small fragments are removed again, and each source's binary mask is
   smoothed with a guided filter steered by the initially fused image, so boundaries follow
   image edges.
4. **Fusion** -- pixel-wise weighted average of the sources with the refined weights. mfif's
   addition (``seam="laplacian"``): within ``seam_width`` px of a decision boundary the
   weighted average is cross-faded into a Laplacian-pyramid (max-abs) fusion, which keeps the
   sharp detail of both sides at an occlusion boundary, where neither source alone is right
   (a defocused foreground spreads over the background). ``keep_confident=2, refine_band=0,
   seam="none"`` is the paper's method exactly.

Colour images are decided on luminance (BT.601) and blended in colour.

More than two sources: every source is compared with every other one with the same
two-input network (features are computed once per source, only the small head runs per
pair); a source's score is its mean probability of being the sharper of a pair, and the
decision is the arg-max. This is symmetric in the sources and reduces exactly to the
paper's rule for two.

References
----------
.. [1] I. Ismail and K. H. Ghazali, "Deep Learning-Based Semantic Focus Fusion for
   High-Quality Multifocus Image", 2025.
.. [2] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
   convolutional neural network", Information Fusion 36, 2017.
.. [3] K. He, J. Sun and X. Tang, "Guided image filtering", IEEE TPAMI 35(6), 2013.

The steps that have no CNN in them are the package's shared stages: :mod:`mfif.decision`
(threshold, arg-max, near/far preference), :mod:`mfif.consistency` (small regions, boundary
refinement, guided-filter weights) and :mod:`mfif.blend` (weighted average, seam cross-fade).
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import cv2
import numpy as np

from ..blend import seam_blend, weighted_blend
from ..consistency import NOISE_PIXELS, decision_confidence, decision_weights, noise_sigma, verify_decision
from ..decision import argmax_decision, prefer_decision, threshold_decision
from ..io import to_gray
from ..result import FusionResult
from .inference import grid_to_map, score_grid
from .model import PATCH
from .weights import load_model, resolve_device


def sff_scores(grays: Sequence[np.ndarray], *, weights: str = "", stride: int = 4, tile: int = 384,
               threads: int = 0, scale: float = 1.0, progress: Callable | None = None,
               device: str = "cpu") -> np.ndarray:
    """Step 1: full-resolution focus-score maps ``(N, H, W)`` in [0, 1] for gray sources.

    With ``scale < 1`` the CNN sees copies downscaled by that factor (area averaging), which
    costs ``scale**2`` of the time; the score maps are upsampled back (bilinear).
    """

    dev = resolve_device(device)
    net, _ = load_model(weights or None, device=dev)
    h, w = grays[0].shape
    if scale < 1.0:
        size = (max(PATCH, round(w * scale)), max(PATCH, round(h * scale)))
        small = [cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in grays]
        grid = score_grid(net, small, stride=stride, tile=tile, threads=threads, progress=progress, device=dev)
        maps = grid_to_map(grid, small[0].shape, stride=stride)
        return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in maps])
    grid = score_grid(net, grays, stride=stride, tile=tile, threads=threads, progress=progress, device=dev)
    return grid_to_map(grid, (h, w), stride=stride)


def fuse_sff(sources: list[np.ndarray], *, weights: str = "", threshold: float = 0.5, min_region: float = 0.01,
             keep_confident: float = 0.3, min_region_floor: float = 0.001,
             refine_band: float = 16.0, refine_window: int = 5, refine_noise: float = 8.0, gf_radius: int = 2, gf_eps: float = 0.001,
             seam: str = "laplacian", seam_width: float = 6.0, stride: int = 4, tile: int = 384,
             threads: int = 0, scale: float = 1.0, prefer: str = "none", prefer_margin: float = 0.05,
             device: str = "cpu", noise: float = 0.0, progress: Callable | None = None) -> FusionResult:
    """Fuse sources with Semantic Focus Fusion.

    Parameters
    ----------
    sources : list of ndarray
        N >= 2 float32 images in [0, 1], ``HxW`` or ``HxWx3``, same shape.
    weights : str
        Weights file (default: the shipped, hash-checked model).
    threshold : float
        Step 2 threshold on P(A focused) for two sources.
    min_region : float
        Step 3: connected regions smaller than this fraction of the image, divided by
        ``N - 1`` for N sources, are removed...
    keep_confident : float
        ...unless the classifier is confident in them: a small region whose mean confidence
        (``|2p - 1|``; best minus second-best score for N sources) is at least this is kept
        (> 1: the paper's plain rule).
    min_region_floor : float
        Confident regions smaller than this fraction (divided by ``N - 1``) are removed anyway.
    refine_band : float
        Step 3: pixels within this many px of a decision boundary are re-decided by a
        sum-modified-Laplacian over ``refine_window`` px (0 = off, the paper's step 3).
    refine_window : int
        Window of that fine focus measure.
    refine_noise : float
        A band pixel is re-decided only where the fine measure's best source beats the
        runner-up by more than this many times the sources' estimated noise sigma
        (0: every band pixel).
    gf_radius, gf_eps : int, float
        Step 3: guided-filter radius (px) and regularisation (on [0, 1] intensities).
    seam : {"laplacian", "none"}
        Step 4: cross-fade into a Laplacian-pyramid fusion near boundaries, or the paper's
        plain weighted average everywhere.
    seam_width : float
        Width (px) of that cross-fade.
    stride : {4, 8}
        Grid stride of the dense CNN pass.
    tile : int
        Tile side (px) of the CNN pass; bounds memory on large images.
    threads : int
        CPU worker threads of the CNN pass (0 = all cores).
    scale : float
        Run the CNN on copies downscaled by this factor (0.5 = 4x faster); the later steps
        stay at full resolution.
    device : {"cpu", "auto", "cuda", "mps"}
        Where the CNN runs (``auto``: CUDA or MPS when PyTorch sees one, else the CPU).
    prefer, prefer_margin : str, float
        Step 2: where the CNN's evidence is weak, take the near or far frame
        (:func:`mfif.decision.prefer_decision`; ``"none"``: the paper's rule).
    noise : float
        Noise sigma of the sources (on [0, 1] intensities) that ``refine_noise`` counts in; 0:
        estimated on each source's central box (:func:`mfif.consistency.noise_sigma` with
        ``max_pixels=NOISE_PIXELS``, as :func:`mfif.consistency.frames_noise`). Engines that fuse
        tiles pass the whole image's estimate (``Method.noise_option``), so that every tile
        counts in the same sigma as a whole-image run.

    Returns
    -------
    FusionResult
        ``scores``: for two sources ``(1, H, W)`` with P(A focused); for N sources ``(N, H, W)``
        with each source's mean probability of being the sharper of a pair,
        ``maps['initial_decision']`` (step 2), ``decision`` (after step 3), ``weights``
        (after the guided filter) and ``fused``.

    References
    ----------
    .. [1] I. Ismail and K. H. Ghazali, "Deep Learning-Based Semantic Focus Fusion for
       High-Quality Multifocus Image", 2025.
    .. [2] P. J. Burt and E. H. Adelson, "A multiresolution spline with application to image
       mosaics", ACM TOG 2(4), 1983.
    .. [3] S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8), 1994.
    """
    n = len(sources)
    h, w = sources[0].shape[:2]
    timings = {}
    t0 = time.perf_counter()
    grays = [to_gray(s) for s in sources]
    scores = sff_scores(grays, weights=weights, stride=stride, tile=tile, threads=threads, scale=scale,
                        progress=progress, device=device)
    timings["focus_detection"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    initial = threshold_decision(scores[0], threshold=threshold) if n == 2 else argmax_decision(scores)
    initial = prefer_decision(scores, initial, prefer=prefer, margin=prefer_margin)
    timings["segmentation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # a stack of N frames splits the image into about N regions: scale the minimum region
    # with 1 / (N - 1) so that frames focused on small depth ranges are not absorbed
    min_area = int(round(min_region * h * w / (n - 1)))
    floor = int(round(min_region_floor * h * w / (n - 1)))
    sigma = None
    if refine_band > 0 and refine_noise > 0:
        sigma = noise if noise > 0 else noise_sigma(grays, max_pixels=NOISE_PIXELS)
    decision = verify_decision(initial, grays, min_area=min_area, confidence=decision_confidence(scores),
                               keep_above=keep_confident, keep_min_area=floor, refine_band=refine_band,
                               refine_window=refine_window, refine_min_area=min_area // 10,
                               refine_noise=refine_noise, refine_sigma=sigma)
    weights_maps = decision_weights(decision, grays, radius=gf_radius, eps=gf_eps)
    timings["consistency"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fused = weighted_blend(sources, weights_maps)
    if seam == "laplacian":
        fused = seam_blend(fused, sources, decision, width=seam_width)
    fused = np.clip(fused, 0.0, 1.0)
    timings["fusion"] = time.perf_counter() - t0
    return FusionResult(fused=fused, method="sff", decision=decision, weights=weights_maps,
                        scores=scores[:1] if n == 2 else scores,
                        maps={"initial_decision": initial}, info={"timings": timings})
