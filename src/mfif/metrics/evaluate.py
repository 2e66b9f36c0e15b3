"""Every metric at once: :func:`evaluate` and :class:`CaseMetrics` (source-side terms computed once)."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..errors import UsageError
from ._base import (
    _SSIM_WIN,
    _check_min_size,
    _fused_sources,
    _labels,
    _local11,
    _source_list,
    _ssim_map255,
    _wh,
    as_gray255,
)
from .gradient import _QabfSources
from .information import _QmiSources, _rescale_round
from .labels import _accuracy, _fscore, _iou
from .perceptual import _QcbSources
from .reference import _boundary, _near, _psnr255, _psnr_of_diff
from .structural import _QySources, _SsimAvgSources

#: Metric names returned by :func:`evaluate`, in order, with a one-line description each.
METRICS: Mapping[str, str] = {
    "ssim": "SSIM to the reference (Wang 2004; 11x11 Gaussian, valid region)",
    "psnr": "PSNR to the reference, dB (20 log10(255/RMSE))",
    "ssim_band": "SSIM to the reference within k px of the focus boundary",
    "psnr_band": "PSNR to the reference within k px of the focus boundary, dB",
    "accuracy": "decision map: fraction of pixels with the true label",
    "iou": "decision map: mean intersection-over-union over labels",
    "boundary_f": "decision map: boundary F-score (tolerance 2 px)",
    "qabf": "Q^AB/F edge preservation (Xydeas & Petrovic 2000)",
    "qmi": "Q_MI normalised mutual information (Hossny 2008)",
    "qy": "Q_Y structural similarity (Yang 2008)",
    "qcb": "Q_CB human-perception contrast (Chen & Blum 2009)",
    "ssim_avg": "mean SSIM of the fused image to each source",
}



# --------------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------------

def evaluate(fused, sources, *, reference=None, mask=None, decision=None,
             k: float = 10, tol: float = 2, qabf_variant: str = "toolbox",
             qy_constants: str = "toolbox") -> dict[str, float]:
    """Every metric that the given inputs allow, by name.

    To score several fused images of the same sources, :class:`CaseMetrics` computes the
    source-side terms once and gives the same values.

    Parameters
    ----------
    fused : ndarray
        Fused image.
    sources : sequence of ndarray
        Two or more sources (no-reference metrics ``qabf``, ``qmi``, ``qy``, ``qcb``,
        ``ssim_avg``).
    reference : ndarray, optional
        Ground-truth all-in-focus image: adds ``ssim`` and ``psnr``; with ``mask`` also
        ``ssim_band`` and ``psnr_band`` (band half-width ``k``).
    mask : ndarray, optional
        ``HxW`` ground-truth label map (label ``i`` = source ``i`` in focus).
    decision : ndarray, optional
        ``HxW`` decision map of source indices; with ``mask`` adds ``accuracy``, ``iou`` and
        ``boundary_f`` (tolerance ``tol``).
    k, tol : float, keyword-only
        Band half-width and boundary tolerance in pixels.
    qabf_variant, qy_constants : str, keyword-only
        ``"toolbox"`` (default): Q^AB/F and Q_Y exactly as the published MATLAB toolbox
        computes them (the survey tables); ``"strict"`` / ``"wang"``: see :func:`qabf`, :func:`qy`.

    Returns
    -------
    dict of str to float
        Keys from :data:`METRICS`, in that order, only those computable from the inputs; a
        value that is undefined for these images (NaN: e.g. an empty boundary band, or no
        gradient in any source) is left out. ``psnr`` may be ``inf``.

    Raises
    ------
    UsageError
        Fewer than two sources, or any input whose size differs from ``fused``.
    """
    f, srcs = _fused_sources(fused, sources)
    m = _labels(mask, "mask", f.shape) if mask is not None else None
    g = None
    if reference is not None:
        r = np.asarray(reference)
        if r.shape[:2] != f.shape[:2]:
            raise UsageError(f"fused image is {_wh(f.shape)} but reference is {_wh(r.shape)}; "
                             "sizes must match")
        g = as_gray255(r)
    # one image: the source-side terms are built when needed and dropped after use
    return CaseMetrics._from_gray(srcs, g, m, k, tol, keep=False,
                                  variants=_variants(qabf_variant, qy_constants))._score(f, decision)


#: The no-reference metrics whose source-side terms :class:`CaseMetrics` keeps.
_SOURCE_PARTS = {
    "qabf": _QabfSources,
    "qmi": _QmiSources,
    "qy": _QySources,
    "qcb": _QcbSources,
    "ssim_avg": _SsimAvgSources,
}


def _variants(qabf_variant: str, qy_constants: str) -> dict:
    """Checked variant options of the source-side terms, by metric."""
    from .gradient import _check_variant

    if qy_constants not in ("toolbox", "wang"):
        raise UsageError(f"Q_Y constants must be toolbox or wang, got {qy_constants!r}")
    return {"qabf": (_check_variant(qabf_variant),), "qy": (qy_constants,)}


class CaseMetrics:
    """The metrics of one case (sources, reference, mask), prepared for many fused images.

    Everything that depends only on the sources, the reference or the mask is computed once,
    here: the gray images, each source's Sobel gradients (Q^AB/F), levels and entropy (Q_MI),
    local statistics and the source-to-source SSIM and weights (Q_Y, ``ssim_avg``), masked
    contrast and saliency (Q_CB), the reference's local statistics (``ssim``), the boundary
    band of the mask and the mask's boundary (``boundary_f``). :meth:`evaluate` then computes
    only the fused-image terms, and returns exactly what :func:`evaluate` returns for the same
    inputs (same keys, same floating-point values).

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more sources of one height and width (see :func:`as_gray255` for dtypes).
    reference : ndarray, optional
        Ground-truth all-in-focus image: adds ``ssim``, ``psnr`` and, with ``mask``,
        ``ssim_band``, ``psnr_band``.
    mask : ndarray, optional
        ``HxW`` ground-truth label map; with a decision map passed to :meth:`evaluate` adds
        ``accuracy``, ``iou`` and ``boundary_f``.
    k, tol : float, keyword-only
        Band half-width and boundary tolerance in pixels, as in :func:`evaluate`.

    Attributes
    ----------
    shape : tuple of int
        ``(H, W)`` of the sources.
    n_sources : int
        Number of sources.
    k, tol : float
        As given.

    Raises
    ------
    UsageError
        Fewer than two sources, sources, reference or mask of different sizes, images too
        small for the windowed metrics (Q_Y 7x7, SSIM 11x11), or ``k < 0`` with a reference
        and a mask.

    Notes
    -----
    The object holds about a dozen float64 images per source (plus a few for the reference
    and mask), so it suits images up to a few megapixels; :func:`evaluate` on one image keeps
    only one metric's terms at a time. :meth:`evaluate` does not modify the object, so several
    threads may call it at once.

    Examples
    --------
    >>> case = CaseMetrics([a, b], reference=gt, mask=mask)      # doctest: +SKIP
    >>> rows = [case.evaluate(f, decision=d) for f, d in results]  # doctest: +SKIP
    """

    def __init__(self, sources, *, reference=None, mask=None, k: float = 10, tol: float = 2,
                 qabf_variant: str = "toolbox", qy_constants: str = "toolbox"):
        raw = [np.asarray(s) for s in _source_list(sources)]
        shape = raw[0].shape[:2]
        for i, s in enumerate(raw[1:], start=2):
            if s.shape[:2] != shape:
                raise UsageError(f"source {i} is {_wh(s.shape)} but source 1 is {_wh(shape)}; "
                                 "sizes must match")
        srcs = [as_gray255(s) for s in raw]
        m = _labels(mask, "mask", shape) if mask is not None else None
        g = None
        if reference is not None:
            r = np.asarray(reference)
            if r.shape[:2] != shape:
                raise UsageError(f"reference is {_wh(r.shape)} but the sources are {_wh(shape)}; "
                                 "sizes must match")
            g = as_gray255(r)
        self._setup(srcs, g, m, k, tol, keep=True, variants=_variants(qabf_variant, qy_constants))

    @classmethod
    def _from_gray(cls, srcs, g, m, k, tol, *, keep: bool, variants: dict) -> "CaseMetrics":
        """From inputs already checked and brought to gray 0..255 (and int64 labels)."""
        self = cls.__new__(cls)
        self._setup(srcs, g, m, k, tol, keep=keep, variants=variants)
        return self

    def _setup(self, srcs, g, m, k, tol, *, keep: bool, variants: dict) -> None:
        self._variants = variants
        self.shape = srcs[0].shape
        self.n_sources = len(srcs)
        self.k, self.tol = k, tol
        self._srcs, self._ref, self._mask = srcs, g, m
        if g is not None:
            _check_min_size(g.shape, _SSIM_WIN, "SSIM")
        # with keep=False (one image) the reference's statistics are found when needed
        self._lr = _local11(g) if keep and g is not None else None
        self._band = None
        if g is not None and m is not None:
            if k < 0:
                raise UsageError(f"band width k must be >= 0, got {k}")
            band = _near(_boundary(m), float(k))
            r = _SSIM_WIN // 2
            sel = band[r:band.shape[0] - r, r:band.shape[1] - r]  # band pixels of the SSIM map
            self._band, self._band_sel, self._band_any = band, sel, bool(sel.any())
            self._ref_band = g[band]
        # with keep=False (one image) these are found when a decision map needs them
        self._bm = _boundary(m) if keep and m is not None else None
        self._near_bm = _near(self._bm, tol) if keep and m is not None else None
        self._parts = {name: self._make_part(name) for name in _SOURCE_PARTS} if keep else {}

    def _make_part(self, name: str):
        return _SOURCE_PARTS[name](self._srcs, *self._variants.get(name, ()))

    def _part(self, name: str):
        part = self._parts.get(name)
        return part if part is not None else self._make_part(name)

    def evaluate(self, fused, decision=None) -> dict[str, float]:
        """Every metric of one fused image, as :func:`evaluate` with this case's inputs.

        Parameters
        ----------
        fused : ndarray
            Fused image of the sources' height and width.
        decision : ndarray, optional
            ``HxW`` decision map of source indices; used only when the case has a mask.

        Returns
        -------
        dict of str to float
            The same dictionary as ``evaluate(fused, sources, reference=..., mask=...,
            decision=decision, k=..., tol=...)``.

        Raises
        ------
        UsageError
            ``fused`` or ``decision`` of another size, or an unsupported image type.
        """
        a = np.asarray(fused)
        if a.shape[:2] != self.shape:
            raise UsageError(f"fused image is {_wh(a.shape)} but the sources are "
                             f"{_wh(self.shape)}; sizes must match")
        return self._score(as_gray255(a), decision)

    def _score(self, f: np.ndarray, decision) -> dict[str, float]:
        out: dict[str, float] = {}
        lf = None
        if self._ref is not None:
            lf = _local11(f)
            smap = _ssim_map255(lf, self._lr if self._lr is not None else self._ref)
            out["ssim"] = float(smap.mean())
            out["psnr"] = _psnr255(f, self._ref)
            if self._band is not None:
                sel = self._band_sel
                out["ssim_band"] = float(smap[sel].mean()) if self._band_any else math.nan
                out["psnr_band"] = _psnr_of_diff(f[self._band] - self._ref_band)
        if decision is not None and self._mask is not None:
            d = _labels(decision, "decision map", self._mask.shape)
            out["accuracy"] = _accuracy(d, self._mask)
            out["iou"] = _iou(d, self._mask)
            bm = self._bm if self._bm is not None else _boundary(self._mask)
            out["boundary_f"] = _fscore(d, bm, self.tol, self._near_bm)
        out["qabf"] = self._part("qabf").score(f)
        levels = _rescale_round(f)  # shared by Q_MI and Q_CB, held no longer than they need it
        out["qmi"] = self._part("qmi").score(f, levels)
        out["qcb"] = self._part("qcb").score(f, levels)
        del levels
        out["qy"] = self._part("qy").score(f)
        out["ssim_avg"] = self._part("ssim_avg").score(lf if lf is not None else _local11(f))
        return {name: out[name] for name in METRICS if name in out and not math.isnan(out[name])}
