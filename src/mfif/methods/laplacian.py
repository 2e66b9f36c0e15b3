"""The ``laplacian`` method: Laplacian pyramid fusion."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..blend import max_pyramid_levels, pyramid_blend
from ..errors import UsageError
from ..result import FusionResult
from ._common import check_count, clip01

__all__ = ["DEFAULT_LEVELS", "fuse_laplacian"]

#: Pyramid depth used when ``levels`` is not given (clamped to what the image allows).
DEFAULT_LEVELS = 4


def fuse_laplacian(sources: Sequence[np.ndarray], *, levels: int | None = None) -> FusionResult:
    """Fuse with a Laplacian pyramid: max-abs on the detail levels, mean on the residual.

    The fusion itself is the shared blend stage :func:`mfif.blend.pyramid_blend` (colour decided
    on luminance); this method picks the depth and clips the result to [0, 1].

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
    return FusionResult(fused=clip01(pyramid_blend(sources, levels)), method="laplacian")
