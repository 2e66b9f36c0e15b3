"""Stage 3: consistency verification of a decision map.

Focus classifiers make isolated mistakes (small islands, ragged boundaries). The standard
cure in multi-focus fusion is (a) to remove connected regions smaller than a fraction of the
image and (b) to smooth the binary weights with an edge-preserving guided filter steered by
the source image, so boundaries follow image edges and the transition is soft over a few
pixels instead of a seam.

References
----------
.. [1] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
   convolutional neural network", Information Fusion 36, 2017 (small-region removal,
   guided-filter refinement).
.. [2] K. He, J. Sun and X. Tang, "Guided image filtering", IEEE TPAMI 35(6), 2013.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["remove_small_regions", "fill_from_nearest", "guided_filter", "refine_weights", "normalize_weights"]


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
    labels = np.flatnonzero(np.bincount(d.ravel())) if d.min() >= 0 else np.unique(d)  # bincount: about 5x faster than np.unique
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
    from .decision import one_hot

    masks = one_hot(decision, n)
    if radius <= 0:
        return masks
    out = np.empty_like(masks)
    for k in range(n):
        out[k] = guided_filter(guide, masks[k], radius=radius, eps=eps)
    return normalize_weights(out)
