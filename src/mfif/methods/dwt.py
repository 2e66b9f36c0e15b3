"""The ``dwt`` method: discrete wavelet transform fusion."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pywt

from ..blend import LUMA, MaxAbsSelector
from ..errors import UsageError
from ..result import FusionResult
from ._common import check_count, clip01

__all__ = ["DEFAULT_LEVEL", "dwt_max_level", "fuse_dwt"]

#: Decomposition depth used when ``level`` is not given (clamped to what the image allows).
DEFAULT_LEVEL = 4


def dwt_max_level(shape: tuple[int, ...], wavelet: str) -> int:
    """Deepest useful decomposition level of an image of ``shape`` (``pywt.dwt_max_level``)."""

    return int(pywt.dwt_max_level(min(shape[:2]), pywt.Wavelet(wavelet).dec_len))


def fuse_dwt(sources: Sequence[np.ndarray], *, wavelet: str = "sym4", level: int | None = None,
             mode: str = "symmetric") -> FusionResult:
    """Fuse in the 2-D discrete wavelet domain: averaged approximation, max-abs details.

    Each source is decomposed with a ``level``-level 2-D DWT (PyWavelets ``wavedec2``). The
    approximation (coarsest low-pass) band of the result is the mean of the sources'; every
    detail coefficient is taken from the source whose coefficient has the largest magnitude.
    The inverse transform is cropped to the input size and clipped to [0, 1].

    Colour: the three channels are transformed separately, but the choice of source at each
    detail position is made once, from the magnitude of the *luminance* coefficient
    (BT.601 weights; by linearity, the coefficient of the luminance image), and applied to
    all channels. Choosing per channel would mix sources within a pixel and create colour
    fringes.

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more float32 images in [0, 1] of one shape, ``HxW`` or ``HxWxC``.
    wavelet : str, keyword-only
        A discrete wavelet known to PyWavelets (``pywt.wavelist(kind="discrete")``).
    level : int or None, keyword-only
        Number of decomposition levels, from 1 to ``pywt.dwt_max_level`` for the image's
        smaller side and the wavelet's filter length. None (default): 4, or the deepest
        possible level on images too small for 4.
    mode : str, keyword-only
        Signal extension mode of PyWavelets.

    Returns
    -------
    FusionResult
        ``fused`` only.

    Raises
    ------
    UsageError
        Unknown wavelet, ``level`` out of range for the image size, or an image too small
        for even one level.

    References
    ----------
    .. [1] H. Li, B. S. Manjunath and S. K. Mitra, "Multisensor image fusion using the
       wavelet transform", Graphical Models and Image Processing 57(3), 1995.
    .. [2] G. Pajares and J. M. de la Cruz, "A wavelet-based image fusion tutorial",
       Pattern Recognition 37(9), 2004.
    """

    check_count("dwt", sources)
    if wavelet not in pywt.wavelist(kind="discrete"):
        raise UsageError(f"method dwt: unknown wavelet {wavelet!r}; see pywt.wavelist(kind='discrete')")
    if mode not in pywt.Modes.modes:
        raise UsageError(f"method dwt: unknown mode {mode!r}; one of {', '.join(pywt.Modes.modes)}")
    shape = sources[0].shape
    maxlev = dwt_max_level(shape, wavelet)
    if maxlev < 1:
        h, w = shape[:2]
        raise UsageError(f"method dwt: a {w}x{h} image is too small for one level of wavelet "
                         f"{wavelet}; use a shorter wavelet such as haar")
    if level is None:
        level = min(DEFAULT_LEVEL, maxlev)
    if not 1 <= level <= maxlev:
        h, w = shape[:2]
        raise UsageError(f"method dwt: option level={level} must be between 1 and {maxlev} "
                         f"for a {w}x{h} image with wavelet {wavelet}")
    colour = len(shape) == 3
    wav = pywt.Wavelet(wavelet)
    approx = None
    details: list[tuple[MaxAbsSelector, MaxAbsSelector, MaxAbsSelector]] = []
    for s in sources:
        # Colour is transformed channel-first (CxHxW, contiguous planes): faster in PyWavelets.
        x = np.ascontiguousarray(np.moveaxis(s, -1, 0)) if colour else s
        coeffs = pywt.wavedec2(x, wav, mode=mode, level=level, axes=(-2, -1))
        ca = coeffs[0].astype(np.float32, copy=False)
        if approx is None:
            approx = ca.copy()
            details = [(MaxAbsSelector(), MaxAbsSelector(), MaxAbsSelector()) for _ in coeffs[1:]]
        else:
            approx += ca
        for sels, bands in zip(details, coeffs[1:]):
            for sel, band in zip(sels, bands):
                band = band.astype(np.float32, copy=False)
                act = LUMA[0] * band[0] + LUMA[1] * band[1] + LUMA[2] * band[2] if colour else band
                sel.update(band, np.abs(act), leading=True)
        del coeffs
    approx *= np.float32(1.0 / len(sources))
    fused_coeffs = [approx] + [tuple(sel.coef for sel in sels) for sels in details]
    rec = pywt.waverec2(fused_coeffs, wav, mode=mode, axes=(-2, -1))
    rec = rec[..., :shape[0], :shape[1]]
    if colour:
        rec = np.moveaxis(rec, 0, -1)
    return FusionResult(fused=clip01(np.ascontiguousarray(rec, dtype=np.float32)), method="dwt")
