"""Procedural graphic scenes: flat areas bounded by crisp edges (barcodes, printed blocks, shapes).

Natural photos rarely hold a wide flat area next to a crisp edge, yet printed matter, labels,
circuit boards and machined parts are made of them. Inside such an area the in-focus frame is
flat while a defocused frame shows the soft ramp of the nearby edge, so a focus measure that
looks only at local texture prefers the defocused frame. These scenes let a focus network learn
from context that the flat inside of a crisp-edged area belongs to the frame that is sharp at its edges.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["barcode", "graphic_image", "graphic_images"]


def _levels(rng: np.random.Generator) -> tuple[float, float]:
    lo = float(rng.uniform(0.03, 0.6))
    hi = float(rng.uniform(lo + 0.2, 0.97))
    return lo, hi


def barcode(rng: np.random.Generator, *, shape: tuple[int, int], widths: tuple[int, int],
            levels: tuple[float, float]) -> np.ndarray:
    """Vertical bars of random widths, alternating between two levels.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws each bar's width, left to right.
    shape : (int, int), keyword-only
        ``(height, width)`` of the image in px.
    widths : (int, int), keyword-only
        Bar widths are drawn uniformly from ``widths[0]`` to ``widths[1] - 1`` px.
    levels : (float, float), keyword-only
        The first bar's level, then the second's, and so on alternately.

    Returns
    -------
    ndarray
        ``shape`` float32 image holding only the two levels.
    """
    h, w = (int(v) for v in shape)
    img = np.empty((h, w), np.float32)
    x, k = 0, 0
    while x < w:
        bar = int(rng.integers(int(widths[0]), int(widths[1])))
        img[:, x:x + bar] = levels[k]
        x, k = x + bar, 1 - k
    return img


def _bars(rng, side: int, lo: float, hi: float) -> np.ndarray:
    # a barcode: stripes 1-40 px wide (at the final scale) alternating between two levels,
    # turned by a random angle
    big = int(side * 1.5)
    levels = (lo, hi) if rng.integers(2) else (hi, lo)
    canvas = barcode(rng, shape=(big, big), widths=(2, 81), levels=levels)
    rot = cv2.getRotationMatrix2D((big / 2, big / 2), float(rng.uniform(0, 180)), 1.0)
    rot[:, 2] -= (big - side) / 2
    return cv2.warpAffine(canvas, rot, (side, side), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)


def _blocks(rng, side: int, lo: float, hi: float) -> np.ndarray:
    # printed matter: flat rectangles and strokes of a few ink levels on a flat ground
    canvas = np.full((side, side), hi if rng.random() < 0.7 else lo, np.float32)
    inks = [lo, hi, float(rng.uniform(lo, hi))]
    for _ in range(int(rng.integers(5, 40))):
        x0, y0 = (int(v) for v in rng.integers(0, side, 2))
        w, h = (int(v) for v in rng.integers(4, side // 3, 2))
        ink = inks[int(rng.integers(len(inks)))]
        if rng.random() < 0.6:
            cv2.rectangle(canvas, (x0, y0), (x0 + w, y0 + h), ink, -1)
        else:
            cv2.line(canvas, (x0, y0), (x0 + w, y0 + h - side // 6), ink, int(rng.integers(2, 17)))
    return canvas


def _shapes(rng, side: int, lo: float, hi: float) -> np.ndarray:
    # machined or moulded parts: flat discs and polygons, some overlapping
    canvas = np.full((side, side), float(rng.uniform(lo, hi)), np.float32)
    for _ in range(int(rng.integers(3, 25))):
        ink = float(rng.choice([lo, hi, rng.uniform(lo, hi)]))
        if rng.random() < 0.5:
            c = tuple(int(v) for v in rng.integers(0, side, 2))
            cv2.circle(canvas, c, int(rng.integers(6, side // 4)), ink, -1)
        else:
            pts = rng.integers(0, side, (int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.fillPoly(canvas, [pts], ink)
    return canvas


def graphic_image(rng: np.random.Generator, *, size: int = 384) -> np.ndarray:
    """One procedural graphic scene: a barcode, printed blocks or flat shapes.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice (the same state gives the same image).
    size : int, keyword-only
        Side of the square image in px.

    Returns
    -------
    ndarray
        ``size x size`` float32 gray image in [0, 1]: flat areas of two or three levels (at least
        0.2 apart), edges anti-aliased (drawn at twice the size, then area-averaged), and in half
        of the images a faint grain (sigma up to 0.02, like paper or a matte surface).
    """
    side = 2 * int(size)
    lo, hi = _levels(rng)
    kind = int(rng.integers(3))
    canvas = (_bars, _blocks, _shapes)[kind](rng, side, lo, hi)
    img = cv2.resize(canvas, (int(size), int(size)), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        grain = rng.normal(0.0, 1.0, img.shape).astype(np.float32)
        img = img + float(rng.uniform(0.0, 0.02)) * cv2.GaussianBlur(grain, (0, 0), 0.7) / 0.4
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def graphic_images(n: int, *, seed: int, size: int = 384) -> list[np.ndarray]:
    """``n`` graphic scenes (:func:`graphic_image`), a pure function of ``seed``."""
    rng = np.random.default_rng([int(seed), 0x6A1])
    return [graphic_image(rng, size=size) for _ in range(int(n))]
