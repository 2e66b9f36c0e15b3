"""No-reference gradient metric Q^AB/F (Xydeas & Petrovic 2000)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._base import _QABF, _fused_sources

# --------------------------------------------------------------------------------------------
# no-reference: Q^AB/F
# --------------------------------------------------------------------------------------------

def _sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient strength and orientation with 3x3 Sobel kernels, zero padding."""
    import cv2

    # Signs as MATLAB conv2(x, [-1 0 1; -2 0 2; -1 0 1], 'same') and
    # conv2(x, [1 2 1; 0 0 0; -1 -2 -1], 'same'): s_x = -d/dx, s_y = +d/dy. The sign matters
    # only through the alpha = pi/2 convention where s_x = 0.
    sx = -cv2.Sobel(x, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT)
    sy = cv2.Sobel(x, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_CONSTANT)
    g = np.hypot(sx, sy)
    zero = sx == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(zero, np.pi / 2, np.arctan(sy / np.where(zero, 1.0, sx)))
    return g, a


class _QabfSources:
    """Source side of Q^AB/F: each source's Sobel strength, orientation and edge weight."""

    def __init__(self, srcs: Sequence[np.ndarray]):
        self.terms = []
        den = 0.0
        for s in srcs:
            gs, as_ = _sobel(s)
            w = gs ** _QABF["L"]
            self.terms.append((gs, as_, w))
            den += float(np.sum(w))
        self.den = den

    def score(self, f: np.ndarray) -> float:
        p = _QABF
        gf, af = _sobel(f)
        num = 0.0
        for gs, as_, w in self.terms:
            hi = np.maximum(gs, gf)
            G = np.zeros_like(hi)
            np.divide(np.minimum(gs, gf), hi, out=G, where=hi > 0)
            A = 1.0 - np.abs(as_ - af) * (2.0 / np.pi)
            Qg = p["Tg"] / (1.0 + np.exp(p["kg"] * (G - p["Dg"])))
            Qa = p["Ta"] / (1.0 + np.exp(p["ka"] * (A - p["Da"])))
            num += float(np.sum(Qg * Qa * w))
        return num / self.den if self.den > 0 else math.nan


def _qabf255(f: np.ndarray, srcs: Sequence[np.ndarray]) -> float:
    return _QabfSources(srcs).score(f)


def qabf(fused, sources) -> float:
    """Xydeas-Petrovic gradient-based fusion metric Q^AB/F (also called Q_G).

    Variant (as ``SPEC.md``, the ``Qabf.m`` of the MATLAB fusion-metric toolboxes): gray
    0..255 images; 3x3 Sobel gradients ``s_x, s_y`` with zero padding; strength
    ``g = sqrt(s_x^2 + s_y^2)``, orientation ``alpha = atan(s_y / s_x)`` (pi/2 where
    ``s_x = 0``), signs as MATLAB ``conv2`` with the toolbox kernels. For a source S and the
    fused image F:

    * strength preservation ``G = min(g_S, g_F) / max(g_S, g_F)`` (0 where both are 0; the
      toolbox's ``Qabf.m`` instead sets ``G = g_F`` where ``g_S = g_F``, a slip that we do not
      reproduce);
    * orientation preservation ``A = 1 - |alpha_S - alpha_F| * 2 / pi``;
    * ``Q_SF = Gamma_g / (1 + exp(kappa_g (G - sigma_g)))
      * Gamma_a / (1 + exp(kappa_a (A - sigma_a)))`` with Gamma_g 0.9994, kappa_g -15,
      sigma_g 0.5, Gamma_a 0.9879, kappa_a -22, sigma_a 0.8;
    * ``Q = sum(Q_AF w_A + Q_BF w_B) / sum(w_A + w_B)``, weights ``w = g^L``, L = 1.

    The largest value, for F that keeps every edge exactly, is
    ``0.9994/(1+e^-7.5) * 0.9879/(1+e^-4.4) = 0.9748``.

    N sources: ``Q = sum_i sum(Q_iF w_i) / sum_i sum(w_i)`` -- every source's edges weighted
    by their strength, as in the two-source formula.

    Parameters
    ----------
    fused : ndarray
        Fused image.
    sources : sequence of ndarray
        Two or more sources, same height and width as ``fused``.

    Returns
    -------
    float
        Q^AB/F in [0, 0.975]; NaN when no source has any gradient.

    References
    ----------
    .. [1] C. S. Xydeas, V. Petrovic, "Objective image fusion performance measure",
       Electronics Letters 36(4), 308-309, 2000.
    .. [2] Z. Liu et al., "Objective assessment of multiresolution image fusion algorithms for
       context enhancement in night vision: a comparative study", IEEE TPAMI 34(1), 94-109, 2012.
    """
    f, srcs = _fused_sources(fused, sources)
    return _qabf255(f, srcs)
