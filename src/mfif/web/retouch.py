"""Retouching: replace painted regions of a fused image by the same pixels of one frame.

A stroke is a polyline with a brush radius, in full-resolution pixel coordinates, and the
index of the frame to take the pixels from. Strokes are never applied in place: the
retouched image is always recomposed from the untouched fused image and the list of strokes,
so undoing a stroke is dropping it from the list. Every function here is pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from ..errors import UsageError

__all__ = ["Stroke", "parse_stroke", "stroke_mask", "compose"]

#: Largest brush radius (px) a stroke may ask for.
MAX_RADIUS = 2000
#: Most points one stroke may carry.
MAX_POINTS = 100_000


@dataclass(frozen=True)
class Stroke:
    """One brush stroke: take frame ``frame`` under a ``radius`` px brush along ``points``."""

    frame: int
    radius: float
    points: tuple[tuple[float, float], ...]


def parse_stroke(data: Any, *, n_frames: int, width: int, height: int) -> Stroke:
    """Validate a stroke sent by a client (decoded JSON) and return it as a :class:`Stroke`.

    Parameters
    ----------
    data : object
        ``{"frame": i, "radius": px, "points": [[x, y], ...]}``.
    n_frames, width, height : int, keyword-only
        The job's frame count and image size; points may lie outside the image (the part of
        the brush inside it still counts) but not absurdly far.

    Raises
    ------
    UsageError
        A missing field, a value of the wrong type or out of range; the message names it.
    """
    if not isinstance(data, dict):
        raise UsageError("a stroke is a JSON object with frame, radius and points")
    missing = [k for k in ("frame", "radius", "points") if k not in data]
    if missing:
        raise UsageError(f"stroke: missing {', '.join(missing)}")
    frame, radius, points = data["frame"], data["radius"], data["points"]
    if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < n_frames:
        raise UsageError(f"stroke: frame must be an integer from 0 to {n_frames - 1}, got {frame!r}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0.5 <= radius <= MAX_RADIUS:
        raise UsageError(f"stroke: radius must be a number from 0.5 to {MAX_RADIUS}, got {radius!r}")
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
        raise UsageError(f"stroke: points must be a list of 1 to {MAX_POINTS} [x, y] pairs")
    margin = 2 * MAX_RADIUS
    out = []
    for p in points:
        if (not isinstance(p, (list, tuple)) or len(p) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in p)):
            raise UsageError(f"stroke: point {p!r} is not an [x, y] pair of numbers")
        x, y = float(p[0]), float(p[1])
        if not (-margin <= x <= width + margin and -margin <= y <= height + margin):
            raise UsageError(f"stroke: point {p!r} lies far outside the {width}x{height} image")
        out.append((x, y))
    return Stroke(frame=frame, radius=float(radius), points=tuple(out))


def _bbox(stroke: Stroke, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Pixel box ``(x0, y0, x1, y1)`` the brush can touch, clipped to the image; None if empty."""
    pts = np.asarray(stroke.points, np.float64)
    r = stroke.radius + 1
    x0, y0 = np.floor(pts.min(axis=0) - r).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0) + r).astype(int) + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return None if x0 >= x1 or y0 >= y1 else (int(x0), int(y0), int(x1), int(y1))


def stroke_mask(stroke: Stroke, width: int, height: int) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Soft-edged coverage of one stroke.

    The brush is solid (1.0) up to ``radius - feather`` from the polyline and falls linearly
    to 0 at ``radius``, with ``feather`` a quarter of the radius (at least one pixel), so a
    painted region blends into its surroundings without a visible seam.

    Returns
    -------
    (box, mask) or None
        ``box = (x0, y0, x1, y1)`` in image pixels and a float32 mask of shape
        ``(y1 - y0, x1 - x0)`` with values in [0, 1]; None when the brush misses the image.
    """

    box = _bbox(stroke, width, height)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    # distance of every pixel centre to the polyline, via a 1-px drawing at 1/16 px precision
    line = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    shift = 4
    pts = np.rint((np.asarray(stroke.points) - (x0, y0)) * (1 << shift)).astype(np.int32)
    if len(pts) == 1:
        cv2.circle(line, tuple(int(v) for v in pts[0]), 0, 0, 1, cv2.LINE_8, shift)
    else:
        cv2.polylines(line, [pts.reshape(-1, 1, 2)], False, 0, 1, cv2.LINE_8, shift)
    dist = cv2.distanceTransform(line, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    feather = max(1.0, stroke.radius / 4)
    mask = np.clip((stroke.radius - dist) / feather, 0.0, 1.0).astype(np.float32)
    return box, mask


def compose(fused: np.ndarray, decision: np.ndarray | None, strokes: Sequence[Stroke],
            frame: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply ``strokes`` in order to a fused image and its depth (source index) map.

    Parameters
    ----------
    fused : ndarray
        The fused image, ``HxW`` or ``HxWxC``, any dtype mfif writes (uint8, uint16, float32).
    decision : ndarray or None
        Source index per pixel (``HxW``); a painted pixel (coverage at least one half) gets
        the stroke's frame index.
    strokes : sequence of Stroke
        Applied first to last.
    frame : callable
        ``frame(i)`` returns frame ``i`` with the shape and dtype of ``fused``.

    Returns
    -------
    (image, depth)
        New arrays (the inputs are left untouched), ``depth`` None when ``decision`` is.
    """
    out = fused.copy()
    depth = None if decision is None else decision.copy()
    if not strokes:
        return out, depth
    h, w = fused.shape[:2]
    for s in strokes:
        got = stroke_mask(s, w, h)
        if got is None:
            continue
        (x0, y0, x1, y1), m = got
        src = np.asarray(frame(s.frame)[y0:y1, x0:x1], np.float32)
        dst = out[y0:y1, x0:x1].astype(np.float32)
        mm = m[..., None] if dst.ndim == 3 else m
        mixed = dst + (src - dst) * mm
        if np.issubdtype(out.dtype, np.integer):
            mixed = np.rint(mixed)
        out[y0:y1, x0:x1] = mixed.astype(out.dtype)
        if depth is not None:
            depth[y0:y1, x0:x1][m >= 0.5] = s.frame
    return out, depth
