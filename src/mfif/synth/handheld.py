"""Synthetic hand-held focus stacks with known camera motion (alignment benchmarks and tests)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..io import from_float, to_float
from .psf import defocus


@dataclass
class HandheldStack:
    """A synthetic hand-held focus stack with known motion (see :func:`handheld_stack`).

    Attributes
    ----------
    frames : list of ndarray
        ``uint8`` RGB frames, all ``h x w``.
    transforms : list of ndarray
        True 3x3 frame -> reference maps (pixel centres at integers); the identity for the
        reference.
    reference : int
        Index of the reference frame (the middle one).
    blur : list of float
        Largest defocus radius (px) in each frame.
    """

    frames: list
    transforms: list
    reference: int
    blur: list


def handheld_stack(photo: np.ndarray, *, rng: np.random.Generator, n: int = 7, size: tuple[int, int] = (1200, 800),
                   max_shift: float = 60.0, max_rotation: float = 2.5, breathing: float = 0.02,
                   max_blur: float = 20.0, flicker: float = 0.1, noise: float = 0.01) -> HandheldStack:
    """Synthesise a hand-held focus stack of one photo with known camera motion.

    The photo is resized to a canvas larger than the frame by the largest motion on every side
    (so every frame shows real content everywhere). The scene has a smooth random depth map;
    frame ``i`` is focused at depth ``i / (n - 1)`` and every scene point is blurred with a
    pillbox of radius ``max_blur * |depth - focus|`` (from sharp to ``max_blur`` across the
    stack), in scene coordinates. Then each frame is cut from the canvas through its own motion:
    a random shift of up to ``max_shift`` px per axis, a rotation of up to ``max_rotation``
    degrees about the centre and a magnification growing linearly through the stack by
    ``+-breathing`` (focus breathing), relative to the middle (reference) frame. Last, an
    exposure gain of ``1 +- flicker`` and Gaussian sensor noise of ``noise`` (of full scale).

    Parameters
    ----------
    photo : ndarray
        ``HxWx3`` photo (uint8 or float in [0, 1]).
    rng : numpy.random.Generator, keyword-only
        Source of every random choice.
    n : int, keyword-only
        Frames.
    size : (int, int), keyword-only
        ``(w, h)`` of the frames.

    Returns
    -------
    HandheldStack
    """
    w, h = size
    ref = n // 2
    img = to_float(photo)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[0] > img.shape[1]:  # portrait photo: turn it to landscape
        img = np.ascontiguousarray(np.rot90(img))
    radius = math.hypot(w, h) / 2.0
    margin = int(math.ceil(max_shift + radius * (math.radians(max_rotation) + breathing) + 4))
    cw, ch = w + 2 * margin, h + 2 * margin
    canvas = cv2.resize(img[..., :3], (cw, ch), interpolation=cv2.INTER_CUBIC)
    coarse = rng.random((3, 4)).astype(np.float32)
    depth = cv2.resize(coarse, (cw, ch), interpolation=cv2.INTER_CUBIC)
    depth = (depth - depth.min()) / max(float(depth.max() - depth.min()), 1e-6)
    radii = np.array([0.0, 1.0, 2.0, 3.5, 5.0, 7.5, 10.0, 13.0, 16.5, 20.0]) * (max_blur / 20.0)
    blurred = [defocus(canvas, "disk", float(r)) for r in radii]
    frames, transforms, blur = [], [], []
    for i in range(n):
        focus = i / max(n - 1, 1)
        r = max_blur * np.abs(depth - focus)
        k = np.clip(np.searchsorted(radii, r, side="right") - 1, 0, len(radii) - 2)
        frac = np.clip((r - radii[k]) / (radii[k + 1] - radii[k]), 0.0, 1.0)[..., None]
        scene = np.zeros_like(canvas)
        for j in np.unique(k):  # linear blend of the two nearest blur radii
            m = (k == j)[..., None]
            scene += m * ((1.0 - frac) * blurred[j] + frac * blurred[j + 1])
        if i == ref:
            t = np.eye(3)
        else:
            s = 1.0 + breathing * (2.0 * i / max(n - 1, 1) - 1.0)
            a = math.radians(rng.uniform(-max_rotation, max_rotation))
            lin = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
            t = np.eye(3)
            t[:2, :2] = lin
            t[:2, 2] = c - lin @ c + rng.uniform(-max_shift, max_shift, 2)
        # frame pixel x shows reference point t @ x, i.e. canvas point t @ x + margin
        m = np.array([[1.0, 0.0, margin], [0.0, 1.0, margin], [0.0, 0.0, 1.0]]) @ t
        f = cv2.warpAffine(scene, m[:2], (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)
        f = f * rng.uniform(1.0 - flicker, 1.0 + flicker) + rng.normal(0.0, noise, f.shape).astype(np.float32)
        frames.append(from_float(np.clip(f, 0.0, 1.0)))
        transforms.append(t)
        blur.append(float(r.max()))
    return HandheldStack(frames, transforms, ref, blur)
