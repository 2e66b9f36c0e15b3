"""The ``gff`` method: image fusion with guided filtering (Li, Kang & Hu 2013)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..consistency import guided_filter, normalize_weights
from ..decision import argmax_decision, one_hot, prefer_decision
from ..result import FusionResult
from ._common import check_count, clip01, luma

__all__ = ["gff_saliency", "fuse_gff"]


def gff_saliency(gray: np.ndarray, *, lap_sigma: float = 5.0, lap_radius: int = 5) -> np.ndarray:
    """GFF saliency: ``|Laplacian(I)|`` smoothed by a ``(2r+1)^2`` Gaussian (sigma ``lap_sigma``)."""
    lap = cv2.Laplacian(np.asarray(gray, np.float32), cv2.CV_32F, ksize=1,
                        borderType=cv2.BORDER_REPLICATE)
    np.abs(lap, out=lap)
    k = 2 * int(lap_radius) + 1
    return cv2.GaussianBlur(lap, (k, k), float(lap_sigma), borderType=cv2.BORDER_REPLICATE)


def fuse_gff(sources: Sequence[np.ndarray], *, r1: int = 45, eps1: float = 0.3, r2: int = 7,
             eps2: float = 1e-6, avg_size: int = 31, prefer: str = "none",
             prefer_margin: float = 0.05) -> FusionResult:
    """Guided Filtering Fusion (GFF).

    1. Two-scale decomposition: base ``B_n = mean_{avg_size x avg_size}(I_n)``, detail
       ``D_n = I_n - B_n``.
    2. Saliency ``S_n = Gaussian_{11x11, sigma 5}(|Laplacian(gray(I_n))|)``.
    3. Weight maps ``P_n = [S_n is the largest of S_1..S_N]`` (arg-max, ties to the lowest
       index).
    4. Refinement with the guided filter steered by the source itself (the colour image for
       colour sources): ``W_n^B = GF_{r1, eps1}(P_n, I_n)`` for the base layer and
       ``W_n^D = GF_{r2, eps2}(P_n, I_n)`` for the detail layer; each set is clipped to be
       non-negative and normalised to sum to one per pixel.
    5. ``F = sum_n W_n^B B_n + sum_n W_n^D D_n``, clipped to [0, 1].

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more float32 images in [0, 1] of one shape, ``HxW`` or ``HxWxC``.
    r1, eps1 : int, float, keyword-only
        Guided-filter radius and regularisation for the base-layer weights (paper: 45, 0.3).
    r2, eps2 : int, float, keyword-only
        Guided-filter radius and regularisation for the detail-layer weights (paper: 7,
        1e-6).
    avg_size : int, keyword-only
        Side of the average filter of the two-scale decomposition (paper: 31).
    prefer, prefer_margin : str, float, keyword-only
        Where the saliency evidence is weak, take the near or far frame in step 3
        (:func:`mfif.decision.prefer_decision`; ``"none"``: the paper's arg-max).

    Returns
    -------
    FusionResult
        ``fused``; ``scores`` the ``NxHxW`` saliency maps ``S_n``; ``decision`` the arg-max map
        of step 3 (GFF has no other hard decision); ``weights`` the base-layer weights
        ``W^B`` (``NxHxW``); ``maps["detail_weight_k"]`` the detail-layer weights ``W_k^D``.

    Notes
    -----
    The paper's MATLAB code normalises the refined weights without clipping negative values;
    here they are clipped first, which avoids overshoot where the guided filter rings and
    changes nothing elsewhere.

    References
    ----------
    .. [1] S. Li, X. Kang and J. Hu, "Image fusion with guided filtering", IEEE Transactions
       on Image Processing 22(7), 2013.
    .. [2] K. He, J. Sun and X. Tang, "Guided image filtering", IEEE TPAMI 35(6), 2013.
    """
    check_count("gff", sources)
    n = len(sources)
    scores = np.stack([gff_saliency(luma(s)) for s in sources])
    decision = prefer_decision(scores, argmax_decision(scores), prefer=prefer, margin=prefer_margin)
    masks = one_hot(decision, n)
    wb = np.empty_like(masks)
    wd = np.empty_like(masks)
    for k, s in enumerate(sources):
        wb[k] = guided_filter(s, masks[k], radius=r1, eps=eps1)
        wd[k] = guided_filter(s, masks[k], radius=r2, eps=eps2)
    del masks
    wb = normalize_weights(wb)
    wd = normalize_weights(wd)
    colour = sources[0].ndim == 3
    ksize = (int(avg_size), int(avg_size))
    fused = np.zeros(sources[0].shape, np.float32)
    for k, s in enumerate(sources):
        # W^B B + W^D (I - B) = W^D I + (W^B - W^D) B
        base = cv2.blur(s, ksize, borderType=cv2.BORDER_REPLICATE)
        wdk, diff = wd[k], wb[k] - wd[k]
        if colour:
            wdk, diff = wdk[..., None], diff[..., None]
        base *= diff
        fused += base
        fused += wdk * s
    maps = {f"detail_weight_{k}": wd[k] for k in range(n)}
    return FusionResult(fused=clip01(fused), method="gff", decision=decision, weights=wb,
                        scores=scores, maps=maps)
