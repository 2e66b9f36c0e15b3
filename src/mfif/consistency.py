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

__all__ = ["remove_small_regions", "guided_filter", "refine_weights", "normalize_weights"]


def remove_small_regions(decision: np.ndarray, *, min_area: int) -> np.ndarray:
    """Reassign connected regions smaller than ``min_area`` pixels to their surroundings.

    Each small 4-connected region of a label is given the label that is most common on its
    1-pixel outer border. Applied repeatedly until no region is below the size (at most a few
    passes), so holes inside holes are also filled.

    Parameters
    ----------
    decision : ndarray
        ``HxW`` integer label map (source indices).
    min_area : int, keyword-only
        Regions with fewer pixels are removed. ``0`` returns the map unchanged.

    Returns
    -------
    ndarray
        ``HxW`` int16 label map.
    """
    d = np.asarray(decision).astype(np.int16, copy=True)
    if min_area <= 0:
        return d
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(4):
        changed = False
        labels = np.unique(d)
        if len(labels) < 2:
            break
        for lab in labels:
            mask = (d == lab).astype(np.uint8)
            n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
            small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area) + 1
            for c in small:
                x, y, w, h = stats[c, :4]
                y0, y1 = max(y - 1, 0), min(y + h + 1, d.shape[0])
                x0, x1 = max(x - 1, 0), min(x + w + 1, d.shape[1])
                region = comp[y0:y1, x0:x1] == c
                ring = cv2.dilate(region.astype(np.uint8), kernel).astype(bool) & ~region
                neigh = d[y0:y1, x0:x1][ring]
                neigh = neigh[neigh != lab]
                if neigh.size == 0:
                    continue
                vals, counts = np.unique(neigh, return_counts=True)
                d[y0:y1, x0:x1][region] = vals[np.argmax(counts)]
                changed = True
        if not changed:
            break
    return d


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
