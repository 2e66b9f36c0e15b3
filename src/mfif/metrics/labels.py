"""Metrics of a decision map against a ground-truth label mask: accuracy, IoU, boundary F-score."""
from __future__ import annotations

import numpy as np

from ._base import _labels
from .reference import _boundary, _near

# --------------------------------------------------------------------------------------------
# with a label mask
# --------------------------------------------------------------------------------------------

def _decision_mask(decision, mask) -> tuple[np.ndarray, np.ndarray]:
    m = _labels(mask, "mask")
    d = _labels(decision, "decision map", m.shape)
    return d, m


def decision_accuracy(decision, mask) -> float:
    """Fraction of pixels where the decision map has the true label.

    Parameters
    ----------
    decision : ndarray
        ``HxW`` integer map of chosen source indices (e.g. ``FusionResult.decision``).
    mask : ndarray
        ``HxW`` integer ground-truth label map, label ``i`` = source ``i`` in focus.

    Returns
    -------
    float
        Accuracy in [0, 1].

    References
    ----------
    .. [1] M. Everingham et al., "The Pascal Visual Object Classes (VOC) challenge", IJCV 88,
       303-338, 2010 (pixel accuracy and IoU as segmentation measures).
    """
    d, m = _decision_mask(decision, mask)
    return _accuracy(d, m)


def _accuracy(d: np.ndarray, m: np.ndarray) -> float:
    return float(np.mean(d == m))


def decision_iou(decision, mask) -> float:
    """Mean intersection-over-union of the decision map and the mask, over labels.

    For every label present in either map, ``|D = l and M = l| / |D = l or M = l|``; the
    result is the unweighted mean over those labels.

    Returns
    -------
    float
        Mean IoU in [0, 1].

    References
    ----------
    .. [1] M. Everingham et al., "The Pascal Visual Object Classes (VOC) challenge", IJCV 88,
       303-338, 2010.
    """
    d, m = _decision_mask(decision, mask)
    return _iou(d, m)


def _iou(d: np.ndarray, m: np.ndarray) -> float:
    lo = min(int(d.min()), int(m.min()))
    hi = max(int(d.max()), int(m.max()))
    if hi - lo < 65536:
        di, mi = (d - lo).ravel(), (m - lo).ravel()
        n = hi - lo + 1
    else:
        _, inv = np.unique(np.concatenate([d.ravel(), m.ravel()]), return_inverse=True)
        di, mi = inv[:d.size], inv[d.size:]
        n = int(inv.max()) + 1
    inter = np.bincount(di[di == mi], minlength=n).astype(np.float64)
    union = np.bincount(di, minlength=n) + np.bincount(mi, minlength=n) - inter
    present = union > 0
    return float(np.mean(inter[present] / union[present]))


def boundary_fscore(decision, mask, *, tol: float = 2) -> float:
    """Boundary F-score of the decision map against the mask.

    Boundaries are :func:`focus_boundary` of each map. Precision is the fraction of decision
    boundary pixels within ``tol`` px (Euclidean) of a true boundary pixel; recall the fraction
    of true boundary pixels within ``tol`` px of a decision boundary pixel;
    ``F = 2 P R / (P + R)``. Both maps without boundary give 1; only one without gives 0.

    Parameters
    ----------
    decision, mask : ndarray
        ``HxW`` integer label maps.
    tol : float, keyword-only
        Matching tolerance in pixels (default 2).

    References
    ----------
    .. [1] F. Perazzi et al., "A benchmark dataset and evaluation methodology for video object
       segmentation", CVPR 2016 (boundary F-measure); D. Martin, C. Fowlkes, J. Malik,
       "Learning to detect natural image boundaries...", TPAMI 26(5), 2004.
    """
    d, m = _decision_mask(decision, mask)
    return _fscore(d, _boundary(m), tol)


def _fscore(d: np.ndarray, bm: np.ndarray, tol: float, near_bm: np.ndarray | None = None) -> float:
    """Boundary F-score of labels ``d`` against the mask boundary ``bm``; ``near_bm`` is
    ``_near(bm, tol)`` when the caller has it already."""
    bd = _boundary(d)
    if not bd.any() and not bm.any():
        return 1.0
    if not bd.any() or not bm.any():
        return 0.0
    if near_bm is None:
        near_bm = _near(bm, tol)
    precision = float(np.mean(near_bm[bd]))
    recall = float(np.mean(_near(bd, tol)[bm]))
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)
