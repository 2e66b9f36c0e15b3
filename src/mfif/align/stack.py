"""Aligning a stack held in memory: estimate the transforms, warp every frame, crop."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import UsageError
from .registration import Registration, estimate_transforms
from .warp import INTERPOLATIONS, warp_frame


@dataclass
class AlignResult(Registration):
    """Output of :func:`align_stack`: a :class:`Registration` plus the warped frames.

    Attributes
    ----------
    images : list of ndarray
        The aligned frames (skipped frames left out), in input order, same dtype and channel
        count as the input. With ``cropped`` they are all ``(y1 - y0) x (x1 - x0)`` (the
        :attr:`valid_box`); otherwise they have the reference frame's size, with uncovered
        borders filled by reflection.
    cropped : bool
        Whether :attr:`images` were cropped to :attr:`valid_box`.
    """

    images: list = None
    cropped: bool = True


def align_stack(images: Sequence[np.ndarray], *, reference: str | int = "middle", model: str = "similarity",
                max_residual: float | str | None = "auto", crop: bool = True, skip_unaligned: bool = False,
                progress: Callable[[int, int], object] | None = None, names: Sequence[str] | None = None,
                chain: bool = True, work_size: int = 1024, interpolation: str = "cubic",
                workers: int | None = None, **limits) -> AlignResult:
    """Register every frame of a (hand-held) focus stack onto a reference frame and warp it.

    :func:`mfif.align.estimate_transforms` with the same options, then
    :func:`mfif.align.warp_frame` of every aligned frame (cropped to the common valid box
    with ``crop``, the default).

    Parameters
    ----------
    images : sequence of ndarray
        Frames of one scene, all the same shape and dtype.
    crop : bool, keyword-only
        Crop to :attr:`Registration.valid_box` (default), so that no output pixel is invented;
        otherwise keep the reference frame's size (uncovered borders reflected).
    interpolation : {"cubic", "linear", "lanczos"}, keyword-only
        Interpolation of the full-resolution warp.
    **limits
        ``min_matches``, ``min_correlation``, ``scale_range``, ``max_shear``, ``max_rotation``,
        ``min_overlap`` of :func:`mfif.align.estimate_transforms`.

    Returns
    -------
    AlignResult

    Notes
    -----
    The reference frame is never resampled (cropping only slices it). Other frames are warped
    once from their original pixels in their native dtype.

    References
    ----------
    .. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
       correlation coefficient maximization", IEEE TPAMI 30(10):1858-1865, 2008.

    Examples
    --------
    >>> import numpy as np, cv2
    >>> from mfif.align import align_stack
    >>> rng = np.random.default_rng(0)
    >>> base = cv2.GaussianBlur(rng.random((240, 320)).astype(np.float32), (0, 0), 2)
    >>> moved = np.roll(base, (3, -2), axis=(0, 1))
    >>> res = align_stack([base, moved], reference=0, model="translation")
    >>> np.round(res.transforms[1][:2, 2], 1)
    array([ 2., -3.])
    """
    if interpolation not in INTERPOLATIONS:
        raise UsageError(f"unknown interpolation {interpolation!r}; use one of {', '.join(INTERPOLATIONS)}")
    if isinstance(images, np.ndarray) and images.ndim < 3:
        raise UsageError(f"align_stack: expected a sequence of frames, got one {images.ndim}-D array")
    frames = list(images)
    if any(not isinstance(f, np.ndarray) for f in frames):
        raise UsageError("align_stack: frames must be arrays (use estimate_transforms for files)")
    reg = estimate_transforms(frames, reference=reference, model=model, max_residual=max_residual,
                              skip_unaligned=skip_unaligned, chain=chain, names=names, work_size=work_size,
                              workers=workers, progress=progress, **limits)
    t_warp = time.perf_counter()
    w, h = reg.size
    box = reg.valid_box if crop else (0, 0, w, h)
    keep = reg.aligned
    workers = max(1, int(workers if workers is not None else min(4, os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        out = list(pool.map(lambda i: warp_frame(frames[i], reg.transforms[i], box=box,
                                                 interpolation=interpolation), keep))
    info = dict(reg.info, seconds_warp=time.perf_counter() - t_warp)
    info["seconds"] = info["seconds"] + info["seconds_warp"]
    fields = {k: getattr(reg, k) for k in Registration.__dataclass_fields__}
    fields["info"] = info
    return AlignResult(**fields, images=out, cropped=bool(crop))
