"""How well two aligned frames agree, measured so that a difference in focus cannot fool it.

Frames of a focus stack differ in focus, so a plain image difference or correlation of an
aligned pair is low where one frame is sharp and the other blurred, even when the registration
is perfect. :func:`alignment_quality` therefore compares *blur-matched* tiles: in every tile
the sharper of the two is blurred until its power spectrum matches the other's, then the
remaining local shift is measured (Lucas & Kanade [2]_ on the matched tiles, in the Fourier
domain) and the tiles' correlation is taken. A Gaussian blur of the sharper tile is a good
stand-in for the unknown defocus kernel (Subbarao & Surya [3]_ estimate depth from the same
Gaussian model): what is left after matching is the geometry, not the focus.

The local shifts are then fitted with an affine displacement field (robust weighted least
squares): a global misregistration (a wrong shift, rotation or scale) moves the tiles
coherently and shows up in the field, while single tiles with too little texture, parallax
or noise do not. The residual is the largest displacement of the field over the area the tiles
cover, in full-resolution pixels.

References
----------
.. [1] C. D. Kuglin and D. C. Hines, "The phase correlation image alignment method", Proc.
   IEEE Conference on Cybernetics and Society, 1975.
.. [2] B. D. Lucas and T. Kanade, "An iterative image registration technique with an
   application to stereo vision", Proc. 7th International Joint Conference on Artificial
   Intelligence (IJCAI), 674-679, 1981.
.. [3] M. Subbarao and G. Surya, "Depth from defocus: a spatial domain approach",
   International Journal of Computer Vision 13(3):271-294, 1994.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..stats import median

#: Smallest standard deviation (gray levels in [0, 1]) of a tile that carries detail.
MIN_TILE_STD = 2e-3
#: Tiles whose blur-matched correlation is below this take no part in the displacement field.
MIN_TILE_NCC = 0.3


@dataclass
class Quality:
    """Agreement of an aligned pair (see :func:`alignment_quality`).

    Attributes
    ----------
    residual_px : float
        Largest displacement of the fitted field over the tiles' area, full-resolution pixels;
        nan when fewer than 3 tiles qualify.
    scatter_px : float
        Robust RMS of the tiles' shifts about the field (local misfit: parallax, noise), px.
    ncc : float
        Median blur-matched correlation of the tiles with detail in both frames (1: the same
        picture up to blur; about 0: unrelated content); nan without such tiles.
    tiles : int
        Tiles with detail in both frames.
    used : int
        Tiles that entered the field fit.
    """

    residual_px: float
    scatter_px: float
    ncc: float
    tiles: int
    used: int


def _tiles(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None, ts: int):
    h, w = a.shape
    ys = np.arange(0, h - ts + 1, ts)
    xs = np.arange(0, w - ts + 1, ts)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    yy, xx = yy.ravel(), xx.ravel()
    ta = np.stack([a[y:y + ts, x:x + ts] for y, x in zip(yy, xx)])
    tb = np.stack([b[y:y + ts, x:x + ts] for y, x in zip(yy, xx)])
    ok = (ta.std(axis=(1, 2)) > MIN_TILE_STD) & (tb.std(axis=(1, 2)) > MIN_TILE_STD)
    if valid is not None:
        ok &= np.stack([valid[y:y + ts, x:x + ts].all() for y, x in zip(yy, xx)])
    centres = np.stack([xx + (ts - 1) / 2.0, yy + (ts - 1) / 2.0], axis=1)
    return ta[ok], tb[ok], centres[ok]


def blur_matched_shifts(ta: np.ndarray, tb: np.ndarray, *, iterations: int = 4,
                        band: tuple[float, float] = (0.02, 0.25)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local shift, correlation and texture of each tile pair after blur matching.

    Parameters
    ----------
    ta, tb : ndarray
        ``K x t x t`` stacks of tiles (float), ``tb`` from the aligned frame.
    iterations : int, keyword-only
        Gauss-Newton (Lucas-Kanade) iterations of the translation estimate.
    band : (float, float), keyword-only
        Frequencies (cycles per pixel) whose log-power difference sets the matching blur.

    Returns
    -------
    shifts : ndarray
        ``K x 2`` shifts ``(dx, dy)`` (tile pixels) of ``tb``'s content relative to ``ta``'s.
    ncc : ndarray
        ``K`` correlations of the blur-matched tiles once the shift is removed.
    texture : ndarray
        ``K`` smallest eigenvalue of the matched tile's gradient structure tensor over its
        energy (about 0 for a single straight edge, whose shift along the edge is unknown).

    Notes
    -----
    For a Gaussian blur of standard deviation ``s`` the power spectrum falls by
    ``exp(-4 pi^2 s^2 |f|^2)``, so the log-power difference of the two tiles over the band is
    fitted by ``4 pi^2 |f|^2 q`` with ``q = s_b^2 - s_a^2`` (least squares, closed form), and
    the sharper tile is blurred by ``sqrt(|q|)``. The translation is then the Lucas-Kanade
    least-squares solution, with the sums over pixels taken as sums over frequencies
    (Parseval), and the shift applied as a phase ramp.
    """
    import scipy.fft as sfft  # slow to import: only when a stack is aligned

    k, t, _ = ta.shape
    win = np.outer(np.hanning(t), np.hanning(t)).astype(np.float32)
    a = (ta - ta.mean(axis=(1, 2), keepdims=True)) * win
    b = (tb - tb.mean(axis=(1, 2), keepdims=True)) * win
    fa, fb = sfft.rfft2(a.astype(np.float32)), sfft.rfft2(b.astype(np.float32))
    fy = np.fft.fftfreq(t)[:, None].astype(np.float32)
    fx = np.fft.rfftfreq(t)[None, :].astype(np.float32)
    u = (4.0 * math.pi ** 2 * (fx ** 2 + fy ** 2)).astype(np.float32)
    col = np.full(fx.shape, 2.0, np.float32)  # rfft holds each frequency but the first and Nyquist column once
    col[:, 0] = 1.0
    col[:, -1] = 1.0
    f = np.sqrt(fx ** 2 + fy ** 2)
    inband = (((f >= band[0]) & (f <= band[1])) * col * u).astype(np.float32)
    pa = fa.real ** 2 + fa.imag ** 2
    pb = fb.real ** 2 + fb.imag ** 2
    floor = 1e-12 + 1e-6 * np.maximum(pa.max(axis=(1, 2)), pb.max(axis=(1, 2)))[:, None, None]
    diff = np.log(pb + floor) - np.log(pa + floor)  # = -u q for tb = ta blurred by sqrt(q)
    q = -np.einsum("kij,ij->k", diff, inband) / float((inband * u).sum())
    q = np.clip(q, -100.0, 100.0).astype(np.float32)[:, None, None]
    fa = fa * np.exp(-0.5 * u * np.maximum(q, 0.0))   # b blurrier: blur a
    fb = fb * np.exp(-0.5 * u * np.maximum(-q, 0.0))  # a blurrier: blur b
    pa = fa.real ** 2 + fa.imag ** 2
    wx = (2 * math.pi * fx) ** 2 * col
    wy = (2 * math.pi * fy) ** 2 * col
    sxx = np.einsum("kij,ij->k", pa, wx)
    syy = np.einsum("kij,ij->k", pa, wy)
    sxy = np.einsum("kij,ij->k", pa, (4 * math.pi ** 2) * fx * fy * col)
    det = sxx * syy - sxy ** 2
    ok = det > 1e-9 * np.maximum(sxx * syy, 1e-30)
    det = np.where(ok, det, 1.0)
    # gradients are i 2 pi f A: Re(conj(G) E) = 2 pi f Im(conj(A) E)
    cx = (2 * math.pi * fx * col).astype(np.float32)
    cy = (2 * math.pi * fy * col).astype(np.float32)
    d = np.zeros((k, 2))
    lim = t / 4.0
    fac = np.conj(fa)

    def shifted(d: np.ndarray) -> np.ndarray:
        # content of b moved back by d: a separable phase ramp per tile
        rx = np.exp(2j * math.pi * fx[0][None, :] * d[:, 0, None]).astype(np.complex64)
        ry = np.exp(2j * math.pi * fy[:, 0][None, :] * d[:, 1, None]).astype(np.complex64)
        return fb * ry[:, :, None] * rx[:, None, :]

    for _ in range(iterations):
        m = (fac * shifted(d)).imag  # Im(conj(A) B'), and Im(conj(A) A) = 0
        ex = np.einsum("kij,ij->k", m, cx)
        ey = np.einsum("kij,ij->k", m, cy)
        # a(x - delta) ~ a - delta . grad a: solve for delta, the shift still left
        d[:, 0] += np.where(ok, -(syy * ex - sxy * ey) / det, 0.0)
        d[:, 1] += np.where(ok, -(sxx * ey - sxy * ex) / det, 0.0)
        np.clip(d, -lim, lim, out=d)
    fbs = shifted(d)
    num = np.einsum("kij,ij->k", (fac * fbs).real, col)
    ea = np.einsum("kij,ij->k", pa, col)
    eb = np.einsum("kij,ij->k", fbs.real ** 2 + fbs.imag ** 2, col)
    ncc = num / np.sqrt(np.maximum(ea * eb, 1e-30))
    tr = sxx + syy
    lam_min = 0.5 * (tr - np.sqrt(np.maximum(tr ** 2 - 4.0 * np.where(ok, det, 0.0), 0.0)))
    texture = lam_min / np.maximum(ea, 1e-30)
    return d, ncc, texture


def _fit_field(centres: np.ndarray, shifts: np.ndarray, weights: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Robust weighted affine fit ``shift = [1, x, y] @ coef`` (3 x 2); also the final weights."""
    x = np.c_[np.ones(len(centres)), centres / scale]
    if len(centres) < 6:  # too few tiles for an affine field: a constant shift
        x = x[:, :1]
    w = weights.copy()
    coef = np.zeros((x.shape[1], 2))
    for _ in range(4):  # iteratively reweighted least squares, Cauchy weights
        sw = np.sqrt(w)[:, None]
        coef = np.linalg.lstsq(x * sw, shifts * sw, rcond=None)[0]
        r = np.hypot(*(shifts - x @ coef).T)
        c = max(2.385 * median(r), 0.05)
        w = weights / (1.0 + (r / c) ** 2)
    if coef.shape[0] == 1:
        coef = np.r_[coef, np.zeros((2, 2))]
    return coef, w


def alignment_quality(ref: np.ndarray, moved: np.ndarray, *, valid: np.ndarray | None = None,
                      px: float = 1.0, tile: int | None = None) -> Quality:
    """Misregistration left between a frame and the frame it was aligned to, blind to focus.

    Parameters
    ----------
    ref : ndarray
        ``H x W`` gray image (float) the other was aligned to.
    moved : ndarray
        ``H x W`` gray image warped onto ``ref``.
    valid : ndarray of bool, keyword-only
        Pixels of ``moved`` that the warp covers (default: all).
    px : float, keyword-only
        Full-resolution pixels per pixel of these images (the results are in full-resolution px).
    tile : int, keyword-only
        Tile side (default 64, 32 for images under 512 px).

    Returns
    -------
    Quality
        Residual (largest displacement of the fitted field), scatter, blur-matched correlation.

    References
    ----------
    .. [1] B. D. Lucas and T. Kanade, "An iterative image registration technique with an
       application to stereo vision", IJCAI 1981.
    .. [2] M. Subbarao and G. Surya, "Depth from defocus: a spatial domain approach", IJCV
       13(3):271-294, 1994.
    """
    a = np.asarray(ref, np.float32)
    b = np.asarray(moved, np.float32)
    h, w = a.shape
    ts = tile or (64 if min(h, w) >= 512 else 32)
    nan = float("nan")
    if ts > min(h, w):
        return Quality(nan, nan, nan, 0, 0)
    ta, tb, centres = _tiles(a, b, valid, ts)
    if len(ta) == 0:
        return Quality(nan, nan, nan, 0, 0)
    d, ncc, texture = blur_matched_shifts(ta, tb)
    med_ncc = median(ncc)
    good = (ncc >= MIN_TILE_NCC) & (texture > 1e-4) & (np.abs(d).max(axis=1) < ts / 4.0 - 1e-6)
    if good.sum() < 3:
        return Quality(nan, nan, med_ncc, len(ta), int(good.sum()))
    c = centres[good]
    wt = texture[good] * ncc[good] ** 2
    coef, wf = _fit_field(c - [(w - 1) / 2.0, (h - 1) / 2.0], d[good], wt / wt.max(), max(w, h) / 2.0)
    lo, hi = c.min(axis=0), c.max(axis=0)
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]) - [(w - 1) / 2.0, (h - 1) / 2.0]
    field = np.c_[np.ones(4), box / (max(w, h) / 2.0)] @ coef
    resid = float(np.hypot(*field.T).max()) * px
    dev = d[good] - np.c_[np.ones(len(c)), (c - [(w - 1) / 2.0, (h - 1) / 2.0]) / (max(w, h) / 2.0)] @ coef
    scatter = float(math.sqrt((wf * (dev ** 2).sum(axis=1)).sum() / max(wf.sum(), 1e-300))) * px
    return Quality(resid, scatter, med_ncc, len(ta), int(good.sum()))
