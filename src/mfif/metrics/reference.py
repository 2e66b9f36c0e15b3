"""Metrics against a ground-truth image: SSIM, PSNR and both within the focus-boundary band."""
from __future__ import annotations

import math

import numpy as np

from ..decision import label_boundary
from ..errors import UsageError
from ._base import _SSIM_WIN, _labels, _pair, _ssim_map255

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
    return label_boundary(m)


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
