"""Stage 2: turning focus scores into a decision map (which source is sharp at each pixel)."""
from __future__ import annotations

import numpy as np

__all__ = ["argmax_decision", "threshold_decision", "one_hot", "label_boundary", "labels_present", "PREFER",
           "prefer_decision"]

#: Values of the ``prefer`` option of the decision-map methods.
PREFER = ("none", "near", "far")


def argmax_decision(scores: np.ndarray) -> np.ndarray:
    """Index of the highest score per pixel.

    Parameters
    ----------
    scores : ndarray
        ``NxHxW`` focus scores.

    Returns
    -------
    ndarray
        ``HxW`` int16 source indices. Ties go to the lowest index.
    """
    return np.argmax(np.asarray(scores), axis=0).astype(np.int16)


def threshold_decision(prob_a: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Binary decision from the probability that source A (index 0) is in focus.

    Returns an ``HxW`` int16 map: 0 where ``prob_a >= threshold`` (take A), else 1 (take B).
    """
    # "not >=", so that NaN takes B as np.where(p >= t, 0, 1) would, without its int64 array
    return np.logical_not(np.asarray(prob_a) >= threshold).astype(np.int16)


def label_boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels where a label map changes: ``HxW`` bool.

    A pixel is on the boundary when one of its 4-neighbours has another label, so a boundary
    between two regions is two pixels wide (one on each side).
    """
    m = np.asarray(labels)
    b = np.zeros(m.shape, dtype=bool)
    dh = m[:, 1:] != m[:, :-1]
    b[:, 1:] |= dh
    b[:, :-1] |= dh
    dv = m[1:, :] != m[:-1, :]
    b[1:, :] |= dv
    b[:-1, :] |= dv
    return b


def labels_present(labels: np.ndarray) -> np.ndarray:
    """The labels that occur in an integer label map, sorted (``np.unique``'s values, cheaper).

    One or two adjacent labels are read off the minimum and maximum; otherwise a count of the
    values from the minimum up.
    """
    m = np.asarray(labels)
    lo, hi = int(m.min()), int(m.max())
    if hi - lo <= 1:  # one or two adjacent labels: both ends are present
        return np.arange(lo, hi + 1)
    return lo + np.flatnonzero(np.bincount(np.subtract(m.ravel(), lo, dtype=np.intp)))


def one_hot(decision: np.ndarray, n: int) -> np.ndarray:
    """``NxHxW`` float32 one-hot weights from an ``HxW`` index map."""
    d = np.asarray(decision)
    return (d[None, :, :] == np.arange(n, dtype=d.dtype)[:, None, None]).astype(np.float32)


def prefer_decision(scores: np.ndarray, decision: np.ndarray, *, prefer: str = "none",
                    margin: float = 0.05) -> np.ndarray:
    """Settle weak focus evidence toward the near or the far end of the stack.

    Frames are in focus order, frame 0 focused nearest (``near-first``, the order of a stack
    shot from front to back). Where the winning score beats a frame by less than ``margin``
    times the image's level of clear evidence (the 99th percentile of the winning score; focus
    scores have no common unit across methods, so the threshold is relative to the image's
    own), that frame is a candidate too; ``prefer="near"`` takes the lowest-indexed candidate,
    ``"far"`` the highest. Where one frame wins clearly, ``decision`` is kept.

    This is the usual remedy for background that shows through thin foreground structures in
    macro stacks: around a thin sharp structure over a textureless area, the focus measure sees
    nothing in any frame, the area is decided arbitrarily and the structure, now a small region,
    is absorbed by the consistency step. Preferring the near frame where nothing is seen keeps
    the structure's frame around it.

    Parameters
    ----------
    scores : ndarray
        ``NxHxW`` focus scores (higher: sharper), or ``1xHxW`` with the probability that
        source 0 of two is the sharper (read as the scores ``p, 1 - p``).
    decision : ndarray
        ``HxW`` decision made from ``scores`` (kept where the evidence is clear).
    prefer : {"none", "near", "far"}, keyword-only
        ``"none"`` returns ``decision`` unchanged.
    margin : float, keyword-only
        Width of "weak", as a fraction of the clear-evidence level.

    Returns
    -------
    ndarray
        ``HxW`` int16 source indices.

    References
    ----------
    .. [1] S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8), 1994 (focus
       measures, and their failure on textureless surfaces).
    """
    if prefer not in PREFER:
        raise ValueError(f"prefer must be one of {', '.join(PREFER)}, got {prefer!r}")
    d = np.asarray(decision).astype(np.int16, copy=False)
    if prefer == "none":
        return d
    s = np.asarray(scores, dtype=np.float32)
    if s.shape[0] == 1:
        s = np.concatenate([s, 1.0 - s])
    best = s.max(axis=0)
    level = float(np.percentile(best, 99)) if best.size else 0.0
    close = s >= best - np.float32(margin * max(level, 0.0))
    weak = close.sum(axis=0) > 1
    if prefer == "near":
        pick = np.argmax(close, axis=0)
    else:
        pick = s.shape[0] - 1 - np.argmax(close[::-1], axis=0)
    return np.where(weak, pick, d).astype(np.int16)
