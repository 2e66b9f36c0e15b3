"""The ``laplacian`` method: Laplacian pyramid fusion."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..errors import UsageError
from ..result import FusionResult
from ._common import MaxAbsSelector, check_count, clip01, luma_coeffs

__all__ = ["DEFAULT_LEVELS", "laplacian_pyramid", "collapse_pyramid", "max_pyramid_levels",
           "fuse_laplacian"]

#: Pyramid depth used when ``levels`` is not given (clamped to what the image allows).
DEFAULT_LEVELS = 4


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


def fuse_laplacian(sources: Sequence[np.ndarray], *, levels: int | None = None) -> FusionResult:
    """Fuse with a Laplacian pyramid: max-abs on the detail levels, mean on the residual.

    Each source is decomposed into a Laplacian pyramid with ``levels`` band-pass levels plus
    a low-pass residual. Each band-pass coefficient of the result comes from the source whose
    coefficient has the largest magnitude; the residual is the mean of the sources'. The
    pyramid is then collapsed and clipped to [0, 1].

    Colour: the choice of source is made from the magnitude of the luminance coefficient
    (BT.601; the pyramid is linear, so this is the luminance image's coefficient) and applied
    to all three channels, which avoids colour fringes.

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more float32 images in [0, 1] of one shape, ``HxW`` or ``HxWxC``.
    levels : int or None, keyword-only
        Number of band-pass levels, 1 up to ``floor(log2(min(H, W))) - 1``. None (default):
        4, or the most the image allows when it is smaller than 32 px a side.

    Returns
    -------
    FusionResult
        ``fused`` only.

    Raises
    ------
    UsageError
        If ``levels`` is too large for the image.

    References
    ----------
    .. [1] P. J. Burt and E. H. Adelson, "The Laplacian pyramid as a compact image code",
       IEEE Transactions on Communications 31(4), 1983.
    .. [2] P. J. Burt and R. J. Kolczynski, "Enhanced image capture through fusion",
       Proc. 4th International Conference on Computer Vision (ICCV), 1993.
    """
    check_count("laplacian", sources)
    shape = sources[0].shape
    maxlev = max_pyramid_levels(shape)
    if maxlev < 1:
        h, w = shape[:2]
        raise UsageError(f"method laplacian: a {w}x{h} image is too small for a pyramid "
                         "(needs at least 4 px a side)")
    if levels is None:
        levels = min(DEFAULT_LEVELS, maxlev)
    if not 1 <= levels <= maxlev:
        h, w = shape[:2]
        raise UsageError(f"method laplacian: option levels={levels} must be between 1 and "
                         f"{maxlev} for a {w}x{h} image")
    colour = len(shape) == 3
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
    fused = collapse_pyramid([sel.coef for sel in sels] + [base])
    return FusionResult(fused=clip01(fused), method="laplacian")
