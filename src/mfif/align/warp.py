"""Warping a full-resolution frame onto the reference frame, in its native dtype."""
from __future__ import annotations

import cv2
import numpy as np

INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def warp_frame(img: np.ndarray, matrix: np.ndarray, *, size: tuple[int, int] | None = None,
               box: tuple[int, int, int, int] | None = None, interpolation: str = "cubic") -> np.ndarray:
    """Resample a frame into the reference frame's geometry.

    Parameters
    ----------
    img : ndarray
        ``HxW`` or ``HxWxC`` frame, ``uint8``, ``uint16`` or float.
    matrix : ndarray
        3x3 map from the frame's pixel coordinates to the reference frame's (uncropped; pixel
        centres at integers), as in :attr:`Registration.transforms`.
    size : (int, int), keyword-only
        ``(w, h)`` of the reference frame; default: the frame's own size. Ignored with ``box``.
    box : (x0, y0, x1, y1), keyword-only
        Only this rectangle of the reference frame (``x1``/``y1`` exclusive) is produced: the
        output is ``(y1 - y0) x (x1 - x0)``, its pixel ``(x, y)`` showing reference point
        ``(x + x0, y + y0)``.
    interpolation : {"cubic", "linear", "lanczos"}, keyword-only
        Cubic (default) keeps fine detail sharper than linear, which matters for the focus
        measure of the fusion.

    Returns
    -------
    ndarray
        Same dtype and channel count as ``img``. Reference pixels the frame does not cover are
        filled by mirror reflection of its content (``BORDER_REFLECT``). An identity matrix
        slices instead of resampling, so the reference frame keeps its exact pixels. Float
        frames in [0, 1] stay in [0, 1] (cubic overshoot is clipped).
    """
    t = np.asarray(matrix, np.float64)
    t = t / t[2, 2]
    h, w = img.shape[:2]
    if box is None:
        x0, y0 = 0, 0
        x1, y1 = size if size is not None else (w, h)
    else:
        x0, y0, x1, y1 = (int(v) for v in box)
    if np.allclose(t, np.eye(3), rtol=0, atol=1e-12) and x1 <= w and y1 <= h:
        return np.ascontiguousarray(img[y0:y1, x0:x1]).copy()
    off = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    return _resample(img, off @ t, (x1 - x0, y1 - y0), INTERPOLATIONS[interpolation])


def _resample(img: np.ndarray, t: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    """Warp ``img`` with forward map ``t`` (source -> destination) into ``size`` = (w, h)."""
    affine = abs(t[2, 0]) < 1e-15 and abs(t[2, 1]) < 1e-15
    src = img
    if src.dtype not in (np.uint8, np.uint16, np.float32):
        src = src.astype(np.float32)

    def one(a: np.ndarray) -> np.ndarray:
        if affine:
            return cv2.warpAffine(a, t[:2], size, flags=interp, borderMode=cv2.BORDER_REFLECT)
        return cv2.warpPerspective(a, t, size, flags=interp, borderMode=cv2.BORDER_REFLECT)

    if src.ndim == 3 and src.shape[2] > 4:  # OpenCV warps at most 4 channels at a time
        out = np.concatenate([np.atleast_3d(one(np.ascontiguousarray(src[..., k:k + 4])))
                              for k in range(0, src.shape[2], 4)], axis=2)
    else:
        out = one(np.ascontiguousarray(src))
    if out.ndim == 2 and img.ndim == 3:
        out = out[..., None]
    if np.issubdtype(img.dtype, np.floating):
        if interp in (cv2.INTER_CUBIC, cv2.INTER_LANCZOS4):
            lo, hi = float(np.min(img)), float(np.max(img))
            if lo >= 0.0 and hi <= 1.0:  # cubic overshoot: keep the [0, 1] convention
                np.clip(out, 0.0, 1.0, out=out)
        out = out.astype(img.dtype, copy=False)
    return out
