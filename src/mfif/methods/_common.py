"""Helpers shared by the classic fusion methods (not part of the public API)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..blend import weighted_blend
from ..consistency import decision_weights, verify_decision
from ..decision import argmax_decision, prefer_decision
from ..errors import UsageError
from ..io import to_gray

__all__ = ["check_count", "luma", "clip01", "decide_and_blend"]


def check_count(method: str, sources: Sequence[np.ndarray]) -> None:
    """Raise :class:`UsageError` unless there are two or more sources of one shape."""
    if len(sources) < 2:
        raise UsageError(f"method {method}: need at least 2 sources, got {len(sources)}")
    shape = sources[0].shape
    for k, s in enumerate(sources):
        if s.shape != shape:
            raise UsageError(f"method {method}: source {k + 1} has shape {s.shape}, "
                             f"source 1 has {shape}")


def luma(img: np.ndarray) -> np.ndarray:
    """Luminance of an ``HxW`` or ``HxWx3`` float image (gray is returned as is)."""
    return to_gray(img)


def clip01(img: np.ndarray) -> np.ndarray:
    """float32 copy (or in-place view) of ``img`` clipped to [0, 1]."""
    img = np.asarray(img, dtype=np.float32)
    return np.clip(img, 0.0, 1.0, out=img)


def decide_and_blend(sources: Sequence[np.ndarray], grays: list[np.ndarray], scores: np.ndarray, *,
                     min_region: float, gf_radius: int, gf_eps: float, prefer: str = "none",
                     prefer_margin: float = 0.05):
    """Stages 2-4 of the focus-measure methods on the shared stages: arg-max decision (weak
    evidence settled by ``prefer``, :func:`mfif.decision.prefer_decision`),
    :func:`mfif.consistency.verify_decision` (small regions), :func:`mfif.consistency.decision_weights`,
    weighted blend.

    ``grays`` are the sources' luminance images (not modified).

    Returns
    -------
    (initial, decision, weights, fused)
    """
    h, w = sources[0].shape[:2]
    initial = prefer_decision(scores, argmax_decision(scores), prefer=prefer, margin=prefer_margin)
    decision = verify_decision(initial, grays, min_area=int(round(float(min_region) * h * w)))
    weights = decision_weights(decision, grays, radius=gf_radius, eps=gf_eps)
    return initial, decision, weights, clip01(weighted_blend(sources, weights))
