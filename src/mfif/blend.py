"""Stage 4: blending sources with per-pixel weight maps."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["weighted_blend"]


def weighted_blend(sources: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Pixel-wise weighted average ``sum_k w_k * S_k``.

    Parameters
    ----------
    sources : sequence of ndarray
        N float32 images, ``HxW`` or ``HxWxC``.
    weights : ndarray
        ``NxHxW`` weights summing to one per pixel; broadcast over colour channels.

    Returns
    -------
    ndarray
        float32 image of the sources' shape.
    """
    out = np.zeros_like(np.asarray(sources[0], dtype=np.float32))
    for s, w in zip(sources, weights):
        if out.ndim == 3:
            out += s * w[:, :, None]
        else:
            out += s * w
    return out
