"""No-reference perceptual metric Q_CB (Chen & Blum 2009)."""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..errors import UsageError
from ._base import _CB_DOG, _CB_H, _CB_HALF, _CB_K, _CB_SIGMAS, _CB_Z, _fused_sources
from .information import _rescale_round

# --------------------------------------------------------------------------------------------
# no-reference: Q_CB
# --------------------------------------------------------------------------------------------

_CSF_NAMES = ("dog", "mannos-sakrison")


def _csf(shape, kind: str) -> np.ndarray:
    """CSF on the rfft2 frequency grid: radial frequency r = frequency index / 15."""
    h, w = shape
    v = np.fft.fftfreq(h) * h / 15.0
    u = np.fft.rfftfreq(w) * w / 15.0
    r = np.hypot(v[:, None], u[None, :])
    if kind == "dog":
        f0, f1, a = _CB_DOG
        return np.exp(-(r / f0) ** 2) - a * np.exp(-(r / f1) ** 2)
    return 2.6 * (0.0192 + 0.114 * r) * np.exp(-(0.114 * r) ** 1.1)


def _gauss_unnorm1d(sigma: float) -> np.ndarray:
    x = np.arange(-_CB_HALF, _CB_HALF + 1, dtype=np.float64)
    # outer(g, g) = exp(-(x^2 + y^2) / (2 sigma^2)) / (2 pi sigma^2), not renormalised
    return np.exp(-(x * x) / (2.0 * sigma * sigma)) / math.sqrt(2.0 * math.pi * sigma * sigma)


def _masked_contrast(x: np.ndarray, csf: np.ndarray) -> np.ndarray:
    from scipy import fft as sfft

    y = sfft.irfft2(sfft.rfft2(x, workers=-1) * csf, s=x.shape, workers=-1)
    g1, g2 = (_gauss_unnorm1d(s) for s in _CB_SIGMAS)
    b1 = cv2.sepFilter2D(y, cv2.CV_64F, g1, g1, borderType=cv2.BORDER_CONSTANT)
    b2 = cv2.sepFilter2D(y, cv2.CV_64F, g2, g2, borderType=cv2.BORDER_CONSTANT)
    c = np.ones_like(b1)  # contrast 0 where the denominator is 0
    np.divide(b1, b2, out=c, where=b2 != 0)
    c -= 1.0
    np.abs(c, out=c)
    c2 = c * c  # p = 3, q = 2
    return _CB_K * (c2 * c) / (_CB_H * c2 + _CB_Z)


class _QcbSources:
    """Source side of Q_CB: the CSF, each source's masked contrast and saliency, and the sum
    of the saliencies."""

    def __init__(self, srcs: Sequence[np.ndarray], csf: str = "dog"):
        if csf not in _CSF_NAMES:
            raise UsageError(f"csf must be one of {', '.join(_CSF_NAMES)}, got {csf!r}")
        self.csf = _csf(srcs[0].shape, csf)
        self.terms = []
        den = np.zeros(srcs[0].shape, dtype=np.float64)
        for src in srcs:
            cs = _masked_contrast(_rescale_round(src).astype(np.float64), self.csf)
            sal = cs * cs
            den += sal
            self.terms.append((cs, sal))
        self.den, self.salient = den, den > 0

    def score(self, f: np.ndarray, levels: np.ndarray | None = None) -> float:
        """Q_CB of ``f``; ``levels`` is ``_rescale_round(f)`` when the caller has it already."""
        cf = _masked_contrast((_rescale_round(f) if levels is None else levels).astype(np.float64),
                              self.csf)
        num = np.zeros_like(cf)
        qsum = np.zeros_like(cf)
        for cs, sal in self.terms:
            hi = np.maximum(cs, cf)
            q = np.ones_like(hi)
            np.divide(np.minimum(cs, cf), hi, out=q, where=hi > 0)
            num += sal * q
            qsum += q
        # saliency weights lambda_i = C_i'^2 / sum_j C_j'^2; equal weights where every source
        # is flat
        qmap = qsum / len(self.terms)
        np.divide(num, self.den, out=qmap, where=self.salient)
        return float(qmap.mean())


def _qcb255(f: np.ndarray, srcs: Sequence[np.ndarray], csf: str = "dog") -> float:
    return _QcbSources(srcs, csf).score(f)


def qcb(fused, sources, *, csf: str = "dog") -> float:
    """Chen-Blum human-perception fusion metric Q_CB.

    Variant: ``metricChenBlum.m`` of Z. Liu's MATLAB fusion-metric toolbox (used unchanged by
    the MFIF/VIFB/MEFB survey benchmarks):

    1. each gray image is rescaled to ``round(255 (x - min) / (max - min))``;
    2. contrast-sensitivity filtering in the frequency domain, ``I_c = IFFT(FFT(I) S(r))``,
       with radial frequency ``r = sqrt(u^2 + v^2)``, ``u, v`` the FFT frequency indices
       divided by 15 (MATLAB ``freqspace`` times size/30). ``csf="dog"`` (default, the
       toolbox's choice): ``S(r) = exp(-(r/f0)^2) - a exp(-(r/f1)^2)`` with f0 = 15.3870,
       f1 = 1.3456, a = 0.7622 (Watson & Ahumada DoG). ``csf="mannos-sakrison"``:
       ``S(r) = 2.6 (0.0192 + 0.114 r) exp(-(0.114 r)^1.1)``;
    3. local band-limited contrast ``C = |(G_2 * I_c) / (G_4 * I_c) - 1|`` with 31x31 Gaussian
       kernels of sigma 2 and 4, ``exp(-(x^2+y^2)/(2 sigma^2)) / (2 pi sigma^2)`` (not
       renormalised), zero padding ('same' size); 0 where the denominator is 0;
    4. masked contrast ``C' = k C^p / (h C^q + Z)`` with k = 1, h = 1, p = 3, q = 2, Z = 1e-4;
    5. preservation ``Q_SF = min(C'_S, C'_F) / max(C'_S, C'_F)`` (1 where both are 0);
    6. saliency ``lambda_A = C'_A^2 / (C'_A^2 + C'_B^2)`` and the map
       ``Q = lambda_A Q_AF + lambda_B Q_BF`` (equal weights where all sources are flat);
       Q_CB is its mean over all pixels.

    N sources: ``lambda_i = C'_i^2 / sum_j C'_j^2``, ``Q = sum_i lambda_i Q_iF``.

    Parameters
    ----------
    fused : ndarray
        Fused image.
    sources : sequence of ndarray
        Two or more sources.
    csf : {"dog", "mannos-sakrison"}, keyword-only
        Contrast sensitivity function; ``"dog"`` reproduces the toolbox numbers.

    Returns
    -------
    float
        Q_CB in [0, 1].

    References
    ----------
    .. [1] Y. Chen, R. S. Blum, "A new automated quality assessment algorithm for image
       fusion", Image and Vision Computing 27(10), 1421-1432, 2009.
    .. [2] Z. Liu et al., "Objective assessment of multiresolution image fusion algorithms for
       context enhancement in night vision: a comparative study", IEEE TPAMI 34(1), 94-109,
       2012 (the toolbox implementation).
    .. [3] J. L. Mannos, D. J. Sakrison, "The effects of a visual fidelity criterion on the
       encoding of images", IEEE Trans. Information Theory 20(4), 525-536, 1974.
    """
    f, srcs = _fused_sources(fused, sources)
    return _qcb255(f, srcs, csf)
