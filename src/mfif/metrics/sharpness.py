"""Measures against a ground truth that the paper's qualitative columns stand for.

:func:`sharpness_ratio` (blur reduction: gradient energy of the fused image over the truth's)
and :func:`artifact_rate` (artifact presence: share of pixels far from the truth).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import UsageError
from ._base import as_gray255

__all__ = ["ARTIFACT_THRESHOLD", "sharpness_ratio", "artifact_rate"]


#: Threshold of :func:`artifact_rate`, gray levels on the 0..255 scale.
ARTIFACT_THRESHOLD = 10.0


def _gradient_energy(g: np.ndarray) -> float:
    g = np.asarray(g, dtype=np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    return float(np.mean(gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2))


def sharpness_ratio(fused, reference) -> float:
    """Blur reduction: the fused image's gradient energy relative to the ground truth's, in %.

    ``100 * G(F) / G(R)`` with ``G`` the mean squared Sobel gradient magnitude of the gray
    image (0..255 scale, :func:`mfif.metrics.as_gray255`). 100 % means the fused image is as
    detailed as the all-in-focus truth; less means residual blur (a region taken from the
    defocused source, or averaged); more means ringing or over-shooting edges.

    Returns NaN when the reference has no gradient.
    """
    gr = _gradient_energy(as_gray255(reference))
    if gr <= 0:
        return float("nan")
    return _sharpness(as_gray255(fused), gr)


def _sharpness(fused_gray: np.ndarray, reference_energy: float) -> float:
    """:func:`sharpness_ratio` from the gray fused image and the reference's gradient energy."""
    if reference_energy <= 0:
        return float("nan")
    return 100.0 * _gradient_energy(fused_gray) / reference_energy


def artifact_rate(fused, reference, *, threshold: float = ARTIFACT_THRESHOLD) -> float:
    """Artifact presence: % of pixels whose gray value differs from the truth by > ``threshold``.

    On the gray 0..255 scale (:func:`mfif.metrics.as_gray255`); 10 levels by default, well
    above the quantisation and synthesis noise of the synthetic sets, and about where such an
    error becomes visible next to sharp detail. Halos, seams, ringing and regions taken from
    the blurred source all count.
    """
    f, r = as_gray255(fused), as_gray255(reference)
    if f.shape != r.shape:
        raise UsageError(f"fused image is {f.shape[1]}x{f.shape[0]} but reference is {r.shape[1]}x{r.shape[0]}")
    return _artifacts(f, r, threshold)


def _artifacts(fused_gray: np.ndarray, reference_gray: np.ndarray,
               threshold: float = ARTIFACT_THRESHOLD) -> float:
    """:func:`artifact_rate` of two gray 0..255 images of the same size."""
    return 100.0 * float(np.mean(np.abs(fused_gray - reference_gray) > threshold))
