"""Pixel scales: to and from float32 in [0, 1], and the one gray conversion."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import UsageError

#: ``k / 255`` in float32 for every 8-bit value: a lookup gives exactly what the division does.
_U8_TO_FLOAT = np.arange(256, dtype=np.float32) / np.float32(255.0)


def to_float(img: np.ndarray) -> np.ndarray:
    """Convert an image to float32 in [0, 1] (``uint8``/255, ``uint16``/65535, float unchanged)."""
    if img.dtype == np.uint8:
        if img.size and (img.ndim == 2 or (img.ndim == 3 and 2 <= img.shape[2] <= 4)):
            # OpenCV's table lookup: the same values as the division, faster (docs/speed.md)
            return cv2.LUT(img, _U8_TO_FLOAT)
        return img.astype(np.float32) / np.float32(255.0)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float32, copy=False)
    if np.issubdtype(img.dtype, np.bool_):
        return img.astype(np.float32)
    raise UsageError(f"unsupported pixel type {img.dtype}")


def from_float(img: np.ndarray, dtype=np.uint8, *, out: np.ndarray | None = None) -> np.ndarray:
    """Convert a float image in [0, 1] to ``dtype`` with clipping and rounding (half to even).

    ``out``: an array of that dtype and ``img``'s shape to write into (8- and 16-bit only).
    """
    dtype = np.dtype(dtype)
    if dtype in (np.uint8, np.uint16):
        top = 255.0 if dtype == np.uint8 else 65535.0
        x = np.multiply(img, top)  # one temporary, clipped in place (the bounds are integers, so
        np.clip(x, 0, top, out=x)  # clipping before rounding is the same), rounded into the result
        if out is None:
            out = np.empty(x.shape, dtype)
        np.rint(x, out=out, casting="unsafe")
        return out
    if np.issubdtype(dtype, np.floating):
        return img.astype(dtype)
    raise UsageError(f"unsupported output type {dtype}")


#: ITU-R BT.601 luma weights as MATLAB ``rgb2gray`` uses them (the first row of the inverse
#: NTSC matrix, printed 0.2989, 0.5870, 0.1140): the one gray conversion of the package.
GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def to_gray(img: np.ndarray) -> np.ndarray:
    """Luminance of an RGB image (ITU-R BT.601 weights, as MATLAB ``rgb2gray``), float32.

    Gray input is returned as float32 unchanged in scale. Works on any numeric dtype; the
    result keeps the input's scale (no rounding, unlike MATLAB on uint8).
    """
    if img.ndim == 2:
        return img.astype(np.float32, copy=False)
    rgb = img[..., :3].astype(np.float32, copy=False)
    # one pass over the pixels (a matrix-vector product), the float32 sum r*R + g*G + b*B
    return np.ascontiguousarray(rgb @ _GRAY_VECTOR, dtype=np.float32)


_GRAY_VECTOR = np.array(GRAY_WEIGHTS, np.float32)
