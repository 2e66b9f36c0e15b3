"""Alignment (registration) of hand-held focus stacks.

Frames of a hand-held focus stack differ by small camera motions (shift, roll, a little tilt)
and, because refocusing moves the lens, by a small change of magnification ("focus
breathing"). :func:`align_stack` registers every frame onto one reference frame with a global
parametric model (translation, similarity, affine or homography) and warps the frames so that
they can be fused pixel by pixel.

Method
------
1. Each frame is reduced to a gray working copy whose longer side is at most ``work_size``
   pixels (area averaging), with a pyramid of up to 4 levels (factor 2 per level); every
   level is Gaussian-prefiltered (5x5, sigma 1.1, as OpenCV's ECC does).
2. A pair of frames is first matched with ORB features (Rublee et al. 2011 [2]_), a ratio
   test and a RANSAC (Fischler & Bolles 1981 [3]_) similarity fit, which gives a rough
   transform even for large motions. When too few features match (strongly defocused frames
   carry little detail), phase correlation (Kuglin & Hines [4]_) of the working images gives
   a translation instead.
3. The rough transform is refined coarse-to-fine by maximising the enhanced correlation
   coefficient (ECC) of Evangelidis & Psarakis (2008) [1]_, here in its inverse-compositional
   Gauss-Newton form with the model's own parameters (so the similarity model really has 4
   parameters: scale, rotation and shift; OpenCV's ``findTransformECC`` has no such model and
   is several times slower per iteration). ECC compares zero-mean, contrast-normalised
   intensities, which makes it insensitive to the brightness and contrast changes that
   defocus causes, and the prefilter makes a sharp and a blurred rendering of the same texture
   more alike. A symmetric defocus blur does not move edges, so it lowers the correlation but
   does not bias the estimate. The input is sampled with bicubic interpolation, which avoids
   the ~0.05 px bias toward whole pixels that bilinear sampling gives.
4. The result is checked (correlation, plausible scale and shear, residual misregistration
   measured by tile-wise phase correlation of the aligned pair) and scaled to full resolution.
5. The full-resolution frames are warped once, in their native dtype, with cubic (default) or
   linear interpolation, and cropped to the rectangle that every frame covers.

Frames are prepared and pairs registered in a thread pool (OpenCV and NumPy release the GIL).

Neighbour chaining
------------------
By default (``chain=True``) every frame is registered to its *neighbour toward the reference*
(frame ``i`` to ``i + 1`` below the reference, to ``i - 1`` above it) and the pairwise
transforms are composed. Neighbouring frames of a focus stack are focused at nearby depths, so
they share most of their sharp detail, while the first and the last frame of a deep stack may
have almost no sharp region in common with a reference in the middle: direct registration then
fails or locks onto the few structures that are sharp in both. The price of chaining is that
pairwise errors accumulate like a random walk (about ``sqrt(k)`` times the pairwise error after
``k`` links); with ECC's sub-pixel accuracy (typically well below 0.1 working pixels) and a
reference in the middle of the stack this stays far below a pixel. On the 7-frame hand-held
``pcb`` stack, direct registration of the outer frames to the middle one reaches an ECC of
only 0.34-0.47 (the default ``min_correlation`` rejects it), neighbours reach 0.98-0.99, and
the chained and direct transforms agree within 1 px. ``chain=False`` registers every frame
directly to the reference (for short stacks with similar focus, or for frames that do not
form a focus sequence).

References
----------
.. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
   correlation coefficient maximization", IEEE Trans. Pattern Analysis and Machine
   Intelligence 30(10):1858-1865, 2008.
.. [2] E. Rublee, V. Rabaud, K. Konolige and G. Bradski, "ORB: an efficient alternative to SIFT
   or SURF", Proc. IEEE International Conference on Computer Vision (ICCV), 2011.
.. [3] M. A. Fischler and R. C. Bolles, "Random sample consensus: a paradigm for model fitting
   with applications to image analysis and automated cartography", Communications of the ACM
   24(6):381-395, 1981.
.. [4] C. D. Kuglin and D. C. Hines, "The phase correlation image alignment method", Proc.
   IEEE Conference on Cybernetics and Society, 1975.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np
import scipy.fft as sfft

from .errors import AlignmentError, UsageError

__all__ = ["AlignResult", "align_stack", "MODELS"]

#: Motion models accepted by :func:`align_stack`.
MODELS = ("translation", "similarity", "affine", "homography")


_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


@dataclass
class AlignResult:
    """Output of :func:`align_stack`.

    Attributes
    ----------
    images : list of ndarray
        The aligned frames, in input order, same dtype and channel count as the input. With
        ``cropped`` they are all ``(y1 - y0) x (x1 - x0)`` (the :attr:`valid_box`); otherwise
        they have the reference frame's size, with uncovered borders filled by reflection.
    transforms : list of ndarray
        One 3x3 float64 matrix per frame mapping *frame* pixel coordinates ``(x, y, 1)``
        (full resolution, pixel centres at integers) to *reference* pixel coordinates of the
        uncropped reference frame. The reference frame's matrix is the identity. A point at
        reference coordinates ``(x, y)`` lies at ``(x - x0, y - y0)`` in a cropped image.
    residuals : list of float
        Per-frame RMS misregistration in full-resolution pixels remaining after alignment,
        measured between the frame and the frame it was registered to (its neighbour with
        ``chain=True``) by phase correlation of image tiles; ``nan`` where too few tiles carry
        enough common detail to measure; 0 for the reference.
    correlations : list of float
        Per-frame enhanced correlation coefficient (ECC, in [-1, 1]) between the aligned frame
        and the frame it was registered to, on the Gaussian-prefiltered working copies; 1 for
        the reference.
    valid_box : tuple of int
        ``(x0, y0, x1, y1)`` in reference pixel coordinates, ``x1``/``y1`` exclusive (slice
        bounds): the largest axis-aligned rectangle whose pixels are covered by every warped
        frame.
    cropped : bool
        Whether :attr:`images` were cropped to :attr:`valid_box`.
    reference : int
        Index of the reference frame.
    model : str
        Motion model used.
    partners : list of int
        Index of the frame each frame was registered to (-1 for the reference).
    info : dict
        Details: ``seconds`` (total), ``seconds_register``, ``seconds_warp``, ``work_scale``
        (working size / full size), ``matches`` (RANSAC inlier feature matches per frame),
        ``init`` (``"features"`` or ``"phase"`` per frame).
    """

    images: list
    transforms: list
    residuals: list
    correlations: list
    valid_box: tuple
    cropped: bool
    reference: int = 0
    model: str = "similarity"
    partners: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def describe(self) -> list[str]:
        """One human-readable line per frame: scale, rotation, shift, residual, correlation."""
        lines = []
        for i, t in enumerate(self.transforms):
            s, rot, tx, ty = transform_parameters(t)
            lines.append(f"frame {i}: scale {s:.4f} rotation {rot:+.3f} deg shift ({tx:+.2f}, {ty:+.2f}) px "
                         f"residual {self.residuals[i]:.3f} px ECC {self.correlations[i]:.4f}")
        return lines


def transform_parameters(t: np.ndarray) -> tuple[float, float, float, float]:
    """Scale, rotation in degrees and shift (x, y) of a 3x3 transform.

    A positive rotation turns the x axis toward the y axis, i.e. clockwise on screen, where y
    points down.

    The scale is ``sqrt(|det A|)`` of the linear part ``A`` and the rotation that of the
    closest similarity; the shift is the translation column (where the frame's origin, its
    top-left pixel centre, lands in the reference). For a homography the values
    describe its affine part (the perspective row is ignored).
    """
    t = np.asarray(t, dtype=np.float64)
    a = t[:2, :2] / t[2, 2]
    scale = math.sqrt(abs(np.linalg.det(a)))
    rot = math.degrees(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
    return scale, rot, float(t[0, 2] / t[2, 2]), float(t[1, 2] / t[2, 2])


# --------------------------------------------------------------------------------------------
# small geometry helpers


def _scale_matrix(sx: float, sy: float) -> np.ndarray:
    """Map pixel coordinates of an image to those of its resized copy (OpenCV centre convention)."""
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _to3(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.shape == (3, 3):
        return m / m[2, 2]
    out = np.eye(3)
    out[:2] = m[:2]
    return out


def _apply(t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3x3 transform to Nx2 points."""
    p = np.c_[pts, np.ones(len(pts))] @ t.T
    return p[:, :2] / p[:, 2:3]


def _fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, shift) mapping ``src`` points onto ``dst``."""
    ms, md = src.mean(0), dst.mean(0)
    ps, pd = src - ms, dst - md
    den = float((ps ** 2).sum())
    a = float((ps[:, 0] * pd[:, 0] + ps[:, 1] * pd[:, 1]).sum()) / den
    b = float((ps[:, 0] * pd[:, 1] - ps[:, 1] * pd[:, 0]).sum()) / den
    t = md - np.array([[a, -b], [b, a]]) @ ms
    return np.array([[a, -b, t[0]], [b, a, t[1]], [0.0, 0.0, 1.0]])


def _grid_points(w: int, h: int, n: int = 5) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(0, w - 1, n), np.linspace(0, h - 1, n))
    return np.c_[xs.ravel(), ys.ravel()]


def _project(t: np.ndarray, model: str, w: int, h: int) -> np.ndarray:
    """Closest transform of ``model`` to ``t`` in the least-squares sense over the image."""
    if model == "similarity":
        pts = _grid_points(w, h)
        return _fit_similarity(pts, _apply(t, pts))
    if model == "translation":
        c = np.array([[(w - 1) / 2.0, (h - 1) / 2.0]])
        d = _apply(t, c) - c
        out = np.eye(3)
        out[:2, 2] = d[0]
        return out
    if model == "affine":
        out = t.copy() / t[2, 2]
        if abs(out[2, 0]) > 0 or abs(out[2, 1]) > 0:
            pts = _grid_points(w, h)
            sol = np.linalg.lstsq(np.c_[pts, np.ones(len(pts))], _apply(t, pts), rcond=None)[0]
            out = np.eye(3)
            out[:2] = sol.T
        return out
    return t / t[2, 2]


def _degeneracy(t: np.ndarray, w: int, h: int, scale_range: tuple[float, float], max_shear: float) -> str | None:
    """Reason why ``t`` is not a plausible frame-to-frame transform, or None."""
    if not np.all(np.isfinite(t)):
        return "the transform is not finite"
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1], [(w - 1) / 2, (h - 1) / 2]], float)
    den = corners @ t[2, :2] + t[2, 2]
    if np.any(den <= 1e-6 * abs(t[2, 2])) or np.any(np.sign(den) != np.sign(t[2, 2])):
        return "the homography folds the frame over"
    tt = t / t[2, 2]
    for (x, y), d in zip(corners, den / t[2, 2]):
        # Jacobian of the (projective) map at the point
        u = tt[0] @ (x, y, 1.0)
        v = tt[1] @ (x, y, 1.0)
        jac = np.array([[tt[0, 0] - u / d * tt[2, 0], tt[0, 1] - u / d * tt[2, 1]],
                        [tt[1, 0] - v / d * tt[2, 0], tt[1, 1] - v / d * tt[2, 1]]]) / d
        if np.linalg.det(jac) <= 0:
            return "the transform mirrors the frame"
        s1, s2 = np.linalg.svd(jac, compute_uv=False)
        scale = math.sqrt(s1 * s2)
        if not scale_range[0] <= scale <= scale_range[1]:
            return f"implausible scale {scale:.3f} (outside [{scale_range[0]:g}, {scale_range[1]:g}])"
        if s1 / s2 - 1.0 > max_shear:
            return f"implausible shear/stretch {s1 / s2 - 1.0:.3f} (limit {max_shear:g})"
    return None


# --------------------------------------------------------------------------------------------
# working copies


@dataclass
class _Work:
    """Gray working copy of one frame: pyramid, prefiltered pyramid, features, gradients."""

    levels: list            # float32 gray pyramid in [0, 1], finest (working size) first
    smooth: list            # the same, Gaussian-prefiltered (the images ECC compares)
    scales: list            # 3x3 maps: full-resolution coordinates -> level coordinates
    feat_level: int         # level on which features are detected
    kp: tuple | None = None  # (points Nx2 float32 at feat_level, descriptors)
    grads: dict = field(default_factory=dict)  # level -> (gx, gy) of ``smooth``, when a template


def _gray_small(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Gray float32 copy in [0, 1] resized to ``size`` = (w, h) with area averaging."""
    a = img
    if a.ndim == 3:
        a = a[..., :3] if a.shape[2] >= 3 else a[..., 0]
    if a.dtype not in (np.uint8, np.uint16, np.float32):
        a = a.astype(np.float32)
    if (a.shape[1], a.shape[0]) != size:
        a = cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_AREA)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) * np.float32(1 / 255.0)
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) * np.float32(1 / 65535.0)
    else:
        a = a.astype(np.float32, copy=False)
    if a.ndim == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    return np.ascontiguousarray(a)


_MIN_LEVEL_SIDE = 64
_MAX_LEVELS = 4
_FEATURE_SIDE = 800   # features are detected on the finest level no longer than this
_PREFILTER = 5        # Gaussian prefilter kernel (sigma 1.1), as OpenCV's ECC default


def _make_work(img: np.ndarray, work_wh: tuple[int, int], nfeatures: int, template: bool) -> _Work:
    h, w = img.shape[:2]
    g = _gray_small(img, work_wh)
    levels = [g]
    scales = [_scale_matrix(work_wh[0] / w, work_wh[1] / h)]
    while min(levels[-1].shape) // 2 >= _MIN_LEVEL_SIDE and len(levels) < _MAX_LEVELS:
        prev = levels[-1]
        nw, nh = prev.shape[1] // 2, prev.shape[0] // 2
        levels.append(cv2.resize(prev, (nw, nh), interpolation=cv2.INTER_AREA))
        scales.append(_scale_matrix(nw / prev.shape[1], nh / prev.shape[0]) @ scales[-1])
    smooth = [cv2.GaussianBlur(a, (_PREFILTER, _PREFILTER), 0) for a in levels]
    fl = next((k for k, a in enumerate(levels) if max(a.shape) <= _FEATURE_SIDE), len(levels) - 1)
    wk = _Work(levels, smooth, scales, fl)
    _features(wk, nfeatures)
    if template:
        for k, a in enumerate(smooth):
            wk.grads[k] = (cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=1, scale=0.5),
                           cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=1, scale=0.5))
    return wk


# --------------------------------------------------------------------------------------------
# pairwise registration


class _PairFailure(Exception):
    """Internal: a pair could not be registered; the message is the reason."""


def _features(wk: _Work, nfeatures: int):
    """ORB keypoints and descriptors of the feature level (computed once per frame)."""
    if wk.kp is None:
        a = wk.levels[wk.feat_level]
        lo, hi = np.percentile(a, (0.5, 99.5))
        g8 = np.clip((a - lo) * (255.0 / max(float(hi - lo), 1e-6)), 0, 255).astype(np.uint8)
        orb = cv2.ORB_create(nfeatures=nfeatures, scaleFactor=1.3, nlevels=4, edgeThreshold=15,
                             patchSize=15, fastThreshold=8)
        kps, desc = orb.detectAndCompute(g8, None)
        pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
        wk.kp = (pts, desc)
    return wk.kp


def _match_features(tmpl: _Work, inp: _Work, ransac_px: float) -> tuple[np.ndarray | None, int]:
    """RANSAC similarity (template -> input, full-resolution coordinates) from ORB matches.

    Returns (3x3 matrix or None, number of inlier matches).
    """
    pt, dt = tmpl.kp
    pi, di = inp.kp
    if dt is None or di is None or len(pt) < 3 or len(pi) < 3:
        return None, 0
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(dt, di, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < 3:
        return None, len(good)
    src = pt[[m.queryIdx for m in good]]
    dst = pi[[m.trainIdx for m in good]]
    a, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=ransac_px,
                                         maxIters=2000, confidence=0.995, refineIters=10)
    if a is None or inl is None:
        return None, 0
    s = tmpl.scales[tmpl.feat_level]
    return np.linalg.inv(s) @ _to3(a) @ s, int(inl.sum())


def _phase_init(tmpl: _Work, inp: _Work) -> tuple[np.ndarray, float]:
    """Translation (template -> input, full resolution) by phase correlation [4]_."""
    lvl = tmpl.feat_level
    # copies: OpenCV 5's phaseCorrelate applies the window to its inputs in place
    a, b = tmpl.smooth[lvl].copy(), inp.smooth[lvl].copy()
    win = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), resp = cv2.phaseCorrelate(a, b, win)
    if not (np.isfinite(resp) and np.isfinite(dx) and np.isfinite(dy)):
        return np.eye(3), 0.0
    t = np.eye(3)
    t[0, 2], t[1, 2] = dx, dy
    s = tmpl.scales[lvl]
    return np.linalg.inv(s) @ t @ s, float(resp)


# Inverse-compositional ECC ------------------------------------------------------------------

def _steepest_descent(gx, gy, x, y, model: str) -> np.ndarray:
    """Rows d(template)/d(parameter) at the identity warp (normalised coordinates), k x N."""
    if model == "translation":
        cols = [gx, gy]
    elif model == "similarity":
        cols = [gx * x + gy * y, gy * x - gx * y, gx, gy]
    elif model == "affine":
        cols = [gx * x, gx * y, gx, gy * x, gy * y, gy]
    else:
        r = gx * x + gy * y
        cols = [gx * x, gx * y, gx, gy * x, gy * y, gy, -x * r, -y * r]
    return np.stack(cols, axis=0)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Dot product of two vectors without BLAS (threaded BLAS ``ddot`` stalls on busy machines)."""
    return float(np.einsum("i,i->", a, b))


def _delta_warp(p: np.ndarray, model: str) -> np.ndarray:
    d = np.eye(3)
    if model == "translation":
        d[0, 2], d[1, 2] = p
    elif model == "similarity":
        d[:2] = [[1 + p[0], -p[1], p[2]], [p[1], 1 + p[0], p[3]]]
    else:
        d[0] += p[0:3]
        d[1] += p[3:6]
        if model == "homography":
            d[2, :2] = p[6:8]
    return d


_ROW = 1024  # remap maps are laid out in rows of this many sample points


def _as_map(pts: np.ndarray) -> np.ndarray:
    n = len(pts)
    g = np.zeros((n + (-n) % _ROW, 2), np.float32)
    g[:n] = pts
    return g.reshape(-1, _ROW, 2)


def _ecc_level(tmpl: np.ndarray, grads: tuple, inp: np.ndarray, warp: np.ndarray, model: str,
               max_iter: int, tol: float, max_points: int) -> tuple[np.ndarray, float, float]:
    """Maximise the ECC between ``tmpl`` and ``inp`` warped by ``warp`` at one pyramid level.

    Inverse-compositional Gauss-Newton form of the ECC scheme of Evangelidis & Psarakis: the
    template's Jacobian and Hessian are computed once, each iteration samples the input at the
    warped positions of (up to ``max_points``, on a regular lattice) template pixels, forms
    the zero-mean vectors ``t`` and ``i``, and solves for the parameter increment ``dp`` that
    makes ``t + G dp`` proportional to ``i`` with the ECC-optimal scale ``lambda``; the warp is
    then composed with the inverse increment. ``warp`` maps template -> input coordinates.
    Returns the refined warp, the correlation coefficient and the size of the last update
    (largest corner displacement, level pixels).
    """
    h, w = tmpl.shape
    persp = model == "homography"
    s = max(w, h) / 2.0
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    norm = np.array([[1 / s, 0, -cx / s], [0, 1 / s, -cy / s], [0, 0, 1.0]])
    denorm = np.linalg.inv(norm)
    stride = max(1, int(math.ceil(math.sqrt(h * w / max_points))))
    o = max(2, stride // 2)
    sl = (slice(o, h - 2, stride), slice(o, w - 2, stride))
    ys, xs = np.mgrid[sl]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    tv, gxv, gyv = tmpl[sl].ravel(), grads[0][sl].ravel(), grads[1][sl].ravel()

    def mapped(m: np.ndarray, wm: np.ndarray) -> np.ndarray:
        return cv2.perspectiveTransform(m, wm) if persp else cv2.transform(m, wm[:2])

    margin = 1.0 + 0.01 * max(w, h)
    mp = mapped(_as_map(pts), warp).reshape(-1, 2)[:len(pts)]
    keep = ((mp[:, 0] >= margin) & (mp[:, 0] <= w - 1 - margin)
            & (mp[:, 1] >= margin) & (mp[:, 1] <= h - 1 - margin))

    def prepare(keep: np.ndarray) -> dict:
        n = int(keep.sum())
        if n < 64 or n < 0.05 * len(keep):
            raise _PairFailure("the frames barely overlap")
        t = tv[keep].astype(np.float64)
        tb = t - t.mean()
        p = pts[keep].astype(np.float64)
        g = _steepest_descent(gxv[keep].astype(np.float64) * s, gyv[keep].astype(np.float64) * s,
                              (p[:, 0] - cx) / s, (p[:, 1] - cy) / s, model)
        g -= g.mean(axis=1, keepdims=True)
        hess = g @ g.T
        tt = _dot(tb, tb)
        if tt <= 1e-12 * n or not np.all(np.isfinite(hess)) or np.linalg.cond(hess) > 1e12:
            raise _PairFailure("{target} has no usable detail (flat image?)")
        hi = np.linalg.inv(hess)
        gt = g @ tb
        return dict(map=_as_map(pts[keep]), n=n, tb=tb, g=g, hi=hi, gt=gt, tt=tt, tpt=float(gt @ hi @ gt))

    st = prepare(keep)
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float).T
    rho = float("nan")
    step = float("inf")
    for _ in range(max_iter):
        mp = mapped(st["map"], warp)
        iv = cv2.remap(inp, mp, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=float("nan")).ravel()[:st["n"]]
        ok = np.isfinite(iv)
        if not ok.all():  # some samples left the input frame: drop them for good
            idx = np.flatnonzero(keep)
            keep[idx[~ok]] = False
            st = prepare(keep)
            iv = iv[ok]
        ib = iv.astype(np.float64)
        ib -= ib.mean()
        ii = _dot(ib, ib)
        if ii <= 1e-12 * st["n"]:
            raise _PairFailure("{frame} has no usable detail (flat image?)")
        gi = st["g"] @ ib
        it = _dot(ib, st["tb"])
        rho = it / math.sqrt(ii * st["tt"])
        den = it - float(gi @ st["hi"] @ st["gt"])
        lam = (st["tt"] - st["tpt"]) / den if den > 0 else math.sqrt(st["tt"] / ii)
        dp = st["hi"] @ (lam * gi - st["gt"])
        d = denorm @ _delta_warp(dp, model) @ norm
        try:
            warp = warp @ np.linalg.inv(d)
        except np.linalg.LinAlgError:
            raise _PairFailure("ECC diverged") from None
        warp /= warp[2, 2]
        c2 = d @ corners
        step = float(np.abs(c2[:2] / c2[2] - corners[:2]).max())
        if not math.isfinite(step) or step > 2 * max(w, h):
            raise _PairFailure("ECC diverged")
        if step < tol:
            break
    return warp, rho, step


_ECC_ITERATIONS = (50, 30)   # per coarse level, at the finest level
_ECC_TOLERANCE = (0.01, 0.005)  # convergence: last update below this many level pixels
_ECC_UNCONVERGED = 0.1       # a last update above this (finest level, px) is a failure


def _ecc(tmpl: _Work, inp: _Work, w_full: np.ndarray, model: str, max_points: int) -> tuple[np.ndarray, float]:
    """Coarse-to-fine ECC; ``w_full`` maps template -> input in full-resolution coordinates."""
    nlev = len(tmpl.levels)
    rho = float("nan")
    for lvl in range(nlev - 1, -1, -1):
        s = tmpl.scales[lvl]
        a = tmpl.smooth[lvl]
        h, w = a.shape
        w_lvl = _project(s @ w_full @ np.linalg.inv(s), model, w, h)
        fine = lvl == 0
        w_lvl, rho, step = _ecc_level(a, tmpl.grads[lvl], inp.smooth[lvl], w_lvl, model,
                                      max_iter=_ECC_ITERATIONS[fine], tol=_ECC_TOLERANCE[fine],
                                      max_points=max_points)
        w_full = np.linalg.inv(s) @ w_lvl @ s
        if fine and step > _ECC_UNCONVERGED:
            raise _PairFailure(f"ECC did not converge (last update {step:.2f} working px after "
                               f"{_ECC_ITERATIONS[1]} iterations)")
    return w_full, rho


def _tile_shifts(a: np.ndarray, b: np.ndarray, cutoff: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Shift of each tile of ``b`` relative to the same tile of ``a`` (stacks K x t x t).

    Phase correlation (Kuglin & Hines [4]_) with a Hanning window and a Gaussian low-pass on
    the normalised cross-power spectrum (``cutoff`` in cycles per pixel): frequencies that
    defocus has removed from one of the tiles carry only noise, and the smooth peak allows an
    unbiased parabolic sub-pixel fit. Returns (K x 2 shifts (dx, dy), K peak heights in [0, 1]).
    """
    k, t, _ = a.shape
    win = np.outer(np.hanning(t), np.hanning(t)).astype(np.float32)
    a = (a - a.mean(axis=(1, 2), keepdims=True)) * win
    b = (b - b.mean(axis=(1, 2), keepdims=True)) * win
    r = sfft.rfft2(b) * np.conj(sfft.rfft2(a))
    r /= np.abs(r) + np.float32(1e-20)
    fy = np.fft.fftfreq(t)[:, None]
    fx = np.fft.rfftfreq(t)[None, :]
    g = np.exp(-(fx ** 2 + fy ** 2) / (2.0 * cutoff ** 2)).astype(np.float32)
    g[0, 0] = 0.0
    c = sfft.irfft2(r * g, s=(t, t))
    # height of a perfect peak: irfft2(g) at the origin (t is even: the last column is Nyquist)
    peak_max = float(2.0 * g[:, 1:-1].sum() + g[:, 0].sum() + g[:, -1].sum()) / (t * t)
    flat = c.reshape(k, -1)
    am = flat.argmax(axis=1)
    py, px = np.unravel_index(am, (t, t))
    idx = np.arange(k)
    c0 = flat[idx, am]

    def vertex(m, p):
        den = m - 2.0 * c0 + p
        return np.where(np.abs(den) > 1e-12, 0.5 * (m - p) / np.where(den == 0, 1.0, den), 0.0)

    dx = px + vertex(c[idx, py, (px - 1) % t], c[idx, py, (px + 1) % t])
    dy = py + vertex(c[idx, (py - 1) % t, px], c[idx, (py + 1) % t, px])
    dx = (dx + t / 2.0) % t - t / 2.0
    dy = (dy + t / 2.0) % t - t / 2.0
    return np.stack([dx, dy], axis=1), c0 / peak_max


def _tile_residual(tmpl: _Work, inp: _Work, w_full: np.ndarray, min_response: float = 0.12,
                   keep_fraction: float = 0.75) -> tuple[float, int]:
    """Robust RMS misregistration (full-resolution px) left after warping ``inp`` onto ``tmpl``.

    The aligned pair (finest working level, prefiltered) is cut into square tiles and the
    shift remaining in each tile pair is measured by band-limited phase correlation
    (:func:`_tile_shifts`). Tiles not fully covered by the warped frame, flat tiles and tiles
    with a weak correlation peak (content sharp in one frame and blurred beyond recognition in
    the other) are skipped. The residual is the response-weighted RMS of the smallest
    ``keep_fraction`` of the tile shifts: a wrong global transform moves every tile, while a
    few tiles with periodic texture give spurious shifts that should not count. Local
    differences that no global model removes (parallax of a hand-held camera, defocus-
    dependent shifts of blurred content) do count. Returns (residual, tiles used); the residual
    is nan when fewer than 3 tiles qualify.
    """
    s = tmpl.scales[0]
    a, b = tmpl.smooth[0], inp.smooth[0]
    h, w = a.shape
    w_lvl = s @ w_full @ np.linalg.inv(s)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if abs(w_lvl[2, 0]) + abs(w_lvl[2, 1]) > 0:
        bw = cv2.warpPerspective(b, w_lvl, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    else:
        bw = cv2.warpAffine(b, w_lvl[:2], (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    ts = 1 << max(int(math.log2(max(min(h, w) / 6.0, 1.0))), 0)
    ts = int(min(max(ts, 32), 128))
    if ts > min(h, w):
        return float("nan"), 0
    xs = np.linspace(0, w - ts, max(w // ts, 1)).astype(int)
    ys = np.linspace(0, h - ts, max(h // ts, 1)).astype(int)
    ta = np.stack([a[y:y + ts, x:x + ts] for y in ys for x in xs])
    tb = np.stack([bw[y:y + ts, x:x + ts] for y in ys for x in xs])
    ok = (tb.min(axis=(1, 2)) >= 0) & (ta.std(axis=(1, 2)) > 2e-3) & (tb.std(axis=(1, 2)) > 2e-3)
    if ok.sum() < 3:
        return float("nan"), int(ok.sum())
    d, resp = _tile_shifts(ta[ok], tb[ok])
    good = np.isfinite(resp) & (resp >= min_response)
    if good.sum() < 3:
        return float("nan"), int(good.sum())
    d2 = (d[good] ** 2).sum(axis=1)
    wt = resp[good]
    order = np.argsort(d2)[:max(3, int(math.ceil(keep_fraction * len(d2))))]
    px = 0.5 * (1.0 / s[0, 0] + 1.0 / s[1, 1])  # full-resolution pixels per working pixel
    return float(math.sqrt((d2[order] * wt[order]).sum() / wt[order].sum()) * px), int(good.sum())


def _register_pair(tmpl: _Work, inp: _Work, size: tuple[int, int], model: str, opts: dict) -> dict:
    """Register ``inp`` onto ``tmpl``; returns the frame -> template map and diagnostics."""
    w, h = size
    init, nm = _match_features(tmpl, inp, ransac_px=2.0)
    out = {"matches": nm}
    if init is not None and nm >= opts["min_matches"]:
        w0 = init
        out["init"] = "features"
    else:
        w0, resp = _phase_init(tmpl, inp)
        if resp < 0.03:
            raise _PairFailure(f"only {nm} feature matches (need {opts['min_matches']}) and no "
                               f"phase-correlation peak (response {resp:.3f})")
        out["init"] = "phase"
    bad = _degeneracy(w0, w, h, opts["scale_range"], 2 * opts["max_shear"] + 0.05)
    if bad:
        raise _PairFailure(f"{'feature matching' if out['init'] == 'features' else 'phase correlation'} "
                           f"found {bad}")
    wf, rho = _ecc(tmpl, inp, w0, model, opts["max_points"])
    out["correlation"] = rho
    if not np.isfinite(rho) or rho < opts["min_correlation"]:
        extra = f" (only {nm} feature matches)" if out["init"] == "phase" else ""
        raise _PairFailure(f"ECC correlation {rho:.3f} is below {opts['min_correlation']:g}{extra}")
    bad = _degeneracy(wf, w, h, opts["scale_range"], opts["max_shear"])
    if bad:
        raise _PairFailure(bad)
    res, ntiles = _tile_residual(tmpl, inp, wf)
    out["residual"], out["tiles"] = res, ntiles
    mr = opts["max_residual"]
    if mr is not None and np.isfinite(res) and res > mr:
        raise _PairFailure(f"residual {res:.2f} px exceeds max_residual {mr:g} px")
    out["transform"] = np.linalg.inv(wf)  # frame -> template
    return out


# --------------------------------------------------------------------------------------------
# valid rectangle


def _row_intervals(quads: list[np.ndarray], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Per reference row, the integer column range inside every (convex) quad and the frame."""
    ys = np.arange(height, dtype=np.float64)
    lo = np.zeros(height)
    hi = np.full(height, float(width - 1))
    ok = np.ones(height, dtype=bool)
    for q in quads:
        area2 = sum(q[i, 0] * q[(i + 1) % 4, 1] - q[(i + 1) % 4, 0] * q[i, 1] for i in range(4))
        sgn = 1.0 if area2 > 0 else -1.0
        for i in range(4):
            p, r = q[i], q[(i + 1) % 4]
            ex, ey = r - p
            # inside: sgn * (ex * (y - py) - ey * (x - px)) >= -tol
            tol = 1e-7 * math.hypot(ex, ey)
            a = -sgn * ey
            c = sgn * (ex * (ys - p[1]) + ey * p[0])
            if abs(a) < 1e-12:
                ok &= c >= -tol
            elif a > 0:
                lo = np.maximum(lo, (-tol - c) / a)
            else:
                hi = np.minimum(hi, (-tol - c) / a)
    li = np.ceil(lo - 1e-9)
    ri = np.floor(hi + 1e-9)
    ok &= ri >= li
    li[~ok] = 1
    ri[~ok] = 0
    return li, ri


def _largest_rectangle(li: np.ndarray, ri: np.ndarray) -> tuple[int, int, int, int] | None:
    """Largest axis-aligned rectangle given per-row integer column ranges of a convex region."""
    rows = np.nonzero(ri >= li)[0]
    if len(rows) == 0:
        return None
    best = (0, None)
    top, bot = rows[0], rows[-1]
    for y0 in range(top, bot + 1):
        lmax = np.maximum.accumulate(li[y0:bot + 1])
        rmin = np.minimum.accumulate(ri[y0:bot + 1])
        wid = rmin - lmax + 1
        area = wid * np.arange(1, len(wid) + 1)
        area[wid <= 0] = 0
        k = int(np.argmax(area))
        if area[k] > best[0]:
            best = (float(area[k]), (int(lmax[k]), int(y0), int(rmin[k]) + 1, int(y0 + k) + 1))
        # upper bound for later starts: full width times remaining rows
        if (bot - y0) * (ri[y0:].max() - li[y0:].min() + 1) <= best[0]:
            break
    return best[1]


# --------------------------------------------------------------------------------------------
# warping


def _warp(img: np.ndarray, t: np.ndarray, size: tuple[int, int], interp: int, border: int) -> np.ndarray:
    """Warp ``img`` with forward map ``t`` (3x3, source -> destination) into ``size`` = (w, h)."""
    affine = abs(t[2, 0]) < 1e-15 and abs(t[2, 1]) < 1e-15
    src = img
    if src.dtype not in (np.uint8, np.uint16, np.float32):
        src = src.astype(np.float32)

    def one(a: np.ndarray) -> np.ndarray:
        if affine:
            return cv2.warpAffine(a, (t / t[2, 2])[:2], size, flags=interp, borderMode=border)
        return cv2.warpPerspective(a, t, size, flags=interp, borderMode=border)

    if src.ndim == 3 and src.shape[2] > 4:
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


# --------------------------------------------------------------------------------------------
# public API


def _frame_name(i: int, names) -> str:
    if names is not None and i < len(names) and names[i] is not None:
        return f"frame {i} ({names[i]})"
    return f"frame {i}"


def align_stack(images: Sequence[np.ndarray], *, reference: str | int = "middle", model: str = "similarity",
                max_residual: float | str | None = "auto", crop: bool = True,
                progress: Callable[[int, int], object] | None = None,
                names: Sequence[str] | None = None, chain: bool = True, work_size: int = 1024,
                interpolation: str = "cubic", min_matches: int = 20, min_correlation: float = 0.5,
                scale_range: tuple[float, float] = (0.7, 1.4), max_shear: float = 0.1,
                min_overlap: float = 0.25, workers: int | None = None) -> AlignResult:
    """Register every frame of a (hand-held) focus stack onto a reference frame.

    Parameters
    ----------
    images : sequence of ndarray
        Frames of one scene, all the same shape and dtype: ``HxW`` or ``HxWxC``, ``uint8``,
        ``uint16`` or float. A 3-D/4-D array is taken as a stack along its first axis.
    reference : {"middle", "first", "last"} or int, keyword-only
        Reference frame: its geometry is kept. ``"middle"`` (default) is ``len(images) // 2``,
        which halves the longest chain of pairwise registrations. Integers index ``images``
        (negative values count from the end).
    model : {"similarity", "translation", "affine", "homography"}, keyword-only
        Motion model. ``"similarity"`` (default: shift, rotation and scale; refocusing changes
        magnification) suits hand-held stacks of distant or flat subjects; ``"affine"`` adds
        shear and anisotropic scale; ``"homography"`` adds perspective tilt (camera rotation
        about a close subject). Richer models are more fragile on defocused frames.
    max_residual : float, "auto" or None, keyword-only
        Largest acceptable residual misregistration of a frame, in full-resolution pixels
        (see :attr:`AlignResult.residuals`); None disables the check. ``"auto"`` (default)
        allows 3 working pixels, i.e. ``max(3, 3 * full size / working size)`` pixels (6 px
        for a 2048 px wide frame): the residual includes the local shifts that no global model
        removes (parallax of a hand-held camera, shifts of blurred content), which measured
        0.6-3 px on a hand-held 2048x1536 stack, while a failed registration (a slip by one
        period of a repetitive texture, a wrong local optimum) leaves much more.
    crop : bool, keyword-only
        If True (default) all frames are cropped to :attr:`AlignResult.valid_box`, the
        largest rectangle covered by every warped frame, so that no output pixel is invented.
        If False every frame keeps the reference frame's size, and pixels a warped frame does
        not cover are filled by mirror reflection of its content (``BORDER_REFLECT``), so the
        strip outside ``valid_box`` holds reflected, not observed, data.
    progress : callable, keyword-only
        Called as ``progress(k, n)`` after each of the ``n`` frames has been registered
        (``k = 1..n``; the reference counts as registered at once).
    names : sequence of str, keyword-only
        Names of the frames (file names) used in error messages.
    chain : bool, keyword-only
        Register each frame to its neighbour toward the reference and compose (default), or
        directly to the reference (False). See the module documentation for the trade-off.
    work_size : int, keyword-only
        Longest side of the gray working copies on which transforms are estimated (default
        1024); transforms are rescaled to full resolution. Larger is slower and slightly more
        precise.
    interpolation : {"cubic", "linear", "lanczos"}, keyword-only
        Interpolation of the full-resolution warp. Cubic (default) keeps fine detail sharper
        than linear, which matters for the focus measure of the fusion stage.
    min_matches : int, keyword-only
        Inlier feature matches needed to trust the feature initialisation; below it, phase
        correlation supplies a translation instead.
    min_correlation : float, keyword-only
        Smallest acceptable ECC correlation coefficient of an aligned pair.
    scale_range : (float, float), keyword-only
        Plausible range of the local scale of a transform (default 0.7 to 1.4).
    max_shear : float, keyword-only
        Largest plausible anisotropy ``s1 / s2 - 1`` of the local linear map (singular values
        ``s1 >= s2``).
    min_overlap : float, keyword-only
        Smallest acceptable area of :attr:`AlignResult.valid_box` as a fraction of the frame.
    workers : int, keyword-only
        Threads used to prepare, register and warp frames (default: CPU count, at most 4).

    Returns
    -------
    AlignResult
        Aligned frames (input dtype), frame-to-reference transforms at full resolution,
        residuals, ECC correlations and the common valid box.

    Raises
    ------
    UsageError
        Bad options, or frames that differ in shape or dtype.
    AlignmentError
        A frame cannot be aligned: no usable initialisation (too few feature matches and no
        phase-correlation peak), ECC did not converge, correlation or residual out of bounds,
        an implausible transform, or frames that do not overlap. The one-line message names
        the frame (its 0-based index in ``images`` and, with ``names``, its name) and the
        frame it was matched to, e.g. ``frame 4 (IMG_0004.jpg) could not be aligned to frame 3
        (IMG_0003.jpg): only 5 feature matches (need 20) and no phase-correlation peak
        (response 0.011)``.

    Notes
    -----
    The reference frame is never resampled (cropping only slices it). Other frames are warped
    once from their original pixels in their native dtype (8-bit stays 8-bit, 16-bit keeps
    16-bit precision, float stays float), with cubic interpolation by default.

    References
    ----------
    .. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
       correlation coefficient maximization", IEEE TPAMI 30(10):1858-1865, 2008.
    .. [2] E. Rublee, V. Rabaud, K. Konolige and G. Bradski, "ORB: an efficient alternative to
       SIFT or SURF", ICCV 2011.
    .. [3] M. A. Fischler and R. C. Bolles, "Random sample consensus: a paradigm for model
       fitting with applications to image analysis and automated cartography", Comm. ACM
       24(6):381-395, 1981.

    Examples
    --------
    >>> import numpy as np
    >>> from mfif.align import align_stack
    >>> rng = np.random.default_rng(0)
    >>> import cv2
    >>> base = cv2.GaussianBlur(rng.random((240, 320)).astype(np.float32), (0, 0), 2)
    >>> moved = np.roll(base, (3, -2), axis=(0, 1))
    >>> res = align_stack([base, moved], reference=0, model="translation")
    >>> np.round(res.transforms[1][:2, 2], 1)
    array([ 2., -3.])
    """
    t_start = time.perf_counter()
    if isinstance(images, np.ndarray) and images.ndim < 3:
        raise UsageError(f"align_stack: expected a sequence of frames, got one {images.ndim}-D array")
    frames = list(images)
    n = len(frames)
    if n == 0:
        raise UsageError("align_stack: no images given")
    if names is not None:
        names = [None if s is None else str(s) for s in names]
        if len(names) != n:
            raise UsageError(f"align_stack: {len(names)} names for {n} images")
    if model not in MODELS:
        raise UsageError(f"unknown alignment model {model!r}; use one of {', '.join(MODELS)}")
    if interpolation not in _INTERPOLATION:
        raise UsageError(f"unknown interpolation {interpolation!r}; use one of {', '.join(_INTERPOLATION)}")
    if isinstance(max_residual, str):
        if max_residual != "auto":
            raise UsageError(f"max_residual must be a number of pixels, 'auto' or None, got {max_residual!r}")
    elif max_residual is not None:
        try:
            ok = float(max_residual) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UsageError(f"max_residual must be a positive number of pixels, 'auto' or None, "
                             f"got {max_residual!r}")
        max_residual = float(max_residual)
    if int(work_size) < 64:
        raise UsageError(f"work_size must be at least 64, got {work_size}")
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.ndim not in (2, 3) or f.size == 0:
            raise UsageError(f"{_frame_name(i, names)}: expected an HxW or HxWxC array, "
                             f"got {getattr(f, 'shape', type(f).__name__)}")
        if f.shape != frames[0].shape:
            raise UsageError(f"{_frame_name(i, names)} has shape {f.shape}, {_frame_name(0, names)} has "
                             f"{frames[0].shape}; frames of a stack must share a shape")
        if f.dtype != frames[0].dtype:
            raise UsageError(f"{_frame_name(i, names)} is {f.dtype}, {_frame_name(0, names)} is "
                             f"{frames[0].dtype}; frames of a stack must share a dtype")
        if not (f.dtype in (np.uint8, np.uint16) or np.issubdtype(f.dtype, np.floating)):
            raise UsageError(f"{_frame_name(i, names)}: unsupported pixel type {f.dtype}")
    if min(frames[0].shape[:2]) < 32:
        raise UsageError(f"frames of {frames[0].shape[1]}x{frames[0].shape[0]} px are too small to align "
                         "(need at least 32x32)")
    if isinstance(reference, str):
        key = {"middle": n // 2, "first": 0, "last": n - 1}
        if reference not in key:
            raise UsageError(f"reference must be 'middle', 'first', 'last' or a frame index, got {reference!r}")
        ref = key[reference]
    else:
        try:
            ref = int(reference)
        except (TypeError, ValueError):
            raise UsageError(f"reference must be 'middle', 'first', 'last' or a frame index, "
                             f"got {reference!r}") from None
        if ref != reference:
            raise UsageError(f"reference must be an integer index, got {reference!r}")
        if not -n <= ref < n:
            raise UsageError(f"reference {reference} out of range for {n} frames")
        ref %= n

    h, w = frames[0].shape[:2]
    k = min(1.0, float(work_size) / max(h, w))
    work_wh = (max(int(round(w * k)), 1), max(int(round(h * k)), 1))
    interp = _INTERPOLATION[interpolation]
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    workers = max(1, int(workers))
    opts = {"min_matches": int(min_matches), "min_correlation": float(min_correlation),
            "scale_range": (float(scale_range[0]), float(scale_range[1])), "max_shear": float(max_shear),
            "max_residual": max(3.0, 3.0 / k) if max_residual == "auto" else max_residual,
            "max_points": 100_000}

    # partner of each frame; registration order is outward from the reference
    partners = [-1] * n
    for i in range(n):
        if i != ref:
            partners[i] = (i + 1 if i < ref else i - 1) if chain else ref
    order = [i for d in range(1, n) for i in (ref - d, ref + d) if 0 <= i < n]
    is_template = set(partners[i] for i in order)

    residuals = [0.0] * n
    correlations = [1.0] * n
    matches = [0] * n
    inits = ["reference" if i == ref else "" for i in range(n)]
    pair = [np.eye(3) for _ in range(n)]  # frame -> partner, full resolution
    done = 0

    def report() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, n)

    t_reg = time.perf_counter()
    report()  # the reference needs no registration
    with ThreadPoolExecutor(max_workers=workers) as pool:
        wfut = {i: pool.submit(_make_work, frames[i], work_wh, 1000, i in is_template)
                for i in (range(n) if n > 1 else ())}
        works = {i: f.result() for i, f in wfut.items()}

        def job(i: int):
            try:
                return _register_pair(works[partners[i]], works[i], (w, h), model, opts)
            except _PairFailure as exc:
                return exc

        futs = {i: pool.submit(job, i) for i in order}
        for i in order:
            r = futs[i].result()
            if isinstance(r, _PairFailure):
                for f in futs.values():
                    f.cancel()
                fi, fj = _frame_name(i, names), _frame_name(partners[i], names)
                why = str(r).replace("{frame}", fi).replace("{target}", fj)
                raise AlignmentError(f"{fi} could not be aligned to {fj}: {why}")
            pair[i] = r["transform"]
            residuals[i] = r["residual"]
            correlations[i] = r["correlation"]
            matches[i] = r["matches"]
            inits[i] = r["init"]
            report()
        del works

    # compose the pairwise maps into frame -> reference maps
    transforms: list = [None] * n
    transforms[ref] = np.eye(3)
    for i in order:
        t = transforms[partners[i]] @ pair[i]
        transforms[i] = t / t[2, 2]
        bad = _degeneracy(transforms[i], w, h, scale_range, 2 * max_shear)
        if bad:
            raise AlignmentError(f"{_frame_name(i, names)} could not be aligned to {_frame_name(ref, names)} "
                                 f"(the reference): the chained transform has {bad}")
    seconds_register = time.perf_counter() - t_reg

    # common valid rectangle (reference coordinates)
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    quads = [_apply(transforms[i], corners) for i in order]
    li, ri = _row_intervals(quads, w, h)
    box = _largest_rectangle(li, ri)
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) < min_overlap * w * h:
        cen = np.array([[(w - 1) / 2.0, (h - 1) / 2.0]])
        far = max(order, key=lambda i: float(np.hypot(*(_apply(transforms[i], cen) - cen)[0])))
        share = 0.0 if box is None else 100.0 * (box[2] - box[0]) * (box[3] - box[1]) / (w * h)
        d = (_apply(transforms[far], cen) - cen)[0]
        raise AlignmentError(f"the aligned frames have only {share:.0f}% of the reference frame in common "
                             f"(need {100 * min_overlap:.0f}%); {_frame_name(far, names)} is shifted by "
                             f"({d[0]:+.0f}, {d[1]:+.0f}) px")
    x0, y0, x1, y1 = box

    # warp at full resolution, native dtype
    t_warp = time.perf_counter()
    if crop:
        off = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        size = (x1 - x0, y1 - y0)
    else:
        off = np.eye(3)
        size = (w, h)

    def warp_one(i: int) -> np.ndarray:
        f = frames[i]
        if i == ref:
            return np.ascontiguousarray(f[y0:y1, x0:x1]) if crop else f.copy()
        return _warp(f, off @ transforms[i], size, interp, cv2.BORDER_REFLECT)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        out = list(pool.map(warp_one, range(n)))
    t_end = time.perf_counter()

    return AlignResult(
        images=out,
        transforms=transforms,
        residuals=residuals,
        correlations=correlations,
        valid_box=(int(x0), int(y0), int(x1), int(y1)),
        cropped=bool(crop),
        reference=ref,
        model=model,
        partners=partners,
        info={
            "seconds": t_end - t_start,
            "seconds_register": seconds_register,
            "seconds_warp": t_end - t_warp,
            "work_scale": work_wh[0] / w,
            "matches": matches,
            "init": inits,
        },
    )
