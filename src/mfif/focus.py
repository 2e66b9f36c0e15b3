"""Stage 1 (classic): focus measures, per-pixel sharpness scores of a gray image.

All functions take a float32 ``HxW`` gray image in [0, 1] and return a float32 ``HxW`` map,
larger where the image is sharper.

References
----------
.. [1] S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8), 1994
   (sum-modified-Laplacian).
.. [2] W. Huang and Z. Jing, "Evaluation of focus measures in multi-focus image fusion",
   Pattern Recognition Letters 28(4), 2007.
.. [3] S. Pertuz, D. Puig and M. A. Garcia, "Analysis of focus measure operators for
   shape-from-focus", Pattern Recognition 46(5), 2013.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["modified_laplacian", "sml", "cell_detail", "energy_of_gradient", "local_variance", "FOCUS_MEASURES"]


def modified_laplacian(gray: np.ndarray, *, step: int = 1) -> np.ndarray:
    """Modified Laplacian ``|2I - I(x-s) - I(x+s)| + |2I - I(y-s) - I(y+s)|`` (Nayar 1994).

    Borders are replicated. ``step`` is the spacing ``s`` between neighbours.
    """
    g = np.asarray(gray, dtype=np.float32)
    s = int(step)
    k = np.zeros((1, 2 * s + 1), np.float32)
    k[0, 0], k[0, s], k[0, -1] = -1.0, 2.0, -1.0
    dx = cv2.filter2D(g, cv2.CV_32F, k, borderType=cv2.BORDER_REPLICATE)
    dy = cv2.filter2D(g, cv2.CV_32F, k.T, borderType=cv2.BORDER_REPLICATE)
    np.abs(dx, out=dx)
    dx += np.abs(dy, out=dy)
    return dx


def sml(gray: np.ndarray, *, window: int = 7, step: int = 1) -> np.ndarray:
    """Sum-modified-Laplacian: the modified Laplacian summed over a ``window`` x ``window`` box.

    Returned as the box *mean* (the sum divided by the window area), which ranks identically.
    """
    ml = modified_laplacian(gray, step=step)
    return cv2.boxFilter(ml, cv2.CV_32F, (int(window), int(window)), borderType=cv2.BORDER_REFLECT)


def cell_detail(gray: np.ndarray, *, cell: int = 4, window: int = 3) -> np.ndarray:
    """Local detail on a grid of ``cell`` x ``cell`` px: the modified Laplacian's mean per cell,
    then its mean over ``window`` x ``window`` cells (a sum-modified-Laplacian of
    ``cell * window`` px sampled every ``cell`` px).

    ``gray`` is ``HxW`` float32; the result is ``(ceil(H/cell), ceil(W/cell))`` float32 (the last
    row and column of cells average the pixels they have).
    """
    ml = modified_laplacian(gray)
    h, w = ml.shape
    gh, gw = -(-h // cell), -(-w // cell)
    ph, pw = gh * cell - h, gw * cell - w
    sums = cv2.copyMakeBorder(ml, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0.0) if ph or pw else ml
    num = cv2.resize(sums, (gw, gh), interpolation=cv2.INTER_AREA)
    if ph:
        num[-1] *= cell / (cell - ph)
    if pw:
        num[:, -1] *= cell / (cell - pw)
    return cv2.boxFilter(num, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT)


def energy_of_gradient(gray: np.ndarray, *, window: int = 7) -> np.ndarray:
    """Local mean of the squared Sobel gradient magnitude (Tenengrad)."""
    g = np.asarray(gray, dtype=np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    return cv2.boxFilter(gx * gx + gy * gy, cv2.CV_32F, (int(window), int(window)), borderType=cv2.BORDER_REFLECT)


def local_variance(gray: np.ndarray, *, window: int = 7) -> np.ndarray:
    """Local variance over a ``window`` x ``window`` box."""
    g = np.asarray(gray, dtype=np.float32)
    ksize = (int(window), int(window))
    m = cv2.boxFilter(g, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)
    m2 = cv2.boxFilter(g * g, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)
    return np.maximum(m2 - m * m, 0.0)


#: Focus measures by the name the ``focus-map`` method's ``measure`` option accepts.
FOCUS_MEASURES = {"sml": sml, "tenengrad": energy_of_gradient, "variance": local_variance}
