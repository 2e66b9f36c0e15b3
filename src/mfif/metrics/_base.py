"""Shared by every metric: the gray 0..255 input scale, input checks and local window statistics."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import UsageError
from ..io import GRAY_WEIGHTS

# MATLAB rgb2gray coefficients (first row of the inverse NTSC/YIQ matrix)
_RGB2GRAY = GRAY_WEIGHTS

# SSIM (Wang et al. 2004)
_SSIM_WIN, _SSIM_SIGMA = 11, 1.5
_K1, _K2, _L = 0.01, 0.03, 255.0
_C1, _C2 = (_K1 * _L) ** 2, (_K2 * _L) ** 2

# Q^AB/F (Xydeas & Petrovic 2000)
_QABF = dict(L=1.0, Tg=0.9994, kg=-15.0, Dg=0.5, Ta=0.9879, ka=-22.0, Da=0.8)

# Q_CB (Chen & Blum 2009, toolbox constants)
_CB_DOG = (15.3870, 1.3456, 0.7622)  # f0, f1, a of the DoG CSF
_CB_K, _CB_H, _CB_Z = 1.0, 1.0, 1e-4  # with p = 3, q = 2 (written out in _masked_contrast)
_CB_SIGMAS = (2.0, 4.0)
_CB_HALF = 15  # kernels are 31x31


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------

def _wh(shape) -> str:
    return f"{shape[1]}x{shape[0]}" if len(shape) >= 2 else "x".join(map(str, shape))


def as_gray255(img) -> np.ndarray:
    """Bring an image to the gray 0..255 scale that the metric definitions assume.

    Parameters
    ----------
    img : array_like
        ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4`` (alpha ignored) image: ``uint8``,
        ``uint16``, float in [0, 1], ``bool``, or another integer type holding 0..255.

    Returns
    -------
    ndarray
        ``HxW`` float64 gray image on the 0..255 scale:

        * ``uint8`` RGB: MATLAB ``rgb2gray`` on ``uint8`` (weights 0.2989, 0.5870, 0.1140,
          rounded to integers like MATLAB's ``uint8`` result);
        * ``uint16``: gray by the same weights, times 255 / 65535 (not rounded);
        * float: gray by the same weights, times 255 (not rounded).

    Raises
    ------
    UsageError
        Unsupported layout or dtype, non-finite values, a float image outside [-0.5, 1.5],
        or an integer image outside 0..255 that is neither ``uint8`` nor ``uint16``.
    """
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] in (1, 2):  # gray or gray + alpha
        a = a[..., 0]
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3]
    if (a.ndim != 2 and not (a.ndim == 3 and a.shape[2] == 3)) or a.size == 0:
        raise UsageError(f"expected an HxW or HxWx3 image, got shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * np.uint8(255)
    elif np.issubdtype(a.dtype, np.integer) and a.dtype not in (np.uint8, np.uint16):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise UsageError(f"{a.dtype} image has values {lo}..{hi}; integer images other than "
                             "uint8/uint16 must hold 0..255")
        a = a.astype(np.uint8)
    if a.dtype == np.uint8:
        if a.ndim == 2:
            return a.astype(np.float64)
        g = _weighted_gray(a)
        return np.floor(g + 0.5)  # MATLAB rounds the uint8 result, halves away from zero
    if a.dtype == np.uint16:
        g = a.astype(np.float64) if a.ndim == 2 else _weighted_gray(a)
        return g * (255.0 / 65535.0)
    if np.issubdtype(a.dtype, np.floating):
        g = a.astype(np.float64) if a.ndim == 2 else _weighted_gray(a)
        if not np.all(np.isfinite(g)):
            raise UsageError("image has NaN or infinite values")
        lo, hi = float(g.min()), float(g.max())
        if lo < -0.5 or hi > 1.5:
            raise UsageError(f"float image has values {lo:.4g}..{hi:.4g}; float images must be "
                             "scaled to [0, 1] (pass uint8/uint16 data or divide by 255)")
        return g * 255.0
    raise UsageError(f"unsupported pixel type {a.dtype}")


def _weighted_gray(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64)
    return _RGB2GRAY[0] * x[..., 0] + _RGB2GRAY[1] * x[..., 1] + _RGB2GRAY[2] * x[..., 2]


def _pair(img, ref, names=("image", "reference")) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(img), np.asarray(ref)
    if a.shape[:2] != b.shape[:2]:
        raise UsageError(f"{names[0]} is {_wh(a.shape)} but {names[1]} is {_wh(b.shape)}; "
                         "sizes must match")
    return as_gray255(a), as_gray255(b)


def _source_list(sources) -> list:
    if isinstance(sources, np.ndarray) and sources.ndim >= 3 and sources.dtype != object:
        sources = list(sources)
    srcs = list(sources)
    if len(srcs) < 2:
        raise UsageError(f"need at least 2 sources, got {len(srcs)}")
    return srcs


def _fused_sources(fused, sources) -> tuple[np.ndarray, list[np.ndarray]]:
    srcs = _source_list(sources)
    f = np.asarray(fused)
    for i, s in enumerate(srcs):
        s = np.asarray(s)
        if s.shape[:2] != f.shape[:2]:
            raise UsageError(f"fused image is {_wh(f.shape)} but source {i + 1} is {_wh(s.shape)}; "
                             "sizes must match")
    return as_gray255(f), [as_gray255(s) for s in srcs]


def _labels(x, name: str, shape=None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise UsageError(f"{name} must be an HxW label map, got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape[:2]):
        raise UsageError(f"{name} is {_wh(a.shape)} but the image is {_wh(shape)}; sizes must match")
    if a.dtype == np.bool_:
        return a.astype(np.int64)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise UsageError(f"{name} must hold integer labels")
    elif not np.issubdtype(a.dtype, np.integer):
        raise UsageError(f"{name}: unsupported type {a.dtype}")
    return a.astype(np.int64)


# --------------------------------------------------------------------------------------------
# local statistics
# --------------------------------------------------------------------------------------------

def _gauss1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Correlate with the separable kernel ``k k^T`` and keep the 'valid' part."""

    r = len(k) // 2
    y = cv2.sepFilter2D(x, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)
    return y[r:x.shape[0] - r, r:x.shape[1] - r]


class _Local:
    """Local mean and second moment of one image under a Gaussian window (valid region)."""

    def __init__(self, x: np.ndarray, k: np.ndarray):
        self.x, self.k = x, k
        self.mu = _filter_valid(x, k)
        self.mu2 = self.mu * self.mu
        var = _filter_valid(x * x, k)
        var -= self.mu2
        self.var = _clean(var, self.mu2)

    def cov(self, other: "_Local", mumu: np.ndarray) -> np.ndarray:
        c = _filter_valid(self.x * other.x, self.k)
        c -= mumu
        return _clean(c, mumu)


def _clean(v: np.ndarray, scale: np.ndarray) -> np.ndarray:
    # E[xy] - E[x]E[y] cancels catastrophically in flat windows; values at the level of the
    # float64 rounding error are set to exactly zero so that flat areas compare as equal.
    tol = np.abs(scale)
    tol += 1.0
    tol *= 1e-10
    np.copyto(v, 0.0, where=np.abs(v) <= tol)
    return v


def _ssim_from(a: _Local, b: _Local, c1: float, c2: float) -> np.ndarray:
    mumu = a.mu * b.mu
    num = (2.0 * mumu + c1) * (2.0 * a.cov(b, mumu) + c2)
    den = (a.mu2 + b.mu2 + c1) * (a.var + b.var + c2)
    out = np.ones_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _check_min_size(shape, win: int, what: str) -> None:
    if shape[0] < win or shape[1] < win:
        raise UsageError(f"{what} needs images of at least {win}x{win}, got {_wh(shape)}")


def _local11(x: np.ndarray) -> _Local:
    _check_min_size(x.shape, _SSIM_WIN, "SSIM")
    return _Local(x, _gauss1d(_SSIM_WIN, _SSIM_SIGMA))


def _ssim_map255(x, y) -> np.ndarray:
    """SSIM map (valid region) of two gray 0..255 images or their :class:`_Local` statistics."""
    lx = x if isinstance(x, _Local) else _local11(x)
    ly = y if isinstance(y, _Local) else _local11(y)
    return _ssim_from(lx, ly, _C1, _C2)
