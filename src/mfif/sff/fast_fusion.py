"""The ``sff-fast`` fusion method: a light per-frame focus network in SFF's four steps.

1. **Focus detection** -- :class:`~mfif.sff.fast_model.FastFocusNet` scores every frame on its
   own (cost linear in the number of frames) on a 4-px grid.
2. **Initial segmentation** -- on the grid: where the network is unsure, a fine focus measure
   (:func:`mfif.focus.cell_detail`, computed while the network runs) counts as evidence if it is
   decisive (:func:`mfif.consistency.detail_evidence`, ``fallback``); areas still without
   evidence take the evidence around them (:func:`mfif.consistency.fill_weak_evidence`), then
   each frame's probability of being
   the sharpest is a softmax over frames (two frames: ``P(A) = sigmoid(s_A - s_B)``),
   thresholded at ``threshold`` (two frames) or arg-maxed. At full resolution the boundaries
   are those of the bilinearly upsampled scores, into which the grid's later verdicts (small
   regions removed, flat areas unified) enter as a margin for the chosen frame.
3. **Consistency verification** -- small unsure regions are removed on the grid
   (:func:`mfif.consistency.remove_small_regions`, confident ones stay, 16 times fewer pixels
   than at full resolution) and each large area without detail in any frame is given to one
   frame (:func:`mfif.consistency.unify_flat_regions`, ``flat``); then, only in boxes around the
   boundaries
   (:func:`mfif.band.band_refine_blend`), pixels near a boundary are re-decided by a fine
   focus measure where it is decisive against the noise and the guided-filter weights of
   :func:`mfif.consistency.decision_weights` are computed (radius ``gf_radius`` for two
   frames, ``stack_gf_radius`` for more).
4. **Fusion** -- weighted average in those boxes, the chosen frame's pixels elsewhere;
   optionally cross-faded into a Laplacian-pyramid fusion near boundaries (``seam``).

``blend="soft"`` replaces steps 2-4 with a softmax blend of the frames weighted by
``exp(s_k / temperature)``, which needs no frame twice and is what the streaming API
(:class:`mfif.stream.StackStream`) computes frame by frame.

References
----------
.. [1] I. Ismail and K. H. Ghazali, "Deep Learning-Based Semantic Focus Fusion for
   High-Quality Multifocus Image", 2025.
.. [2] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
   convolutional neural network", Information Fusion 36, 2017.
.. [3] K. He, J. Sun and X. Tang, "Guided image filtering", IEEE TPAMI 35(6), 2013.
"""
from __future__ import annotations

import time
from typing import Callable

import cv2
import numpy as np

from ..band import band_refine_blend
from ..blend import seam_blend, soft_blend, softmax_weights
from ..consistency import (NOISE_PIXELS, decision_confidence, detail_evidence, fill_weak_evidence, noise_sigma,
                           put_evidence, remove_small_regions, unify_flat_regions)
from ..decision import argmax_decision, prefer_decision, threshold_decision
from ..focus import cell_detail
from ..frames import ArrayFrames, FrameSource, as_frames
from ..result import FusionResult
from .fast_runtime import STRIDE, load_scorer

__all__ = ["fast_scores", "upsample_scores", "fuse_sff_fast", "fuse_sff_fast_frames"]


def fast_scores(frames, *, weights: str = "", device: str = "auto", threads: int = 0, tile: float = 2.0,
                progress: Callable | None = None, on_gray: Callable | None = None) -> np.ndarray:
    """Step 1 on the 4-px grid: ``(N, ceil(H/4), ceil(W/4))`` float32 scores, one network pass per
    frame, of a :class:`mfif.frames.FrameSource` or a sequence of images (gray or colour; the
    network sees their luminance). ``on_gray(k, gray)`` is called with each frame's luminance,
    so that other per-frame measures need no second read."""
    frames = as_frames(frames)
    scorer = load_scorer(weights or None, device=device, threads=threads)
    out = []
    for k in range(frames.n):
        g = frames.gray(k)
        out.append(scorer.score(g, tile=tile))
        if on_gray is not None:
            on_gray(k, g)
        if progress is not None:
            progress(k + 1, frames.n)
    return np.stack(out)


def upsample_scores(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of one ``(ceil(H/4), ceil(W/4))`` score grid to ``HxW``.

    Grid cell ``i`` covers pixels ``4i .. 4i+3``, so its value sits at pixel ``4i + 1.5``
    (half-pixel centres, OpenCV's convention for an exact factor of 4 on the padded size); the
    padded image is then cropped to ``shape``.
    """
    h, w = shape
    gh, gw = grid.shape
    up = cv2.resize(np.ascontiguousarray(grid, dtype=np.float32), (4 * gw, 4 * gh), interpolation=cv2.INTER_LINEAR)
    return up[:h, :w]


class _FineTop2:
    """Running state of the fine focus measure over the frames, one frame at a time: on the 4-px
    grid, the best and second-best :func:`mfif.focus.cell_detail` and the best frame's index,
    and the mean noise sigma of the frames (three grids, whatever the number of frames). A
    ``noise`` above 0 is that sigma as given (an engine's estimate over the whole image), and
    none is estimated."""

    def __init__(self, noise: float = 0.0):
        self.best = self.second = self.index = None
        self.given = float(noise)
        self.sigmas: list[float] = []

    def add(self, k: int, gray: np.ndarray) -> None:
        if self.given <= 0:  # on the central box, as mfif.consistency.frames_noise
            self.sigmas.append(noise_sigma([gray], max_pixels=NOISE_PIXELS))
        d = cell_detail(gray, cell=STRIDE)
        if self.best is None:
            self.best, self.second = d, np.zeros_like(d)
            self.index = np.zeros(d.shape, np.int16)
            return
        better = d > self.best  # ties keep the lower index
        np.copyto(self.second, np.where(better, self.best, np.maximum(self.second, d)))
        np.copyto(self.best, d, where=better)
        self.index[better] = k

    @property
    def noise(self) -> float:
        """The mean noise sigma of the frames, as :func:`mfif.band.band_refine_blend` estimates it
        (or as given)."""
        return self.given if self.given > 0 else float(np.mean(self.sigmas))

    @property
    def sigma(self) -> float:
        """:attr:`noise`, at least 1e-4 (the unit of the fine measure's levels)."""
        return max(self.noise, 1e-4)


def fuse_sff_fast(sources: list[np.ndarray], *, weights: str = "", device: str = "auto", threads: int = 0,
                  tile: float = 2.0, blend: str = "decision", temperature: float = 0.25, threshold: float = 0.5,
                  min_region: float = 0.01, keep_confident: float = 0.3, min_region_floor: float = 0.001,
                  refine_band: float = 8.0, refine_window: int = 5, refine_noise: float = 8.0,
                  gf_radius: int = 2, gf_eps: float = 0.001, seam: str = "none", seam_width: float = 6.0,
                  weak: float = 6.0, weak_reach: int = 0, prefer: str = "none", prefer_margin: float = 0.05,
                  flat: float = 6.0, flat_area: float = 0.01, flat_keep: float = 0.97, fallback: float = 4.0,
                  stack_gf_radius: int = 8, noise: float = 0.0, progress: Callable | None = None) -> FusionResult:
    """Fuse sources with the light SFF network.

    Parameters
    ----------
    sources : list of ndarray
        N >= 2 float32 images in [0, 1], ``HxW`` or ``HxWx3``, same shape.
    weights : str, keyword-only
        Weights file (``.pt`` with its card and ONNX export beside it; default: the shipped one).
    device : {"auto", "cpu", "cuda", "mps"}, keyword-only
        Where the network runs (:func:`mfif.sff.fast_runtime.load_scorer`).
    threads : int, keyword-only
        CPU threads of the network (0: all cores).
    tile : float, keyword-only
        Largest network pass in megapixels (larger frames run in exact overlapping strips).
    blend : {"decision", "soft"}, keyword-only
        ``decision``: steps 2-4 of SFF on the network's probabilities; ``soft``: a softmax
        blend of the frames at ``temperature`` (what the streaming API computes).
    temperature : float, keyword-only
        Softmax temperature of ``blend="soft"`` (smaller: closer to a hard selection).
    weak : float, keyword-only
        Areas whose score margin (in logits) is below this take the evidence around them
        (:func:`mfif.consistency.fill_weak_evidence`, on the 4-px grid); 0: off.
    weak_reach : int, keyword-only
        Grid cells (4 px) within which evidence counts as a pixel's own. 0 (the default): each
        cell keeps its own scores in proportion to its own margin, so the crossing strip at a
        focus boundary also takes the evidence on both sides of it; 1 or more: that strip keeps
        its scores and only areas without evidence nearby are filled.
    fallback : float, keyword-only
        Where the network's margin is below ``weak``, the fine measure's best frame counts as
        evidence if it beats the runner-up by this many noise sigmas and by a factor of 1.5
        (:func:`mfif.consistency.detail_evidence`); 0: off.
    flat, flat_area : float, keyword-only
        Each connected area of at least ``flat_area`` of the image where no frame's fine measure
        reaches ``flat`` noise sigmas comes from one frame, the one with the most detail there
        (:func:`mfif.consistency.unify_flat_regions`); ``flat`` 0: off.
    flat_keep : float, keyword-only
        A flat area whose decision already gives at least this fraction of it to one frame keeps
        that frame instead (``> 1``: never).
    stack_gf_radius : int, keyword-only
        Guided-filter radius with three or more frames (``gf_radius`` is the pairs' radius).
    noise : float, keyword-only
        Noise sigma of the frames (on [0, 1] intensities) that ``fallback``, ``flat`` and the
        boundary re-decision count in; 0: estimated on the frames' central boxes
        (:func:`mfif.consistency.frames_noise`). Engines that fuse tiles pass the whole image's
        estimate (``Method.noise_option``), so that every tile counts in the same sigma.
    threshold, min_region, keep_confident, min_region_floor, refine_band, refine_window,
    refine_noise, gf_radius, gf_eps, seam, seam_width, prefer, prefer_margin
        As in :func:`mfif.sff.fusion.fuse_sff` (the shared stages).

    Returns
    -------
    FusionResult
        ``scores``: ``(1, H, W)`` P(A sharper) for two sources, ``(N, H, W)`` each frame's
        probability of being the sharpest otherwise; ``decision``, ``weights``, ``fused``,
        ``maps["initial_decision"]``; ``info["timings"]`` per step and ``info["device"]``
        (:func:`fast_scores` gives the raw ``(N, H/4, W/4)`` network output).

    References
    ----------
    .. [1] I. Ismail and K. H. Ghazali, "Deep Learning-Based Semantic Focus Fusion for
       High-Quality Multifocus Image", 2025.
    """
    return fuse_sff_fast_frames(
        ArrayFrames(sources), weights=weights, device=device, threads=threads, tile=tile, blend=blend,
        temperature=temperature, threshold=threshold, min_region=min_region, keep_confident=keep_confident,
        min_region_floor=min_region_floor, refine_band=refine_band, refine_window=refine_window,
        refine_noise=refine_noise, gf_radius=gf_radius, gf_eps=gf_eps, seam=seam, seam_width=seam_width, weak=weak,
        weak_reach=weak_reach, prefer=prefer, prefer_margin=prefer_margin, flat=flat, flat_area=flat_area,
        flat_keep=flat_keep, fallback=fallback, stack_gf_radius=stack_gf_radius, noise=noise, progress=progress)


def fuse_sff_fast_frames(frames: FrameSource, *, keep_maps: bool = True, weights: str = "", device: str = "auto",
                         threads: int = 0, tile: float = 2.0, blend: str = "decision", temperature: float = 0.25,
                         threshold: float = 0.5, min_region: float = 0.01, keep_confident: float = 0.3,
                         min_region_floor: float = 0.001, refine_band: float = 8.0, refine_window: int = 5,
                         refine_noise: float = 8.0, gf_radius: int = 2, gf_eps: float = 0.001, seam: str = "none",
                         seam_width: float = 6.0, weak: float = 6.0, weak_reach: int = 0, prefer: str = "none",
                         prefer_margin: float = 0.05, flat: float = 6.0, flat_area: float = 0.01,
                         flat_keep: float = 0.97, fallback: float = 4.0, stack_gf_radius: int = 8, noise: float = 0.0,
                         progress: Callable | None = None) -> FusionResult:
    """:func:`fuse_sff_fast` on frames read on demand (:class:`mfif.frames.FrameSource`).

    The decision path reads each frame twice (the network pass, the chosen pixels) and boxes of
    the frames that meet at a boundary, so an engine can keep one frame in memory at a time.
    With ``keep_maps=False`` the ``NxHxW`` weight maps and the score maps are not made
    (``weights`` and ``scores`` are None, except the scores ``prefer`` needs); the fused image
    and decision are the same.
    ``blend="soft"`` and ``seam="laplacian"`` read every frame into memory.
    """
    n = frames.n
    h, w = frames.shape[:2]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fine = _FineTop2(noise) if (flat > 0 or fallback > 0) and blend != "soft" else None
    grid = fast_scores(frames, weights=weights, device=device, threads=threads, tile=tile, progress=progress,
                       on_gray=None if fine is None else fine.add)
    timings["focus_detection"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    info = {"device": load_scorer(weights or None, device=device, threads=threads).device}
    if blend == "soft":
        logits = np.stack([upsample_scores(g, (h, w)) for g in grid])
        probs = softmax_weights(logits)
        timings["segmentation"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fused, weights_maps, scaled = soft_blend([frames.frame(k) for k in range(n)], logits, temperature=temperature)
        decision = argmax_decision(scaled)
        timings["fusion"] = time.perf_counter() - t0
        return FusionResult(fused=fused, method="sff-fast", decision=decision, weights=weights_maps,
                            scores=probs[:1] if n == 2 else probs,
                            maps={"initial_decision": decision},
                            info={"timings": timings, **info})
    # steps 2-3a on the network's 4-px grid: 16 times fewer pixels for the same regions;
    # areas without evidence take the evidence around them first
    if fine is not None and fallback > 0:
        # where the network is unsure, a decisive fine measure counts as evidence
        grid = detail_evidence(grid, fine.best, fine.second, fine.index, weak=weak, level=fallback * fine.sigma)
    grid = fill_weak_evidence(grid, weak=weak, reach=weak_reach)
    pg = softmax_weights(grid)
    sg = pg[:1] if n == 2 else pg
    init_g = threshold_decision(sg[0], threshold=threshold) if n == 2 else argmax_decision(pg)
    init_g = prefer_decision(sg, init_g, prefer=prefer, margin=prefer_margin)
    cells = STRIDE * STRIDE
    min_area = min_region * h * w / (n - 1)
    floor = min_region_floor * h * w / (n - 1)
    dec_g = remove_small_regions(init_g, min_area=int(round(min_area / cells)), confidence=decision_confidence(sg),
                                 keep_above=keep_confident, keep_min_area=int(round(floor / cells)))
    unified = None
    if fine is not None and flat > 0:
        # each large area without detail in any frame comes from one frame
        dec_g, unified = unify_flat_regions(dec_g, fine.best, fine.index, level=flat * fine.sigma,
                                            min_area=round(flat_area * h * w / cells), n=n, keep_share=flat_keep,
                                            return_mask=True)
    # the band stage needs not estimate the noise again
    sigma = noise if noise > 0 else (None if fine is None else fine.noise)
    fine = None
    changed = dec_g != init_g
    if unified is not None:
        # a unified area is one frame to the pixel, not only where its grid cells changed: the
        # upsampled scores would leave the old boundary's sub-cell strips in it
        changed |= unified
    if changed.any():
        # the grid's verdict enters the scores (a margin of the evidence's kind for the chosen frame),
        # so that its boundaries at full resolution are the upsampled scores' too, not 4-px steps
        margin = max(1.5 * weak, 4.0)
        grid = put_evidence(grid, dec_g, changed, high=margin, low=-margin)
    # full resolution: the boundaries of the upsampled scores
    if n == 2 and not keep_maps and prefer == "none" and 0.0 < threshold < 1.0:
        # only the decision is wanted: P(A) >= threshold is the logit difference >= logit(threshold),
        # without the full-size logistic (the two differ only where float32 rounds the logistic)
        scores = None
        initial = threshold_decision(upsample_scores(grid[0] - grid[1], (h, w)),
                                     threshold=float(np.log(threshold / (1.0 - threshold))))
    elif n == 2:
        s = np.negative(upsample_scores(grid[0] - grid[1], (h, w)))  # the logistic, in place
        np.exp(s, out=s)
        s += 1.0
        scores = np.divide(1.0, s, out=s)[None]
        initial = threshold_decision(scores[0], threshold=threshold)
        initial = prefer_decision(scores, initial, prefer=prefer, margin=prefer_margin)
    elif keep_maps or prefer != "none":
        scores = np.empty((n, h, w), np.float32)  # filled and normalised in place: one N-map array
        for k, g in enumerate(grid):
            scores[k] = upsample_scores(g, (h, w))
        initial = argmax_decision(scores)
        softmax_weights(scores, out=scores)
        initial = prefer_decision(scores, initial, prefer=prefer, margin=prefer_margin)
    else:  # the arg-max frame by frame: two full-size maps whatever the number of frames
        scores = None
        best = upsample_scores(grid[0], (h, w)).copy()
        initial = np.zeros((h, w), np.int16)
        for k in range(1, n):
            s_k = upsample_scores(grid[k], (h, w))
            better = s_k > best  # ties keep the lower index, as arg-max does
            initial[better] = k
            np.copyto(best, s_k, where=better)
        best = None
    decision = initial
    timings["segmentation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # steps 3b-4 only in the band around the boundaries
    radius = gf_radius if n == 2 else stack_gf_radius
    decision, weights_maps, fused = band_refine_blend(decision, frames, band=refine_band, window=refine_window,
                                                      noise_k=refine_noise, gf_radius=radius, gf_eps=gf_eps,
                                                      sigma=sigma, keep_weights=keep_maps, threads=threads)
    timings["consistency_and_blend"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if seam == "laplacian":
        fused = seam_blend(fused, [frames.frame(k) for k in range(n)], decision, width=seam_width)
    fused = np.clip(fused, 0.0, 1.0, out=fused)
    timings["fusion"] = time.perf_counter() - t0
    return FusionResult(fused=fused, method="sff-fast", decision=decision, weights=weights_maps, scores=scores,
                        maps={"initial_decision": initial}, info={"timings": timings, **info})
