"""Stage 4: blending the sources into the fused image.

Three blends, shared by every method that needs them: the weighted average with per-pixel
weight maps (:func:`weighted_blend`), the Laplacian-pyramid fusion that takes each band-pass
coefficient from the source where it is strongest (:func:`pyramid_blend`), and the seam
cross-fade from the first into the second near decision boundaries (:func:`seam_blend`).

References
----------
.. [1] P. J. Burt and E. H. Adelson, "The Laplacian pyramid as a compact image code",
   IEEE Transactions on Communications 31(4), 1983.
.. [2] P. J. Burt and E. H. Adelson, "A multiresolution spline with application to image
   mosaics", ACM TOG 2(4), 1983.
.. [3] P. J. Burt and R. J. Kolczynski, "Enhanced image capture through fusion",
   Proc. 4th International Conference on Computer Vision (ICCV), 1993.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .consistency import boundary_distance
from .io import GRAY_WEIGHTS

__all__ = ["weighted_blend", "softmax_weights", "soft_blend", "max_pyramid_levels", "laplacian_pyramid", "collapse_pyramid", "pyramid_blend",
           "seam_blend", "MaxAbsSelector", "luma_coeffs", "LUMA"]


def weighted_blend(sources: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Pixel-wise weighted average ``sum_k w_k * S_k``.

    Parameters
    ----------
    sources : sequence of ndarray
        N float32 images, ``HxW`` or ``HxWxC``.
    weights : ndarray
        ``NxHxW`` weights summing to one per pixel; broadcast over colour channels.

    Returns
    -------
    ndarray
        float32 image of the sources' shape.
    """
    out = np.zeros_like(np.asarray(sources[0], dtype=np.float32))
    for s, w in zip(sources, weights):
        if out.ndim == 3:
            out += s * w[:, :, None]
        else:
            out += s * w
    return out


def softmax_weights(scores: np.ndarray, *, temperature: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel softmax over frames of ``NxHxW`` scores divided by ``temperature``.

    The soft blend's weights (frames weighted by ``exp(s_k / T)``, normalised), and, at
    ``temperature=1`` on a ranking network's scores, each frame's probability of being the
    sharpest. Computed stably (the per-pixel maximum is subtracted first).

    Returns
    -------
    ndarray
        ``NxHxW`` float32 weights summing to one per pixel (``out`` if given, which may be
        ``scores`` itself).
    """
    s = np.asarray(scores, dtype=np.float32)
    if out is None:
        out = np.array(s, copy=True)
    elif out is not s:
        np.copyto(out, s)
    out /= np.float32(temperature)
    out -= out.max(axis=0, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=0, keepdims=True)
    return out


def soft_blend(sources: Sequence[np.ndarray], scores: np.ndarray, *, temperature: float):
    """The soft blend: the frames weighted by a softmax over frames of ``scores / temperature``.

    The scores are divided by the temperature once, as :class:`mfif.stream.StackStream` divides
    each frame's, so that the batch and the streaming result break ties alike.

    Returns
    -------
    (fused, weights, scaled)
        The blend clipped to [0, 1], the ``NxHxW`` weights and the scaled scores (whose
        arg-max is the depth map).
    """
    scaled = np.asarray(scores, dtype=np.float32) / np.float32(temperature)
    weights = softmax_weights(scaled)
    return np.clip(weighted_blend(sources, weights), 0.0, 1.0), weights, scaled


def max_pyramid_levels(shape: tuple[int, ...]) -> int:
    """Most pyramid levels for an image of ``shape``: the coarsest level keeps >= 2 px a side."""
    return max(int(np.floor(np.log2(min(shape[:2])))) - 1, 0)


def laplacian_pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid ``[L_0, ..., L_{levels-1}, G_levels]`` of a float32 image.

    ``L_k = G_k - expand(G_{k+1})`` with OpenCV's 5-tap ``pyrDown``/``pyrUp``; the last entry
    is the low-pass residual. Works on ``HxW`` and ``HxWxC``.
    """
    pyr = []
    g = np.asarray(img, dtype=np.float32)
    for _ in range(levels):
        down = cv2.pyrDown(g)
        up = cv2.pyrUp(down, dstsize=(g.shape[1], g.shape[0]))
        if up.ndim < g.ndim:  # OpenCV drops a singleton channel axis
            up = up.reshape(g.shape)
        pyr.append(g - up)
        g = down
    pyr.append(g)
    return pyr


def collapse_pyramid(pyr: Sequence[np.ndarray]) -> np.ndarray:
    """Invert :func:`laplacian_pyramid`."""
    g = pyr[-1]
    for lap in reversed(pyr[:-1]):
        g = cv2.pyrUp(g, dstsize=(lap.shape[1], lap.shape[0])).reshape(lap.shape) + lap
    return g


def pyramid_blend(sources: Sequence[np.ndarray], levels: int) -> np.ndarray:
    """Laplacian-pyramid fusion: max-abs band-pass coefficients, mean low-pass residual.

    Colour: the choice of source is made from the magnitude of the luminance coefficient
    (BT.601; the pyramid is linear, so this is the luminance image's coefficient) and applied
    to all three channels, which avoids colour fringes.

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more float32 images of one shape, ``HxW`` or ``HxWxC``.
    levels : int
        Band-pass levels, 1 to :func:`max_pyramid_levels`.

    Returns
    -------
    ndarray
        float32 fused image, not clipped.
    """
    colour = sources[0].ndim == 3
    sels = [MaxAbsSelector() for _ in range(levels)]
    base = None
    for s in sources:
        pyr = laplacian_pyramid(s, levels)
        for sel, lap in zip(sels, pyr[:-1]):
            sel.update(lap, np.abs(luma_coeffs(lap, colour)))
        if base is None:
            base = pyr[-1].copy()
        else:
            base += pyr[-1]
        del pyr
    base *= np.float32(1.0 / len(sources))
    return collapse_pyramid([sel.coef for sel in sels] + [base])


#: Band-pass levels of the pyramid fusion the seam cross-fades into (at most what the image allows).
SEAM_LEVELS = 4


def seam_blend(fused: np.ndarray, sources: Sequence[np.ndarray], decision: np.ndarray, *, width: float) -> np.ndarray:
    """Cross-fade ``fused`` into a Laplacian-pyramid fusion within ``width`` px of decision boundaries.

    At an occlusion boundary neither source alone is right (a defocused foreground spreads
    over the background); the pyramid fusion keeps the sharp detail of both sides there. The
    cross-fade weight falls linearly from 1 on the boundary to 0 at ``width`` px. Images too
    small for one pyramid level (under 4 px a side) have no seam to soften and are returned
    as they are; the result is clipped to [0, 1] by the caller.
    """
    levels = min(SEAM_LEVELS, max_pyramid_levels(fused.shape))
    if width <= 0 or levels < 1:
        return fused
    dist = boundary_distance(decision)
    beta = np.clip((width - dist) / width, 0.0, 1.0).astype(np.float32)
    if not beta.any():
        return fused
    lap = np.clip(pyramid_blend(list(sources), levels), 0.0, 1.0)
    if fused.ndim == 3:
        beta = beta[..., None]
    return fused + beta * (lap - fused)


# BT.601 luma weights, the same as :func:`mfif.io.to_gray` (MATLAB ``rgb2gray``).
LUMA = np.array(GRAY_WEIGHTS, np.float32)


def luma_coeffs(c: np.ndarray, colour: bool) -> np.ndarray:
    """Luminance of a coefficient array whose last axis is colour (when ``colour``).

    Transforms used here are linear, so the luminance of the colour coefficients equals the
    coefficients of the luminance image.
    """
    if not colour:
        return c
    return c @ LUMA  # (..., 3) -> (...)


class MaxAbsSelector:
    """Streaming max-abs coefficient selection over sources.

    ``update(coef, activity)`` keeps, per position, the coefficient whose ``activity`` is the
    largest seen so far; a tie keeps the earlier source (like :func:`numpy.argmax`). For colour
    the activity is an ``h x w`` map and the choice is applied to all channels of ``coef``,
    which are on the last axis (``h x w x C``) or, with ``leading=True``, the first
    (``C x h x w``).
    """

    __slots__ = ("coef", "act")

    def __init__(self) -> None:
        self.coef: np.ndarray | None = None
        self.act: np.ndarray | None = None

    def update(self, coef: np.ndarray, activity: np.ndarray, *, leading: bool = False) -> None:
        if self.coef is None:
            self.coef = np.array(coef, dtype=np.float32, copy=True)
            self.act = np.array(activity, dtype=np.float32, copy=True)
            return
        take = activity > self.act
        if coef.ndim == take.ndim + 1:
            np.copyto(self.coef, coef, where=take[None] if leading else take[..., None])
        else:
            np.copyto(self.coef, coef, where=take)
        np.maximum(self.act, activity, out=self.act)
