"""The ``focus-map`` method: classic focus measure + decision map + consistency + blend."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..blend import soft_blend
from ..decision import argmax_decision
from ..errors import UsageError
from ..focus import FOCUS_MEASURES
from ..result import FusionResult
from ._common import check_count, decide_and_blend, luma

__all__ = ["fuse_focus_map", "frame_scores"]


def frame_scores(gray: np.ndarray, *, measure: str = "sml", window: int = 7) -> np.ndarray:
    """One frame's log focus measure, ``log(m + 1e-6)`` (``HxW`` float32): what ``blend="soft"``
    and the streaming API weigh frames by (a softmax of logs is a normalised power of the measure)."""
    if measure not in FOCUS_MEASURES:
        raise UsageError(f"method focus-map: option measure={measure!r} must be one of "
                         + ", ".join(FOCUS_MEASURES))
    m = FOCUS_MEASURES[measure](gray, window=int(window)).astype(np.float32, copy=False)
    return np.log(np.maximum(m, 0.0) + np.float32(1e-6))


def fuse_focus_map(sources: Sequence[np.ndarray], *, measure: str = "sml", window: int = 7,
                   min_region: float = 0.01, gf_radius: int = 8,
                   gf_eps: float = 0.01, blend: str = "decision", temperature: float = 0.25, prefer: str = "none",
                   prefer_margin: float = 0.05) -> FusionResult:
    """Spatial-domain fusion with a hand-crafted focus measure, in the four pipeline stages.

    1. Focus detection: ``measure`` (from :data:`mfif.focus.FOCUS_MEASURES`) over a
       ``window`` x ``window`` box on each source's luminance -> ``NxHxW`` scores.
    2. Initial segmentation: arg-max over sources -> decision map (ties to the lowest index).
    3. Consistency verification: connected regions smaller than ``min_region`` of the image
       area are given to their surroundings
       (:func:`mfif.consistency.remove_small_regions`); the one-hot maps are then refined with
       a guided filter of radius ``gf_radius`` and regularisation ``gf_eps``
       (:func:`mfif.consistency.refine_weights`), steered by the luminance of the
       hard-decision fused image (sharp everywhere, so edges of both sources guide the
       boundary).
    4. Fusion: pixel-wise weighted average with the refined weights.

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more float32 images in [0, 1] of one shape, ``HxW`` or ``HxWxC``.
    measure : str, keyword-only
        ``"sml"`` (sum-modified-Laplacian), ``"tenengrad"`` or ``"variance"``.
    window : int, keyword-only
        Side of the focus measure's summation window, px.
    min_region : float, keyword-only
        Regions smaller than this fraction of the image area are removed; 0 disables it.
    gf_radius : int, keyword-only
        Guided-filter radius; 0 keeps hard (one-hot) weights.
    gf_eps : float, keyword-only
        Guided-filter regularisation (on the [0, 1] intensity scale).
    blend : {"decision", "soft"}, keyword-only
        ``soft``: skip stages 2-3 and weigh the frames by a softmax over frames of
        :func:`frame_scores` at ``temperature`` (what :class:`mfif.stream.StackStream` computes).
    temperature : float, keyword-only
        Softmax temperature of ``blend="soft"``.
    prefer, prefer_margin : str, float, keyword-only
        Where focus evidence is weak, take the near or far frame
        (:func:`mfif.decision.prefer_decision`; ``"none"``: the plain arg-max).

    Returns
    -------
    FusionResult
        ``fused``, ``scores`` (``NxHxW``), ``decision`` (after small-region removal),
        ``weights`` (``NxHxW``) and ``maps["initial_decision"]`` (the raw arg-max).

    References
    ----------
    .. [1] S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8), 1994.
    .. [2] W. Huang and Z. Jing, "Evaluation of focus measures in multi-focus image fusion",
       Pattern Recognition Letters 28(4), 2007.
    .. [3] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
       convolutional neural network", Information Fusion 36, 2017 (small-region removal and
       guided-filter consistency verification).
    """
    check_count("focus-map", sources)
    if measure not in FOCUS_MEASURES:
        raise UsageError(f"method focus-map: option measure={measure!r} must be one of "
                         + ", ".join(FOCUS_MEASURES))
    grays = [luma(s) for s in sources]
    if blend == "soft":
        logs = np.stack([frame_scores(g, measure=measure, window=window) for g in grays])
        fused, weights, scaled = soft_blend(sources, logs, temperature=temperature)
        return FusionResult(fused=fused, method="focus-map", decision=argmax_decision(scaled), weights=weights,
                            scores=scaled)
    func = FOCUS_MEASURES[measure]
    scores = np.stack([func(g, window=int(window)) for g in grays]).astype(np.float32, copy=False)
    initial, decision, weights, fused = decide_and_blend(sources, grays, scores, min_region=min_region,
                                                         gf_radius=gf_radius, gf_eps=gf_eps, prefer=prefer,
                                                         prefer_margin=prefer_margin)
    return FusionResult(fused=fused, method="focus-map", decision=decision,
                        weights=weights, scores=scores, maps={"initial_decision": initial})
