"""Data sets for benchmarking: folders of multi-focus cases, with optional ground truth.

A **data set** is a list of cases; a **case** is two or more sources of one scene, optionally
with the all-in-focus ground truth (``gt``) and the label mask saying which source is sharp
where (``mask``). :func:`scan_folder` reads an ``mfif synth`` output (its ``test`` split by
default), a folder of case folders (``A.png``, ``B.png`` ... or ``image1``, ``image2`` ... or
``x_1``, ``x_2`` ..., with optional ``gt.png`` and ``mask.png``), or a flat folder of pairs
named ``NAME_1.png``, ``NAME_2.png``. A case may also be described by the parameters that
synthesise it (:attr:`CaseSpec.synth`), made when it is loaded.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import UsageError

__all__ = ["CaseSpec", "CaseData", "Dataset", "scan_folder", "resolve_datasets", "load_case"]


@dataclass(frozen=True)
class CaseSpec:
    """How to load one case (picklable, so worker processes can load it themselves).

    Attributes
    ----------
    dataset, name : str
        Data set and case names (as in the report).
    sources : tuple of str
        Source files (``kind == "files"``).
    gt, mask : str or None
        Ground-truth image and label mask files.
    synth : dict or None
        For ``kind == "synth"``: ``photo`` (path), ``seed`` (list), ``size``, ``gray``,
        ``options`` -- the arguments of :func:`mfif.synth.make_case`.
    """

    dataset: str
    name: str
    sources: tuple = ()
    gt: str | None = None
    mask: str | None = None
    synth: dict | None = None

    @property
    def kind(self) -> str:
        return "synth" if self.synth is not None else "files"


@dataclass
class CaseData:
    """A loaded case: sources in their file dtype, optional ground truth and label mask."""

    sources: list
    gt: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass
class Dataset:
    """A named list of cases and where they came from."""

    name: str
    cases: list
    origin: str
    has_gt: bool = False
    total: int | None = None  # cases available before a limit

    def limited(self, n: int | None) -> "Dataset":
        if n is None or n >= len(self.cases):
            return self
        return Dataset(self.name, self.cases[: int(n)], self.origin, self.has_gt, total=len(self.cases))


_GT_STEMS = ("gt", "groundtruth", "ground_truth", "reference", "ref")


_MASK_STEMS = ("mask", "label", "labels")


_SKIP_STEMS = set(_GT_STEMS) | set(_MASK_STEMS) | {"fused", "decision", "depth", "expected"}


_INDEXED = re.compile(r"^(?P<prefix>.*?)[_\-. ]?(?P<index>\d+)$")


def _images(folder: Path) -> list[Path]:
    from ..io import IMAGE_EXTENSIONS, natural_key

    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith(".")), key=natural_key)


def _first_stem(files: Iterable[Path], stems: Sequence[str]) -> Path | None:
    by = {p.stem.lower(): p for p in files}
    for s in stems:
        if s in by:
            return by[s]
    return None


def _case_from_folder(folder: Path, dataset: str, name: str) -> CaseSpec | None:
    files = _images(folder)
    sources = [p for p in files if p.stem.lower() not in _SKIP_STEMS]
    if len(sources) < 2:
        return None
    gt = _first_stem(files, _GT_STEMS)
    mask = _first_stem(files, _MASK_STEMS)
    return CaseSpec(dataset, name, tuple(str(p) for p in sources), str(gt) if gt else None,
                    str(mask) if mask else None)


def _flat_cases(folder: Path, dataset: str) -> list[CaseSpec]:
    """Pairs in one folder named ``NAME_1.ext``, ``NAME_2.ext`` ... (optional ``NAME_gt``, ``NAME_mask``)."""
    from ..io import natural_key

    groups: dict[str, list[Path]] = {}
    extra: dict[str, dict[str, Path]] = {}
    for p in _images(folder):
        stem = p.stem
        low = stem.lower()
        for tag, stems in (("gt", _GT_STEMS), ("mask", _MASK_STEMS)):
            for s in stems:
                if low.endswith("_" + s):
                    extra.setdefault(stem[: -len(s) - 1], {})[tag] = p
                    break
            else:
                continue
            break
        else:
            m = _INDEXED.match(stem)
            if m and m.group("prefix"):
                groups.setdefault(m.group("prefix"), []).append(p)
    cases = []
    for prefix in sorted(groups, key=natural_key):
        srcs = sorted(groups[prefix], key=natural_key)
        if len(srcs) < 2:
            continue
        e = extra.get(prefix, {})
        cases.append(CaseSpec(dataset, prefix, tuple(str(p) for p in srcs),
                              str(e["gt"]) if "gt" in e else None, str(e["mask"]) if "mask" in e else None))
    return cases


def scan_folder(path: str | os.PathLike, *, name: str | None = None, split: str = "test") -> Dataset:
    """Read the cases of a folder.

    Layouts recognised, in order:

    1. an ``mfif synth`` output (``manifest.json``): the cases of its ``split`` sub-folder;
    2. a folder of case folders, each holding two or more sources (every image but
       ``gt``/``reference`` and ``mask``/``label``, naturally sorted: ``A, B``, ``image1,
       image2``, ``x_1, x_2``), optionally ``gt.png`` and ``mask.png``;
    3. one case folder itself (sources and optional ``gt``/``mask`` directly inside);
    4. a flat folder of pairs ``NAME_1.ext, NAME_2.ext`` (optional ``NAME_gt``, ``NAME_mask``).

    Parameters
    ----------
    path : path-like
        The folder.
    name : str, optional
        Data set name (default: the folder's name).
    split : str, keyword-only
        Split of an ``mfif synth`` output.

    Returns
    -------
    Dataset

    Raises
    ------
    UsageError
        Missing folder, missing split, or no case found.
    """
    from ..io import natural_key

    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"{root}: data set folder not found")
    ds_name = name or root.name
    origin = str(root)
    if (root / "manifest.json").is_file():
        sub = root / split
        if not sub.is_dir():
            raise UsageError(f"{root}: synthetic set has no {split!r} split")
        root, origin = sub, f"{root} ({split} split)"
    subdirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=natural_key)
    cases = [c for c in (_case_from_folder(d, ds_name, d.name) for d in subdirs) if c is not None]
    if not cases:
        flat = _flat_cases(root, ds_name)
        single = _case_from_folder(root, ds_name, root.name)
        if single is not None and (single.gt or single.mask or not flat):
            cases = [single]
        else:
            cases = flat
    if not cases:
        raise UsageError(f"{root}: no case found (expected case folders with two or more sources, "
                         "or pairs named NAME_1.png, NAME_2.png)")
    return Dataset(ds_name, cases, origin, has_gt=any(c.gt for c in cases))


def resolve_datasets(specs: Sequence[str], *, named: Mapping[str, Callable[[], Dataset]] | None = None,
                     skip_missing: bool = False, warn: Callable[[str], None] | None = None) -> list[Dataset]:
    """Data sets from folders (and named sets); ``SPEC:N`` keeps the first ``N`` cases.

    A spec that names an existing folder is scanned (:func:`scan_folder`). Otherwise it must be
    a key of ``named``, whose value builds that data set (the project's benchmarks name the
    shared data sets this way). With ``skip_missing``, a named set whose data is absent (its
    builder raises :class:`UsageError`) is skipped and reported through ``warn``.
    """
    named = dict(named or {})
    out: list[Dataset] = []
    names = set()
    for spec in specs:
        spec = str(spec).strip()
        if not spec:
            continue
        limit = None
        m = re.match(r"^(.*):(\d+)$", spec)
        if m and not Path(spec).exists():
            spec, limit = m.group(1), int(m.group(2))
        p = Path(spec)
        if p.is_dir():
            ds = scan_folder(p)
        elif spec in named:
            try:
                ds = named[spec]()
            except UsageError as exc:
                if not skip_missing:
                    raise
                if warn:
                    warn(f"skipping {exc}")
                continue
        elif any(c in spec for c in "/\\.") or p.suffix:
            raise UsageError(f"{spec}: data set folder not found")
        else:
            raise UsageError(f"{spec}: no such data set folder" + (f" (named sets: {', '.join(named)})" if named else ""))
        base, k = ds.name, 2
        while ds.name in names:
            ds.name = f"{base}-{k}"
            k += 1
        ds.cases = [CaseSpec(ds.name, c.name, c.sources, c.gt, c.mask, c.synth) for c in ds.cases]
        names.add(ds.name)
        out.append(ds.limited(limit))
    return out


def load_case(spec: CaseSpec) -> CaseData:
    """Load (or synthesise) one case: sources in their file dtype, ground truth, label mask."""
    from ..io import check_sources, read_image

    if spec.synth is not None:
        from ..io import from_float, to_float
        from ..synth import make_case

        s = spec.synth
        rng = np.random.default_rng(s["seed"])
        photo = to_float(read_image(s["photo"]))
        opts = {k: (tuple(v) if isinstance(v, list) else v) for k, v in s["options"].items()}
        case = make_case(photo, n_sources=2, rng=rng, size=s["size"], gray=s["gray"], **opts)
        # exactly what mfif synth writes and bench would read back: 8-bit PNG data
        return CaseData([from_float(x) for x in case.sources], from_float(case.gt), case.mask.astype(np.uint8))
    sources = [read_image(p) for p in spec.sources]
    check_sources(sources, list(spec.sources))
    gt = read_image(spec.gt) if spec.gt else None
    mask = None
    if spec.mask:
        from ..commands.eval import read_labels

        mask = read_labels(spec.mask, len(sources), "mask")
    h, w = sources[0].shape[:2]
    for what, img in (("gt", gt), ("mask", mask)):
        if img is not None and img.shape[:2] != (h, w):
            raise UsageError(f"case {spec.dataset}/{spec.name}: {what} is {img.shape[1]}x{img.shape[0]}, "
                             f"sources are {w}x{h}")
    return CaseData(sources, gt, mask)
