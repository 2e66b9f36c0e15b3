"""The benchmark engine behind ``mfif bench``: methods x data sets x metrics.

A **data set** is a list of cases; a **case** is two or more sources of one scene, optionally
with the all-in-focus ground truth (``gt``) and the label mask saying which source is sharp
where (``mask``). Data sets come from

* folders (:func:`scan_folder`): an ``mfif synth`` output (its ``test`` split by default), a
  folder of case folders (``A.png``, ``B.png`` ... or ``image1``, ``image2`` ... or
  ``x_1``, ``x_2`` ..., with optional ``gt.png`` and ``mask.png``), or a flat folder of pairs
  named ``NAME_1.png``, ``NAME_2.png`` (the classic pairs);
* the built-in names of :data:`BUILTIN_DATASETS` (:func:`builtin_dataset`): the paper-shaped
  synthetic test splits with ground truth, gray and colour, and the real pairs of
  ``../shared/data/real_pairs``. A synthetic split that has not been built with ``mfif
  synth`` is synthesised on the fly from the test photos, case for case identical to what
  ``make synth-paper`` / ``make synth-paper-color`` would write (same seeds).

For every method and case, :func:`run_bench` fuses the sources with :func:`mfif.fuse`, times
the call, records its peak memory, quantises the result to the sources' bit depth (as writing
it would) and measures it with :func:`mfif.metrics.evaluate` (through
:class:`mfif.metrics.CaseMetrics`, prepared once per case) plus two measures defined here
(:func:`sharpness_ratio`, :func:`artifact_rate`). A method that fails is reported, never fatal.
:func:`write_report` writes ``results.csv`` (one row per case and method), ``summary.csv``
(mean and standard deviation per data set and method), ``summary.md`` (tables, the paper's
Table 2 beside the measured one, and the check of the paper's ordering), bar charts and a
picture grid.

Timing and memory
-----------------
* ``seconds``: wall-clock time of one :func:`mfif.fuse` call (conversion to float included),
  after an untimed warm-up call per method and process on a small crop (imports, model and
  filter loading are not counted). ``s_per_mp`` divides it by the megapixels of one source.
* ``peak_mb``: peak resident-set growth during that call, in MiB: the kernel's high-water
  mark ``VmHWM`` is reset through ``/proc/self/clear_refs`` just before the call and read
  after it, minus the resident set just before (Linux; it sees every allocation, C/C++
  libraries and PyTorch included). Just before the call glibc's free heap memory is returned
  to the system (``malloc_trim``), so memory freed earlier in the process cannot hide the
  call's need (see :func:`memory_probe`). Where the reset is unavailable,
  the peak of :mod:`tracemalloc` is used instead (Python and NumPy allocations only);
  ``memory_probe`` in the report says which.
* Per case, the fusions run first, one at a time, with nothing else running in the process
  (``jobs == 1``: OpenCV and PyTorch use all cores); the metrics of all results follow,
  untimed, in up to four threads (NumPy, SciPy and OpenCV release the GIL).
* With ``jobs > 1`` cases run in that many worker processes limited to one thread each
  (OpenCV, PyTorch, metrics); times are then single-thread times on a shared machine.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .errors import UsageError
from .io import write_text
from .sysinfo import PeakMemory, memory_probe

__all__ = [
    "BUILTIN_DATASETS",
    "PAPER_TABLE2",
    "TABLE2_MAPPING",
    "CSV_COLUMNS",
    "CaseSpec",
    "CaseData",
    "Dataset",
    "BenchResult",
    "find_data_root",
    "find_synth_root",
    "scan_folder",
    "builtin_dataset",
    "resolve_datasets",
    "load_case",
    "sharpness_ratio",
    "artifact_rate",
    "run_bench",
    "read_results",
    "summarize",
    "ordering_check",
    "markdown_report",
    "write_report",
    "memory_probe",
    "bar_charts",
    "picture_grid",
    "zoom_window",
]

# --------------------------------------------------------------------------------------------
# constants
# --------------------------------------------------------------------------------------------

#: Built-in data sets: name -> description. ``paper-*`` have ground truth.
BUILTIN_DATASETS: dict[str, str] = {
    "paper-gray": "paper-shaped synthetic test split: 904 gray 512x512 pairs with ground truth, from the "
                  "200 BSDS500 test photos (mfif synth ... --gray --size 512 --seed 2025)",
    "paper-color": "the same recipe in colour (904 RGB 512x512 pairs with ground truth)",
    "classic": "18 classic real pairs (6 gray, 12 colour), no ground truth",
    "mffw2": "MFFW: 13 real colour pairs with strong defocus spread, no ground truth",
    "mffw3": "MFFW: 6 real stacks of 3 to 6 sources, no ground truth",
}

#: Where the real built-ins live under the shared data root.
_REAL_FOLDERS = {"classic": "real_pairs/classic", "mffw2": "real_pairs/mffw2", "mffw3": "real_pairs/mffw3_multi"}

#: The recipe of ``make synth-paper`` (Makefile): seed, size, split counts; the test split is
#: split index 2 of ``mfif synth``.
PAPER_RECIPE = {"seed": 2025, "size": 512, "test_count": 904, "split_index": 2, "test_dir": "test_images"}

#: The paper's Table 2 (Ismail & Ghazali 2025), as far as the project specification gives it:
#: SSIM to the reference. The five other columns are rated in words in the paper.
PAPER_TABLE2 = {"sff": {"ssim": 0.92}, "pcanet": {"ssim": 0.87}, "dwt": {"ssim": 0.79}}

#: The paper's qualitative columns, each with the measured quantity that stands for it.
TABLE2_MAPPING: list[tuple[str, tuple[str, ...], str]] = [
    ("Perceptual clarity", ("qcb",),
     "Q_CB (Chen & Blum 2009): contrast preserved from the sources as seen through a model of the human "
     "contrast-sensitivity function; the only metric of the set built on a model of perception"),
    ("Edge preservation", ("qabf",),
     "Q^AB/F (Xydeas & Petrovic 2000): share of the sources' edge strength and orientation kept in the fused image"),
    ("Blur reduction", ("sharpness",),
     "gradient-energy ratio G(F)/G(GT) in %: how much of the true image's detail the fused image recovers; "
     "100 % = all blur removed, below = residual blur, above = ringing or over-sharpening"),
    ("Focus-boundary accuracy", ("psnr_band", "boundary_f"),
     "PSNR to the ground truth within 10 px of the true focus boundary (every method), and the boundary F-score "
     "of the decision map (tolerance 2 px; decision-map methods only)"),
    ("Artifact presence", ("artifacts",),
     "% of pixels whose gray value differs from the ground truth by more than 10 levels of 255: halos, seams, "
     "ringing and patches taken from the blurred source all count; lower is better"),
]

#: Threshold of :func:`artifact_rate`, gray levels on the 0..255 scale.
ARTIFACT_THRESHOLD = 10.0

_METRIC_ORDER = ("ssim", "psnr", "ssim_band", "psnr_band", "accuracy", "iou", "boundary_f", "qabf", "qmi", "qy",
                 "qcb", "ssim_avg", "sharpness", "artifacts")

#: Columns of ``results.csv``.
CSV_COLUMNS = ("dataset", "case", "method", "status", "error", "width", "height", "n_sources", "megapixels",
               "seconds", "s_per_mp", "peak_mb") + _METRIC_ORDER

#: Labels of the metrics in tables and plots, and whether larger is better.
LABELS = {
    "ssim": ("SSIM", True), "psnr": ("PSNR dB", True), "ssim_band": ("SSIM band", True),
    "psnr_band": ("PSNR band dB", True), "accuracy": ("accuracy", True), "iou": ("IoU", True),
    "boundary_f": ("boundary F", True), "qabf": ("Q^AB/F", True), "qmi": ("Q_MI", True), "qy": ("Q_Y", True),
    "qcb": ("Q_CB", True), "ssim_avg": ("SSIM avg", True), "sharpness": ("sharpness %", None),
    "artifacts": ("artifacts %", False), "s_per_mp": ("s/MP", False), "peak_mb": ("peak MiB", False),
}


# --------------------------------------------------------------------------------------------
# data sets
# --------------------------------------------------------------------------------------------
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


def _repo_root() -> Path | None:
    """The source checkout this module lives in (``src`` layout), if any."""
    here = Path(__file__).resolve()
    root = here.parents[2] if len(here.parents) > 2 else None
    if root is not None and (root / "pyproject.toml").is_file() and (root / "src" / "mfif").is_dir():
        return root
    return None


def find_data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The shared data folder (``test_images``, ``real_pairs``...).

    Tried in order: ``explicit``; ``$MFIF_DATA``; ``../shared/data`` from the current
    directory; ``../shared/data`` beside the source checkout. Returns None if none exists
    (the installed package never needs it).
    """
    if explicit:
        p = Path(explicit)
        if not p.is_dir():
            raise UsageError(f"{p}: data folder not found")
        return p
    cands = []
    if os.environ.get("MFIF_DATA"):
        cands.append(Path(os.environ["MFIF_DATA"]))
    cands.append(Path.cwd().parent / "shared" / "data")
    root = _repo_root()
    if root is not None:
        cands.append(root.parent / "shared" / "data")
    for c in cands:
        if c.is_dir():
            return c
    return None


def find_synth_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """Folder holding built synthetic sets (``paper-gray/``...): ``explicit``, ``./data-synth``
    or ``data-synth`` in the source checkout; None if none exists."""
    if explicit:
        return Path(explicit)
    cands = [Path.cwd() / "data-synth"]
    root = _repo_root()
    if root is not None:
        cands.append(root / "data-synth")
    for c in cands:
        if c.is_dir():
            return c
    return None


_GT_STEMS = ("gt", "groundtruth", "ground_truth", "reference", "ref")
_MASK_STEMS = ("mask", "label", "labels")
_SKIP_STEMS = set(_GT_STEMS) | set(_MASK_STEMS) | {"fused", "decision", "depth", "expected"}
_INDEXED = re.compile(r"^(?P<prefix>.*?)[_\-. ]?(?P<index>\d+)$")


def _images(folder: Path) -> list[Path]:
    from .io import IMAGE_EXTENSIONS, natural_key

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
    from .io import natural_key

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
    from .io import natural_key

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


def _paper_synth_cases(name: str, test_dir: Path, gray: bool, count: int) -> list[CaseSpec]:
    """The test split of ``make synth-paper(-color)``, as specs synthesised on demand.

    Mirrors ``mfif synth``: photo keys ``test_images/<file>``, the photo assignment drawn from
    ``default_rng([seed, 2, 0x9A7])``, case ``i`` from ``default_rng([seed, 2, i])``.
    """
    from .commands.synth import _assign, _photo_table
    from .synth import DEFAULT_OPTIONS

    table = _photo_table([str(test_dir)])
    keys = list(table)
    seed, si = PAPER_RECIPE["seed"], PAPER_RECIPE["split_index"]
    photos = _assign(keys, count, np.random.default_rng([seed, si, 0x9A7]))
    width = max(4, len(str(count - 1)))
    options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in DEFAULT_OPTIONS.items()}
    return [CaseSpec(name, f"case_{i:0{width}d}",
                     synth={"photo": str(table[key]), "seed": [seed, si, i], "size": PAPER_RECIPE["size"],
                            "gray": gray, "options": options})
            for i, key in enumerate(photos)]


def builtin_dataset(name: str, *, data_root: Path | None = None, synth_root: Path | None = None) -> Dataset:
    """One of :data:`BUILTIN_DATASETS`.

    ``paper-gray`` / ``paper-color`` read ``SYNTH_ROOT/paper-gray`` (``-color``) when built
    (its ``test`` split), otherwise synthesise the same cases on the fly from
    ``DATA_ROOT/test_images``. The real sets read ``DATA_ROOT/real_pairs/...``.

    Raises
    ------
    UsageError
        Unknown name, or the data it needs is not there (the message says what is missing).
    """
    if name not in BUILTIN_DATASETS:
        raise UsageError(f"unknown data set {name!r}; built-in ones: {', '.join(BUILTIN_DATASETS)} "
                         "(or give a folder)")
    if name.startswith("paper-"):
        if synth_root is not None and (synth_root / name / "manifest.json").is_file():
            ds = scan_folder(synth_root / name, name=name, split="test")
            if len(ds.cases) == PAPER_RECIPE["test_count"]:
                return ds
        if data_root is None or not (data_root / PAPER_RECIPE["test_dir"]).is_dir():
            raise UsageError(f"data set {name}: not built (make {'synth-paper' if name == 'paper-gray' else 'synth-paper-color'}) "
                             f"and no test photos to synthesise it from ({_where(data_root, PAPER_RECIPE['test_dir'])})")
        test_dir = data_root / PAPER_RECIPE["test_dir"]
        cases = _paper_synth_cases(name, test_dir, name == "paper-gray", PAPER_RECIPE["test_count"])
        return Dataset(name, cases, f"synthesised on the fly from {test_dir} (same cases as make "
                                    f"{'synth-paper' if name == 'paper-gray' else 'synth-paper-color'})", has_gt=True)
    sub = _REAL_FOLDERS[name]
    if data_root is None or not (data_root / sub).is_dir():
        raise UsageError(f"data set {name}: {_where(data_root, sub)} not found")
    return scan_folder(data_root / sub, name=name)


def _where(root: Path | None, sub: str) -> str:
    if root is None:
        return f"no shared data folder (../shared/data or $MFIF_DATA) holding {sub}/"
    return str(root / sub)


def resolve_datasets(specs: Sequence[str], *, data_root: Path | None = None, synth_root: Path | None = None,
                     skip_missing: bool = False, warn: Callable[[str], None] | None = None) -> list[Dataset]:
    """Data sets from names and folders; ``NAME:N`` keeps the first ``N`` cases.

    A spec that names an existing folder is scanned (:func:`scan_folder`); otherwise it must
    be a built-in name. With ``skip_missing``, built-ins whose data is absent are skipped (and
    reported through ``warn``) instead of raising.
    """
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
        elif spec in BUILTIN_DATASETS:
            try:
                ds = builtin_dataset(spec, data_root=data_root, synth_root=synth_root)
            except UsageError as exc:
                if not skip_missing:
                    raise
                if warn:
                    warn(f"skipping {exc}")
                continue
        elif any(c in spec for c in "/\\.") or p.suffix:
            raise UsageError(f"{spec}: data set folder not found")
        else:
            raise UsageError(f"unknown data set {spec!r}; built-in ones: {', '.join(BUILTIN_DATASETS)} "
                             "(or give a folder)")
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
    from .io import check_sources, read_image

    if spec.synth is not None:
        from .io import from_float, to_float
        from .synth import make_case

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
        from .commands.eval import read_labels

        mask = read_labels(spec.mask, len(sources), "mask")
    h, w = sources[0].shape[:2]
    for what, img in (("gt", gt), ("mask", mask)):
        if img is not None and img.shape[:2] != (h, w):
            raise UsageError(f"case {spec.dataset}/{spec.name}: {what} is {img.shape[1]}x{img.shape[0]}, "
                             f"sources are {w}x{h}")
    return CaseData(sources, gt, mask)


# --------------------------------------------------------------------------------------------
# measures beyond mfif.metrics
# --------------------------------------------------------------------------------------------
def _gradient_energy(g: np.ndarray) -> float:
    import cv2

    g = np.asarray(g, dtype=np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    return float(np.mean(gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2))


def sharpness_ratio(fused, reference) -> float:
    """Blur reduction: the fused image's gradient energy relative to the ground truth's, in %.

    ``100 * G(F) / G(R)`` with ``G`` the mean squared Sobel gradient magnitude of the gray
    image (0..255 scale, :func:`mfif.metrics.as_gray255`). 100 % means the fused image is as
    detailed as the all-in-focus truth; less means residual blur (a region taken from the
    defocused source, or averaged); more means ringing or over-shooting edges.

    Returns NaN when the reference has no gradient.
    """
    from .metrics import as_gray255

    gr = _gradient_energy(as_gray255(reference))
    if gr <= 0:
        return float("nan")
    return _sharpness(as_gray255(fused), gr)


def _sharpness(fused_gray: np.ndarray, reference_energy: float) -> float:
    """:func:`sharpness_ratio` from the gray fused image and the reference's gradient energy."""
    if reference_energy <= 0:
        return float("nan")
    return 100.0 * _gradient_energy(fused_gray) / reference_energy


def artifact_rate(fused, reference, *, threshold: float = ARTIFACT_THRESHOLD) -> float:
    """Artifact presence: % of pixels whose gray value differs from the truth by > ``threshold``.

    On the gray 0..255 scale (:func:`mfif.metrics.as_gray255`); 10 levels by default, well
    above the quantisation and synthesis noise of the synthetic sets, and about where such an
    error becomes visible next to sharp detail. Halos, seams, ringing and regions taken from
    the blurred source all count.
    """
    from .metrics import as_gray255

    f, r = as_gray255(fused), as_gray255(reference)
    if f.shape != r.shape:
        raise UsageError(f"fused image is {f.shape[1]}x{f.shape[0]} but reference is {r.shape[1]}x{r.shape[0]}")
    return _artifacts(f, r, threshold)


def _artifacts(fused_gray: np.ndarray, reference_gray: np.ndarray,
               threshold: float = ARTIFACT_THRESHOLD) -> float:
    """:func:`artifact_rate` of two gray 0..255 images of the same size."""
    return 100.0 * float(np.mean(np.abs(fused_gray - reference_gray) > threshold))


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
@dataclass
class BenchResult:
    """Everything a benchmark run produced.

    Attributes
    ----------
    rows : list of dict
        One row per (data set, case, method), keys :data:`CSV_COLUMNS` (missing metrics are
        absent).
    datasets : list of Dataset
        The data sets, in order (after limits).
    methods : list of str
        Methods, in order.
    grid : dict or None
        The picture-grid case: ``dataset``, ``case``, ``sources``, ``gt``, ``mask`` and
        ``fused`` (method -> image, the sources' dtype).
    info : dict
        Run details: ``seconds`` (wall time), ``jobs``, ``memory_probe``, ``params``,
        ``failures`` (method -> first error message).
    """

    rows: list
    datasets: list
    methods: list
    grid: dict | None = None
    info: dict = field(default_factory=dict)


_WARMED: dict[str, str | None] = {}  # per process: method -> None (ok) or its warm-up error


def _error_text(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _warm(method: str, sources: list, params: dict) -> str | None:
    """Run ``method`` once, untimed, on a central crop; return None or the error text."""
    if method in _WARMED:
        return _WARMED[method]
    from .api import fuse

    h, w = sources[0].shape[:2]
    s = min(h, w, 128)
    y, x = (h - s) // 2, (w - s) // 2
    crop = [np.ascontiguousarray(src[y:y + s, x:x + s]) for src in sources]
    try:
        fuse(crop, method=method, **params)
        err = None
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not fatal
        err = _error_text(exc)
    _WARMED[method] = err
    return err


def _fuse_timed(method: str, data: CaseData, params: dict) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """Fuse one case with one method, timed and memory-probed.

    Returns the row fields, the fused image quantised to the sources' dtype (as writing it
    would) and the decision map, or ``None`` twice on failure (the row says why).
    """
    from .api import fuse
    from .io import from_float

    srcs = data.sources
    h, w = srcs[0].shape[:2]
    mp = h * w / 1e6
    row: dict = {"width": w, "height": h, "n_sources": len(srcs), "megapixels": round(mp, 6)}
    err = _warm(method, srcs, params)
    if err is not None:
        row.update(status="failed", error=err)
        return row, None, None
    try:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            res = fuse(srcs, method=method, **params)
            dt = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001
        row.update(status="error", error=_error_text(exc))
        return row, None, None
    row.update(seconds=dt, s_per_mp=dt / mp, peak_mb=mem.peak_mb)
    dtype = srcs[0].dtype
    fused = from_float(res.fused, dtype) if dtype in (np.uint8, np.uint16) else res.fused.astype(np.float32)
    return row, fused, res.decision


@dataclass
class _CaseScorer:
    """What the metrics of one case need from its sources, ground truth and mask, computed
    once for all its fused images: :class:`mfif.metrics.CaseMetrics` and the gray ground truth
    with its gradient energy (for :func:`sharpness_ratio` and :func:`artifact_rate`)."""

    metrics: object  # mfif.metrics.CaseMetrics
    gt_gray: np.ndarray | None
    gt_energy: float | None


def _prepare_metrics(data: CaseData) -> _CaseScorer | None:
    """The :class:`_CaseScorer` of a case, or None when it cannot be built (bad inputs): then
    :func:`_metrics` measures each fused image on its own and reports the error per method."""
    from .metrics import CaseMetrics, as_gray255

    try:
        cm = CaseMetrics(data.sources, reference=data.gt, mask=data.mask)
        g = as_gray255(data.gt) if data.gt is not None else None
        return _CaseScorer(cm, g, _gradient_energy(g) if g is not None else None)
    except Exception:  # noqa: BLE001 - the per-image path reports it
        return None


def _metrics(fused: np.ndarray, decision: np.ndarray | None, data: CaseData,
             scorer: _CaseScorer | None = None) -> dict:
    """Every metric of one fused image (``status``, metric values or ``error``).

    ``scorer`` (from :func:`_prepare_metrics` on ``data``) holds the case's source-side terms;
    the values are the same with or without it.
    """
    from .metrics import as_gray255, evaluate

    try:
        dec = decision if (data.mask is not None and decision is not None) else None
        if scorer is None:
            vals = evaluate(fused, data.sources, reference=data.gt, mask=data.mask, decision=dec)
            if data.gt is not None:
                vals["sharpness"] = sharpness_ratio(fused, data.gt)
                vals["artifacts"] = artifact_rate(fused, data.gt)
        else:
            vals = scorer.metrics.evaluate(fused, decision=dec)
            if data.gt is not None:
                fg = as_gray255(fused)
                vals["sharpness"] = _sharpness(fg, scorer.gt_energy)
                vals["artifacts"] = _artifacts(fg, scorer.gt_gray)
        out = {k: float(v) for k, v in vals.items() if v is not None and not math.isnan(v)}
        out["status"] = "ok"
        return out
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "error": "metrics: " + _error_text(exc)}


def _method_params(methods: Sequence[str], params: dict | None, single_thread: bool) -> dict[str, dict]:
    from .methods import get_method, parse_params

    out = {}
    for m in methods:
        meth = get_method(m)
        raw = dict((params or {}).get(m, {}))
        if single_thread and any(p.name == "threads" for p in meth.params):
            raw.setdefault("threads", 1)
        out[m] = parse_params(meth, raw)
    return out


def _run_case(spec: CaseSpec, methods: Sequence[str], params: dict, keep: bool,
              metric_threads: int = 1) -> tuple[list, dict | None]:
    """All methods on one case (runs in the main process or a worker).

    The fusions run first, one at a time (timed); then the metrics of all results, in
    ``metric_threads`` threads, against the case's source-side terms prepared once
    (:func:`_prepare_metrics`).
    """
    base = {"dataset": spec.dataset, "case": spec.name}
    memory_probe()
    try:
        data = load_case(spec)
    except Exception as exc:  # noqa: BLE001
        err = "loading: " + _error_text(exc)
        return [{**base, "method": m, "status": "error", "error": err} for m in methods], None
    # 1. every fusion, one after the other, each timed with nothing else running here
    rows, fused, decisions = [], {}, {}
    for m in methods:
        row, img, dec = _fuse_timed(m, data, params[m])
        rows.append({**base, "method": m, **row})
        if img is not None:
            fused[m], decisions[m] = img, dec
    # 2. the metrics, untimed, in threads (NumPy, SciPy and OpenCV release the GIL); the
    #    source-side terms once per case, shared read-only by every method's evaluation
    todo = [m for m in methods if m in fused]
    scorer = _prepare_metrics(data) if todo else None
    if metric_threads > 1 and len(todo) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(metric_threads, len(todo))) as ex:
            vals = dict(zip(todo, ex.map(lambda m: _metrics(fused[m], decisions[m], data, scorer), todo)))
    else:
        vals = {m: _metrics(fused[m], decisions[m], data, scorer) for m in todo}
    for row in rows:
        if row["method"] in vals:
            row.update(vals[row["method"]])
    if not keep:
        fused = {}
    grid = None
    if keep:
        grid = {"dataset": spec.dataset, "case": spec.name, "sources": data.sources, "gt": data.gt,
                "mask": data.mask, "fused": fused}
    return rows, grid


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


def _pick_grid_case(datasets: Sequence[Dataset], grid_case: str | None) -> tuple[str, str] | None:
    if grid_case:
        if "/" not in grid_case:
            raise UsageError(f"--grid-case must be DATASET/CASE, got {grid_case!r}")
        d, c = grid_case.split("/", 1)
        for ds in datasets:
            if ds.name == d and any(cs.name == c for cs in ds.cases):
                return d, c
        raise UsageError(f"--grid-case {grid_case}: no such case in the selected data sets")
    for ds in datasets:
        for cs in ds.cases:
            if cs.synth is not None or (cs.gt and cs.mask):
                return ds.name, cs.name
    for ds in datasets:
        if ds.cases:
            return ds.name, ds.cases[0].name
    return None


def read_results(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``results.csv`` written by :func:`write_report`, with numbers as numbers.

    ``path`` may be the CSV file or the output folder holding it.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "results.csv"
    if not p.is_file():
        raise UsageError(f"{p}: no results.csv to reuse")
    ints = {"width", "height", "n_sources"}
    floats = {"megapixels", "seconds", "s_per_mp", "peak_mb", *_METRIC_ORDER}
    rows = []
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"dataset", "case", "method", "status"} - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"{p}: not an mfif bench results.csv (no {', '.join(sorted(missing))} column)")
        for r in reader:
            row: dict = {}
            for k, v in r.items():
                if v in ("", None):
                    continue
                try:
                    row[k] = int(v) if k in ints else float(v) if k in floats else v
                except ValueError:
                    raise UsageError(f"{p}: bad value {v!r} in column {k}") from None
            rows.append(row)
    return rows


def run_bench(datasets: Sequence[Dataset], methods: Sequence[str] | None = None, *, params: dict | None = None,
              jobs: int = 1, grid_case: str | None = None, reuse: Sequence[dict] | None = None,
              progress: Callable[[int, int, str], None] | None = None) -> BenchResult:
    """Run every method on every case of every data set.

    Parameters
    ----------
    datasets : sequence of Dataset
        From :func:`resolve_datasets` / :func:`scan_folder` / :func:`builtin_dataset`.
    methods : sequence of str, optional
        Registered method names (default: all of :data:`mfif.methods.METHODS`).
    params : dict, optional
        Method options, ``{method: {option: value}}``.
    jobs : int, keyword-only
        Worker processes (1: run here, fusions with all threads, metrics in threads).
    grid_case : str, optional, keyword-only
        ``DATASET/CASE`` kept for the picture grid (default: the first case with ground truth).
    reuse : sequence of dict, optional, keyword-only
        Rows of an earlier run (:func:`read_results`): a (data set, case, method) that has an
        ``ok`` row there is not run again and its row is kept as it is (time included). The
        picture-grid case is always run afresh. Use it to add a method to a finished run or to
        finish an interrupted one, with the same method options.
    progress : callable, optional, keyword-only
        Called as ``progress(done, total, label)`` after each case.

    Returns
    -------
    BenchResult

    Raises
    ------
    UsageError
        Unknown method or option, no case.
    """
    from .methods import METHODS, get_method

    methods = list(methods) if methods else list(METHODS)
    if not methods:
        raise UsageError("no method to benchmark")
    for m in methods:
        get_method(m)
    specs = [c for ds in datasets for c in ds.cases]
    if not specs:
        raise UsageError("no case to benchmark")
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}")
    single = jobs > 1
    mparams = _method_params(methods, params, single)
    metric_threads = max(1, min(4, os.cpu_count() or 1)) if jobs == 1 else 1
    gsel = _pick_grid_case(datasets, grid_case)
    _WARMED.clear()  # a new run warms every method again (weights may have appeared since)
    old = {(r["dataset"], r["case"], r["method"]): r for r in (reuse or ())
           if r.get("status") == "ok" and r.get("method") in methods}

    def todo(spec: CaseSpec) -> list[str]:
        if gsel == (spec.dataset, spec.name):
            return list(methods)
        return [m for m in methods if (spec.dataset, spec.name, m) not in old]

    t0 = time.perf_counter()
    grid = None
    total = len(specs)
    fresh: dict[tuple, list] = {}
    if jobs == 1:
        for i, spec in enumerate(specs):
            keep = gsel == (spec.dataset, spec.name)
            ms = todo(spec)
            r, g = _run_case(spec, ms, mparams, keep, metric_threads) if ms else ([], None)
            fresh[(spec.dataset, spec.name)] = r
            grid = g or grid
            if progress:
                progress(i + 1, total, f"{spec.dataset}/{spec.name}")
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init) as ex:
            futs = [ex.submit(_run_case, spec, todo(spec), mparams, gsel == (spec.dataset, spec.name), 1)
                    if todo(spec) else None for spec in specs]
            from concurrent.futures import as_completed

            done = sum(f is None for f in futs)
            for f in as_completed([f for f in futs if f is not None]):
                done += 1
                if progress:
                    progress(done, total, "")
            for spec, f in zip(specs, futs):
                if f is None:
                    r, g = [], None
                else:
                    try:
                        r, g = f.result()
                    except Exception as exc:  # noqa: BLE001 - a crashed worker is reported per case
                        r = [{"dataset": spec.dataset, "case": spec.name, "method": m, "status": "error",
                              "error": "worker: " + _error_text(exc)} for m in todo(spec)]
                        g = None
                fresh[(spec.dataset, spec.name)] = r
                grid = g or grid
    rows: list = []
    n_reused = 0
    for spec in specs:
        new = {r["method"]: r for r in fresh.get((spec.dataset, spec.name), [])}
        for m in methods:
            if m in new:
                rows.append(new[m])
            elif (spec.dataset, spec.name, m) in old:
                rows.append(old[(spec.dataset, spec.name, m)])
                n_reused += 1
            else:  # pragma: no cover - every case returns a row per method it ran
                rows.append({"dataset": spec.dataset, "case": spec.name, "method": m, "status": "error",
                             "error": "no result"})
    failures: dict[str, str] = {}
    for r in rows:
        if r.get("status") != "ok" and r["method"] not in failures:
            failures[r["method"]] = r.get("error", "?")
    info = {"seconds": time.perf_counter() - t0, "jobs": jobs, "memory_probe": memory_probe(), "reused_rows": n_reused,
            "params": {m: p for m, p in mparams.items() if p}, "failures": failures}
    return BenchResult(rows=rows, datasets=list(datasets), methods=methods, grid=grid, info=info)


# --------------------------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------------------------
_AGG_KEYS = ("s_per_mp", "peak_mb") + _METRIC_ORDER


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Aggregate per (data set, method): ``n`` (cases measured), ``failed`` and, per metric,
    ``<m>_mean``, ``<m>_std`` (over cases with a value). ``s_per_mp`` also gets its median
    (``s_per_mp_median``) and ``peak_mb`` its maximum (``peak_mb_max``)."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"]), []).append(r)
    out = []
    for (ds, m), rs in groups.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        agg = {"dataset": ds, "method": m, "n": len(ok), "failed": len(rs) - len(ok)}
        errs = [r.get("error") for r in rs if r.get("status") != "ok"]
        agg["error"] = errs[0] if errs else ""
        for k in _AGG_KEYS:
            vals = np.array([r[k] for r in ok if k in r and r[k] is not None and np.isfinite(r[k])], float)
            if vals.size:
                agg[f"{k}_mean"] = float(vals.mean())
                agg[f"{k}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
                if k == "s_per_mp":
                    agg["s_per_mp_median"] = float(np.median(vals))
                if k == "peak_mb":
                    agg["peak_mb_max"] = float(vals.max())
        out.append(agg)
    return out


def ordering_check(rows: Sequence[dict], dataset: str, order: Sequence[str] = ("sff", "pcanet", "dwt"), *,
                   metric: str = "ssim", n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Test a claimed ordering (``order[0] > order[1] > ...`` on ``metric``) pair by pair.

    For each adjacent pair (and the ends) the cases where both methods have a value are paired;
    the result gives the mean difference, a 95 % paired-bootstrap confidence interval, the
    share of cases the first method wins, and a verdict: ``"holds"`` (interval above 0),
    ``"reversed"`` (below 0), ``"not significant"``, or ``"not measured"``.
    """
    vals: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["dataset"] == dataset and r.get("status") == "ok" and metric in r:
            vals.setdefault(r["method"], {})[r["case"]] = r[metric]
    pairs = [(order[i], order[i + 1]) for i in range(len(order) - 1)]
    if len(order) > 2:
        pairs.append((order[0], order[-1]))
    rng = np.random.default_rng(seed)
    out = []
    for a, b in pairs:
        common = sorted(set(vals.get(a, {})) & set(vals.get(b, {})))
        rec = {"better": a, "worse": b, "metric": metric, "n": len(common)}
        if not common:
            missing = [m for m in (a, b) if not vals.get(m)]
            rec["verdict"] = "not measured" + (f" ({', '.join(missing)} has no result)" if missing else "")
            out.append(rec)
            continue
        d = np.array([vals[a][c] - vals[b][c] for c in common])
        rec["mean_a"] = float(np.mean([vals[a][c] for c in common]))
        rec["mean_b"] = float(np.mean([vals[b][c] for c in common]))
        rec["diff"] = float(d.mean())
        rec["wins"] = float(np.mean(d > 0))
        if len(d) > 1:
            idx = rng.integers(0, len(d), (n_boot, len(d)))
            boots = d[idx].mean(axis=1)
            lo, hi = np.percentile(boots, [2.5, 97.5])
        else:
            lo = hi = float(d[0])
        rec["ci"] = (float(lo), float(hi))
        rec["verdict"] = "holds" if lo > 0 else ("reversed" if hi < 0 else "not significant")
        out.append(rec)
    return out


# --------------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------------
def _fmt(key: str, v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "inf" if isinstance(v, float) and v == float("inf") else "–"
    if key.startswith("psnr"):
        return f"{v:.2f}"
    if key in ("sharpness",):
        return f"{v:.1f}"
    if key == "artifacts":
        return f"{v:.2f}"
    if key == "s_per_mp":
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    if key == "peak_mb":
        return f"{v:.0f}"
    return f"{v:.4f}"


def _git_info() -> dict:
    root = _repo_root()
    info = {"commit": "unknown", "dirty": None}
    if root is None:
        return info
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip()
            st = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
            info["dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def _environment() -> dict:
    from . import __version__

    env = {"mfif": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import cv2

        env["opencv"] = cv2.__version__
    except ImportError:  # pragma: no cover
        pass
    if "torch" in sys.modules:
        env["torch"] = sys.modules["torch"].__version__
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    env["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return env


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _dataset_table(summary: Sequence[dict], ds: Dataset, methods: Sequence[str]) -> str:
    recs = {s["method"]: s for s in summary if s["dataset"] == ds.name}
    if ds.has_gt:
        keys = ["ssim", "psnr", "psnr_band", "ssim_band", "accuracy", "boundary_f", "qabf", "qmi", "qy", "qcb",
                "sharpness", "artifacts", "s_per_mp", "peak_mb"]
    else:
        keys = ["qabf", "qmi", "qy", "qcb", "ssim_avg", "s_per_mp", "peak_mb"]
    keys = [k for k in keys if any(f"{k}_mean" in recs.get(m, {}) for m in methods)] or ["s_per_mp"]
    best = {}
    for k in keys:
        hib = LABELS.get(k, (k, True))[1]
        vals = [(recs[m][f"{k}_mean"], m) for m in methods if m in recs and f"{k}_mean" in recs[m]]
        if vals and hib is not None and k not in ("s_per_mp", "peak_mb"):
            best[k] = (max if hib else min)(vals)[1]
    header = ["method"] + [LABELS.get(k, (k,))[0] for k in keys] + ["cases"]
    body = []
    for m in methods:
        s = recs.get(m)
        if s is None:
            continue
        if s["n"] == 0:
            body.append([m] + ["–"] * len(keys) + [f"0 ({s['failed']} failed)"])
            continue
        cells = []
        for k in keys:
            if k == "s_per_mp":
                v = s.get("s_per_mp_median")
            elif k == "peak_mb":
                v = s.get("peak_mb_max")
            else:
                v = s.get(f"{k}_mean")
            c = _fmt(k, v)
            cells.append(f"**{c}**" if best.get(k) == m else c)
        n = str(s["n"]) + (f" ({s['failed']} failed)" if s["failed"] else "")
        body.append([m] + cells + [n])
    return _table(header, body)


def _paper_name(m: str) -> str:
    return {"sff": "SFF", "pcanet": "PCA-Net", "dwt": "DWT"}.get(m, m)


def table2_markdown(summary: Sequence[dict], dataset: str, methods: Sequence[str]) -> str:
    """The paper's Table 2 beside the measured one (``dataset`` should have ground truth)."""
    recs = {s["method"]: s for s in summary if s["dataset"] == dataset}
    paper = [m for m in ("sff", "pcanet", "dwt")]
    lines = [f"Paper (Ismail & Ghazali 2025, Table 2) beside mfif's measurement on `{dataset}`. The paper gives "
             "a number only for SSIM; its five other columns are rated in words, which the project specification "
             "does not reproduce, so they are shown here as *rated by eye*. Each is replaced by the measured "
             "quantity named in the header (see the mapping below).", ""]
    header = ["method", "SSIM (paper)", "SSIM (mfif)", "clarity: Q_CB", "edges: Q^AB/F", "blur: sharpness %",
              "boundary: PSNR band dB", "boundary: F-score", "artifacts %"]
    body = []
    for m in paper + [m for m in methods if m not in paper]:
        s = recs.get(m, {})
        ps = PAPER_TABLE2.get(m, {}).get("ssim")
        cells = [_paper_name(m) if m in paper else m, f"{ps:.2f}" if ps is not None else "–"]
        if not s or s.get("n", 0) == 0:
            err = (s or {}).get("error") or ("not run" if m in methods else "not in this run")
            cells += [f"not measured ({err[:60]})"] + ["–"] * 6
        else:
            for k in ("ssim", "qcb", "qabf", "sharpness", "psnr_band", "boundary_f", "artifacts"):
                cells.append(_fmt(k, s.get(f"{k}_mean")))
        body.append(cells)
    lines.append(_table(header, body))
    lines += ["", "Paper's qualitative columns for SFF, PCA-Net and DWT: *rated by eye, no numbers* (perceptual "
              "clarity, edge preservation, blur reduction, focus-boundary accuracy, artifact presence).", ""]
    lines.append(_table(["paper's column", "measured as", "why"],
                        [[c, ", ".join(f"`{k}`" for k in keys), why] for c, keys, why in TABLE2_MAPPING],
                        ["l", "l", "l"]))
    return "\n".join(lines)


def _ordering_markdown(checks: Sequence[dict], dataset: str) -> str:
    lines = [f"Claim (paper): SFF > PCA-Net > DWT on SSIM against ground truth. Measured on `{dataset}` "
             "(paired over the cases both methods fused; 95 % paired-bootstrap interval of the mean difference):", ""]
    body = []
    for c in checks:
        a, b = _paper_name(c["better"]), _paper_name(c["worse"])
        if "diff" not in c:
            body.append([f"{a} > {b}", "–", "–", "–", "–", c["verdict"]])
            continue
        lo, hi = c["ci"]
        body.append([f"{a} > {b}", f"{c['mean_a']:.4f} vs {c['mean_b']:.4f}", f"{c['diff']:+.4f}",
                     f"[{lo:+.4f}, {hi:+.4f}]", f"{100 * c['wins']:.0f} % of {c['n']}", c["verdict"]])
    lines.append(_table(["claim", "mean SSIM", "difference", "95 % CI", "first wins", "verdict"], body,
                        ["l", "r", "r", "r", "r", "l"]))
    return "\n".join(lines)


def markdown_report(result: BenchResult, *, command: str = "", plots: Sequence[str] = ()) -> str:
    """The ``summary.md`` text: run details, one table per data set, Table 2, ordering check."""
    summary = summarize(result.rows)
    git = result.info.get("git") or _git_info()
    env = result.info.get("environment") or _environment()
    out = ["# mfif bench results", ""]
    if command:
        out += [f"Command: `{command}`  "]
    commit = git.get("commit", "unknown")
    out += [f"Commit: `{commit}`" + (" (with uncommitted changes)" if git.get("dirty") else "") + "  ",
            f"Environment: mfif {env.get('mfif')}, Python {env.get('python')}, NumPy {env.get('numpy')}, "
            f"OpenCV {env.get('opencv', '?')}" + (f", PyTorch {env['torch']}" if env.get("torch") else "")
            + f"; {env.get('cpus')} CPUs" + (f" ({env['cpu']})" if env.get("cpu") else "") + "  ",
            f"Wall time: {result.info.get('seconds', 0):.0f} s with {result.info.get('jobs', 1)} process(es); "
            f"memory probe: {result.info.get('memory_probe')}"
            + ("" if result.info.get("jobs", 1) == 1 else " (times are single-thread times, one per worker)")
            + (f"; {result.info['reused_rows']} rows reused from {result.info.get('reused_from', 'an earlier run')}"
               if result.info.get("reused_rows") else ""), ""]
    if result.info.get("params"):
        out += ["Method options: " + "; ".join(f"{m}: " + ", ".join(f"{k}={v}" for k, v in p.items())
                                              for m, p in result.info["params"].items()), ""]
    fails = result.info.get("failures") or {}
    if fails:
        out += ["**Methods with failures** (reported, the run went on):", ""]
        out += [f"- `{m}`: {e}" for m, e in fails.items()]
        out += [""]
    out += ["Columns: SSIM and PSNR to the ground truth; *band* = within 10 px of the true focus boundary; "
            "accuracy and boundary F of the decision map (methods that have one); Q^AB/F, Q_MI, Q_Y, Q_CB "
            "no-reference fusion metrics (gray, definitions in docs/metrics.md); sharpness % = gradient energy "
            "relative to the ground truth; artifacts % = pixels more than 10 gray levels off the ground truth; "
            "s/MP = median wall seconds per megapixel of one source; peak MiB = largest peak memory growth "
            "of one fusion call. Means over cases; best value per column in bold.", ""]
    for ds in result.datasets:
        n = len(ds.cases)
        extra = f" (first {n} of {ds.total})" if ds.total and ds.total > n else ""
        out += [f"## {ds.name}: {n} case{'s' if n != 1 else ''}{extra}", "", f"Source: {ds.origin}", "",
                _dataset_table(summary, ds, result.methods), ""]
    gt_sets = [ds for ds in result.datasets if ds.has_gt]
    if gt_sets:
        main = next((ds for ds in gt_sets if ds.name == "paper-gray"), gt_sets[0])
        out += ["## Table 2, measured", "", table2_markdown(summary, main.name, result.methods), ""]
        out += ["## The paper's ordering", "", _ordering_markdown(ordering_check(result.rows, main.name), main.name),
                ""]
    if plots:
        out += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(out)


def _csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_report(result: BenchResult, out: str | os.PathLike, *, command: str = "", plots: bool = True,
                 warn: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``summary.csv``, ``summary.md``, ``run.json`` and the plots.

    Returns a dict of the written paths by kind (``results``, ``summary_csv``, ``summary_md``,
    ``run``, ``plots`` -- a list).
    """
    outdir = Path(out)
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"{outdir}: exists and is not a directory")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{outdir}: cannot create ({exc.strerror})") from None
    if not os.access(outdir, os.W_OK):
        raise UsageError(f"{outdir}: not writable")
    result.info.setdefault("git", _git_info())
    result.info.setdefault("environment", _environment())
    paths: dict = {"plots": []}
    paths["results"] = outdir / "results.csv"
    write_text(paths["results"], _csv_text(result.rows, CSV_COLUMNS))
    summary = summarize(result.rows)
    scols = ["dataset", "method", "n", "failed", "error"]
    for k in _AGG_KEYS:
        scols += [f"{k}_mean", f"{k}_std"] + (["s_per_mp_median"] if k == "s_per_mp" else []) + (
            ["peak_mb_max"] if k == "peak_mb" else [])
    paths["summary_csv"] = outdir / "summary.csv"
    write_text(paths["summary_csv"], _csv_text(summary, scols))
    if plots:
        try:
            paths["plots"] = bar_charts(summary, result, outdir)
            if result.grid is not None and result.grid.get("fused"):
                paths["plots"].append(picture_grid(result.grid, result.methods, result.rows, outdir))
        except ImportError as exc:
            if warn:
                warn(f"no plots ({exc}); install matplotlib (pip install 'mfif[plots]')")
    paths["summary_md"] = outdir / "summary.md"
    write_text(paths["summary_md"], markdown_report(result, command=command, plots=paths["plots"]))
    run = {"command": command, "datasets": [{"name": d.name, "origin": d.origin, "cases": len(d.cases),
                                             "available": d.total or len(d.cases)} for d in result.datasets],
           "methods": result.methods, **{k: v for k, v in result.info.items()}}
    paths["run"] = outdir / "run.json"
    write_text(paths["run"], json.dumps(run, indent=1, default=str) + "\n")
    return paths


# --------------------------------------------------------------------------------------------
# plots (matplotlib, object API with the Agg canvas: no global backend state)
# --------------------------------------------------------------------------------------------
#: Metrics that get a bar chart, in order.
PLOT_METRICS = ("ssim", "psnr", "psnr_band", "accuracy", "boundary_f", "qabf", "qmi", "qy", "qcb", "sharpness",
                "artifacts", "s_per_mp", "peak_mb")


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def bar_charts(summary: Sequence[dict], result: BenchResult, outdir: Path) -> list[Path]:
    """One grouped bar chart per metric (``bar_<metric>.png``): data sets on the x axis, one
    bar per method, error bars one standard deviation over cases (time: median, memory: max,
    no error bars)."""
    recs = {(s["dataset"], s["method"]): s for s in summary}
    methods = result.methods
    paths = []
    for k in PLOT_METRICS:
        key = {"s_per_mp": "s_per_mp_median", "peak_mb": "peak_mb_max"}.get(k, f"{k}_mean")
        dsets = [d.name for d in result.datasets if any(key in recs.get((d.name, m), {}) for m in methods)]
        if not dsets:
            continue
        fig = _figure(max(6.0, 1.1 * len(dsets) * max(1, len(methods)) * 0.45 + 2), 3.6)
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / max(1, len(methods))
        cmap = _method_colours(methods)
        x = np.arange(len(dsets))
        for j, m in enumerate(methods):
            v = [recs.get((d, m), {}).get(key, np.nan) for d in dsets]
            e = None if k in ("s_per_mp", "peak_mb") else [recs.get((d, m), {}).get(f"{k}_std", 0.0) for d in dsets]
            label_m = m if any(np.isfinite(t) for t in v) else f"{m} (no result)"
            ax.bar(x - 0.4 + width * (j + 0.5), v, width, yerr=e, label=label_m, color=cmap[m],
                   error_kw={"elinewidth": 0.8, "capsize": 1.5})
        ax.set_xticks(x)
        ax.set_xticklabels(dsets)
        label, hib = LABELS.get(k, (k, True))
        arrow = {True: " (higher is better)", False: " (lower is better)", None: " (100 = ground truth)"}[hib]
        ax.set_title(label + arrow, fontsize=10)
        if k == "sharpness":
            ax.axhline(100.0, color="k", lw=0.8, ls="--")
        if k in ("ssim", "accuracy", "qy", "boundary_f"):
            vals = [recs.get((d, m), {}).get(key) for d in dsets for m in methods]
            vals = [v for v in vals if v is not None and np.isfinite(v)]
            if vals:
                lo = min(vals)
                ax.set_ylim(max(0.0, lo - 0.1 * (1 - lo) - 0.02), 1.0)
        if k == "s_per_mp":
            ax.set_yscale("log")
        ax.grid(axis="y", lw=0.4, alpha=0.6)
        ax.legend(fontsize=7, ncol=min(len(methods), 8), loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  frameon=False)
        fig.tight_layout()
        p = outdir / f"bar_{k}.png"
        fig.savefig(p)
        paths.append(p)
    return paths


def _method_colours(methods: Sequence[str]) -> dict:
    from matplotlib import colormaps

    cm = colormaps["tab10"]
    fixed = {"sff": 3, "pcanet": 2, "dwt": 0, "average": 7, "pca": 5, "laplacian": 1, "gff": 4, "focus-map": 9}
    out, free = {}, [i for i in range(10) if i not in fixed.values()]
    for m in methods:
        if m in fixed:
            out[m] = cm(fixed[m])
        else:
            out[m] = cm(free.pop(0) if free else len(out) % 10)
    return out


def zoom_window(grid: dict, size: int | None = None) -> tuple[int, int, int]:
    """``(y, x, s)`` of a square window on a focus boundary where the methods disagree most.

    With a label mask the window lies on the true focus boundary; the score favours pixels
    where the fused images differ from each other and the ground truth has detail. Without a
    mask, the window maximises the disagreement between methods alone.
    """
    import cv2

    from .metrics import as_gray255

    src0 = grid["sources"][0]
    h, w = src0.shape[:2]
    s = int(size or max(32, min(h, w) // 6))
    s = min(s, h, w)
    fused = [as_gray255(f) for f in grid.get("fused", {}).values()]
    spread = (np.max(fused, axis=0) - np.min(fused, axis=0)) if len(fused) > 1 else np.zeros((h, w))
    score = spread.astype(np.float32)
    if grid.get("gt") is not None:
        g = as_gray255(grid["gt"]).astype(np.float32)
        gm = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))
        score = score + 0.25 * gm
    mask = grid.get("mask")
    if mask is not None:
        m = np.asarray(mask)
        edge = np.zeros(m.shape, bool)
        edge[:, 1:] |= m[:, 1:] != m[:, :-1]
        edge[1:, :] |= m[1:, :] != m[:-1, :]
        if edge.any():
            band = cv2.dilate(edge.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0
            score = score * band
    box = cv2.boxFilter(score, cv2.CV_32F, (s, s), normalize=True, borderType=cv2.BORDER_CONSTANT)
    half = s // 2
    inner = box[half:h - (s - half) + 1, half:w - (s - half) + 1]
    if inner.size == 0 or not np.isfinite(inner).any():
        return (h - s) // 2, (w - s) // 2, s
    iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(iy), int(ix), s


def picture_grid(grid: dict, methods: Sequence[str], rows: Sequence[dict], outdir: Path) -> Path:
    """``grid.png``: the sources, the ground truth and every method's result for one case,
    each above a nearest-neighbour zoom on a focus-boundary window (red box)."""
    from matplotlib.patches import Rectangle

    from .io import to_float

    y, x, s = zoom_window(grid)
    items = [(f"source {chr(65 + i)}", im) for i, im in enumerate(grid["sources"][:4])]
    if grid.get("gt") is not None:
        items.append(("ground truth", grid["gt"]))
    scores = {r["method"]: r.get("ssim") for r in rows
              if r["dataset"] == grid["dataset"] and r["case"] == grid["case"]}
    for m in methods:
        if m in grid["fused"]:
            sc = scores.get(m)
            items.append((m + (f"  SSIM {sc:.4f}" if sc is not None else ""), grid["fused"][m]))
    ncol = min(6, len(items))
    nblk = -(-len(items) // ncol)
    fig = _figure(2.3 * ncol, 2 * 2.45 * nblk + 0.4)
    fig.suptitle(f"{grid['dataset']}/{grid['case']}: zoom {s}x{s} px at ({x}, {y})", fontsize=10)
    for i, (title, img) in enumerate(items):
        b, c = divmod(i, ncol)
        f = to_float(np.asarray(img))
        kw = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if f.ndim == 2 else {}
        f = np.clip(f, 0, 1)
        ax = fig.add_subplot(2 * nblk, ncol, 2 * b * ncol + c + 1)
        ax.imshow(f, interpolation="lanczos", **kw)
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), s, s, fill=False, ec="red", lw=1.0))
        ax.set_title(title, fontsize=7)
        ax.set_axis_off()
        az = fig.add_subplot(2 * nblk, ncol, (2 * b + 1) * ncol + c + 1)
        az.imshow(f[y:y + s, x:x + s], interpolation="nearest", **kw)
        az.set_axis_off()
    fig.tight_layout()
    p = outdir / "grid.png"
    fig.savefig(p)
    return p
