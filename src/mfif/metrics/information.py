"""No-reference information metric Q_MI (Hossny et al. 2008)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._base import _fused_sources

# --------------------------------------------------------------------------------------------
# no-reference: Q_MI
# --------------------------------------------------------------------------------------------

def _rescale_round(x: np.ndarray) -> np.ndarray:
    """round(255 (x - min) / (max - min)) as int; a constant image becomes all zeros.

    Evaluated in the published ``normalize1.m``'s order, ``((x - min) / (max - min)) * 255``, and
    rounded as MATLAB does (halves up): levels that land on .5 round the same way.
    """
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros(x.shape, dtype=np.int64)
    return np.floor((x - lo) / (hi - lo) * 255.0 + 0.5).astype(np.int64)


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-np.sum(p * np.log2(p)))


class _QmiSources:
    """Source side of Q_MI: each source's rescaled levels (times 256) and entropy."""

    def __init__(self, srcs: Sequence[np.ndarray]):
        self.terms = []
        for s in srcs:
            si = _rescale_round(s).ravel()
            self.terms.append((si * 256, _entropy(np.bincount(si, minlength=256))))

    def score(self, f: np.ndarray, levels: np.ndarray | None = None) -> float:
        """Q_MI of ``f``; ``levels`` is ``_rescale_round(f)`` when the caller has it already."""
        fi = (_rescale_round(f) if levels is None else levels).ravel()
        hf = _entropy(np.bincount(fi, minlength=256))
        total = 0.0
        for si256, hs in self.terms:
            hsf = _entropy(np.bincount(si256 + fi, minlength=256 * 256))
            mi = hs + hf - hsf
            total += mi / (hs + hf) if hs + hf > 0 else 0.0
        return 4.0 * total / len(self.terms)


def _qmi255(f: np.ndarray, srcs: Sequence[np.ndarray]) -> float:
    return _QmiSources(srcs).score(f)


def qmi(fused, sources) -> float:
    """Normalised mutual information Q_MI (Hossny et al.).

    Variant (the published ``metricMI.m``): each gray image is rescaled to integers
    ``round(255 (x - min) / (max - min))`` (a constant image becomes 0); entropies and mutual
    information come from 256-bin (joint) histograms with ``log2``;
    ``Q_MI = 2 [MI(A,F) / (H(A) + H(F)) + MI(B,F) / (H(B) + H(F))]``, with
    ``MI(S,F) = H(S) + H(F) - H(S,F)``. A term whose denominator is 0 (both images constant)
    counts as 0.

    N sources: ``Q_MI = (4 / N) sum_i MI(S_i,F) / (H(S_i) + H(F))``, which equals the mean of
    the two-source Q_MI over all pairs of sources, and keeps the range [0, 2].

    Parameters
    ----------
    fused : ndarray
        Fused image.
    sources : sequence of ndarray
        Two or more sources.

    Returns
    -------
    float
        Q_MI in [0, 2] (2 when F and every source carry the same information).

    References
    ----------
    .. [1] M. Hossny, S. Nahavandi, D. Creighton, "Comments on 'Information measure for
       performance of image fusion'", Electronics Letters 44(18), 1066-1067, 2008.
    .. [2] G. Qu, D. Zhang, P. Yan, "Information measure for performance of image fusion",
       Electronics Letters 38(7), 313-315, 2002.
    """
    f, srcs = _fused_sources(fused, sources)
    return _qmi255(f, srcs)
