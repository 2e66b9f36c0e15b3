"""Photos for synthesis: listing, loading, and splitting them whole between train, val and test."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UsageError
from ..io import IMAGE_EXTENSIONS, natural_key, read_image, to_float, to_gray


def list_photos(directory: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``directory``, naturally sorted."""
    p = Path(directory)
    if not p.is_dir():
        raise UsageError(f"{p}: not a directory")
    files = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise UsageError(f"{p}: directory holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(files, key=natural_key)


def load_photos(directory: str | os.PathLike, *, gray: bool = False, limit: int | None = None) -> list[np.ndarray]:
    """Read the photos of a directory as float32 in [0, 1] (naturally sorted).

    Parameters
    ----------
    directory : path-like
        Folder of images (PNG, JPEG, BMP, TIFF).
    gray : bool, keyword-only
        Convert to gray (BT.601 luma).
    limit : int, optional, keyword-only
        Read only the first ``limit`` photos.
    """
    paths = list_photos(directory)
    if limit is not None:
        paths = paths[: int(limit)]
    out = []
    for p in paths:
        f = to_float(read_image(p))
        if f.ndim == 3 and f.shape[2] == 4:
            f = f[..., :3]
        out.append(to_gray(f) if gray else f)
    return out


def _largest_remainder(total: int, fractions: Sequence[float]) -> list[int]:
    fr = np.asarray(fractions, float)
    fr = fr / fr.sum()
    raw = fr * total
    base = np.floor(raw).astype(int)
    rest = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return [int(x) for x in base]


def split_by_photo(names: Sequence[str], *, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                   splits: Sequence[str] = ("train", "val", "test")) -> dict[str, list[str]]:
    """Assign whole photos to splits, so no photo feeds two splits.

    Parameters
    ----------
    names : sequence of str
        Photo identifiers (file names).
    seed : int, keyword-only
        Shuffle seed; the assignment depends only on the seed and the set of names.
    fractions : sequence of float, keyword-only
        Share of photos per split (normalised; largest-remainder rounding).
    splits : sequence of str, keyword-only
        Split names, same length as ``fractions``.

    Returns
    -------
    dict
        ``{split: [names...]}``, each list naturally sorted.
    """
    if len(fractions) != len(splits):
        raise UsageError("fractions and splits must have the same length")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise UsageError("split fractions must be >= 0 and not all 0")
    uniq = sorted(set(map(str, names)), key=natural_key)
    perm = np.random.default_rng([int(seed), 0x5B117]).permutation(len(uniq))
    counts = _largest_remainder(len(uniq), fractions)
    out, i = {}, 0
    for s, c in zip(splits, counts):
        out[s] = sorted((uniq[j] for j in perm[i:i + c]), key=natural_key)
        i += c
    return out
