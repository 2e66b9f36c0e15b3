"""Registration of one pair of frames: an initial guess, ECC refinement, and the evidence.

One *attempt* registers an input frame onto a template frame with one initialisation and one
motion model:

1. Initial guess: ORB feature matches (Rublee et al. 2011 [2]_) with a ratio test and a RANSAC
   (Fischler & Bolles 1981 [3]_) similarity fit, which works for large motions; or phase
   correlation (Kuglin & Hines 1975 [4]_) of the working copies, a translation that needs no
   features (strongly defocused frames carry few).
2. Refinement by ECC (Evangelidis & Psarakis 2008 [1]_), coarse to fine.
3. Evidence that the registration failed, each independent of focus: an implausible motion
   (scale far from 1, a large rotation, shear), feature matches that disagree with the refined
   transform, a low blur-matched correlation or a large blur-matched residual
   (:mod:`mfif.align.quality`).

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

from dataclasses import dataclass

import cv2
import numpy as np

from ..stats import median
from .ecc import PairFailure, ecc
from .geometry import apply_transform, implausibility, to3
from .pyramid import WorkCopy
from .quality import alignment_quality

#: RANSAC inlier threshold, feature-level pixels.
RANSAC_PX = 2.0
#: Smallest phase-correlation peak accepted as an initial guess.
MIN_PHASE_RESPONSE = 0.03


@dataclass(frozen=True)
class Limits:
    """What a registration must satisfy (see :func:`mfif.align.estimate_transforms`)."""

    min_matches: int = 20
    min_correlation: float = 0.5
    scale_range: tuple = (0.7, 1.4)
    max_shear: float = 0.1
    max_rotation: float = 20.0
    max_residual: float | None = None
    max_points: int = 100_000


def match_features(tmpl: WorkCopy, inp: WorkCopy) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """RANSAC similarity from ORB matches between two working copies.

    Returns
    -------
    warp : ndarray or None
        Template -> input map (3x3, full resolution); None without a fit.
    src, dst : ndarray
        The inlier matches (N x 2, full resolution) in the template and in the input.
    """
    empty = np.zeros((0, 2))
    pt, dt = tmpl.kp
    pi, di = inp.kp
    if dt is None or di is None or len(pt) < 3 or len(pi) < 3:
        return None, empty, empty
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(dt, di, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < 3:
        return None, empty, empty
    src = pt[[m.queryIdx for m in good]]
    dst = pi[[m.trainIdx for m in good]]
    a, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX,
                                         maxIters=2000, confidence=0.995, refineIters=10)
    if a is None or inl is None:
        return None, empty, empty
    s = tmpl.scales[tmpl.feat_level]
    si = np.linalg.inv(s)
    keep = inl.ravel().astype(bool)
    return (si @ to3(a) @ s, apply_transform(si, src[keep].astype(np.float64)),
            apply_transform(si, dst[keep].astype(np.float64)))


def phase_init(tmpl: WorkCopy, inp: WorkCopy) -> tuple[np.ndarray, float]:
    """Translation (template -> input, full resolution) by phase correlation, and its peak height.

    Measured on the coarsest pyramid level: there a strong defocus spans few pixels, so the
    frequencies both frames still share dominate the correlation; ECC refines the result.
    """
    lvl = len(tmpl.levels) - 1
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


def warp_work(tmpl: WorkCopy, inp: WorkCopy, warp: np.ndarray, *, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The input's pyramid ``level`` warped onto the template's (template -> input ``warp``),
    and the mask of pixels it covers."""
    s = tmpl.scales[level]
    a = tmpl.levels[level]
    h, w = a.shape
    w_lvl = s @ warp @ np.linalg.inv(s)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if abs(w_lvl[2, 0]) + abs(w_lvl[2, 1]) > 0:
        bw = cv2.warpPerspective(inp.levels[level], w_lvl, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=np.nan)
    else:
        bw = cv2.warpAffine(inp.levels[level], w_lvl[:2], (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=np.nan)
    valid = np.isfinite(bw)
    return np.nan_to_num(bw, nan=0.0), valid


def register_pair(tmpl: WorkCopy, inp: WorkCopy, *, model: str, init: str, limits: Limits) -> dict:
    """One registration attempt of ``inp`` onto ``tmpl``.

    Parameters
    ----------
    tmpl, inp : WorkCopy
        Working copies of the template and the input frame.
    model : str, keyword-only
        Motion model of the ECC refinement.
    init : {"features", "phase"}, keyword-only
        Initial guess.
    limits : Limits, keyword-only
        Thresholds of the evidence.

    Returns
    -------
    dict
        ``transform`` (frame -> template, 3x3, full resolution), ``init``, ``model``,
        ``matches`` (RANSAC inliers), ``correlation`` (ECC), ``ncc`` (blur-matched),
        ``residual_px``, ``scatter_px``, ``reprojection_px`` (median distance of the inlier
        feature matches under the refined transform; nan without features).

    Raises
    ------
    PairFailure
        With the evidence of the failure as its message.
    """
    w, h = tmpl.full_size
    if tmpl.detail < 1e-3:
        raise PairFailure("{target} has no usable detail (flat image)")
    if inp.detail < 1e-3:
        raise PairFailure("{frame} has no usable detail (flat image)", final=True)
    feat, src, dst = match_features(tmpl, inp)
    nm = len(src)
    out = {"init": init, "model": model, "matches": nm}
    if init == "features":
        if feat is None or nm < limits.min_matches:
            raise PairFailure(f"only {nm} feature matches (need {limits.min_matches})")
        w0 = feat
    else:
        w0, resp = phase_init(tmpl, inp)
        if resp < MIN_PHASE_RESPONSE:
            raise PairFailure(f"no phase-correlation peak (response {resp:.3f}, need {MIN_PHASE_RESPONSE:g})")
    loose = dict(scale_range=limits.scale_range, max_shear=2 * limits.max_shear + 0.05,
                 max_rotation=limits.max_rotation * 1.5)
    bad = implausibility(w0, w, h, **loose)
    if bad:
        raise PairFailure(f"{'feature matching' if init == 'features' else 'phase correlation'} found {bad}")
    wf, rho = ecc(tmpl, inp, w0, model=model, max_points=limits.max_points)
    out["correlation"] = rho
    bad = implausibility(wf, w, h, scale_range=limits.scale_range, max_shear=limits.max_shear,
                         max_rotation=limits.max_rotation)
    if bad:
        raise PairFailure(bad)
    # independent evidence 1: the feature matches (if there are enough) must agree with ECC
    rep = float("nan")
    if nm >= limits.min_matches and not implausibility(feat, w, h, **loose):
        rep = median(np.hypot(*(apply_transform(wf, src) - dst).T))
        tol = max(RANSAC_PX * inp.px * tmpl.levels[0].shape[1] / tmpl.levels[tmpl.feat_level].shape[1], 1.0)
        if rep > tol:
            raise PairFailure(f"{nm} feature matches disagree with the ECC transform (median "
                              f"{rep:.1f} px, limit {tol:.1f} px)")
    out["reprojection_px"] = rep
    # independent evidence 2: blur-matched comparison of the aligned pair, on the feature level
    # (at most FEATURE_SIDE px: enough tiles and detail, a quarter of the finest level's work)
    lvl = tmpl.feat_level
    moved, valid = warp_work(tmpl, inp, wf, level=lvl)
    q = alignment_quality(tmpl.levels[lvl], moved, valid=valid, px=tmpl.px * tmpl.levels[0].shape[1] / moved.shape[1])
    if valid.mean() < 0.25:
        raise PairFailure(f"the frames overlap by only {100 * valid.mean():.0f}%")
    out.update(ncc=q.ncc, residual_px=q.residual_px, scatter_px=q.scatter_px, tiles=q.used)
    if not np.isfinite(q.ncc) or q.ncc < limits.min_correlation:
        raise PairFailure(f"the aligned frames do not match (blur-matched correlation "
                          f"{q.ncc:.2f}, need {limits.min_correlation:g})")
    mr = limits.max_residual
    if mr is not None and np.isfinite(q.residual_px) and q.residual_px > mr:
        raise PairFailure(f"residual {q.residual_px:.2f} px exceeds max_residual {mr:g} px")
    out["transform"] = np.linalg.inv(wf)  # frame -> template
    return out
