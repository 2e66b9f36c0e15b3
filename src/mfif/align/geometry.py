"""Geometry of stack registration: 3x3 transforms, model projection, plausibility, valid box.

All transforms are 3x3 float64 matrices acting on pixel coordinates ``(x, y, 1)`` with pixel
centres at integers (OpenCV's convention).
"""
from __future__ import annotations

import math

import numpy as np

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


def scale_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """Map pixel coordinates of an image to those of its copy resized by ``sx`` x ``sy``.

    With pixel centres at integers, resizing maps ``x`` to ``sx * (x + 0.5) - 0.5`` (OpenCV's
    convention). A transform ``t`` estimated between resized copies is
    ``inv(scale_matrix(s)) @ t @ scale_matrix(s)`` at full resolution.

    Parameters
    ----------
    sx : float
        Horizontal factor (size of the copy / size of the image).
    sy : float, optional
        Vertical factor; ``sx`` when omitted.
    """
    sy = sx if sy is None else sy
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def to3(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.shape == (3, 3):
        return m / m[2, 2]
    out = np.eye(3)
    out[:2] = m[:2]
    return out


def apply_transform(t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3x3 transform to ``N x 2`` points ``(x, y)``; returns ``N x 2`` points."""
    p = np.c_[pts, np.ones(len(pts))] @ t.T
    return p[:, :2] / p[:, 2:3]


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, shift) mapping ``src`` points onto ``dst``."""
    ms, md = src.mean(0), dst.mean(0)
    ps, pd = src - ms, dst - md
    den = float((ps ** 2).sum())
    a = float((ps[:, 0] * pd[:, 0] + ps[:, 1] * pd[:, 1]).sum()) / den
    b = float((ps[:, 0] * pd[:, 1] - ps[:, 1] * pd[:, 0]).sum()) / den
    t = md - np.array([[a, -b], [b, a]]) @ ms
    return np.array([[a, -b, t[0]], [b, a, t[1]], [0.0, 0.0, 1.0]])


def grid_points(w: int, h: int, n: int = 5) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(0, w - 1, n), np.linspace(0, h - 1, n))
    return np.c_[xs.ravel(), ys.ravel()]


def project_to_model(t: np.ndarray, model: str, w: int, h: int) -> np.ndarray:
    """Closest transform of ``model`` to ``t`` in the least-squares sense over the image."""
    if model == "similarity":
        pts = grid_points(w, h)
        return fit_similarity(pts, apply_transform(t, pts))
    if model == "translation":
        c = np.array([[(w - 1) / 2.0, (h - 1) / 2.0]])
        d = apply_transform(t, c) - c
        out = np.eye(3)
        out[:2, 2] = d[0]
        return out
    if model == "affine":
        out = t.copy() / t[2, 2]
        if abs(out[2, 0]) > 0 or abs(out[2, 1]) > 0:
            pts = grid_points(w, h)
            sol = np.linalg.lstsq(np.c_[pts, np.ones(len(pts))], apply_transform(t, pts), rcond=None)[0]
            out = np.eye(3)
            out[:2] = sol.T
        return out
    return t / t[2, 2]


def implausibility(t: np.ndarray, w: int, h: int, *, scale_range: tuple[float, float], max_shear: float,
                   max_rotation: float = 180.0) -> str | None:
    """Why ``t`` is not a plausible motion between two frames of a hand-held stack, or None.

    The local linear map (Jacobian) of ``t`` is checked at the corners and the centre of a
    ``w x h`` frame: it must not fold or mirror the frame, its scale ``sqrt(s1 * s2)``
    (singular values ``s1 >= s2``) must lie in ``scale_range``, its anisotropy ``s1 / s2 - 1``
    (shear, stretch) must not exceed ``max_shear``; the rotation of the closest similarity must
    not exceed ``max_rotation`` degrees. A camera held by hand turns by a few degrees and focus
    breathing changes magnification by a few percent: a transform far outside is a failed
    registration whatever its image similarity.
    """
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
    rot = abs(transform_parameters(tt)[1])
    if rot > max_rotation:
        return f"implausible rotation {rot:.1f} deg (limit {max_rotation:g})"
    return None



# --------------------------------------------------------------------------------------------
# valid rectangle


def row_intervals(quads: list[np.ndarray], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
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


def largest_rectangle(li: np.ndarray, ri: np.ndarray) -> tuple[int, int, int, int] | None:
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



def valid_box(transforms: list[np.ndarray], w: int, h: int) -> tuple[int, int, int, int] | None:
    """Largest axis-aligned rectangle of the reference frame covered by every warped frame.

    Parameters
    ----------
    transforms : list of ndarray
        Frame -> reference maps (3x3) of the frames that take part (the reference's identity
        may be included or not).
    w, h : int
        Frame size (all frames and the reference share it).

    Returns
    -------
    tuple of int or None
        ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive; None when the frames share no pixel.
    """
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    quads = [apply_transform(t, corners) for t in transforms]
    return largest_rectangle(*row_intervals(quads, w, h))
