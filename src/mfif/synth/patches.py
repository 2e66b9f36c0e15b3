"""Training patches for the SFF classifier: pairs of corresponding focused / defocused windows."""
from __future__ import annotations

from typing import Iterator, Sequence

import cv2
import numpy as np

from ..errors import UsageError
from ..io import to_gray
from .cases import _check_options, make_case


class PatchSampler:
    """Balanced patch pairs with focused/defocused labels for training a focus classifier.

    A pool of 2-source cases (one photo each, a random ``case_size`` square crop) is
    synthesised with :func:`make_case`; patches are cut from them at the same location in
    both sources, and each case is replaced by a fresh one (new photo, crop, mask and blur)
    after ``patches_per_case`` patches on average.

    Parameters
    ----------
    images : list of ndarray
        Sharp photos, float32 in [0, 1] (``HxW`` or ``HxWx3``).
    patch : int, keyword-only
        Patch side (px).
    seed : int, keyword-only
        Seed; the sequence of batches is a pure function of the seed and the arguments.
    gray : bool, keyword-only
        Gray patches ``(B, 1, p, p)``; otherwise colour ``(B, 3, p, p)``.
    case_size : int, keyword-only
        Side of the synthesised cases (default 256; photos smaller than that are upscaled).
    pool : int, keyword-only
        Number of cases in the pool (default 16).
    patches_per_case : int, keyword-only
        Patches drawn from a case before it is replaced (default 1024).
    p_boundary : float, keyword-only
        Share of patches placed across a depth boundary (default 0.2): mixed labels.
    p_flat : float, keyword-only
        Share of patches taken from the flattest 10 % of positions of a case (default 0.15):
        little texture, so focus is hard to see.
    p_small_blur : float, keyword-only
        Share of cases whose blur radius is small, ``small_radius`` = 1 to 2 px (Gaussian
        sigma 0.5 to 1 px), default 0.25. The other cases use ``radius`` (default 0.6 to 8 px,
        log-uniform, so they include small blur too).
    **options
        Passed to :func:`make_case` (``psf``, ``radius``, ``mask_kind``, ``noise``, ...).

    Notes
    -----
    ``sample(batch)`` returns ``(a, b, label)``: ``a`` and ``b`` are patches of the two sources
    of one case at one location, ``label`` the fraction of the patch where ``a`` is the sharp
    one (1 = ``a`` focused and ``b`` defocused, 0 the reverse, in between on a depth
    boundary). ``a`` is source A or source B with probability 1/2 each, so labels are balanced
    (mean 0.5). The remaining ``1 - p_boundary - p_flat`` of the patches are placed uniformly.

    References
    ----------
    .. [1] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
       convolutional network", Information Fusion 36, 2017.
    """

    _N_BOUNDARY = 4096
    _N_FLAT = 1024

    def __init__(self, images: Sequence[np.ndarray], *, patch: int = 16, seed: int = 0, gray: bool = True,
                 case_size: int = 256, pool: int = 16, patches_per_case: int = 1024,
                 p_boundary: float = 0.2, p_flat: float = 0.15, p_small_blur: float = 0.25,
                 small_radius: tuple[float, float] = (1.0, 2.0), **options):
        if not images:
            raise UsageError("PatchSampler needs at least one photo")
        if int(patch) < 2:
            raise UsageError(f"patch must be >= 2, got {patch}")
        if not (0 <= p_boundary and 0 <= p_flat and p_boundary + p_flat <= 1):
            raise UsageError("p_boundary and p_flat must be >= 0 and sum to <= 1")
        self.images = list(images)
        self.patch = int(patch)
        self.gray = bool(gray)
        self.case_size = max(int(case_size), 2 * self.patch)
        self.pool_size = max(1, int(pool))
        self.patches_per_case = max(1, int(patches_per_case))
        self.p_boundary, self.p_flat, self.p_small_blur = float(p_boundary), float(p_flat), float(p_small_blur)
        self.small_radius = tuple(float(x) for x in small_radius)
        _check_options(options)
        self.options = dict(options)
        self.rng = np.random.default_rng([int(seed), 0xFACADE])
        self.cases_made = 0
        P, cs, p = self.pool_size, self.case_size, self.patch
        ch = 1 if self.gray else 3
        self._src = np.zeros((P, 2, ch, cs, cs), np.float32)
        self._views = np.lib.stride_tricks.sliding_window_view(self._src, (p, p), axis=(3, 4))
        self._integral = np.zeros((P, cs + 1, cs + 1), np.int32)
        self._bnd = np.zeros((P, self._N_BOUNDARY, 2), np.int32)
        self._has_bnd = np.zeros(P, bool)
        self._flat = np.zeros((P, self._N_FLAT, 2), np.int32)
        self._used = np.zeros(P, np.int64)
        for s in range(P):
            self._refill(s)

    # -- pool management ---------------------------------------------------------------------
    def _refill(self, s: int) -> None:
        rng = self.rng
        idx = int(rng.integers(len(self.images)))
        crng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        opts = dict(self.options)
        if rng.random() < self.p_small_blur:
            opts["radius"] = self.small_radius
        cs, p = self.case_size, self.patch
        img = self.images[idx]
        if self.gray and img.ndim == 3:
            img = to_gray(img)
        elif not self.gray and img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        case = make_case(img, n_sources=2, rng=crng, size=cs, gray=self.gray, **opts)
        self.cases_made += 1
        for k in range(2):
            src = case.sources[k]
            self._src[s, k] = src[None] if src.ndim == 2 else np.moveaxis(src, -1, 0)
        mk = case.mask
        m0 = (mk == 0).astype(np.int32)
        self._integral[s, 1:, 1:] = m0.cumsum(0).cumsum(1)
        edge = np.zeros(mk.shape, bool)
        edge[:, 1:] |= mk[:, 1:] != mk[:, :-1]
        edge[1:, :] |= mk[1:, :] != mk[:-1, :]
        by, bx = np.nonzero(edge)
        self._has_bnd[s] = by.size > 0
        if by.size:
            pick = rng.integers(0, by.size, self._N_BOUNDARY)
            self._bnd[s, :, 0], self._bnd[s, :, 1] = by[pick], bx[pick]
        g = case.gt if case.gt.ndim == 2 else to_gray(case.gt)
        mu = cv2.boxFilter(g, cv2.CV_32F, (p, p), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        mu2 = cv2.boxFilter(g * g, cv2.CV_32F, (p, p), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        sd = np.sqrt(np.maximum(mu2 - mu * mu, 0))[: cs - p + 1: 2, : cs - p + 1: 2]
        fy, fx = np.nonzero(sd <= np.quantile(sd, 0.1))
        pick = rng.integers(0, fy.size, self._N_FLAT)
        self._flat[s, :, 0], self._flat[s, :, 1] = fy[pick] * 2, fx[pick] * 2
        self._used[s] = 0

    # -- public ------------------------------------------------------------------------------
    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``batch`` patch pairs.

        Returns
        -------
        a, b : ndarray
            float32 ``(batch, C, patch, patch)`` with ``C`` = 1 (gray) or 3.
        label : ndarray
            float32 ``(batch,)``: fraction of the patch where ``a`` is the focused source.
        """
        n = int(batch)
        p, rng = self.patch, self.rng
        lim = self.case_size - p
        slot = rng.integers(0, self.pool_size, n)
        ys = rng.integers(0, lim + 1, n)
        xs = rng.integers(0, lim + 1, n)
        u = rng.random(n)
        nb = (u < self.p_boundary) & self._has_bnd[slot]
        nf = (u >= self.p_boundary) & (u < self.p_boundary + self.p_flat)
        k = int(nb.sum())
        if k:
            pts = self._bnd[slot[nb], rng.integers(0, self._N_BOUNDARY, k)]
            ys[nb] = np.clip(pts[:, 0] - rng.integers(1, p, k), 0, lim)
            xs[nb] = np.clip(pts[:, 1] - rng.integers(1, p, k), 0, lim)
        k = int(nf.sum())
        if k:
            pts = self._flat[slot[nf], rng.integers(0, self._N_FLAT, k)]
            ys[nf] = np.minimum(pts[:, 0], lim)
            xs[nf] = np.minimum(pts[:, 1], lim)
        swap = rng.random(n) < 0.5
        ia = swap.astype(np.intp)
        a = self._views[slot, ia, :, ys, xs]
        b = self._views[slot, 1 - ia, :, ys, xs]
        I = self._integral
        frac = (I[slot, ys + p, xs + p] - I[slot, ys, xs + p] - I[slot, ys + p, xs] + I[slot, ys, xs]) / float(p * p)
        label = np.where(swap, 1.0 - frac, frac).astype(np.float32)
        self._used += np.bincount(slot, minlength=self.pool_size)
        for s in np.nonzero(self._used >= self.patches_per_case)[0]:
            self._refill(int(s))
        return a, b, label

    def iter_batches(self, batch: int, n_batches: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``n_batches`` batches (forever when ``None``)."""
        i = 0
        while n_batches is None or i < n_batches:
            yield self.sample(batch)
            i += 1


def torch_dataset(images: Sequence[np.ndarray], *, batch: int = 32, n_batches: int | None = None,
                  seed: int = 0, **sampler_options):
    """A ``torch.utils.data.IterableDataset`` yielding ready batches ``(a, b, label)`` as tensors.

    Use with ``DataLoader(ds, batch_size=None)``. Each DataLoader worker gets its own sampler
    seeded ``(seed, worker_id)``; with ``n_batches`` each worker yields that many batches.
    torch is imported only here.
    """
    import torch

    class _DS(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            wid = 0 if info is None else info.id
            s = seed if info is None else int(np.random.SeedSequence([seed, wid]).generate_state(1)[0])
            sampler = PatchSampler(images, seed=s, **sampler_options)
            for a, b, lab in sampler.iter_batches(batch, n_batches):
                yield torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(lab)

    return _DS()
