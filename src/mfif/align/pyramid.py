"""Gray working copies of the frames: a small pyramid, its prefiltered copy, ORB features.

Transforms are estimated on these copies and expressed at full resolution; the full-resolution
frame is not needed again until it is warped.

References
----------
.. [1] E. Rublee, V. Rabaud, K. Konolige and G. Bradski, "ORB: an efficient alternative to SIFT
   or SURF", Proc. IEEE International Conference on Computer Vision (ICCV), 2011.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..io import to_gray
from .geometry import scale_matrix

MIN_LEVEL_SIDE = 64
MAX_LEVELS = 4
FEATURE_SIDE = 800   # features are detected on the finest level no longer than this
PREFILTER = 5        # Gaussian prefilter kernel (sigma 1.1), as OpenCV's ECC default
SATURATED = 0.99     # a pixel with a channel at or above this fraction of full scale is clipped
CLIP_MARGIN = 3      # level px around clipped pixels also left out (prefilter, gradient, cubic reach)
NFEATURES = 1000


@dataclass
class WorkCopy:
    """Gray working copy of one frame.

    Attributes
    ----------
    levels : list of ndarray
        float32 gray pyramid in [0, 1], finest (working size) first.
    smooth : list of ndarray
        The same, Gaussian-prefiltered (the images ECC compares).
    scales : list of ndarray
        3x3 maps from full-resolution coordinates to each level's coordinates.
    feat_level : int
        Level on which features are detected.
    full_size : tuple of int
        ``(w, h)`` of the full-resolution frame.
    detail : float
        Standard deviation of the finest level (0 for a flat frame).
    clipped : list of ndarray or None
        Per level, bool masks of pixels at or near a saturated (clipped) value of the frame
        (:func:`saturation_masks`); None when nothing is clipped.
    colour : ndarray or None
        A colour frame's colour copy at the working size, in its own dtype (a channel saturates
        on its own, so :func:`mfif.align.ecc.match_clipping` clips channels); None for gray.
    kp : tuple
        ``(points N x 2 at feat_level, ORB descriptors or None)``.
    """

    levels: list
    smooth: list
    scales: list
    feat_level: int
    full_size: tuple
    detail: float
    clipped: list | None = None
    colour: np.ndarray | None = None
    kp: tuple = (np.zeros((0, 2), np.float32), None)
    _grads: dict = field(default_factory=dict)

    def grads(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Central-difference gradients of ``smooth[level]`` (computed once, when first needed)."""
        if level not in self._grads:
            self._grads[level] = gradients(self.smooth[level])
        return self._grads[level]

    @property
    def px(self) -> float:
        """Full-resolution pixels per working (finest level) pixel."""
        s = self.scales[0]
        return 0.5 * (1.0 / s[0, 0] + 1.0 / s[1, 1])


def gradients(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference x and y gradients of a float32 image (what ECC's Jacobian uses)."""
    return (cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=1, scale=0.5),
            cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=1, scale=0.5))


def gray_small(img: np.ndarray, size: tuple[int, int], *, keep_colour: bool = False):
    """Gray float32 copy in [0, 1] of ``img`` resized to ``size`` = (w, h) with area averaging.

    The colour frame is resized in its native dtype first (fewer pixels to convert), then made
    gray (BT.601 luma) and scaled to [0, 1]; non-finite values become 0. With ``keep_colour``,
    returns ``(gray, native)``: also the resized copy in the frame's own dtype and channels.
    """
    a = img
    if a.ndim == 3:
        a = a[..., :3] if a.shape[2] >= 3 else a[..., 0]
    if a.dtype not in (np.uint8, np.uint16, np.float32):
        a = a.astype(np.float32)
    if (a.shape[1], a.shape[0]) != size:
        a = cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_AREA)
    native = a
    if a.dtype == np.uint8:
        a = a.astype(np.float32) * np.float32(1 / 255.0)
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) * np.float32(1 / 65535.0)
    else:
        a = a.astype(np.float32, copy=False)
    if a.ndim == 3:
        a = to_gray(a)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    a = np.ascontiguousarray(a)
    return (a, native) if keep_colour else a


def as_unit(a: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] (of full scale) from uint8, uint16 or float pixels."""
    return a.astype(np.float32) * np.float32(1.0 / full_scale(a)) if a.dtype != np.float32 else a


def full_scale(img: np.ndarray) -> float:
    """The value of a saturated pixel: 255 (uint8), 65535 (uint16), 1.0 (floats)."""
    if img.dtype == np.uint8:
        return 255.0
    if img.dtype == np.uint16:
        return 65535.0
    return 1.0


def saturation_masks(small: np.ndarray, shapes: list[tuple[int, int]]) -> list[np.ndarray] | None:
    """Where a frame is clipped, at each working level: bool ``shapes[k]`` (h, w) masks, or None.

    ``small`` is the frame at the working size (``shapes[0]``) in its own dtype and channels. A
    pixel is clipped when any channel is at or above :data:`SATURATED` of full scale (255 or
    65535; float frames: never). Exposure changes move the outline of a clipped area: a brighter frame clips a
    larger area, so an edge blurred by defocus ends at a different place in each frame, and
    matching intensities there biases a registration by tenths of a pixel (measured on the
    synthetic hand-held stacks, docs/align.md). The masks (dilated by :data:`CLIP_MARGIN` level
    pixels) say where; :func:`mfif.align.ecc.match_clipping` fits the pair's gain where neither
    is clipped and clips both alike.
    """
    if small.dtype not in (np.uint8, np.uint16):
        return None  # float pixels have no known saturation level (they may lie outside [0, 1])
    a = small[..., :3] if small.ndim == 3 else small
    thr = a.dtype.type(math.ceil(SATURATED * full_scale(small)))  # compared in the pixels' own type
    if a.ndim == 3:
        a = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2]) if a.shape[2] == 3 else a[..., 0]
    hot = a >= thr
    if not hot.any():
        return None
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * CLIP_MARGIN + 1,) * 2)
    out = []
    m = hot.view(np.uint8) * np.uint8(255)
    for h, w in shapes:
        if m.shape != (h, w):
            # INTER_AREA averages 0/255 values: anything above 0 had a clipped pixel in its footprint
            m = ((cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) > 0).view(np.uint8) * np.uint8(255))
        out.append(cv2.dilate(m, kernel) > 0)
    return out


def work_size_of(w: int, h: int, work_size: int) -> tuple[int, int]:
    """``(w, h)`` of the working copy: longer side at most ``work_size``, aspect kept."""
    k = min(1.0, float(work_size) / max(h, w))
    return max(int(round(w * k)), 1), max(int(round(h * k)), 1)


def pyramid_levels(g: np.ndarray) -> list[np.ndarray]:
    """The working pyramid of a gray float32 image: halved by area averaging while the shorter side
    stays at least :data:`MIN_LEVEL_SIDE`, at most :data:`MAX_LEVELS` levels, finest first."""
    levels = [g]
    while min(levels[-1].shape) // 2 >= MIN_LEVEL_SIDE and len(levels) < MAX_LEVELS:
        prev = levels[-1]
        levels.append(cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2), interpolation=cv2.INTER_AREA))
    return levels


def prefiltered(levels: list[np.ndarray]) -> list[np.ndarray]:
    """Every level Gaussian-prefiltered (:data:`PREFILTER`), as ECC compares them."""
    return [cv2.GaussianBlur(a, (PREFILTER, PREFILTER), 0) for a in levels]


def make_work(img: np.ndarray, work_wh: tuple[int, int]) -> WorkCopy:
    """Working copy of a full-resolution frame ``img`` at working size ``work_wh`` = (w, h).

    Every level is Gaussian-prefiltered and ORB features [1]_ are detected on the finest level
    no longer than ``FEATURE_SIDE`` (contrast-stretched to 8 bit first, so that dim or
    low-contrast frames still give features).
    """
    h, w = img.shape[:2]
    g, native = gray_small(img, work_wh, keep_colour=True)
    levels = pyramid_levels(g)
    scales = [scale_matrix(work_wh[0] / w, work_wh[1] / h)]
    for prev, a in zip(levels[:-1], levels[1:]):
        scales.append(scale_matrix(a.shape[1] / prev.shape[1], a.shape[0] / prev.shape[0]) @ scales[-1])
    smooth = prefiltered(levels)
    fl = next((k for k, a in enumerate(levels) if max(a.shape) <= FEATURE_SIDE), len(levels) - 1)
    clipped = saturation_masks(native, [a.shape for a in levels])
    wk = WorkCopy(levels, smooth, scales, fl, (w, h), float(g.std()), clipped, native if native.ndim == 3 else None)
    wk.kp = _features(levels[fl])
    return wk


def _features(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB keypoints (N x 2, level coordinates) and descriptors of a gray level."""
    lo, hi = np.percentile(a, (0.5, 99.5))
    if hi - lo < 1e-4:  # flat: nothing to detect
        return np.zeros((0, 2), np.float32), None
    g8 = np.clip((a - lo) * (255.0 / float(hi - lo)), 0, 255).astype(np.uint8)
    orb = cv2.ORB_create(nfeatures=NFEATURES, scaleFactor=1.3, nlevels=4, edgeThreshold=15,
                         patchSize=15, fastThreshold=8)
    kps, desc = orb.detectAndCompute(g8, None)
    pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
    return pts, desc
