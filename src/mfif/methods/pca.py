"""The ``pca`` method: a weighted average with weights from principal component analysis."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..result import FusionResult
from ._common import check_count, clip01, luma

__all__ = ["pca_weights", "fuse_pca"]

# Pixels per chunk when accumulating the covariance (bounds the temporary memory).
_CHUNK = 1 << 20


def pca_weights(grays: Sequence[np.ndarray]) -> np.ndarray:
    """Fusion weights from the principal eigenvector of the sources' covariance.

    Parameters
    ----------
    grays : sequence of ndarray
        N ``HxW`` luminance images.

    Returns
    -------
    ndarray
        N float64 weights, non-negative, summing to one. Each observation is a pixel and each
        variable a source; the weights are the absolute components of the eigenvector of the
        largest eigenvalue of the ``NxN`` covariance matrix, divided by their sum. When every
        source is constant (zero covariance) the weights are uniform.
    """
    n = len(grays)
    flat = [np.ravel(g) for g in grays]
    npx = flat[0].size
    means = np.array([f.mean(dtype=np.float64) for f in flat])
    cov = np.zeros((n, n), np.float64)
    for start in range(0, npx, _CHUNK):
        block = np.stack([f[start:start + _CHUNK] for f in flat]).astype(np.float64)
        block -= means[:, None]
        cov += block @ block.T
    cov /= max(npx - 1, 1)
    if not np.all(np.isfinite(cov)) or np.trace(cov) <= 1e-20:
        return np.full(n, 1.0 / n)
    vals, vecs = np.linalg.eigh(cov)
    v = np.abs(vecs[:, np.argmax(vals)])
    total = v.sum()
    if total <= 0 or not np.isfinite(total):
        return np.full(n, 1.0 / n)
    return v / total


def fuse_pca(sources: Sequence[np.ndarray]) -> FusionResult:
    """Fuse with a global weighted average whose weights come from PCA.

    The N sources' luminance images are treated as N variables observed at every pixel; the
    normalised principal eigenvector of their ``NxN`` covariance gives one weight per source
    (the source carrying more variance, typically the sharper one, gets more weight). Colour
    images use luminance weights for all channels.

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more float32 images in [0, 1] of one shape, ``HxW`` or ``HxWxC``.

    Returns
    -------
    FusionResult
        ``fused``; ``info["pca_weights"]`` lists the N scalar weights (the weights are
        global, so no per-pixel ``weights`` maps are returned).

    References
    ----------
    .. [1] V. P. S. Naidu and J. R. Raol, "Pixel-level image fusion using wavelets and
       principal component analysis", Defence Science Journal 58(3), 2008.
    """
    check_count("pca", sources)
    w = pca_weights([luma(s) for s in sources])
    acc = np.zeros(sources[0].shape, np.float32)
    for s, wk in zip(sources, w):
        acc += np.float32(wk) * s
    return FusionResult(fused=clip01(acc), method="pca",
                        info={"pca_weights": [float(x) for x in w]})
