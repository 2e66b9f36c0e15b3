"""Stage 3: consistency verification of a decision map, and the weights it leads to.

Focus classifiers make isolated mistakes (small islands, ragged boundaries). The standard
cure in multi-focus fusion is (a) to remove connected regions smaller than a fraction of the
image and (b) to smooth the binary weights with an edge-preserving guided filter steered by
the source image, so boundaries follow image edges and the transition is soft over a few
pixels instead of a seam. Two optional refinements serve classifiers that see large windows:
small regions the classifier is confident in are kept (they are usually small objects in
focus), and pixels near a boundary are re-decided by a fine focus measure where it is decisive
against the sources' noise (the classifier cannot place a boundary to the pixel).

Every decision-map method runs the same two calls: :func:`verify_decision` (small regions,
then boundary refinement) and :func:`decision_weights` (guided-filter weights steered by the
luminance of the hard-fused image).

References
----------
.. [1] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
   convolutional neural network", Information Fusion 36, 2017 (small-region removal,
   guided-filter refinement).
.. [2] K. He, J. Sun and X. Tang, "Guided image filtering", IEEE TPAMI 35(6), 2013.
.. [3] S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8), 1994 (the
   sum-modified-Laplacian of the boundary refinement).
.. [4] D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by wavelet shrinkage",
   Biometrika 81(3), 1994 (the median-absolute-deviation noise estimate).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .decision import argmax_decision, label_boundary, labels_present, one_hot
from .focus import sml
from .stats import median

__all__ = ["central_box", "fill_weak_evidence", "remove_small_regions", "fill_from_nearest", "guided_filter", "refine_weights", "normalize_weights",
           "boundary_distance", "near_boundary", "within_disc", "finest_diagonal_detail", "noise_sigma", "NOISE_PIXELS", "frames_noise", "best_margin", "decision_confidence",
           "refine_boundaries", "verify_decision", "decision_weights", "detail_evidence", "put_evidence", "unify_flat_regions"]


def _blur_wide(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``sigma`` px; wide blurs run on a shrunken copy (8 px there) and are
    enlarged back, which costs the same at every sigma."""
    h, w = x.shape
    if sigma <= 8:
        return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    f = sigma / 8.0
    small = cv2.resize(x, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 8.0, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def fill_weak_evidence(scores: np.ndarray, *, weak: float, sigmas: Sequence[float] = (4.0, 16.0, 64.0),
                       reach: int = 0) -> np.ndarray:
    """Give areas without focus evidence the scores of the evidence around them.

    On a flat or textureless area (sky, a studio backdrop) no frame is sharper than another, and
    an arg-max of nearly equal scores is a coin toss per pixel: the fused image becomes a
    patchwork of frames that differ slightly in brightness or noise. Here each pixel's
    evidence is its margin ``m`` (best score minus second best, :func:`best_margin`); the
    scores are spread by normalised convolution weighted by that evidence, ``S~ = K*(m S) /
    K*(m)``, with ``K`` the sum of Gaussians of widths ``sigmas`` (near evidence dominates,
    far evidence still reaches large areas), and each pixel keeps its own scores in proportion
    to its evidence: ``a S + (1 - a) S~`` with ``a = min(M / weak, 1)``, where ``M`` is the
    largest margin within ``reach`` px (``reach`` 0: the pixel's own). With a reach, the thin
    strip where scores cross over at a focus boundary (small margin, strong evidence on both
    sides) keeps its own scores, and only areas without evidence nearby are filled.

    Parameters
    ----------
    scores : ndarray
        ``NxHxW`` float32 scores whose differences are evidence (for example logits).
    weak : float, keyword-only
        Margin from which a pixel's own scores are kept unchanged (0: return ``scores``).
    sigmas : sequence of float, keyword-only
        Widths (px of ``scores``) of the spreading kernel.
    reach : int, keyword-only
        Radius (px of ``scores``) within which evidence counts as the pixel's own.

    Returns
    -------
    ndarray
        ``NxHxW`` float32 scores (a new array).

    References
    ----------
    .. [1] H. Knutsson and C.-F. Westin, "Normalized and differential convolution", CVPR 1993.
    """
    s = np.asarray(scores, dtype=np.float32)
    if weak <= 0 or s.shape[0] < 2:
        return s.copy()
    m = best_margin(s).astype(np.float32)
    den = sum(_blur_wide(m, sg) for sg in sigmas)
    den = np.maximum(den, np.float32(1e-12))
    near = m if reach <= 0 else cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    a = np.minimum(near / np.float32(weak), 1.0)
    out = np.empty_like(s)
    for k in range(s.shape[0]):
        spread = sum(_blur_wide(m * s[k], sg) for sg in sigmas) / den
        out[k] = a * s[k] + (1.0 - a) * spread
    return out


def remove_small_regions(decision: np.ndarray, *, min_area: int, confidence: np.ndarray | None = None,
                         keep_above: float = 1.0, keep_min_area: int = 0) -> np.ndarray:
    """Reassign connected regions smaller than ``min_area`` pixels to their surroundings.

    Every 4-connected region (of any label) with fewer than ``min_area`` pixels is removed
    and its pixels take the label of the nearest pixel that belongs to a region large enough
    to keep (OpenCV's distance transform with nearest-pixel labels, 5x5 chamfer metric, which
    is within a few per cent of Euclidean). With two labels this flips small islands and fills
    small holes; nested small regions are resolved in the same pass. Fully vectorised: the
    cost does not grow with the number of regions.

    With a per-pixel ``confidence`` map, a small region is kept if its mean confidence is at
    least ``keep_above`` and it has at least ``keep_min_area`` pixels: a classifier's confident
    small region is usually a real small object in focus, its unsure islands are noise.

    Parameters
    ----------
    decision : ndarray
        ``HxW`` integer label map (source indices).
    min_area : int, keyword-only
        Regions with fewer pixels are removed. ``0`` returns the map unchanged. If every
        region is small, the map is returned unchanged.
    confidence : ndarray, optional, keyword-only
        ``HxW`` confidence of the decision in [0, 1].
    keep_above : float, keyword-only
        Mean confidence from which a small region is kept (> 1: never).
    keep_min_area : int, keyword-only
        Confident regions with fewer pixels are still removed.

    Returns
    -------
    ndarray
        ``HxW`` int16 label map.
    """
    d = np.asarray(decision).astype(np.int16, copy=True)
    if min_area <= 1:
        return d
    conf = None if confidence is None else np.asarray(confidence, dtype=np.float64).ravel()
    small = np.zeros(d.shape, bool)
    labels = labels_present(d)
    for lab in labels:
        mask = (d == lab).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        area = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
        remove = area < min_area
        if conf is not None:
            mean_conf = np.bincount(comp.ravel(), weights=conf, minlength=n) / np.maximum(area, 1)
            remove &= ~((mean_conf >= keep_above) & (area >= keep_min_area))
        remove[0] = False  # background of this label's mask
        small |= remove[comp] & (mask > 0)
    if not small.any() or small.all():
        return d
    return fill_from_nearest(d, small)


def detail_evidence(scores: np.ndarray, best: np.ndarray, second: np.ndarray, best_index: np.ndarray, *,
                    weak: float, level: float, ratio: float = 1.5) -> np.ndarray:
    """Let a fine focus measure speak where a focus classifier has no evidence.

    A classifier can be unsure, or wrong without knowing it, on content it was not trained on (the
    crisp bars of a barcode, printed text): its scores for the frames then differ by little. Where
    the best score beats the runner-up by less than ``weak`` and the fine measure is decisive (its
    best frame beats the runner-up by more than ``level`` and by a factor of ``ratio``, so that a
    brightness or noise difference between frames cannot decide), the scores are replaced by
    evidence of the classifier's kind: ``1.5 * weak`` for the fine measure's best frame, 0 for the
    others. The rest of the pipeline (filling areas without evidence, small-region removal) then
    treats that evidence like the classifier's own.

    Parameters
    ----------
    scores : ndarray
        ``(N, h, w)`` float32 classifier scores (logits; higher = sharper).
    best, second : ndarray
        ``(h, w)`` the fine measure's best and second-best value over the frames (same grid).
    best_index : ndarray
        ``(h, w)`` integer: the frame with the best fine measure.
    weak : float, keyword-only
        Classifier margin below which it is unsure (``<= 0``: the scores are returned unchanged).
    level : float, keyword-only
        Margin of the fine measure from which it is decisive (its noise floor).
    ratio : float, keyword-only
        Factor by which the fine measure's best must also exceed its runner-up.

    Returns
    -------
    ndarray
        ``(N, h, w)`` float32 scores (a copy).
    """
    if weak <= 0:
        return np.array(scores, dtype=np.float32, copy=True)
    use = (best_margin(scores) < weak) & (best - second > level) & (best > ratio * second)
    return put_evidence(scores, best_index, use, high=1.5 * weak, low=0.0)


def put_evidence(scores: np.ndarray, labels: np.ndarray, where: np.ndarray, *, high: float, low: float) -> np.ndarray:
    """Scores that say ``labels`` where ``where`` holds: ``high`` for the labelled frame, ``low``
    for the others; the given ``(N, h, w)`` scores elsewhere. Returns a float32 copy."""
    out = np.array(scores, dtype=np.float32, copy=True)
    if np.any(where):
        for k in range(out.shape[0]):
            np.copyto(out[k], np.where(labels == k, np.float32(high), np.float32(low)), where=where)
    return out


def unify_flat_regions(decision: np.ndarray, best: np.ndarray, best_index: np.ndarray, *, level: float,
                       min_area: int, n: int, keep_share: float = 2.0, return_mask: bool = False):
    """Give each large connected area without detail in any frame to one frame.

    Where no frame has detail (a bokeh background, a clear sky), the frames differ only in blur,
    brightness and noise, and a per-area decision is a coin toss that can split the area
    between frames along a visible curved step. Each 8-connected component of the area where the
    fine measure's ``best`` over the frames stays below ``level`` (opened by 3 x 3 cells, so that
    thin gaps between details do not count), with at least ``min_area`` pixels, takes one frame:
    the one whose fine measure wins the most of it, weighted by that measure (the least blurred
    frame of the area). Smaller flat areas keep their decision, and so does an area whose
    decision already gives at least ``keep_share`` of it to one frame: it is not split, and inside
    a wide flat area bounded by crisp edges (a bar of a barcode, a printed block) the most detail
    is the soft ramp of those edges in a *defocused* frame, so the vote would pick that frame.

    Parameters
    ----------
    decision : ndarray
        ``HxW`` integer label map (source indices ``0 .. n-1``).
    best : ndarray
        ``HxW`` the fine focus measure's best value over the frames.
    best_index : ndarray
        ``HxW`` integer: the frame with that value.
    level : float, keyword-only
        Below this no frame has detail (a multiple of the noise sigma).
    min_area : int, keyword-only
        Smallest flat area (pixels) that is unified (``<= 0``: none).
    n : int, keyword-only
        Number of sources.
    keep_share : float, keyword-only
        An area whose decision gives at least this fraction of it to one frame keeps that frame
        (``> 1``, the default: never; ``1.0``: only an area that is wholly one frame's already).
    return_mask : bool, keyword-only
        Also return the ``HxW`` bool mask of the unified areas (a caller that works on a grid
        uses it to give those areas the grid's label at full resolution too).

    Returns
    -------
    ndarray or (ndarray, ndarray)
        ``HxW`` int16 label map (a copy), and the mask if asked for.
    """
    d = np.asarray(decision).astype(np.int16, copy=True)
    none = np.zeros(d.shape, bool)
    if min_area <= 0:
        return (d, none) if return_mask else d
    flat = cv2.morphologyEx((np.asarray(best) < level).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if not flat.any():
        return (d, none) if return_mask else d
    count, comp, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # the area with detail
    if not keep.any():
        return (d, none) if return_mask else d
    # votes[c, k]: the fine measure summed over the pixels of component c where frame k has the most
    idx = comp.ravel().astype(np.int64) * n + np.asarray(best_index).ravel()
    votes = np.bincount(idx, weights=np.asarray(best, np.float64).ravel(), minlength=count * n).reshape(count, n)
    winner = votes.argmax(axis=1).astype(np.int16)
    if keep_share <= 1.0:
        # an area the decision already gives (nearly) whole to one frame keeps that frame
        held = np.bincount(comp.ravel().astype(np.int64) * n + d.ravel(), minlength=count * n).reshape(count, n)
        share = held.max(axis=1) / np.maximum(held.sum(axis=1), 1)
        winner = np.where(share >= keep_share, held.argmax(axis=1), winner).astype(np.int16)
    sel = keep[comp]
    d[sel] = winner[comp[sel]]
    return (d, sel) if return_mask else d


def fill_from_nearest(labels: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Give every ``holes`` pixel the value of the nearest non-hole pixel of ``labels``.

    Nearest in OpenCV's 5x5 chamfer approximation of the Euclidean distance
    (``cv2.distanceTransformWithLabels`` with one label per seed pixel; seeds are numbered in
    raster order). ``holes`` must leave at least one seed.
    """
    _, nearest = cv2.distanceTransformWithLabels(holes.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    seeds = labels[~holes]  # raster order, the order OpenCV numbers the seed pixels in
    return seeds[nearest - 1].astype(labels.dtype, copy=False)


def guided_filter(guide: np.ndarray, src: np.ndarray, *, radius: int, eps: float) -> np.ndarray:
    """Guided filter of ``src`` steered by ``guide`` (He et al. 2013), float32.

    Uses OpenCV's ``ximgproc.guidedFilter`` (opencv-contrib). ``guide`` is ``HxW`` or
    ``HxWx3`` float32 in [0, 1]; ``eps`` is the regularisation on that scale.
    """
    g = np.ascontiguousarray(guide, dtype=np.float32)
    s = np.ascontiguousarray(src, dtype=np.float32)
    return cv2.ximgproc.guidedFilter(g, s, int(radius), float(eps))


def normalize_weights(weights: np.ndarray) -> np.ndarray:
    """Clip weights to be non-negative and make them sum to one per pixel (ties: uniform)."""
    w = np.clip(np.asarray(weights, dtype=np.float32), 0.0, None)
    total = w.sum(axis=0, keepdims=True)
    n = w.shape[0]
    out = np.where(total > 1e-12, w / np.maximum(total, 1e-12), np.float32(1.0 / n))
    return out.astype(np.float32)


def refine_weights(decision: np.ndarray, guide: np.ndarray, n: int, *, radius: int = 8,
                   eps: float = 0.1 ** 2) -> np.ndarray:
    """Soft per-source weights from a hard decision map, snapped to edges of ``guide``.

    Each source's one-hot mask is guided-filtered with the gray ``guide`` image, then the
    weights are clipped and normalised to sum to one.

    Returns
    -------
    ndarray
        ``NxHxW`` float32 weights.
    """
    masks = one_hot(decision, n)
    if radius <= 0:
        return masks
    out = np.empty_like(masks)
    for k in range(n):
        out[k] = guided_filter(guide, masks[k], radius=radius, eps=eps)
    return normalize_weights(out)


def boundary_distance(decision: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of every pixel to the decision boundary (:func:`~mfif.decision.label_boundary`).

    0 on boundary pixels; ``inf`` everywhere for a map with one label.
    """
    edge = label_boundary(decision)
    if not edge.any():
        return np.full(edge.shape, np.inf, np.float32)
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def near_boundary(decision: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within Euclidean distance ``radius`` (px) of the decision boundary: ``HxW`` bool.

    The same set as ``boundary_distance(decision) <= radius``, computed as a dilation of the
    boundary by the disc of integer offsets ``dy**2 + dx**2 <= radius**2`` (several times
    faster than the exact distance transform for the few pixels of a band).
    """
    return within_disc(label_boundary(decision), radius)


def within_disc(edge: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within Euclidean distance ``radius`` (px) of a pixel of the bool map ``edge``.

    :func:`near_boundary` of a map whose boundary is already known (a box of a whole-image
    boundary, say): ``HxW`` bool, a new array.
    """
    if radius < 0 or not edge.any():
        return np.zeros(edge.shape, bool)
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = (yy * yy + xx * xx <= float(radius) ** 2).astype(np.uint8)
    return cv2.dilate(np.ascontiguousarray(edge).view(np.uint8), disc).view(bool)


#: ``Phi^-1(0.75)``: the median of ``|x|`` for standard normal ``x`` (MAD to sigma).
_MAD_TO_SIGMA = 0.6744897501960817


def central_box(h: int, w: int, max_pixels: int | None) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the central box of at most ``max_pixels`` pixels (the frame's aspect
    ratio, at least 8 px a side) of an ``h x w`` frame; the whole frame if it is smaller or
    ``max_pixels`` is None."""
    if max_pixels is None or h * w <= max_pixels:
        return 0, h, 0, w
    f = (max_pixels / (h * w)) ** 0.5
    ch, cw = min(h, max(8, int(h * f))), min(w, max(8, int(w * f)))
    y, x = (h - ch) // 2, (w - cw) // 2
    return y, y + ch, x, x + cw


#: The ``db2`` decomposition high-pass filter (Daubechies 1988), reversed: correlating with it is
#: PyWavelets' convolution with ``Wavelet("db2").dec_hi``.
_DB2_HI_REVERSED = np.array([-0.12940952255126037, -0.2241438680420134, 0.8365163037378079,
                             -0.48296291314453416], np.float32)


def finest_diagonal_detail(gray: np.ndarray) -> np.ndarray:
    """The finest diagonal detail coefficients of a one-level ``db2`` wavelet transform, float32.

    The ``dd`` band of ``pywt.dwtn(gray, "db2")`` in PyWavelets' default ``symmetric`` mode,
    ``(ceil((H + 3) / 2), ...)`` coefficients, to float32 rounding: the frame is extended by
    3 px of half-sample symmetry, filtered by OpenCV's separable filter and every second row
    and column kept: faster than PyWavelets, and without its import (docs/speed.md).
    """
    g = np.ascontiguousarray(gray, dtype=np.float32)
    h, w = g.shape
    nh, nw = (h + 3) // 2, (w + 3) // 2
    ext = cv2.copyMakeBorder(g, 3, 3, 3, 3, cv2.BORDER_REFLECT)  # "cba|abc...": PyWavelets' symmetric
    k = _DB2_HI_REVERSED
    full = cv2.sepFilter2D(ext, cv2.CV_32F, k, k, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    # coefficient i correlates extended samples 2i + 1 .. 2i + 4, all inside the extension
    return full[1:2 * nh:2, 1:2 * nw:2]


def noise_sigma(grays: Sequence[np.ndarray], *, max_pixels: int | None = None) -> float:
    """Mean sensor-noise standard deviation of gray sources (wavelet MAD estimate, Donoho 1994).

    Per source: the median absolute value of the nonzero finest diagonal detail coefficients
    of a one-level ``db2`` wavelet transform (:func:`finest_diagonal_detail`, symmetric
    extension), divided by ``Phi^-1(0.75)``; the estimate of scikit-image's ``estimate_sigma``
    (to float32 rounding of the coefficients), the mean over the sources returned.

    With ``max_pixels``, each source is estimated on its central crop of at most that many
    pixels (same aspect ratio): a median over a megapixel is as good an estimate of a
    stationary noise level as over the whole frame, at a fraction of the cost.
    """
    def one(g: np.ndarray) -> float:
        y0, y1, x0, x1 = central_box(g.shape[0], g.shape[1], max_pixels)
        dd = np.abs(finest_diagonal_detail(g[y0:y1, x0:x1]))
        dd = dd[dd != 0]
        return median(dd) / _MAD_TO_SIGMA if dd.size else 0.0

    return float(np.mean([one(g) for g in grays]))


#: Pixels of each frame's central box that :func:`frames_noise` estimates the noise on.
NOISE_PIXELS = 1 << 18


def frames_noise(frames, *, max_pixels: int | None = NOISE_PIXELS) -> float:
    """:func:`noise_sigma` of a :class:`mfif.frames.FrameSource`: the mean over its frames of the
    estimate on each frame's central box of at most ``max_pixels`` pixels (:func:`central_box`;
    None: whole frames), reading only those boxes' luminance."""
    cb = central_box(frames.shape[0], frames.shape[1], max_pixels)
    return noise_sigma([frames.gray_crop(k, *cb) for k in range(frames.n)])


def best_margin(stack: np.ndarray) -> np.ndarray:
    """Per pixel, the best of ``N >= 2`` maps ``(N, H, W)`` minus the second best."""
    if stack.shape[0] == 2:
        return np.abs(stack[0] - stack[1])
    top2 = np.partition(stack, -2, axis=0)[-2:]
    return top2[1] - top2[0]


def decision_confidence(scores: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] of the decision made from ``scores``: ``|2p - 1|`` for a two-source
    probability map ``(1, H, W)``, best minus second-best score for ``(N, H, W)`` scores."""
    if scores.shape[0] == 1:
        return np.abs(2.0 * scores[0] - 1.0)
    return best_margin(scores)


def refine_boundaries(decision: np.ndarray, grays: Sequence[np.ndarray], *, band: float, window: int = 5,
                      min_area: int = 0, noise_k: float = 0.0, sigma: float | None = None) -> np.ndarray:
    """Re-decide pixels within ``band`` px of a decision boundary with a fine focus measure.

    Inside the band a pixel takes the source with the highest sum-modified-Laplacian over a
    ``window`` x ``window`` box, where that measure is decisive: the best source's value
    exceeds the runner-up's by more than ``noise_k`` times the estimated noise sigma of the
    sources (0: everywhere in the band). On noisy photos the fine measure sees mostly noise,
    so it only moves boundaries where the evidence stands out from it. ``sigma`` is that noise
    sigma when the caller knows it (an engine fusing tiles passes the whole image's, so that
    every tile counts in the same unit); None: :func:`noise_sigma` of ``grays``. Fragments
    smaller than ``min_area`` px are then removed.

    Returns
    -------
    ndarray
        ``HxW`` int16 label map (``decision`` itself when ``band <= 0`` or there is no boundary).
    """
    if band <= 0:
        return decision
    near = near_boundary(decision, band)
    if not near.any():
        return decision
    fine_scores = np.stack([sml(g, window=window) for g in grays])
    fine = argmax_decision(fine_scores)
    if noise_k > 0:
        near &= best_margin(fine_scores) > noise_k * (noise_sigma(grays) if sigma is None else sigma)
    out = np.where(near, fine, decision).astype(np.int16)
    return remove_small_regions(out, min_area=min_area)


def verify_decision(initial: np.ndarray, grays: Sequence[np.ndarray], *, min_area: int,
                    confidence: np.ndarray | None = None, keep_above: float = 1.0, keep_min_area: int = 0,
                    refine_band: float = 0.0, refine_window: int = 5, refine_min_area: int = 0,
                    refine_noise: float = 0.0, refine_sigma: float | None = None) -> np.ndarray:
    """Stage 3 on a decision map: small-region removal, then (optionally) boundary refinement.

    Parameters
    ----------
    initial : ndarray
        ``HxW`` integer decision map from stage 2.
    grays : sequence of ndarray
        The sources' luminance images, float32 in [0, 1] (for the boundary refinement).
    min_area, confidence, keep_above, keep_min_area
        :func:`remove_small_regions` (``confidence`` None: every small region goes).
    refine_band, refine_window, refine_min_area, refine_noise, refine_sigma
        :func:`refine_boundaries` (``refine_band`` 0: off; ``refine_sigma`` is its ``sigma``).

    Returns
    -------
    ndarray
        ``HxW`` int16 decision map (a new array).
    """
    decision = remove_small_regions(initial, min_area=min_area, confidence=confidence,
                                    keep_above=keep_above, keep_min_area=keep_min_area)
    return refine_boundaries(decision, grays, band=refine_band, window=refine_window,
                             min_area=refine_min_area, noise_k=refine_noise, sigma=refine_sigma)


def decision_weights(decision: np.ndarray, grays: Sequence[np.ndarray], *, radius: int, eps: float) -> np.ndarray:
    """Soft weights of a verified decision: :func:`refine_weights` guided by the hard-fused luminance.

    The guide is the luminance of the image the hard decision would give (source ``k``'s gray
    where ``decision == k``), so the weights follow the edges of what the result will show.

    Returns
    -------
    ndarray
        ``NxHxW`` float32 weights summing to one per pixel.
    """
    n = len(grays)
    guide = np.array(grays[0], dtype=np.float32, copy=True)
    for k in range(1, n):
        np.copyto(guide, grays[k], where=decision == k)
    return refine_weights(decision, guide, n, radius=int(radius), eps=float(eps))
