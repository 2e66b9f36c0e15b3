"""Enhanced correlation coefficient (ECC) maximisation, coarse to fine, for 2-D motion models.

ECC (Evangelidis & Psarakis 2008 [1]_) compares zero-mean, contrast-normalised intensities,
which makes it insensitive to the brightness and contrast changes that defocus and exposure
flicker cause. It is implemented here in its inverse-compositional Gauss-Newton form with the
model's own parameters (the similarity model has 4: scale, rotation and shift; OpenCV's
``findTransformECC`` has no such model and is several times slower per iteration). A symmetric
defocus blur does not move edges, so it lowers the correlation but does not bias the estimate.
The input is sampled with bicubic interpolation, which avoids the bias toward whole pixels that
bilinear sampling gives.

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

from .geometry import project_to_model
from .pyramid import WorkCopy


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
    for lvl in range(nlev - 1, -1, -1):
        s = tmpl.scales[lvl]
        a = tmpl.smooth[lvl]
        h, w = a.shape
        w_lvl = project_to_model(s @ w_full @ np.linalg.inv(s), model, w, h)
        fine = lvl == 0
        w_lvl, rho, step = _ecc_level(a, tmpl.grads(lvl), inp.smooth[lvl], w_lvl, model,
                                      max_iter=_ECC_ITERATIONS[fine], tol=_ECC_TOLERANCE[fine],
                                      max_points=max_points)
        w_full = np.linalg.inv(s) @ w_lvl @ s
        if fine and step > _ECC_UNCONVERGED:
            raise PairFailure(f"ECC did not converge (last update {step:.2f} working px after "
                               f"{_ECC_ITERATIONS[1]} iterations)")
    return w_full, rho

