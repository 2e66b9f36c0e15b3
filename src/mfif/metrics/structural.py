"""No-reference structural metrics: Yang's Q_Y and the mean SSIM to the sources."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import UsageError
from ._base import (
    _C1,
    _C2,
    _check_min_size,
    _fused_sources,
    _gauss1d,
    _Local,
    _local11,
    _ssim_from,
    _ssim_map255,
)

# --------------------------------------------------------------------------------------------
# no-reference: Q_Y
# --------------------------------------------------------------------------------------------

_QY_CONSTANTS = {"wang": (_C1, _C2), "toolbox": (2e-16, 2e-16)}


class _QySources:
    """Source side of Q_Y: local statistics of each source; per pair of sources the
    similarity test ``SSIM(A,B) >= 0.75`` and the weights ``lambda``, ``1 - lambda``."""

    def __init__(self, srcs: Sequence[np.ndarray], constants: str = "toolbox"):
        if constants not in _QY_CONSTANTS:
            raise UsageError(f"constants must be one of {', '.join(_QY_CONSTANTS)}, "
                             f"got {constants!r}")
        self.c1, self.c2 = _QY_CONSTANTS[constants]
        _check_min_size(srcs[0].shape, 7, "Q_Y")
        self.k = _gauss1d(7, 1.5)
        self.loc = [_Local(s, self.k) for s in srcs]
        self.pairs = []
        for i in range(len(srcs)):
            for j in range(i + 1, len(srcs)):
                sab = _ssim_from(self.loc[i], self.loc[j], self.c1, self.c2)
                va, vb = self.loc[i].var, self.loc[j].var
                vs = va + vb
                lam = np.full_like(vs, 0.5)
                np.divide(va, vs, out=lam, where=vs > 0)
                self.pairs.append((i, j, sab >= 0.75, lam, 1.0 - lam))

    def score(self, f: np.ndarray) -> float:
        lf = _Local(f, self.k)
        sf = [_ssim_from(l, lf, self.c1, self.c2) for l in self.loc]
        total = 0.0
        for i, j, similar, lam, rest in self.pairs:
            q = np.where(similar, lam * sf[i] + rest * sf[j], np.maximum(sf[i], sf[j]))
            total += float(q.mean())
        return total / len(self.pairs)


def _qy255(f: np.ndarray, srcs: Sequence[np.ndarray], constants: str = "toolbox") -> float:
    return _QySources(srcs, constants).score(f)


def qy(fused, sources, *, constants: str = "toolbox") -> float:
    """Yang's structural-similarity fusion metric Q_Y.

    Definition: local SSIM maps with a 7x7 Gaussian window, sigma 1.5
    (normalised), over the valid region, on gray 0..255 images. Where ``SSIM(A,B) >= 0.75``
    the local score is ``lambda SSIM(A,F) + (1 - lambda) SSIM(B,F)`` with
    ``lambda = var_A / (var_A + var_B)`` (local variances; 0.5 where both are 0), elsewhere
    ``max(SSIM(A,F), SSIM(B,F))``; Q_Y is the mean of that map.

    ``constants="toolbox"`` (default) uses C1 = C2 = 2e-16 as ``metricYang.m`` of the published
    MATLAB fusion-metric toolbox does (Z. Liu's, as corrected by Yu Liu in 2019: lambda = 0.5
    where both variances are 0; the code behind the survey tables); there, flat windows
    compare by their means only. ``constants="wang"`` uses the SSIM constants of :func:`ssim`
    (C1 = (0.01*255)^2, C2 = (0.03*255)^2); it gives values up to about 0.01 higher on real pairs.

    N sources: the mean of the two-source Q_Y over all pairs of sources.

    Parameters
    ----------
    fused : ndarray
        Fused image.
    sources : sequence of ndarray
        Two or more sources (at least 7x7).
    constants : {"wang", "toolbox"}, keyword-only
        SSIM stabilising constants, see above.

    Returns
    -------
    float
        Q_Y, at most 1.

    References
    ----------
    .. [1] C. Yang, J.-Q. Zhang, X.-R. Wang, X. Liu, "A novel similarity based quality metric
       for image fusion", Information Fusion 9(2), 156-160, 2008.
    """
    f, srcs = _fused_sources(fused, sources)
    return _qy255(f, srcs, constants)


# --------------------------------------------------------------------------------------------
# no-reference: mean SSIM to the sources
# --------------------------------------------------------------------------------------------

class _SsimAvgSources:
    """Source side of the mean SSIM to the sources: each source's 11x11 local statistics."""

    def __init__(self, srcs: Sequence[np.ndarray]):
        self.loc = [_local11(s) for s in srcs]

    def score(self, lf: _Local) -> float:
        """Mean SSIM of the fused image, given by its :func:`_local11` statistics."""
        return float(np.mean([_ssim_map255(lf, ls).mean() for ls in self.loc]))


def _ssim_avg255(f, srcs: Sequence[np.ndarray]) -> float:
    lf = f if isinstance(f, _Local) else _local11(f)
    return _SsimAvgSources(srcs).score(lf)


def ssim_avg(fused, sources) -> float:
    """Mean SSIM of the fused image to each source.

    Variant: ``(1/N) sum_i SSIM(F, S_i)`` with :func:`ssim` (Wang 2004; 11x11 Gaussian,
    sigma 1.5, K1 0.01, K2 0.03, L 255, valid region), so for two sources
    ``(SSIM(F,A) + SSIM(F,B)) / 2``.

    Returns
    -------
    float
        Mean SSIM, at most 1.

    References
    ----------
    .. [1] Z. Wang et al., "Image quality assessment: from error visibility to structural
       similarity", IEEE Trans. Image Processing 13(4), 600-612, 2004.
    """
    f, srcs = _fused_sources(fused, sources)
    return _ssim_avg255(f, srcs)
