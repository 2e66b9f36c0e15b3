"""The ``pcanet`` method: PCANet filter responses as a focus measure, decision map, blend."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..errors import UsageError
from ..result import FusionResult
from ._common import check_count, decide_and_blend, luma

__all__ = ["PCANetFilters", "load_filters", "shipped_filters_path", "pcanet_energy", "pcanet_focus",
           "fuse_pcanet", "STAGES"]

#: Values of the ``stage`` option: which filter responses feed the focus measure.
STAGES = ("1", "2", "both")


@dataclass(frozen=True)
class PCANetFilters:
    """The two PCANet filter banks.

    Attributes
    ----------
    stage1, stage2 : ndarray
        ``n1 x k x k`` and ``n2 x k x k`` float32 filters (orthonormal, zero-sum), applied
        by correlation.
    meta : dict
        How they were fitted (see :mod:`mfif.pcanet_fit`).
    """

    stage1: np.ndarray
    stage2: np.ndarray
    meta: dict


def shipped_filters_path():
    """Location of the filters shipped in the package (``mfif/data/pcanet_filters.npz``)."""
    from importlib.resources import files

    return files("mfif") / "data" / "pcanet_filters.npz"


def _read_npz(source, name: str) -> PCANetFilters:
    try:
        with np.load(source, allow_pickle=False) as d:
            s1 = np.asarray(d["stage1"], dtype=np.float32)
            s2 = np.asarray(d["stage2"], dtype=np.float32)
            meta = json.loads(str(d["meta"])) if "meta" in d.files else {}
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{name}: not a PCANet filters file ({type(exc).__name__}: {exc})") from None
    for label, bank in (("stage1", s1), ("stage2", s2)):
        if bank.ndim != 3 or bank.shape[1] != bank.shape[2] or bank.shape[1] % 2 == 0 or len(bank) == 0:
            raise UsageError(f"{name}: {label} must be an n x k x k array with odd k, got {bank.shape}")
    return PCANetFilters(stage1=s1, stage2=s2, meta=meta)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> PCANetFilters:
    return _read_npz(path, path)


def load_filters(path: str | os.PathLike | None = None) -> PCANetFilters:
    """Load PCANet filters: a ``.npz`` written by :mod:`mfif.pcanet_fit`, or the shipped ones.

    Parameters
    ----------
    path : path-like, optional
        Filters file; empty or None loads the filters shipped with mfif (read with
        :mod:`importlib.resources`).

    Returns
    -------
    PCANetFilters

    Raises
    ------
    UsageError
        Missing or malformed file.
    """
    if path:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"{p}: no such PCANet filters file")
        return _load_cached(str(p.resolve()), p.stat().st_mtime)
    res = shipped_filters_path()
    if not res.is_file():
        raise UsageError(f"shipped PCANet filters missing ({res}); reinstall mfif or pass -p filters=FILE "
                         "(make one with: python -m mfif.pcanet_fit PHOTOS_DIR OUT.npz)")
    return _shipped()


@lru_cache(maxsize=1)
def _shipped() -> PCANetFilters:
    res = shipped_filters_path()
    with res.open("rb") as fh:
        return _read_npz(fh, "shipped PCANet filters")


def _bank(img: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Responses of a (multi-channel) float32 image to each filter: ``n x H x W [x C]``."""
    return np.stack([cv2.filter2D(img, cv2.CV_32F, np.ascontiguousarray(f), borderType=cv2.BORDER_REFLECT_101)
                     for f in bank])


def pcanet_energy(gray: np.ndarray, filters: PCANetFilters, *, stage: str = "2") -> np.ndarray:
    """Per-pixel energy of the PCANet filter responses of a gray image.

    Parameters
    ----------
    gray : ndarray
        ``HxW`` float32 image in [0, 1].
    filters : PCANetFilters
        The two filter banks.
    stage : {"1", "2", "both"}, keyword-only
        ``"1"``: sum of squared stage-1 responses ``sum_i (W1_i * I)^2``; ``"2"``: sum of
        squared stage-2 responses over all ``n1 x n2`` cascades
        ``sum_i sum_j (W2_j * (W1_i * I))^2``; ``"both"``: the sum of the two.

    Returns
    -------
    ndarray
        ``HxW`` float32, non-negative; larger where the image has more structure in the band
        of spatial frequencies that the filters pass, which defocus removes.
    """
    if stage not in STAGES:
        raise UsageError(f"method pcanet: option stage={stage!r} must be one of {', '.join(STAGES)}")
    g = np.ascontiguousarray(gray, dtype=np.float32)
    r1 = _bank(g, filters.stage1)                      # n1 x H x W
    energy = np.zeros(g.shape, np.float32)
    if stage in ("1", "both"):
        energy += np.einsum("ihw,ihw->hw", r1, r1)
    if stage in ("2", "both"):
        # all stage-1 maps at once as one n1-channel image (OpenCV filters channels independently)
        stack = np.ascontiguousarray(np.moveaxis(r1, 0, -1))  # H x W x n1
        for f in filters.stage2:
            r2 = cv2.filter2D(stack, cv2.CV_32F, np.ascontiguousarray(f), borderType=cv2.BORDER_REFLECT_101)
            energy += np.einsum("hwi,hwi->hw", r2, r2)
    return energy


def pcanet_focus(gray: np.ndarray, filters: PCANetFilters, *, stage: str = "2", window: int = 5) -> np.ndarray:
    """PCANet focus measure: :func:`pcanet_energy` averaged over a ``window`` x ``window`` box."""
    e = pcanet_energy(gray, filters, stage=stage)
    w = int(window)
    if w <= 1:
        return e
    return cv2.boxFilter(e, cv2.CV_32F, (w, w), borderType=cv2.BORDER_REFLECT)


def fuse_pcanet(sources: Sequence[np.ndarray], *, stage: str = "2", window: int = 5, min_region: float = 0.01,
                gf_radius: int = 8, gf_eps: float = 0.01, prefer: str = "none", prefer_margin: float = 0.05, filters: str = "") -> FusionResult:
    """Multi-focus fusion with PCANet filters as the focus measure.

    The four pipeline stages, as in :func:`mfif.methods.focus_map.fuse_focus_map`:

    1. Focus detection: each source's luminance goes through the two cascaded stages of
       PCA-learned filters (7x7, 8 + 8 filters fitted by mfif on natural photos, see
       :mod:`mfif.pcanet_fit`); the squared responses are summed over the filters
       (:func:`pcanet_energy`) and averaged over a ``window`` x ``window`` box -> ``NxHxW``
       scores. Defocus is a low-pass filter, so a blurred source loses response energy
       in every filter band; the sharper source has the larger score.
    2. Initial segmentation: arg-max over sources (ties to the lowest index).
    3. Consistency verification: connected regions smaller than ``min_region`` of the image
       are given to their surroundings (:func:`mfif.consistency.remove_small_regions`), then
       the one-hot maps are refined with a guided filter steered by the luminance of the
       hard-decision fused image (:func:`mfif.consistency.refine_weights`).
    4. Fusion: pixel-wise weighted average with the refined weights (colour is blended per
       channel; the decision is made on luminance).

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more float32 images in [0, 1] of one shape, ``HxW`` or ``HxWxC``.
    stage : {"1", "2", "both"}, keyword-only
        Which filter responses feed the focus measure (default ``"2"``, the 64 cascaded
        stage-2 responses).
    window : int, keyword-only
        Side of the averaging window of the focus measure, px.
    min_region : float, keyword-only
        Regions smaller than this fraction of the image area are removed; 0 disables it.
    gf_radius : int, keyword-only
        Guided-filter radius; 0 keeps hard (one-hot) weights.
    gf_eps : float, keyword-only
        Guided-filter regularisation (on the [0, 1] intensity scale).
    prefer, prefer_margin : str, float, keyword-only
        Where focus evidence is weak, take the near or far frame
        (:func:`mfif.decision.prefer_decision`; ``"none"``: the plain arg-max).
    filters : str, keyword-only
        A filters ``.npz`` from ``python -m mfif.pcanet_fit``; empty: the shipped filters.

    Returns
    -------
    FusionResult
        ``fused``, ``scores`` (``NxHxW``), ``decision`` (after small-region removal),
        ``weights`` and ``maps["initial_decision"]``.

    Notes
    -----
    Song and Wu [2]_ also build multi-focus fusion on PCANet filters, but measure activity
    with the nuclear norm of local blocks of the stage-1 feature maps. mfif uses the local
    energy of the responses instead (cheaper, and with ``stage="2"`` it uses the full
    two-stage cascade of the PCANet architecture); the rest of the pipeline is shared with
    mfif's other decision-map methods.

    The leading PCA eigenvectors of natural-image patches are smooth, low-frequency filters
    (the stage-1 bank looks like first and second derivatives of a wide Gaussian), and the
    cascade is smoother still. The measure therefore sees defocus through mid-frequency
    structure; in nearly flat areas (a clear sky) fine texture is invisible to it and the
    staircase contours of 8-bit quantisation can outweigh it, so such areas are decided less
    reliably than with a high-pass measure such as the ``focus-map`` method's SML.

    References
    ----------
    .. [1] T.-H. Chan, K. Jia, S. Gao, J. Lu, Z. Zeng and Y. Ma, "PCANet: A simple deep
       learning baseline for image classification?", IEEE Transactions on Image Processing
       24(12), 5017-5032, 2015.
    .. [2] X. Song and X.-J. Wu, "Multi-focus image fusion with PCA filters of PCANet", in
       Multimodal Pattern Recognition of Social Signals in Human-Computer Interaction
       (MPRSS 2018), LNCS 11377, Springer, 2019, pp. 1-17.
    .. [3] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
       convolutional neural network", Information Fusion 36, 2017 (small-region removal and
       guided-filter consistency verification).
    .. [4] K. He, J. Sun and X. Tang, "Guided image filtering", IEEE TPAMI 35(6), 2013.
    """
    check_count("pcanet", sources)
    if stage not in STAGES:
        raise UsageError(f"method pcanet: option stage={stage!r} must be one of {', '.join(STAGES)}")
    bank = load_filters(filters or None)
    grays = [luma(s) for s in sources]
    scores = np.stack([pcanet_focus(g, bank, stage=stage, window=int(window)) for g in grays])
    initial, decision, weights, fused = decide_and_blend(sources, grays, scores, min_region=min_region,
                                                         gf_radius=gf_radius, gf_eps=gf_eps, prefer=prefer,
                                                         prefer_margin=prefer_margin)
    return FusionResult(fused=fused, method="pcanet", decision=decision, weights=weights,
                        scores=scores.astype(np.float32, copy=False), maps={"initial_decision": initial},
                        info={"filters": bank.meta.get("format", "?"), "stage": stage, "window": int(window)})
