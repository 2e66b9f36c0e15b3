"""Helpers shared by the classic fusion methods (not part of the public API)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import UsageError
from ..io import GRAY_WEIGHTS, to_gray

__all__ = ["check_count", "luma", "luma_coeffs", "clip01", "MaxAbsSelector", "select_max_abs",
           "decide_and_blend"]

# BT.601 luma weights, the same as :func:`mfif.io.to_gray` (MATLAB ``rgb2gray``).
LUMA = np.array(GRAY_WEIGHTS, np.float32)


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


def luma_coeffs(c: np.ndarray, colour: bool) -> np.ndarray:
    """Luminance of a coefficient array whose last axis is colour (when ``colour``).

    Transforms used here are linear, so the luminance of the colour coefficients equals the
    coefficients of the luminance image.
    """
    if not colour:
        return c
    return c @ LUMA  # (..., 3) -> (...)


def clip01(img: np.ndarray) -> np.ndarray:
    """float32 copy (or in-place view) of ``img`` clipped to [0, 1]."""
    img = np.asarray(img, dtype=np.float32)
    return np.clip(img, 0.0, 1.0, out=img)


class MaxAbsSelector:
    """Streaming max-abs coefficient selection over sources.

    ``update(coef, activity)`` keeps, per position, the coefficient whose ``activity`` is the
    largest seen so far; a tie keeps the earlier source (like :func:`numpy.argmax`). For colour
    the activity is an ``h x w`` map and the choice is applied to all channels of ``coef``,
    which are on the last axis (``h x w x C``) or, with ``leading=True``, the first
    (``C x h x w``).
    """

    __slots__ = ("coef", "act")

    def __init__(self) -> None:
        self.coef: np.ndarray | None = None
        self.act: np.ndarray | None = None

    def update(self, coef: np.ndarray, activity: np.ndarray, *, leading: bool = False) -> None:
        if self.coef is None:
            self.coef = np.array(coef, dtype=np.float32, copy=True)
            self.act = np.array(activity, dtype=np.float32, copy=True)
            return
        take = activity > self.act
        if coef.ndim == take.ndim + 1:
            np.copyto(self.coef, coef, where=take[None] if leading else take[..., None])
        else:
            np.copyto(self.coef, coef, where=take)
        np.maximum(self.act, activity, out=self.act)


def select_max_abs(coefs: Sequence[np.ndarray], colour: bool) -> np.ndarray:
    """Max-abs choice among corresponding coefficient arrays (luminance decides for colour)."""
    sel = MaxAbsSelector()
    for c in coefs:
        sel.update(c, np.abs(luma_coeffs(c, colour)))
    return sel.coef


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
    from ..blend import weighted_blend
    from ..consistency import decision_weights, verify_decision
    from ..decision import argmax_decision, prefer_decision

    h, w = sources[0].shape[:2]
    initial = prefer_decision(scores, argmax_decision(scores), prefer=prefer, margin=prefer_margin)
    decision = verify_decision(initial, grays, min_area=int(round(float(min_region) * h * w)))
    weights = decision_weights(decision, grays, radius=gf_radius, eps=gf_eps)
    return initial, decision, weights, clip01(weighted_blend(sources, weights))
