"""Crops with dense labels for training a per-frame focus scorer (``sff-fast``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import UsageError
from ..io import to_gray
from .cases import _check_options, make_case

__all__ = ["DenseSampler"]


class DenseSampler:
    """Pairs of crops from synthetic multi-focus cases with a label map on a coarse grid.

    Each case (:func:`make_case`, gray, ``case_size`` square) has 2 or 3 sources; a pair of
    its sources is drawn, and the label of a pixel is 1 where the first source of the pair is
    the less blurred one, 0 where it is the more blurred one, 1/2 where both are equally
    blurred. With three sources some pairs therefore compare two *defocused* frames, as the
    middle frames of a focus stack do. Labels are averaged over ``cell x cell`` blocks, the
    score network's grid.

    Parameters
    ----------
    images : list of ndarray
        Sharp photos, float32 in [0, 1].
    crop : int, keyword-only
        Crop side, a multiple of ``cell``.
    cell : int, keyword-only
        Side of a label cell (the network's stride).
    case_size : int, keyword-only
        Side of the synthesised cases.
    pool : int, keyword-only
        Cases held at a time; each is replaced after ``crops_per_case`` crops on average.
    p_three : float, keyword-only
        Share of cases with three sources.
    p_small_blur : float, keyword-only
        Share of cases with a blur radius of ``small_radius`` px (hard cases); others use the
        ``radius`` option of :func:`make_case`.
    seed : int, keyword-only
        The sequence of batches is a pure function of the seed and the arguments.
    **options
        Passed to :func:`make_case` (``noise``, ``jpeg``, ``brightness``, ...).

    Notes
    -----
    ``sample(batch)`` returns ``(a, b, label)``: ``a``, ``b`` float32 ``(batch, 1, crop,
    crop)``; ``label`` float32 ``(batch, 1, crop / cell, crop / cell)``. Crops are flipped and
    transposed at random (the same way in both sources and the label).
    """

    def __init__(self, images: Sequence[np.ndarray], *, crop: int = 128, cell: int = 4, case_size: int = 192,
                 pool: int = 32, crops_per_case: int = 8, p_three: float = 0.35, p_small_blur: float = 0.25,
                 small_radius: tuple[float, float] = (1.0, 2.0), seed: int = 0, **options):
        if not images:
            raise UsageError("DenseSampler needs at least one photo")
        if crop % cell or crop > case_size:
            raise UsageError(f"crop {crop} must be a multiple of cell {cell} and at most case_size {case_size}")
        self.images = [to_gray(im) if im.ndim == 3 else im for im in images]
        self.crop, self.cell, self.case_size = int(crop), int(cell), int(case_size)
        self.crops_per_case, self.p_three, self.p_small_blur = int(crops_per_case), float(p_three), float(p_small_blur)
        self.small_radius = tuple(float(x) for x in small_radius)
        _check_options(options)
        self.options = dict(options)
        self.rng = np.random.default_rng([int(seed), 0xDE5E])
        self._cases: list = [self._new_case() for _ in range(max(1, int(pool)))]
        self._used = np.zeros(len(self._cases), np.int64)

    def _new_case(self):
        rng = self.rng
        opts = dict(self.options)
        if rng.random() < self.p_small_blur:
            opts["radius"] = self.small_radius
        n = 3 if rng.random() < self.p_three else 2
        img = self.images[int(rng.integers(len(self.images)))]
        crng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        case = make_case(img, n_sources=n, rng=crng, size=self.case_size, gray=True, **opts)
        radii = np.asarray(case.params["radii"], np.float64)  # radii[k][layer]: blur of layer in source k
        return np.stack(case.sources), case.mask.astype(np.intp), radii

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng, c, cell = self.rng, self.crop, self.cell
        g = c // cell
        a = np.empty((batch, 1, c, c), np.float32)
        b = np.empty_like(a)
        lab = np.empty((batch, 1, g, g), np.float32)
        slots = rng.integers(0, len(self._cases), batch)
        for i, s in enumerate(slots):
            src, mask, radii = self._cases[s]
            n = src.shape[0]
            ia, ib = rng.choice(n, 2, replace=False)
            y, x = rng.integers(0, self.case_size - c + 1, 2)
            m = mask[y:y + c, x:x + c]
            ra, rb = radii[ia][m], radii[ib][m]
            per_px = np.where(ra < rb, 1.0, np.where(ra > rb, 0.0, 0.5)).astype(np.float32)
            pa, pb = src[ia, y:y + c, x:x + c], src[ib, y:y + c, x:x + c]
            k = int(rng.integers(8))
            pa, pb, per_px = (self._dihedral(v, k) for v in (pa, pb, per_px))
            a[i, 0], b[i, 0] = pa, pb
            lab[i, 0] = per_px.reshape(g, cell, g, cell).mean(axis=(1, 3))
        self._used += np.bincount(slots, minlength=len(self._cases))
        for s in np.nonzero(self._used >= self.crops_per_case)[0]:
            self._cases[s] = self._new_case()
            self._used[s] = 0
        return a, b, lab

    @staticmethod
    def _dihedral(v: np.ndarray, k: int) -> np.ndarray:
        if k & 4:
            v = v.T
        return np.rot90(v, k & 3)
