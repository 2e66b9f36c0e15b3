"""The ``average`` method: the pixel-wise mean of the sources."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..result import FusionResult
from ._common import check_count, clip01

__all__ = ["fuse_average"]


def fuse_average(sources: Sequence[np.ndarray]) -> FusionResult:
    """Fuse by averaging the sources pixel by pixel.

    The simplest fusion rule and the floor every other method should beat: in-focus detail
    is halved (for two sources) wherever the other source is blurred.

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more float32 images in [0, 1] of one shape, ``HxW`` or ``HxWxC``.

    Returns
    -------
    FusionResult
        ``fused`` only (no decision, weights or scores).

    References
    ----------
    .. [1] G. Pajares and J. M. de la Cruz, "A wavelet-based image fusion tutorial",
       Pattern Recognition 37(9), 2004 (averaging as the baseline fusion rule).
    """
    check_count("average", sources)
    acc = np.zeros(sources[0].shape, np.float32)
    for s in sources:
        acc += s
    acc *= np.float32(1.0 / len(sources))
    return FusionResult(fused=clip01(acc), method="average")
