"""Fitting the PCANet filters that the ``pcanet`` fusion method uses as its focus measure.

PCANet (Chan et al. 2015) is a two-stage cascade of convolution filters learned by principal
component analysis, with no back-propagation:

* **Stage 1.** Every ``k x k`` patch of the (gray) training photos is vectorised and its own
  mean is removed; the ``n1`` leading eigenvectors of the patch covariance ``X X^T`` are
  reshaped into ``k x k`` filters ``W1_1..W1_n1``.
* **Stage 2.** Each photo is filtered with every stage-1 filter; patches of these responses,
  again mean-removed, are pooled over all photos and filters, and the ``n2`` leading
  eigenvectors of their covariance become the stage-2 filters ``W2_1..W2_n2``.

Because every patch has its mean removed, the constant vector lies in the null space of each
covariance, so all filters sum to zero: their responses do not depend on brightness offsets.
Each bank is orthonormal (the rows of the ``n x k^2`` filter matrix are orthonormal
eigenvectors).

mfif fits the filters itself, on random patches of the BSDS500 *training* photos, and ships
the result as ``mfif/data/pcanet_filters.npz``. The shipped file is reproduced by::

    python -m mfif.pcanet_fit ../shared/data/train_images src/mfif/data/pcanet_filters.npz --seed 0

(``docs/benchmark.md`` records this command). The same photos, options and seed give the same
filters: patch positions are drawn from a generator seeded with ``seed``, photos are read in
natural-sort order, and each eigenvector's sign is fixed by a deterministic rule.

Filters are applied by correlation (:func:`cv2.filter2D`), i.e. each output pixel is the
projection of the patch around it onto the eigenvector -- exactly the PCA coordinate. (Chan et
al. write the operation as a convolution with the reshaped eigenvector; the two differ only by
a 180 degree rotation of the filter, which does not change any energy computed from it.)

References
----------
.. [1] T.-H. Chan, K. Jia, S. Gao, J. Lu, Z. Zeng and Y. Ma, "PCANet: A simple deep learning
   baseline for image classification?", IEEE Transactions on Image Processing 24(12),
   5017-5032, 2015.
.. [2] P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour detection and hierarchical
   image segmentation", IEEE TPAMI 33(5), 2011 (the BSDS500 photos).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .errors import UsageError
from .io import atomic_output

__all__ = ["FORMAT", "fit_filters", "fit_from_directory", "save_filters", "orient", "main"]

#: Format tag stored in the ``meta`` entry of a filters file.
FORMAT = "mfif-pcanet/1"


def orient(vectors: np.ndarray) -> np.ndarray:
    """Fix the sign of each eigenvector (row) deterministically.

    An eigenvector is defined up to its sign. The sign is chosen so that the first entry, in
    raster order, whose magnitude exceeds half of the row's largest magnitude is positive; the
    half-threshold keeps the rule stable when two entries are nearly equally large (as in
    antisymmetric, gradient-like filters).

    Parameters
    ----------
    vectors : ndarray
        ``n x d`` array, one eigenvector per row.

    Returns
    -------
    ndarray
        Copy of ``vectors`` with rows multiplied by +1 or -1.
    """
    v = np.array(vectors, dtype=np.float64, copy=True)
    for i, row in enumerate(v):
        big = np.abs(row) > 0.5 * np.abs(row).max()
        j = int(np.argmax(big))
        if row[j] < 0:
            v[i] = -row
    return v


def _leading_eigenvectors(cov: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` leading eigenvectors (rows, sign-fixed) and eigenvalues of a symmetric matrix."""
    cov = 0.5 * (cov + cov.T)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:n]
    return orient(vecs[:, order].T), vals[order]


def _sample_positions(shape: tuple[int, int], k: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of ``count`` random ``k x k`` windows inside an image of ``shape``."""
    h, w = shape
    ys = rng.integers(0, h - k + 1, count)
    xs = rng.integers(0, w - k + 1, count)
    return ys, xs


def _patches(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, k: int) -> np.ndarray:
    """Mean-removed ``k x k`` patches at the given corners, ``count x k^2`` float64."""
    win = np.lib.stride_tricks.sliding_window_view(img, (k, k))
    p = win[ys, xs].reshape(len(ys), k * k).astype(np.float64)
    p -= p.mean(axis=1, keepdims=True)
    return p


def _filter_bank(img: np.ndarray, bank: np.ndarray) -> list[np.ndarray]:
    """Responses of ``img`` to each ``k x k`` filter of ``bank`` (correlation, mirrored borders)."""
    return [cv2.filter2D(img, cv2.CV_32F, np.ascontiguousarray(f, dtype=np.float32),
                         borderType=cv2.BORDER_REFLECT_101) for f in bank]


def fit_filters(photos: Sequence[np.ndarray], *, size: int = 7, n1: int = 8, n2: int = 8,
                patches: int = 2000, seed: int = 0) -> dict:
    """Fit the two PCANet filter banks on gray photos.

    Parameters
    ----------
    photos : sequence of ndarray
        Gray ``HxW`` float images in [0, 1], each at least ``3 * size`` px on a side.
    size : int, keyword-only
        Filter side ``k`` (odd), default 7.
    n1, n2 : int, keyword-only
        Number of stage-1 and stage-2 filters (at most ``k^2 - 1``), default 8 each.
    patches : int, keyword-only
        Random patches drawn per photo for stage 1, and per photo *and* stage-1 response for
        stage 2.
    seed : int, keyword-only
        Seed of the patch positions.

    Returns
    -------
    dict
        ``stage1`` (``n1 x k x k`` float32), ``stage2`` (``n2 x k x k`` float32), ``eig1``,
        ``eig2`` (float64 leading eigenvalues of the patch covariances, per patch) and
        ``meta`` (a dict of the options).

    Raises
    ------
    UsageError
        Bad options, no photo, or a photo too small.

    Notes
    -----
    Stage-2 patches are taken only at least ``k`` px away from the border, so that the
    stage-1 responses they see are free of border effects.

    References
    ----------
    .. [1] T.-H. Chan, K. Jia, S. Gao, J. Lu, Z. Zeng and Y. Ma, "PCANet: A simple deep
       learning baseline for image classification?", IEEE TIP 24(12), 2015.
    """
    k = int(size)
    if k < 3 or k % 2 == 0:
        raise UsageError(f"filter size must be odd and >= 3, got {k}")
    if not (1 <= n1 < k * k and 1 <= n2 < k * k):
        raise UsageError(f"filter counts must be in 1..{k * k - 1}, got {n1} and {n2}")
    if patches < 1:
        raise UsageError(f"patches per photo must be >= 1, got {patches}")
    if not photos:
        raise UsageError("no photo to fit the PCANet filters on")
    rng = np.random.default_rng([int(seed), 0x9CA])
    d = k * k
    cov1 = np.zeros((d, d))
    total1 = 0
    grays = []
    for i, img in enumerate(photos):
        g = np.asarray(img, dtype=np.float32)
        if g.ndim != 2:
            raise UsageError(f"photo {i + 1}: expected a gray HxW image, got shape {g.shape}")
        if min(g.shape) < 3 * k:
            raise UsageError(f"photo {i + 1}: {g.shape[1]}x{g.shape[0]} is too small for {k}x{k} filters")
        ys, xs = _sample_positions(g.shape, k, patches, rng)
        x = _patches(g, ys, xs, k)
        cov1 += x.T @ x
        total1 += len(x)
        grays.append(g)
    w1, eig1 = _leading_eigenvectors(cov1 / total1, n1)
    bank1 = w1.reshape(n1, k, k)

    cov2 = np.zeros((d, d))
    total2 = 0
    for g in grays:
        inner = g[k:-k, k:-k]
        resp = _filter_bank(g, bank1)
        for r in resp:
            ys, xs = _sample_positions(inner.shape, k, patches, rng)
            x = _patches(r[k:-k, k:-k], ys, xs, k)
            cov2 += x.T @ x
            total2 += len(x)
    w2, eig2 = _leading_eigenvectors(cov2 / total2, n2)
    meta = {"format": FORMAT, "size": k, "n1": int(n1), "n2": int(n2), "patches_per_photo": int(patches),
            "seed": int(seed), "photos": len(grays), "stage1_patches": int(total1), "stage2_patches": int(total2),
            "application": "correlation (cv2.filter2D); each filter is a unit-norm, zero-sum PCA eigenvector"}
    return {"stage1": bank1.astype(np.float32), "stage2": w2.reshape(n2, k, k).astype(np.float32),
            "eig1": eig1, "eig2": eig2, "meta": meta}


def fit_from_directory(directory: str | os.PathLike, *, limit: int | None = None, **options) -> dict:
    """Read the photos of ``directory`` (gray, natural-sort order) and :func:`fit_filters` them.

    The result's ``meta`` also records the folder's name, the number of photos and a sha256
    over the photos' file names and bytes, so a filters file says which photos made it.
    """
    from .io import read_image, to_float, to_gray
    from .synth import list_photos

    paths = list_photos(directory)
    if limit is not None:
        paths = paths[: int(limit)]
    digest = hashlib.sha256()
    photos = []
    for p in paths:
        digest.update(p.name.encode() + b"\0")
        digest.update(p.read_bytes())
        img = to_float(read_image(p))
        photos.append(to_gray(img))
    out = fit_filters(photos, **options)
    out["meta"].update({"photo_dir": Path(directory).name, "photos_sha256": digest.hexdigest()})
    return out


def save_filters(path: str | os.PathLike, fitted: dict) -> Path:
    """Write fitted filters to an ``.npz`` file atomically (``meta`` stored as JSON text)."""
    p = Path(path)
    if p.suffix.lower() != ".npz":
        raise UsageError(f"{p}: the filters file must end in .npz")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory")
    with atomic_output(p) as f:
        np.savez(f, stage1=fitted["stage1"], stage2=fitted["stage2"], eig1=fitted["eig1"],
                 eig2=fitted["eig2"], meta=np.array(json.dumps(fitted["meta"], sort_keys=True)))
    return p


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m mfif.pcanet_fit PHOTOS_DIR OUT.npz [--seed 0] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m mfif.pcanet_fit",
        description="Fit the two-stage PCANet filter banks (Chan et al. 2015) used by the pcanet "
                    "fusion method on random patches of the (gray) photos in PHOTOS_DIR.")
    parser.add_argument("photos", metavar="PHOTOS_DIR", help="folder of sharp natural photos (never the test photos)")
    parser.add_argument("out", metavar="OUT.npz", help="output filters file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patch positions (default 0)")
    parser.add_argument("--size", type=int, default=7, help="filter side in px (odd, default 7)")
    parser.add_argument("--stage1", type=int, default=8, metavar="N1", help="stage-1 filters (default 8)")
    parser.add_argument("--stage2", type=int, default=8, metavar="N2", help="stage-2 filters (default 8)")
    parser.add_argument("--patches", type=int, default=2000, metavar="P",
                        help="random patches per photo (and per photo and stage-1 filter in stage 2; default 2000)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N photos")
    args = parser.parse_args(argv)
    try:
        fitted = fit_from_directory(args.photos, limit=args.limit, size=args.size, n1=args.stage1,
                                    n2=args.stage2, patches=args.patches, seed=args.seed)
        save_filters(args.out, fitted)
    except UsageError as exc:
        print(f"mfif.pcanet_fit: error: {exc}", file=sys.stderr)
        return 2
    m = fitted["meta"]
    print(f"fitted {m['n1']}+{m['n2']} filters of {m['size']}x{m['size']} on {m['photos']} photos "
          f"({m['stage1_patches']} + {m['stage2_patches']} patches, seed {m['seed']}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
