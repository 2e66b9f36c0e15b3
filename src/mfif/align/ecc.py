"""Enhanced correlation coefficient (ECC) maximisation, coarse to fine, for 2-D motion models.

ECC (Evangelidis & Psarakis 2008 [1]_) compares zero-mean, contrast-normalised intensities,
which makes it insensitive to the brightness and contrast changes that defocus and exposure
flicker cause. It is implemented here in its inverse-compositional Gauss-Newton form with the
model's own parameters (the similarity model has 4: scale, rotation and shift; OpenCV's
``findTransformECC`` has no such model and is several times slower per iteration). A symmetric
defocus blur does not move edges, so it lowers the correlation but does not bias the estimate.
The input is sampled with bicubic interpolation, which avoids the bias toward whole pixels that
bilinear sampling gives. Where a frame saturates, the pair is first clipped at one common scene
level (:func:`match_clipping`), since exposure flicker moves the outline of clipped areas.

References
----------
.. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
   correlation coefficient maximization", IEEE Trans. Pattern Analysis and Machine
   Intelligence 30(10):1858-1865, 2008.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..io import to_gray
from .geometry import project_to_model
from .pyramid import SATURATED, WorkCopy, as_unit, full_scale, gradients, prefiltered, pyramid_levels


class PairFailure(Exception):
    """A pair could not be registered; the message is the evidence.

    ``{frame}`` and ``{target}`` in the message stand for the two frames' names. ``final``:
    the failure is a property of the input frame itself (flat), so no fallback can help.
    """

    def __init__(self, message: str, *, final: bool = False):
        super().__init__(message)
        self.final = final



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
            raise PairFailure("the frames barely overlap")
        t = tv[keep].astype(np.float64)
        tb = t - t.mean()
        p = pts[keep].astype(np.float64)
        g = _steepest_descent(gxv[keep].astype(np.float64) * s, gyv[keep].astype(np.float64) * s,
                              (p[:, 0] - cx) / s, (p[:, 1] - cy) / s, model)
        g -= g.mean(axis=1, keepdims=True)
        hess = g @ g.T
        tt = _dot(tb, tb)
        if tt <= 1e-12 * n or not np.all(np.isfinite(hess)) or np.linalg.cond(hess) > 1e12:
            raise PairFailure("{target} has no usable detail (flat image?)")
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
            raise PairFailure("{frame} has no usable detail (flat image?)")
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
            raise PairFailure("ECC diverged") from None
        warp /= warp[2, 2]
        c2 = d @ corners
        step = float(np.abs(c2[:2] / c2[2] - corners[:2]).max())
        if not math.isfinite(step) or step > 2 * max(w, h):
            raise PairFailure("ECC diverged")
        if step < tol:
            break
    return warp, rho, step


_ECC_ITERATIONS = (50, 30)   # per coarse level, at the finest level
_ECC_TOLERANCE = (0.01, 0.005)  # convergence: last update below this many level pixels
_ECC_UNCONVERGED = 0.1       # a last update above this (finest level, px) is a failure


def _gradients(smooth: list[np.ndarray]):
    """Per-level gradients of a pyramid, computed when first asked for (as ``WorkCopy.grads``)."""
    cache = {}

    def grads(level: int):
        if level not in cache:
            cache[level] = gradients(smooth[level])
        return cache[level]
    return grads


_SPILL = 0.02  # light of clipped areas a defocused frame spreads, share of the frame's longer side
_FIT_MIN_SAMPLES = 50  # unclipped samples a quadrant needs for its own gain
_FIT_LEVEL_SIDE = 256  # the photometric fit of clip matching runs on the finest level at most this long


def match_clipping(tmpl: WorkCopy, inp: WorkCopy, w_full: np.ndarray) -> tuple[list, list] | None:
    """Prefiltered pyramids of the pair clipped at one common scene level, or None (nothing clipped).

    When one frame of a pair is brighter (exposure flicker) and saturates, the outline of its
    clipped areas lies where the other frame is still below its own saturation: defocused edges
    end at different places, and ECC, which matches intensities up to gain and offset, is pulled
    toward the difference (tenths of a pixel, measured in docs/align.md). Leaving the clipped
    pixels out instead throws away the bright edges, which are often the sharpest detail left in
    a defocused frame. So both frames are clipped alike: the exposure gain between them is
    measured where neither is clipped nor lit by a clipped area's defocus spill (ratio of mean
    intensities at the initial map ``w_full``, on a coarse level), and each frame is clipped,
    channel by channel, at the level where the other one saturates. Nothing is changed (None) when
    the gain is within the saturation tolerance of 1, or when the frame's four quadrants disagree
    on it by more than that tolerance (a gain biased by spill would move the outlines itself).
    """
    if tmpl.clipped is None and inp.clipped is None:
        return None
    lvl = next((k for k, a in enumerate(tmpl.levels) if max(a.shape) <= _FIT_LEVEL_SIDE), len(tmpl.levels) - 1)
    t = tmpl.levels[lvl]
    h, w = t.shape
    s = tmpl.scales[lvl]
    m = s @ w_full @ np.linalg.inv(s)
    ys, xs = np.mgrid[2:h - 2:2, 2:w - 2:2]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    q = cv2.perspectiveTransform(pts[None], m)[0]
    i_lvl = inp.levels[lvl]
    ih, iw = i_lvl.shape
    ok = (q[:, 0] >= 1) & (q[:, 0] <= iw - 2) & (q[:, 1] >= 1) & (q[:, 1] <= ih - 2)
    px, py = xs.ravel()[ok], ys.ravel()[ok]  # the template samples that land inside the input
    qi = np.rint(q[ok]).astype(np.intp)
    tv = t[py, px].astype(np.float64)
    iv = cv2.remap(i_lvl, q[ok][None], None, cv2.INTER_LINEAR)[0].astype(np.float64)
    # Leave out the clipped areas and the light a defocused frame spills around them (up to
    # _SPILL of the frame's size): that spill differs between the frames and would bias the gain.
    spill = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(3, round(_SPILL * max(h, w))) + 1,) * 2)
    clear = np.ones(len(tv), bool)
    if tmpl.clipped is not None:
        clear &= ~cv2.dilate(tmpl.clipped[lvl].view(np.uint8), spill).view(bool)[py, px]
    if inp.clipped is not None:
        clear &= ~cv2.dilate(inp.clipped[lvl].view(np.uint8), spill).view(bool)[qi[:, 1], qi[:, 0]]
    if clear.sum() < 4 * _FIT_MIN_SAMPLES or np.ptp(tv[clear]) < 1e-3:
        return None
    # Gain as a ratio of means (a fitted slope would be attenuated by what misregistration
    # remains), trusted only when the four quadrants of the frame agree on it to within the
    # saturation tolerance (1 - SATURATED): near large clipped areas defocus spill biases it.
    tol = 1.0 - SATURATED
    gain = float(iv[clear].sum() / max(tv[clear].sum(), 1e-12))
    if not 0.2 < gain < 5.0 or abs(math.log(gain)) < tol:
        return None  # no exposure change beyond what counts as saturated anyway: nothing to match
    quads = [clear & (px < w / 2 if qx else px >= w / 2) & (py < h / 2 if qy else py >= h / 2)
             for qx in (0, 1) for qy in (0, 1)]
    quads = [float(iv[q].sum() / max(tv[q].sum(), 1e-12)) for q in quads if q.sum() >= _FIT_MIN_SAMPLES]
    if len(quads) < 3 or max(abs(math.log(max(q, 1e-6) / gain)) for q in quads) > tol:
        return None
    # the template clipped where the input saturates (full scale, 1), the input where the template does
    t0 = _clipped_gray(tmpl, 1.0 / gain) if inp.clipped is not None else None
    i0 = _clipped_gray(inp, gain) if tmpl.clipped is not None else None
    if t0 is None and i0 is None:
        return None
    return (tmpl.smooth if t0 is None else prefiltered(pyramid_levels(t0)),
            inp.smooth if i0 is None else prefiltered(pyramid_levels(i0)))


def _clipped_gray(work: WorkCopy, level: float) -> np.ndarray | None:
    """The working copy's finest level with every channel clipped at ``level`` (of full scale 1);
    None where that changes nothing (no pixel above it)."""
    if level >= 1.0:
        return None
    g = work.levels[0]
    c = work.colour
    if c is None:
        return np.minimum(g, np.float32(level)) if float(g.max()) > level else None
    cut = c.dtype.type(level * full_scale(c)) if c.dtype.kind in "ui" else np.float32(level)
    top = np.maximum(np.maximum(c[..., 0], c[..., 1]), c[..., 2])
    ys, xs = np.nonzero(top > cut)
    if len(ys) == 0:
        return None
    out = g.copy()  # only pixels with a channel above the cut change: recompute their gray there
    out[ys, xs] = to_gray(np.minimum(as_unit(c[ys, xs][None]), np.float32(level)))[0]
    return out


def ecc(tmpl: WorkCopy, inp: WorkCopy, w_full: np.ndarray, *, model: str,
        max_points: int = 100_000) -> tuple[np.ndarray, float]:
    """Refine a transform by ECC maximisation, from the coarsest pyramid level to the finest.

    Parameters
    ----------
    tmpl, inp : WorkCopy
        Working copies of the template (the frame registered to) and of the input frame.
    w_full : ndarray
        Initial 3x3 map from template to input coordinates, full resolution.
    model : str, keyword-only
        ``translation``, ``similarity``, ``affine`` or ``homography``.
    max_points : int, keyword-only
        Template pixels sampled per level (on a regular lattice).

    Returns
    -------
    warp : ndarray
        Refined template -> input map, full resolution.
    rho : float
        Correlation coefficient at the finest level.

    Raises
    ------
    PairFailure
        Flat images, no overlap, divergence, or no convergence at the finest level.

    References
    ----------
    .. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
       correlation coefficient maximization", IEEE TPAMI 30(10):1858-1865, 2008.
    """
    nlev = len(tmpl.levels)
    rho = float("nan")
    t_smooth, i_smooth, t_grads = tmpl.smooth, inp.smooth, tmpl.grads
    matched = match_clipping(tmpl, inp, w_full)
    if matched is not None:
        t_smooth, i_smooth = matched
        if t_smooth is not tmpl.smooth:
            t_grads = _gradients(t_smooth)
    for lvl in range(nlev - 1, -1, -1):
        s = tmpl.scales[lvl]
        a = t_smooth[lvl]
        h, w = a.shape
        w_lvl = project_to_model(s @ w_full @ np.linalg.inv(s), model, w, h)
        fine = lvl == 0
        w_lvl, rho, step = _ecc_level(a, t_grads(lvl), i_smooth[lvl], w_lvl, model,
                                      max_iter=_ECC_ITERATIONS[fine], tol=_ECC_TOLERANCE[fine],
                                      max_points=max_points)
        w_full = np.linalg.inv(s) @ w_lvl @ s
        if fine and step > _ECC_UNCONVERGED:
            raise PairFailure(f"ECC did not converge (last update {step:.2f} working px after "
                               f"{_ECC_ITERATIONS[1]} iterations)")
    return w_full, rho

