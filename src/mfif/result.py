"""The :class:`FusionResult` returned by every fusion method."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FusionResult:
    """Output of a fusion method, with every intermediate stage that the method has.

    Attributes
    ----------
    fused : ndarray
        Fused image, float32 in [0, 1], same shape as the sources (``HxW`` or ``HxWxC``).
    method : str
        Name of the method that produced it.
    decision : ndarray or None
        ``HxW`` int16 map of the source index chosen at each pixel (the *depth map* for a
        stack), after consistency verification; None for methods without a decision map
        (``average``, ``pca``, ``dwt``, ``laplacian``).
    weights : ndarray or None
        ``NxHxW`` float32 per-source blending weights (sum to 1 at each pixel), when the
        method blends with weight maps.
    scores : ndarray or None
        ``NxHxW`` float32 focus-score maps (higher = sharper), or for SFF on two sources
        ``1xHxW`` with the probability that source A is in focus.
    maps : dict of str to ndarray
        Further named intermediate maps (e.g. ``initial_decision``), ``HxW``.
    info : dict
        Free-form details (timings in seconds, parameters used).
    """

    fused: np.ndarray
    method: str
    decision: np.ndarray | None = None
    weights: np.ndarray | None = None
    scores: np.ndarray | None = None
    maps: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def stage_maps(self) -> dict[str, np.ndarray]:
        """All inspectable maps by name: ``score_k``, ``decision``, ``weight_k`` and extras."""
        out: dict[str, np.ndarray] = {}
        if self.scores is not None:
            if len(self.scores) == 1:
                out["score"] = self.scores[0]
            else:
                for k, s in enumerate(self.scores):
                    out[f"score_{k}"] = s
        out.update(self.maps)
        if self.decision is not None:
            out["decision"] = self.decision
        if self.weights is not None and len(self.weights) > 1:
            for k, w in enumerate(self.weights):
                out[f"weight_{k}"] = w
        return out
