"""Fusion-quality metrics: with a reference, with a label mask, and without reference.

Every metric follows the definitions in the project specification (``SPEC.md``, "Metric
definitions to follow"); ``docs/metrics.md`` lists each formula, its constants and its reference.

Input scale
-----------
All metrics work on a **gray image on the 0..255 scale**, built by :func:`as_gray255`:

* ``uint8`` RGB(A): MATLAB ``rgb2gray`` on ``uint8`` -- weights 0.2989, 0.5870, 0.1140 applied in
  double precision, then rounded to the nearest integer (halves away from zero) like MATLAB's
  ``uint8`` result. ``uint8`` gray is used as is.
* ``uint16``: the same weights (no rounding), then scaled by 255 / 65535.
* float (``float32``/``float64``), mfif's processing scale [0, 1]: the same weights, then x 255.
  Values outside [-0.5, 1.5] are refused, since they mean the image is not on that scale.
* other integer types (``int64`` arrays written by hand, ``bool``): integers in 0..255 are read
  as ``uint8``; ``bool`` as 0 / 255.

An alpha channel is ignored. Results are plain Python floats.

Several sources
---------------
No-reference metrics take a sequence of two or more sources. Their definitions are for two
sources (A, B); the generalisation to N sources is stated in each docstring and reduces to the
two-source definition when N = 2.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from .errors import UsageError

__all__ = [
    "METRICS",
    "as_gray255",
    "ssim",
    "ssim_map",
    "psnr",
    "focus_boundary",
    "boundary_band",
    "boundary_band_ssim",
    "boundary_band_psnr",
    "decision_accuracy",
    "decision_iou",
    "boundary_fscore",
    "qabf",
    "qmi",
    "qy",
    "qcb",
    "ssim_avg",
    "evaluate",
    "CaseMetrics",
]

#: Metric names returned by :func:`evaluate`, in order, with a one-line description each.
METRICS: Mapping[str, str] = {
    "ssim": "SSIM to the reference (Wang 2004; 11x11 Gaussian, valid region)",
    "psnr": "PSNR to the reference, dB (20 log10(255/RMSE))",
    "ssim_band": "SSIM to the reference within k px of the focus boundary",
    "psnr_band": "PSNR to the reference within k px of the focus boundary, dB",
    "accuracy": "decision map: fraction of pixels with the true label",
    "iou": "decision map: mean intersection-over-union over labels",
    "boundary_f": "decision map: boundary F-score (tolerance 2 px)",
    "qabf": "Q^AB/F edge preservation (Xydeas & Petrovic 2000)",
    "qmi": "Q_MI normalised mutual information (Hossny 2008)",
    "qy": "Q_Y structural similarity (Yang 2008)",
    "qcb": "Q_CB human-perception contrast (Chen & Blum 2009)",
    "ssim_avg": "mean SSIM of the fused image to each source",
}

# MATLAB rgb2gray coefficients (first row of the inverse NTSC/YIQ matrix), shown as
# 0.2989, 0.5870, 0.1140 in MATLAB's documentation.
_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)

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
    import cv2

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


# --------------------------------------------------------------------------------------------
# with a reference
# --------------------------------------------------------------------------------------------

def ssim_map(img, ref) -> np.ndarray:
    """Local SSIM map of ``img`` against ``ref`` over the valid region.

    Same definition as :func:`ssim`; the map is ``(H-10)x(W-10)``, entry ``[i, j]`` belonging
    to pixel ``[i+5, j+5]``.
    """
    x, y = _pair(img, ref)
    return _ssim_map255(x, y)


def ssim(img, ref) -> float:
    """Structural similarity (SSIM) of an image to a reference.

    Variant: Wang et al. (2004) as in their MATLAB ``ssim_index``: gray 0..255 input
    (:func:`as_gray255`), 11x11 Gaussian window with sigma 1.5 (normalised to sum 1),
    K1 = 0.01, K2 = 0.03, L = 255, population (not sample) moments, and the mean of the SSIM
    map over the *valid* region, i.e. windows entirely inside the image (a 5-pixel border is
    not scored; no padding, no downsampling). Equal to scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255)`` on the same gray image.

    Parameters
    ----------
    img, ref : ndarray
        Images of the same height and width (see :func:`as_gray255` for dtypes).

    Returns
    -------
    float
        Mean SSIM, at most 1 (1 when the images are equal).

    Raises
    ------
    UsageError
        Different sizes (the message names both) or images smaller than 11x11.

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment:
       from error visibility to structural similarity", IEEE Trans. Image Processing 13(4),
       600-612, 2004.
    """
    return float(ssim_map(img, ref).mean())


def _psnr255(x: np.ndarray, y: np.ndarray, where: np.ndarray | None = None) -> float:
    d = x - y
    if where is not None:
        d = d[where]
    return _psnr_of_diff(d)


def _psnr_of_diff(d: np.ndarray) -> float:
    """PSNR from the differences ``x - y`` (NaN when there are none)."""
    if d.size == 0:
        return math.nan
    mse = float(np.mean(d * d))
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def psnr(img, ref) -> float:
    """Peak signal-to-noise ratio of an image to a reference, in dB.

    Variant: ``PSNR = 20 log10(255 / RMSE)`` on the gray 0..255 image (:func:`as_gray255`),
    RMSE over all pixels. Equal images give ``inf``.

    Parameters
    ----------
    img, ref : ndarray
        Images of the same height and width.

    Returns
    -------
    float
        PSNR in dB (``inf`` if the images are equal).

    Raises
    ------
    UsageError
        Different sizes (the message names both).

    References
    ----------
    .. [1] Q. Huynh-Thu, M. Ghanbari, "Scope of validity of PSNR in image/video quality
       assessment", Electronics Letters 44(13), 800-801, 2008.
    """
    x, y = _pair(img, ref)
    return _psnr255(x, y)


def focus_boundary(mask) -> np.ndarray:
    """Pixels where a label map changes: ``HxW`` bool.

    A pixel is on the boundary when one of its 4-neighbours has another label, so a boundary
    between two regions is two pixels wide (one on each side).
    """
    m = _labels(mask, "mask")
    return _boundary(m)


def _boundary(m: np.ndarray) -> np.ndarray:
    b = np.zeros(m.shape, dtype=bool)
    dh = m[:, 1:] != m[:, :-1]
    b[:, 1:] |= dh
    b[:, :-1] |= dh
    dv = m[1:, :] != m[:-1, :]
    b[1:, :] |= dv
    b[:-1, :] |= dv
    return b


def _near(b: np.ndarray, dist: float) -> np.ndarray:
    """Pixels within Euclidean distance ``dist`` of a True pixel of ``b`` (none if b is empty)."""
    from scipy import ndimage

    if not b.any():
        return np.zeros(b.shape, dtype=bool)
    return ndimage.distance_transform_edt(~b) <= dist


def boundary_band(mask, *, k: float = 10) -> np.ndarray:
    """The band of pixels within ``k`` px (Euclidean) of the focus boundary of ``mask``.

    The boundary is :func:`focus_boundary`; the distance comes from an exact Euclidean distance
    transform. A mask with a single label has no boundary and an empty band.
    """
    if k < 0:
        raise UsageError(f"band width k must be >= 0, got {k}")
    return _near(focus_boundary(mask), float(k))


def boundary_band_ssim(img, ref, mask, *, k: float = 10) -> float:
    """SSIM restricted to the pixels within ``k`` px of the true focus boundary.

    Variant: the SSIM map of :func:`ssim` (11x11 Gaussian, sigma 1.5, valid region) averaged
    over the pixels of :func:`boundary_band` ``(mask, k=k)`` whose window lies inside the image.

    Parameters
    ----------
    img, ref : ndarray
        Image and ground truth of the same size.
    mask : ndarray
        ``HxW`` integer label map (the ground-truth focus regions).
    k : float, keyword-only
        Band half-width in pixels (default 10).

    Returns
    -------
    float
        Mean SSIM in the band; NaN when the band is empty (mask with one label).

    References
    ----------
    .. [1] Z. Wang et al., "Image quality assessment: from error visibility to structural
       similarity", IEEE Trans. Image Processing 13(4), 600-612, 2004.
    """
    x, y = _pair(img, ref)
    band = boundary_band(_labels(mask, "mask", x.shape), k=k)
    return _band_ssim255(x, y, band)


def _band_ssim255(x, y, band, smap=None) -> float:
    m = _ssim_map255(x, y) if smap is None else smap
    r = _SSIM_WIN // 2
    sel = band[r:band.shape[0] - r, r:band.shape[1] - r]
    return float(m[sel].mean()) if sel.any() else math.nan


def boundary_band_psnr(img, ref, mask, *, k: float = 10) -> float:
    """PSNR restricted to the pixels within ``k`` px of the true focus boundary.

    Variant: ``20 log10(255 / RMSE)`` with the RMSE taken over the pixels of
    :func:`boundary_band` ``(mask, k=k)`` only (gray 0..255 images).

    Returns
    -------
    float
        PSNR in dB; ``inf`` when the band is identical, NaN when the band is empty.

    References
    ----------
    .. [1] Q. Huynh-Thu, M. Ghanbari, "Scope of validity of PSNR in image/video quality
       assessment", Electronics Letters 44(13), 800-801, 2008.
    """
    x, y = _pair(img, ref)
    band = boundary_band(_labels(mask, "mask", x.shape), k=k)
    return _psnr255(x, y, band)


# --------------------------------------------------------------------------------------------
# with a label mask
# --------------------------------------------------------------------------------------------

def _decision_mask(decision, mask) -> tuple[np.ndarray, np.ndarray]:
    m = _labels(mask, "mask")
    d = _labels(decision, "decision map", m.shape)
    return d, m


def decision_accuracy(decision, mask) -> float:
    """Fraction of pixels where the decision map has the true label.

    Parameters
    ----------
    decision : ndarray
        ``HxW`` integer map of chosen source indices (e.g. ``FusionResult.decision``).
    mask : ndarray
        ``HxW`` integer ground-truth label map, label ``i`` = source ``i`` in focus.

    Returns
    -------
    float
        Accuracy in [0, 1].

    References
    ----------
    .. [1] M. Everingham et al., "The Pascal Visual Object Classes (VOC) challenge", IJCV 88,
       303-338, 2010 (pixel accuracy and IoU as segmentation measures).
    """
    d, m = _decision_mask(decision, mask)
    return _accuracy(d, m)


def _accuracy(d: np.ndarray, m: np.ndarray) -> float:
    return float(np.mean(d == m))


def decision_iou(decision, mask) -> float:
    """Mean intersection-over-union of the decision map and the mask, over labels.

    For every label present in either map, ``|D = l and M = l| / |D = l or M = l|``; the
    result is the unweighted mean over those labels.

    Returns
    -------
    float
        Mean IoU in [0, 1].

    References
    ----------
    .. [1] M. Everingham et al., "The Pascal Visual Object Classes (VOC) challenge", IJCV 88,
       303-338, 2010.
    """
    d, m = _decision_mask(decision, mask)
    return _iou(d, m)


def _iou(d: np.ndarray, m: np.ndarray) -> float:
    lo = min(int(d.min()), int(m.min()))
    hi = max(int(d.max()), int(m.max()))
    if hi - lo < 65536:
        di, mi = (d - lo).ravel(), (m - lo).ravel()
        n = hi - lo + 1
    else:
        _, inv = np.unique(np.concatenate([d.ravel(), m.ravel()]), return_inverse=True)
        di, mi = inv[:d.size], inv[d.size:]
        n = int(inv.max()) + 1
    inter = np.bincount(di[di == mi], minlength=n).astype(np.float64)
    union = np.bincount(di, minlength=n) + np.bincount(mi, minlength=n) - inter
    present = union > 0
    return float(np.mean(inter[present] / union[present]))


def boundary_fscore(decision, mask, *, tol: float = 2) -> float:
    """Boundary F-score of the decision map against the mask.

    Boundaries are :func:`focus_boundary` of each map. Precision is the fraction of decision
    boundary pixels within ``tol`` px (Euclidean) of a true boundary pixel; recall the fraction
    of true boundary pixels within ``tol`` px of a decision boundary pixel;
    ``F = 2 P R / (P + R)``. Both maps without boundary give 1; only one without gives 0.

    Parameters
    ----------
    decision, mask : ndarray
        ``HxW`` integer label maps.
    tol : float, keyword-only
        Matching tolerance in pixels (default 2).

    References
    ----------
    .. [1] F. Perazzi et al., "A benchmark dataset and evaluation methodology for video object
       segmentation", CVPR 2016 (boundary F-measure); D. Martin, C. Fowlkes, J. Malik,
       "Learning to detect natural image boundaries...", TPAMI 26(5), 2004.
    """
    d, m = _decision_mask(decision, mask)
    return _fscore(d, _boundary(m), tol)


def _fscore(d: np.ndarray, bm: np.ndarray, tol: float, near_bm: np.ndarray | None = None) -> float:
    """Boundary F-score of labels ``d`` against the mask boundary ``bm``; ``near_bm`` is
    ``_near(bm, tol)`` when the caller has it already."""
    bd = _boundary(d)
    if not bd.any() and not bm.any():
        return 1.0
    if not bd.any() or not bm.any():
        return 0.0
    if near_bm is None:
        near_bm = _near(bm, tol)
    precision = float(np.mean(near_bm[bd]))
    recall = float(np.mean(_near(bd, tol)[bm]))
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


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


# --------------------------------------------------------------------------------------------
# no-reference: Q_MI
# --------------------------------------------------------------------------------------------

def _rescale_round(x: np.ndarray) -> np.ndarray:
    """round(255 (x - min) / (max - min)) as int; a constant image becomes all zeros."""
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros(x.shape, dtype=np.int64)
    return np.floor((x - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.int64)


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-np.sum(p * np.log2(p)))


class _QmiSources:
    """Source side of Q_MI: each source's rescaled levels (times 256) and entropy."""

    def __init__(self, srcs: Sequence[np.ndarray]):
        self.terms = []
        for s in srcs:
            si = _rescale_round(s).ravel()
            self.terms.append((si * 256, _entropy(np.bincount(si, minlength=256))))

    def score(self, f: np.ndarray, levels: np.ndarray | None = None) -> float:
        """Q_MI of ``f``; ``levels`` is ``_rescale_round(f)`` when the caller has it already."""
        fi = (_rescale_round(f) if levels is None else levels).ravel()
        hf = _entropy(np.bincount(fi, minlength=256))
        total = 0.0
        for si256, hs in self.terms:
            hsf = _entropy(np.bincount(si256 + fi, minlength=256 * 256))
            mi = hs + hf - hsf
            total += mi / (hs + hf) if hs + hf > 0 else 0.0
        return 4.0 * total / len(self.terms)


def _qmi255(f: np.ndarray, srcs: Sequence[np.ndarray]) -> float:
    return _QmiSources(srcs).score(f)


def qmi(fused, sources) -> float:
    """Normalised mutual information Q_MI (Hossny et al.).

    Variant (as ``SPEC.md``): each gray image is rescaled to integers
    ``round(255 (x - min) / (max - min))`` (a constant image becomes 0); entropies and mutual
    information come from 256-bin (joint) histograms with ``log2``;
    ``Q_MI = 2 [MI(A,F) / (H(A) + H(F)) + MI(B,F) / (H(B) + H(F))]``, with
    ``MI(S,F) = H(S) + H(F) - H(S,F)``. A term whose denominator is 0 (both images constant)
    counts as 0.

    N sources: ``Q_MI = (4 / N) sum_i MI(S_i,F) / (H(S_i) + H(F))``, which equals the mean of
    the two-source Q_MI over all pairs of sources, and keeps the range [0, 2].

    Parameters
    ----------
    fused : ndarray
        Fused image.
    sources : sequence of ndarray
        Two or more sources.

    Returns
    -------
    float
        Q_MI in [0, 2] (2 when F and every source carry the same information).

    References
    ----------
    .. [1] M. Hossny, S. Nahavandi, D. Creighton, "Comments on 'Information measure for
       performance of image fusion'", Electronics Letters 44(18), 1066-1067, 2008.
    .. [2] G. Qu, D. Zhang, P. Yan, "Information measure for performance of image fusion",
       Electronics Letters 38(7), 313-315, 2002.
    """
    f, srcs = _fused_sources(fused, sources)
    return _qmi255(f, srcs)


# --------------------------------------------------------------------------------------------
# no-reference: Q_Y
# --------------------------------------------------------------------------------------------

_QY_CONSTANTS = {"wang": (_C1, _C2), "toolbox": (2e-16, 2e-16)}


class _QySources:
    """Source side of Q_Y: local statistics of each source; per pair of sources the
    similarity test ``SSIM(A,B) >= 0.75`` and the weights ``lambda``, ``1 - lambda``."""

    def __init__(self, srcs: Sequence[np.ndarray], constants: str = "wang"):
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


def _qy255(f: np.ndarray, srcs: Sequence[np.ndarray], constants: str = "wang") -> float:
    return _QySources(srcs, constants).score(f)


def qy(fused, sources, *, constants: str = "wang") -> float:
    """Yang's structural-similarity fusion metric Q_Y.

    Variant (as ``SPEC.md``): local SSIM maps with a 7x7 Gaussian window, sigma 1.5
    (normalised), over the valid region, on gray 0..255 images. Where ``SSIM(A,B) >= 0.75``
    the local score is ``lambda SSIM(A,F) + (1 - lambda) SSIM(B,F)`` with
    ``lambda = var_A / (var_A + var_B)`` (local variances; 0.5 where both are 0), elsewhere
    ``max(SSIM(A,F), SSIM(B,F))``; Q_Y is the mean of that map.

    ``constants="wang"`` (default) uses the SSIM constants of :func:`ssim`
    (C1 = (0.01*255)^2, C2 = (0.03*255)^2). ``constants="toolbox"`` uses C1 = C2 = 2e-16 as
    the widely used ``metricYang.m`` of Z. Liu's MATLAB toolbox does (the published survey
    numbers); there, flat windows compare by their means only.

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
    import cv2
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


# --------------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------------

def evaluate(fused, sources, *, reference=None, mask=None, decision=None,
             k: float = 10, tol: float = 2) -> dict[str, float]:
    """Every metric that the given inputs allow, by name.

    To score several fused images of the same sources, :class:`CaseMetrics` computes the
    source-side terms once and gives the same values.

    Parameters
    ----------
    fused : ndarray
        Fused image.
    sources : sequence of ndarray
        Two or more sources (no-reference metrics ``qabf``, ``qmi``, ``qy``, ``qcb``,
        ``ssim_avg``).
    reference : ndarray, optional
        Ground-truth all-in-focus image: adds ``ssim`` and ``psnr``; with ``mask`` also
        ``ssim_band`` and ``psnr_band`` (band half-width ``k``).
    mask : ndarray, optional
        ``HxW`` ground-truth label map (label ``i`` = source ``i`` in focus).
    decision : ndarray, optional
        ``HxW`` decision map of source indices; with ``mask`` adds ``accuracy``, ``iou`` and
        ``boundary_f`` (tolerance ``tol``).
    k, tol : float, keyword-only
        Band half-width and boundary tolerance in pixels.

    Returns
    -------
    dict of str to float
        Keys from :data:`METRICS`, in that order, only those computable from the inputs; a
        value that is undefined for these images (NaN: e.g. an empty boundary band, or no
        gradient in any source) is left out. ``psnr`` may be ``inf``.

    Raises
    ------
    UsageError
        Fewer than two sources, or any input whose size differs from ``fused``.
    """
    f, srcs = _fused_sources(fused, sources)
    m = _labels(mask, "mask", f.shape) if mask is not None else None
    g = None
    if reference is not None:
        r = np.asarray(reference)
        if r.shape[:2] != f.shape[:2]:
            raise UsageError(f"fused image is {_wh(f.shape)} but reference is {_wh(r.shape)}; "
                             "sizes must match")
        g = as_gray255(r)
    # one image: the source-side terms are built when needed and dropped after use
    return CaseMetrics._from_gray(srcs, g, m, k, tol, keep=False)._score(f, decision)


#: The no-reference metrics whose source-side terms :class:`CaseMetrics` keeps.
_SOURCE_PARTS = {
    "qabf": _QabfSources,
    "qmi": _QmiSources,
    "qy": _QySources,
    "qcb": _QcbSources,
    "ssim_avg": _SsimAvgSources,
}


class CaseMetrics:
    """The metrics of one case (sources, reference, mask), prepared for many fused images.

    Everything that depends only on the sources, the reference or the mask is computed once,
    here: the gray images, each source's Sobel gradients (Q^AB/F), levels and entropy (Q_MI),
    local statistics and the source-to-source SSIM and weights (Q_Y, ``ssim_avg``), masked
    contrast and saliency (Q_CB), the reference's local statistics (``ssim``), the boundary
    band of the mask and the mask's boundary (``boundary_f``). :meth:`evaluate` then computes
    only the fused-image terms, and returns exactly what :func:`evaluate` returns for the same
    inputs (same keys, same floating-point values).

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more sources of one height and width (see :func:`as_gray255` for dtypes).
    reference : ndarray, optional
        Ground-truth all-in-focus image: adds ``ssim``, ``psnr`` and, with ``mask``,
        ``ssim_band``, ``psnr_band``.
    mask : ndarray, optional
        ``HxW`` ground-truth label map; with a decision map passed to :meth:`evaluate` adds
        ``accuracy``, ``iou`` and ``boundary_f``.
    k, tol : float, keyword-only
        Band half-width and boundary tolerance in pixels, as in :func:`evaluate`.

    Attributes
    ----------
    shape : tuple of int
        ``(H, W)`` of the sources.
    n_sources : int
        Number of sources.
    k, tol : float
        As given.

    Raises
    ------
    UsageError
        Fewer than two sources, sources, reference or mask of different sizes, images too
        small for the windowed metrics (Q_Y 7x7, SSIM 11x11), or ``k < 0`` with a reference
        and a mask.

    Notes
    -----
    The object holds about a dozen float64 images per source (plus a few for the reference
    and mask), so it suits images up to a few megapixels; :func:`evaluate` on one image keeps
    only one metric's terms at a time. :meth:`evaluate` does not modify the object, so several
    threads may call it at once.

    Examples
    --------
    >>> case = CaseMetrics([a, b], reference=gt, mask=mask)      # doctest: +SKIP
    >>> rows = [case.evaluate(f, decision=d) for f, d in results]  # doctest: +SKIP
    """

    def __init__(self, sources, *, reference=None, mask=None, k: float = 10, tol: float = 2):
        raw = [np.asarray(s) for s in _source_list(sources)]
        shape = raw[0].shape[:2]
        for i, s in enumerate(raw[1:], start=2):
            if s.shape[:2] != shape:
                raise UsageError(f"source {i} is {_wh(s.shape)} but source 1 is {_wh(shape)}; "
                                 "sizes must match")
        srcs = [as_gray255(s) for s in raw]
        m = _labels(mask, "mask", shape) if mask is not None else None
        g = None
        if reference is not None:
            r = np.asarray(reference)
            if r.shape[:2] != shape:
                raise UsageError(f"reference is {_wh(r.shape)} but the sources are {_wh(shape)}; "
                                 "sizes must match")
            g = as_gray255(r)
        self._setup(srcs, g, m, k, tol, keep=True)

    @classmethod
    def _from_gray(cls, srcs, g, m, k, tol, *, keep: bool) -> "CaseMetrics":
        """From inputs already checked and brought to gray 0..255 (and int64 labels)."""
        self = cls.__new__(cls)
        self._setup(srcs, g, m, k, tol, keep=keep)
        return self

    def _setup(self, srcs, g, m, k, tol, *, keep: bool) -> None:
        self.shape = srcs[0].shape
        self.n_sources = len(srcs)
        self.k, self.tol = k, tol
        self._srcs, self._ref, self._mask = srcs, g, m
        if g is not None:
            _check_min_size(g.shape, _SSIM_WIN, "SSIM")
        # with keep=False (one image) the reference's statistics are found when needed
        self._lr = _local11(g) if keep and g is not None else None
        self._band = None
        if g is not None and m is not None:
            if k < 0:
                raise UsageError(f"band width k must be >= 0, got {k}")
            band = _near(_boundary(m), float(k))
            r = _SSIM_WIN // 2
            sel = band[r:band.shape[0] - r, r:band.shape[1] - r]  # band pixels of the SSIM map
            self._band, self._band_sel, self._band_any = band, sel, bool(sel.any())
            self._ref_band = g[band]
        # with keep=False (one image) these are found when a decision map needs them
        self._bm = _boundary(m) if keep and m is not None else None
        self._near_bm = _near(self._bm, tol) if keep and m is not None else None
        self._parts = {name: part(srcs) for name, part in _SOURCE_PARTS.items()} if keep else {}

    def _part(self, name: str):
        part = self._parts.get(name)
        return part if part is not None else _SOURCE_PARTS[name](self._srcs)

    def evaluate(self, fused, decision=None) -> dict[str, float]:
        """Every metric of one fused image, as :func:`evaluate` with this case's inputs.

        Parameters
        ----------
        fused : ndarray
            Fused image of the sources' height and width.
        decision : ndarray, optional
            ``HxW`` decision map of source indices; used only when the case has a mask.

        Returns
        -------
        dict of str to float
            The same dictionary as ``evaluate(fused, sources, reference=..., mask=...,
            decision=decision, k=..., tol=...)``.

        Raises
        ------
        UsageError
            ``fused`` or ``decision`` of another size, or an unsupported image type.
        """
        a = np.asarray(fused)
        if a.shape[:2] != self.shape:
            raise UsageError(f"fused image is {_wh(a.shape)} but the sources are "
                             f"{_wh(self.shape)}; sizes must match")
        return self._score(as_gray255(a), decision)

    def _score(self, f: np.ndarray, decision) -> dict[str, float]:
        out: dict[str, float] = {}
        lf = None
        if self._ref is not None:
            lf = _local11(f)
            smap = _ssim_map255(lf, self._lr if self._lr is not None else self._ref)
            out["ssim"] = float(smap.mean())
            out["psnr"] = _psnr255(f, self._ref)
            if self._band is not None:
                sel = self._band_sel
                out["ssim_band"] = float(smap[sel].mean()) if self._band_any else math.nan
                out["psnr_band"] = _psnr_of_diff(f[self._band] - self._ref_band)
        if decision is not None and self._mask is not None:
            d = _labels(decision, "decision map", self._mask.shape)
            out["accuracy"] = _accuracy(d, self._mask)
            out["iou"] = _iou(d, self._mask)
            bm = self._bm if self._bm is not None else _boundary(self._mask)
            out["boundary_f"] = _fscore(d, bm, self.tol, self._near_bm)
        out["qabf"] = self._part("qabf").score(f)
        levels = _rescale_round(f)  # shared by Q_MI and Q_CB, held no longer than they need it
        out["qmi"] = self._part("qmi").score(f, levels)
        out["qcb"] = self._part("qcb").score(f, levels)
        del levels
        out["qy"] = self._part("qy").score(f)
        out["ssim_avg"] = self._part("ssim_avg").score(lf if lf is not None else _local11(f))
        return {name: out[name] for name in METRICS if name in out and not math.isnan(out[name])}
