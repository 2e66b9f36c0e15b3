"""No-reference gradient metric Q^AB/F (Xydeas & Petrovic 2000)."""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..errors import UsageError
from ._base import _QABF, _fused_sources

#: Variants of :func:`qabf`: ``"toolbox"`` follows the published MATLAB code, ``"strict"`` the
#: formulas as written (see the docstring).
QABF_VARIANTS = ("toolbox", "strict")

#: What the published code adds to a zero gradient component or strength before dividing by it.
_TOOLBOX_EPS = 1e-5


def _check_variant(variant: str) -> str:
    if variant not in QABF_VARIANTS:
        raise UsageError(f"Q^AB/F variant must be one of {', '.join(QABF_VARIANTS)}, got {variant!r}")
    return variant


def _sobel(x: np.ndarray, variant: str = "toolbox") -> tuple[np.ndarray, np.ndarray]:
    """Gradient strength and orientation with 3x3 Sobel kernels, zero padding.

    ``"toolbox"``: ``s_x``, ``s_y`` are the correlations with ``[-1 0 1; -2 0 2; -1 0 1]`` and
    its transpose (MATLAB ``filter2(..., 'same')``); where ``s_x = 0`` the orientation is
    ``atan(s_y / 1e-5)`` (0 where both components are 0). ``"strict"``: signs as MATLAB
    ``conv2`` with the kernels of the paper (``s_x = -d/dx``, ``s_y = +d/dy``) and ``pi/2``
    where ``s_x = 0``. The signs matter only through those conventions.
    """

    sx = cv2.Sobel(x, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT)
    sy = cv2.Sobel(x, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_CONSTANT)
    g = np.hypot(sx, sy)
    zero = sx == 0
    if variant == "toolbox":
        return g, np.arctan(sy / np.where(zero, _TOOLBOX_EPS, sx))
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(zero, np.pi / 2, np.arctan(sy / np.where(zero, 1.0, -sx)))
    return g, a


class _QabfSources:
    """Source side of Q^AB/F: each source's Sobel strength, orientation and edge weight."""

    def __init__(self, srcs: Sequence[np.ndarray], variant: str = "toolbox"):
        self.variant = _check_variant(variant)
        self.terms = []
        den = 0.0
        for s in srcs:
            gs, as_ = _sobel(s, self.variant)
            if self.variant == "toolbox":  # zero strengths become 1e-5 after the "g_S > g_F" test
                gs_div = np.where(gs == 0, _TOOLBOX_EPS, gs)
                w = gs_div ** _QABF["L"]
            else:
                gs_div, w = gs, gs ** _QABF["L"]
            self.terms.append((gs, gs_div, as_, w))
            den += float(np.sum(w))
        self.den = den

    def score(self, f: np.ndarray) -> float:
        p = _QABF
        gf, af = _sobel(f, self.variant)
        gf_div = np.where(gf == 0, _TOOLBOX_EPS, gf)
        num = 0.0
        for k, (gs, gs_div, as_, w) in enumerate(self.terms):
            if self.variant == "toolbox":
                # As published: G = g_F/g_S where g_S > g_F, else g_S/g_F, with zeros replaced
                # by 1e-5 for the divisions (so G = 1 where both are 0, and where they are equal);
                # the published code replaces g_F's zeros while scoring the first source, so
                # from the second source on the test and the division see the replaced g_F.
                gfk = gf if k == 0 else gf_div
                G = np.where(gs > gfk, gfk / gs_div, gs_div / gf_div)
            else:
                hi = np.maximum(gs, gf)
                G = np.zeros_like(hi)
                np.divide(np.minimum(gs, gf), hi, out=G, where=hi > 0)
            A = 1.0 - np.abs(as_ - af) * (2.0 / np.pi)
            Qg = p["Tg"] / (1.0 + np.exp(p["kg"] * (G - p["Dg"])))
            Qa = p["Ta"] / (1.0 + np.exp(p["ka"] * (A - p["Da"])))
            num += float(np.sum(Qg * Qa * w))
        return num / self.den if self.den > 0 else math.nan


def _qabf255(f: np.ndarray, srcs: Sequence[np.ndarray], variant: str = "toolbox") -> float:
    return _QabfSources(srcs, variant).score(f)


def qabf(fused, sources, *, variant: str = "toolbox") -> float:
    """Xydeas-Petrovic gradient-based fusion metric Q^AB/F (also called Q_G).

    Variant ``"toolbox"`` (default) reproduces ``metricXydeas.m`` of the published MATLAB
    fusion-metric toolbox (Z. Liu's, as corrected by Yu Liu in 2019 to the paper's constants;
    the code behind the multi-focus survey tables): gray 0..255 images; 3x3 Sobel gradients
    ``s_x, s_y`` with zero padding; strength ``g = sqrt(s_x^2 + s_y^2)``, orientation
    ``alpha = atan(s_y / s_x)`` with ``s_x = 1e-5`` where it is 0. For a source S and the fused
    image F:

    * strength preservation ``G = g_F / g_S`` where ``g_S > g_F``, else ``g_S / g_F``, zeros
      replaced by 1e-5 in the divisions (so ``G = 1`` where both are 0);
    * orientation preservation ``A = 1 - |alpha_S - alpha_F| * 2 / pi``;
    * ``Q_SF = Gamma_g / (1 + exp(kappa_g (G - sigma_g)))
      * Gamma_a / (1 + exp(kappa_a (A - sigma_a)))`` with Gamma_g 0.9994, kappa_g -15,
      sigma_g 0.5, Gamma_a 0.9879, kappa_a -22, sigma_a 0.8;
    * ``Q = sum(Q_AF w_A + Q_BF w_B) / sum(w_A + w_B)``, weights ``w = g^L``, L = 1 (1e-5
      where ``g = 0``).

    Variant ``"strict"`` follows the formulas as written instead: ``alpha = pi/2`` where
    ``s_x = 0``, ``G = min/max`` (0 where both strengths are 0) and weights exactly ``g``.
    The two differ by up to about 1e-3 on real pairs, mostly through the orientation of
    pixels with ``s_x = 0``.

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
    variant : {"toolbox", "strict"}, keyword-only
        See above.

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
    return _qabf255(f, srcs, _check_variant(variant))
