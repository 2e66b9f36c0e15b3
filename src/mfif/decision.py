"""Stage 2: turning focus scores into a decision map (which source is sharp at each pixel)."""
from __future__ import annotations

import numpy as np

__all__ = ["argmax_decision", "threshold_decision", "one_hot"]


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
    return np.where(np.asarray(prob_a) >= threshold, 0, 1).astype(np.int16)


def one_hot(decision: np.ndarray, n: int) -> np.ndarray:
    """``NxHxW`` float32 one-hot weights from an ``HxW`` index map."""
    d = np.asarray(decision)
    return (d[None, :, :] == np.arange(n, dtype=d.dtype)[:, None, None]).astype(np.float32)
