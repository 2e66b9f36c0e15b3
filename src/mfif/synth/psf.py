"""Point-spread functions and defocus blur of the synthetic cases."""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import UsageError


def psf_kernel(kind: str, radius: float) -> np.ndarray:
    """Normalised 2-D point-spread function.

    Parameters
    ----------
    kind : {"disk", "gaussian"}
        ``"disk"``: pillbox of radius ``radius`` (the geometric-optics blur circle of a thin
        lens), anti-aliased by 8x8 supersampling of each pixel. ``"gaussian"``: Gaussian with
        ``sigma = radius / 2`` (the same second moment as the disk), truncated at 3 sigma.
    radius : float
        Blur radius in pixels (> 0).

    Returns
    -------
    ndarray
        float32 ``(2R+1) x (2R+1)`` kernel summing to 1.
    """
    r = float(radius)
    if r <= 0:
        return np.ones((1, 1), np.float32)
    if kind == "disk":
        R = int(math.ceil(r - 0.5 + 1e-9)) if r > 0.5 else 1
        ss = 8
        t = (np.arange((2 * R + 1) * ss) + 0.5) / ss - (R + 0.5)
        yy, xx = np.meshgrid(t, t, indexing="ij")
        inside = (yy * yy + xx * xx) <= r * r
        k = inside.reshape(2 * R + 1, ss, 2 * R + 1, ss).mean(axis=(1, 3))
        if k.sum() <= 0:
            k = np.zeros((2 * R + 1, 2 * R + 1)); k[R, R] = 1.0
    elif kind == "gaussian":
        s = r / 2.0
        R = max(1, int(math.ceil(3.0 * s)))
        t = np.arange(-R, R + 1, dtype=np.float64)
        g = np.exp(-0.5 * (t / s) ** 2)
        k = np.outer(g, g)
    else:
        raise UsageError(f"unknown PSF {kind!r} (use disk or gaussian)")
    return (k / k.sum()).astype(np.float32)


def defocus(img: np.ndarray, kind: str, radius: float) -> np.ndarray:
    """Blur ``img`` (``HxW`` or ``HxWxC`` float32) with :func:`psf_kernel` (mirror borders)."""
    if radius <= 0:
        return img.astype(np.float32, copy=True)
    if kind == "gaussian":
        k = psf_kernel("gaussian", radius)
        c = k.shape[0] // 2
        g = np.ascontiguousarray(k[c] / k[c].sum())
        return cv2.sepFilter2D(img, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT_101)
    return cv2.filter2D(img, cv2.CV_32F, psf_kernel(kind, radius), borderType=cv2.BORDER_REFLECT_101)


def _push_pull_fill(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Fill pixels where ``m == 0`` from those where ``m == 1`` (push-pull pyramid).

    Pixels with ``m == 1`` are returned unchanged (bit-exact); holes receive a smooth
    extrapolation of the surrounding valid colours only.
    """
    m = m.astype(np.float32)
    mm = m if img.ndim == 2 else m[..., None]
    c = img * mm
    levels = []
    w = m
    while True:
        levels.append((c, w))
        h, wd = w.shape
        if min(h, wd) <= 4:
            break
        c = cv2.pyrDown(c)
        w = cv2.pyrDown(w)
        if c.ndim == 2 and img.ndim == 3:
            c = c[..., None]
    # coarsest level: fill holes with the mean of valid pixels
    c, w = levels[-1]
    wv = w if img.ndim == 2 else w[..., None]
    tot = float(w.sum())
    mean = (c.reshape(-1, *c.shape[2:]).sum(0) / tot) if tot > 1e-6 else np.zeros(c.shape[2:], np.float32)
    filled = np.where(wv > 1e-6, c / np.maximum(wv, 1e-6), mean).astype(np.float32)
    for c, w in reversed(levels[:-1]):
        h, wd = w.shape
        up = cv2.pyrUp(filled, dstsize=(wd, h))
        if up.ndim == 2 and img.ndim == 3:
            up = up[..., None]
        wv = w if img.ndim == 2 else w[..., None]
        a = np.clip(wv, 0.0, 1.0)
        v = c / np.maximum(wv, 1e-6)
        filled = (a * v + (1.0 - a) * up).astype(np.float32)
    # exactness where valid
    return np.where(mm > 0.5, img, filled).astype(np.float32)
