"""Stages 3-4 where they change something: boundary refinement, guided weights and blend in the band.

Away from a decision boundary the later stages of a decision-map method are the identity: the
fine focus measure is not consulted, a guided filter of a constant mask returns the constant,
and the blend copies the chosen source. :func:`band_refine_blend` therefore runs
:func:`mfif.consistency.refine_boundaries`' re-decision, :func:`mfif.consistency.decision_weights`
and :func:`mfif.blend.weighted_blend` only on boxes that hold boundary pixels, each with enough
margin that its core comes out as in a whole-image run, and copies the chosen source
everywhere else. On a typical photo the band is a few per cent of the image, so stages 3-4
cost a few per cent of their whole-image price.

Two differences from the whole-image stages: fragments that the re-decision leaves are not
removed afterwards (that step needs connected regions of the whole image; the re-decision only
acts where the fine measure beats the runner-up by ``noise_k`` noise sigmas, which leaves few of
them), and with more than two frames a box's band pixels are re-decided among the frames that
meet in that box rather than among all frames. For two frames the result is that of
:func:`mfif.consistency.refine_boundaries` (without its fragment removal),
:func:`mfif.consistency.decision_weights` and :func:`mfif.blend.weighted_blend`, within float
rounding (tested).

References
----------
.. [1] K. He, J. Sun and X. Tang, "Guided image filtering", IEEE TPAMI 35(6), 2013.
.. [2] S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8), 1994.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from .consistency import NOISE_PIXELS, best_margin, frames_noise, guided_filter, normalize_weights, within_disc
from .decision import argmax_decision, label_boundary, labels_present
from .focus import sml
from .frames import as_frames

__all__ = ["band_boxes", "band_refine_blend", "select_sources"]


def band_boxes(decision: np.ndarray, *, reach: int, box: int = 128) -> list[tuple[int, int, int, int]]:
    """Boxes ``(y0, y1, x0, x1)`` of a ``box``-px grid that lie within ``reach`` px of a boundary.

    A box is listed if any pixel within ``reach`` px (Chebyshev) of it is a boundary pixel
    (:func:`mfif.decision.label_boundary`).
    """
    return _grid_hits(_reach(label_boundary(decision), reach), box)


def _reach(edge: np.ndarray, reach: int) -> np.ndarray:
    """Pixels within ``reach`` px (Chebyshev) of a pixel of the bool map ``edge``: uint8."""
    e = edge.view(np.uint8)
    if reach > 0 and edge.any():
        e = cv2.dilate(e, np.ones((2 * int(reach) + 1, 2 * int(reach) + 1), np.uint8))
    return e


def _grid_hits(mask: np.ndarray, box: int) -> list[tuple[int, int, int, int]]:
    """The boxes of the ``box``-px grid that hold a nonzero pixel of ``mask``, in raster order."""
    h, w = mask.shape
    gh, gw = -(-h // box), -(-w // box)
    e = np.pad(mask, ((0, gh * box - h), (0, gw * box - w)))
    hit = e.reshape(gh, box, gw, box).any(axis=(1, 3))
    return [(i * box, min(h, (i + 1) * box), j * box, min(w, (j + 1) * box)) for i, j in zip(*np.nonzero(hit))]


def select_sources(frames, decision: np.ndarray, *, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The hard-decision image: frame ``decision[y, x]`` at every pixel (float32, a new array).

    ``frames`` is a :class:`mfif.frames.FrameSource` or a sequence of arrays. With ``box``
    ``(y0, y1, x0, x1)``, ``decision`` is the map of that box and only that box of the frames
    is read. Each frame present in ``decision`` is read once and copied only where it is chosen
    (OpenCV's masked copy), so the cost is one image's worth of copying whatever the number of
    frames.
    """
    frames = as_frames(frames)
    y0, y1, x0, x1 = box if box is not None else (0, frames.shape[0], 0, frames.shape[1])

    def read(k):
        return frames.crop(k, y0, y1, x0, x1) if box is not None else frames.frame(k)

    labels = labels_present(decision)
    out = np.array(read(int(labels[0])), dtype=np.float32, copy=True)
    for k in labels[1:]:
        # OpenCV's masked copy: faster than np.where or fancy indexing (measured in docs/speed.md)
        mask = (decision == k).view(np.uint8)
        cv2.copyTo(np.asarray(read(int(k)), dtype=np.float32), mask, out)
    return out


def _cells(h: int, w: int, box: int) -> list[tuple[int, int, int, int]]:
    """Every box of the ``box``-px grid :func:`band_boxes` uses, in its order."""
    return [(y, min(h, y + box), x, min(w, x + box)) for y in range(0, h, box) for x in range(0, w, box)]


def _box_weights(dec: np.ndarray, grays: dict, labels: np.ndarray, core: tuple[slice, slice], *, radius: int,
                 eps: float) -> dict[int, np.ndarray]:
    """:func:`mfif.consistency.decision_weights` of a crop, filtering only the labels in it.

    ``grays`` maps each label in the crop to that frame's luminance there. Returns each label's
    weight on the ``core`` of the crop (labels absent from the crop weigh zero: a zero mask's
    guided filter is zero). With two labels the second weight is one minus the first (the guided
    filter is linear and filters the constant 1 to 1), which is what clipping and normalising
    both would give.
    """
    if labels.size == 1 or radius <= 0:
        return {int(k): (dec[core] == k).astype(np.float32) for k in labels}
    if labels.size == 2:
        a, b = int(labels[0]), int(labels[1])
        is_a = dec == a
        guide = np.where(is_a, grays[a], grays[b]).astype(np.float32, copy=False)
        w = guided_filter(guide, is_a.view(np.uint8).astype(np.float32), radius=radius, eps=eps)[core]
        np.clip(w, 0.0, 1.0, out=w)
        return {a: w, b: np.subtract(1.0, w, dtype=np.float32)}
    guide = np.array(grays[int(labels[0])], dtype=np.float32, copy=True)
    for k in labels[1:]:
        np.copyto(guide, grays[int(k)], where=dec == k)
    filtered = np.stack([guided_filter(guide, (dec == k).astype(np.float32), radius=radius, eps=eps)[core]
                         for k in labels])
    return dict(zip((int(k) for k in labels), normalize_weights(filtered)))


#: :func:`cv2.blendLinear` divides by ``w1 + w2 + 1e-5`` in float32; weights scaled by this power
#: of two (exact) make that term vanish in the rounding of the sum, so a weight of one returns its
#: source exactly.
_BLEND_SCALE = np.float32(2.0 ** 14)


def _blend(crops: dict, wt: dict) -> np.ndarray:
    """The weighted sum of the crops of the labels in ``wt`` (weights summing to one), float32.

    One :func:`cv2.blendLinear` pass per label after the first (a single SIMD pass over the
    channels for two labels, where NumPy's ``a + w (b - a)`` takes four), each the running
    weighted mean of the labels so far.
    """
    keys = list(wt)
    acc = crops[keys[0]]
    if len(keys) == 1:
        return np.array(acc, dtype=np.float32, copy=True)
    total = wt[keys[0]] * _BLEND_SCALE
    for k in keys[1:]:
        wk = wt[k] * _BLEND_SCALE
        acc = cv2.blendLinear(np.asarray(acc, np.float32), np.asarray(crops[k], np.float32), total, wk)
        total += wk
    return acc


def band_refine_blend(decision: np.ndarray, frames, *, band: float, window: int = 5, noise_k: float = 8.0,
                      gf_radius: int = 2, gf_eps: float = 1e-3, box: int = 128, noise_pixels: int | None = NOISE_PIXELS,
                      sigma: float | None = None, keep_weights: bool = True, threads: int = 0):
    """Boundary re-decision, guided-filter weights and weighted blend, computed in the band only.

    Parameters
    ----------
    decision : ndarray
        ``HxW`` int decision map after small-region removal.
    frames : FrameSource or sequence of ndarray
        The frames, float32 in [0, 1] (``HxW`` or ``HxWxC``); a box of a frame is read only
        where that frame meets a boundary, and each whole frame once for the chosen pixels.
    band, window, noise_k
        :func:`mfif.consistency.refine_boundaries`: pixels within ``band`` px of a boundary take
        the frame with the highest sum-modified-Laplacian over ``window`` px where it beats the
        runner-up by more than ``noise_k`` times the noise sigma (``band`` 0: no re-decision).
    gf_radius, gf_eps
        :func:`mfif.consistency.decision_weights` (radius 0: hard weights).
    box : int
        Side of the work boxes (px).
    noise_pixels : int or None
        The noise sigma is estimated on each frame's central box of this many pixels
        (:func:`mfif.consistency.noise_sigma`; None: whole frames), and only if a band exists.
    sigma : float, optional
        That noise sigma, where the caller has already estimated it the same way (no crop is
        then read).
    keep_weights : bool
        Return the ``NxHxW`` weights (False: None, and no such array is made).
    threads : int
        Boxes computed at once (0: one per CPU core); each writes only its own pixels, and
        NumPy and OpenCV release the interpreter lock while they work.

    Returns
    -------
    (decision, weights, fused)
        The refined ``HxW`` int16 decision, ``NxHxW`` float32 weights (one-hot outside the
        band) or None, and the fused float32 image (not clipped).
    """
    frames = as_frames(frames)
    n = frames.n
    decision = np.asarray(decision).astype(np.int16, copy=True)
    r = max(int(gf_radius), 0)
    band = float(band)
    # the guided filter reads the (refined) decision up to 2r + 1 px away; the re-decision of
    # those pixels reads boundaries up to `band` px and the fine measure window // 2 + 1 px away
    gf_reach = 2 * r + 2 if r > 0 else 0
    pad = gf_reach + (int(np.ceil(band)) + window // 2 + 2 if band > 0 else 0)
    edge = label_boundary(decision)
    reach = _reach(edge, gf_reach + int(np.ceil(band)))
    boxes = _grid_hits(reach, box)
    h, w = decision.shape
    dense = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes) > 0.5 * h * w
    if box < 512 and dense:
        # boundaries everywhere: boxes of 512 px pay less for their margins and per-box work, and
        # still hold only a box of each frame at a time; 256 px where 512 would give fewer than 4
        # boxes, which the threads could not share evenly
        box = 512 if -(-h // 512) * -(-w // 512) >= 4 else 256
        boxes = _grid_hits(reach, box)
    reach = None
    refined = decision.copy()
    weights = np.zeros((n, h, w), np.float32) if keep_weights else None
    # away from the band the fused image is the chosen source: selected whole when the band is
    # sparse, else only in the grid boxes outside it (the band's boxes are all computed below)
    inside = set(boxes)
    outside = [c for c in _cells(h, w, box) if c not in inside] if dense else [(0, h, 0, w)]
    fused = np.empty(frames.shape, np.float32) if dense else select_sources(frames, decision)
    for y0, y1, x0, x1 in outside:
        dec = decision[y0:y1, x0:x1]
        if dense:
            fused[y0:y1, x0:x1] = select_sources(frames, dec, box=(y0, y1, x0, x1))
        if weights is not None:
            for k in labels_present(dec):
                weights[k, y0:y1, x0:x1][dec == k] = 1.0
    if not boxes:
        return refined, weights, fused
    if not (band > 0 and noise_k > 0):
        sigma = 0.0
    elif sigma is None:
        sigma = frames_noise(frames, max_pixels=noise_pixels)

    def one(box_: tuple[int, int, int, int]) -> None:
        """Re-decide, weigh and blend one box; it writes only its own pixels."""
        y0, y1, x0, x1 = box_
        a0, a1, b0, b1 = max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)
        dec = decision[a0:a1, b0:b1]
        labels = labels_present(dec)
        boxed = {int(k): frames.crop_and_gray(int(k), a0, a1, b0, b1) for k in labels}  # each box read once
        g = {k: gray for k, (_, gray) in boxed.items()}
        if band > 0 and labels.size > 1:
            # the whole image's boundary, cropped: the box's own would miss the boundaries just
            # outside it (the core is the same either way; the margin is closer to whole-image)
            near = within_disc(edge[a0:a1, b0:b1], band)
            if near.any():
                # the frames that meet here compete (all of them, for two frames)
                fine = [sml(g[int(k)], window=window) for k in labels]
                if labels.size == 2:
                    if noise_k > 0:
                        near &= cv2.absdiff(fine[0], fine[1]) > noise_k * sigma
                    better = fine[1] > fine[0]  # the arg-max of two, ties to the lower index
                    dec = dec.copy()
                    np.copyto(dec, labels[1], where=near & better, casting="unsafe")
                    np.copyto(dec, labels[0], where=near & ~better, casting="unsafe")
                else:
                    fine = np.stack(fine)
                    if noise_k > 0:
                        near &= best_margin(fine) > noise_k * sigma
                    dec = np.where(near, labels[argmax_decision(fine)], dec).astype(np.int16)
        core = slice(y0 - a0, y1 - a0), slice(x0 - b0, x1 - b0)
        refined[y0:y1, x0:x1] = dec[core]
        wt = _box_weights(dec, g, labels, core, radius=r, eps=gf_eps)
        if weights is not None:
            for k, wk in wt.items():
                weights[k, y0:y1, x0:x1] = wk
        fused[y0:y1, x0:x1] = _blend({k: c[core] for k, (c, _) in boxed.items()}, wt)

    workers = min(len(boxes), int(threads) or os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, boxes))
    else:
        for b in boxes:
            one(b)
    return refined, weights, fused
