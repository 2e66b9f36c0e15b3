"""Small numerical helpers shared by the pipeline's stages."""
from __future__ import annotations

import numpy as np

__all__ = ["median"]


def median(x) -> float:
    """The median of all values of ``x`` (as :func:`numpy.median` computes it, the same value).

    :func:`numpy.median` imports ``numpy.ma`` on its first call (its cost is in docs/speed.md),
    which a short ``mfif fuse`` would pay for one median; this selects the middle value(s) with
    :func:`numpy.partition` and, for an even count, averages the two as NumPy does.
    """
    a = np.asarray(x).ravel()
    n = a.size
    if n == 0:
        return float("nan")
    k = n // 2
    if n % 2:
        return float(np.partition(a, k)[k])
    p = np.partition(a, [k - 1, k])
    return float(np.mean(p[k - 1:k + 1]))
