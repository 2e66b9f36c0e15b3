"""The project's own benchmark: the paper-shaped data sets, its Table 2 and the report.

``mfif bench`` (the user command) runs methods over the user's folders of cases; this module
adds what belongs to the project, not the product: the shared data sets (the paper-shaped
synthetic test splits, synthesised on the fly from ``../shared/data/test_images`` when not
built, and the real pairs of ``../shared/data/real_pairs``), the paper's Table 2 and its
ordering check, and the Markdown report with bar charts and a picture grid::

    .venv/bin/python benchmarks/paperbench.py --quick -o bench-output/quick
    .venv/bin/python benchmarks/paperbench.py -d paper-gray,paper-color:100,classic,mffw2,mffw3 -j 2 \
        -o bench-output/paper

Built-in data sets are named in :data:`BUILTIN_DATASETS`; folders work as with ``mfif bench``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mfif.bench import (BenchResult, CaseSpec, Dataset, resolve_datasets, scan_folder, summarize, write_results)
from mfif.bench.run import _AGG_KEYS, _METRIC_ORDER, _fmt, _table  # noqa: F401
from mfif.errors import UsageError
from mfif.io import write_text


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


#: Labels of the metrics in tables and plots, and whether larger is better.
LABELS = {
    "ssim": ("SSIM", True), "psnr": ("PSNR dB", True), "ssim_band": ("SSIM band", True),
    "psnr_band": ("PSNR band dB", True), "accuracy": ("accuracy", True), "iou": ("IoU", True),
    "boundary_f": ("boundary F", True), "qabf": ("Q^AB/F", True), "qmi": ("Q_MI", True), "qy": ("Q_Y", True),
    "qcb": ("Q_CB", True), "ssim_avg": ("SSIM avg", True), "sharpness": ("sharpness %", None),
    "artifacts": ("artifacts %", False), "s_per_mp": ("s/MP", False), "peak_mb": ("peak MiB", False),
}


def _repo_root() -> Path:
    """The checkout this script lives in (``benchmarks/`` is at its top)."""
    return Path(__file__).resolve().parents[1]


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
    cands.append(_repo_root().parent / "shared" / "data")
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


def _paper_synth_cases(name: str, test_dir: Path, gray: bool, count: int) -> list[CaseSpec]:
    """The test split of ``make synth-paper(-color)``, as specs synthesised on demand.

    Mirrors ``mfif synth``: photo keys ``test_images/<file>``, the photo assignment drawn from
    ``default_rng([seed, 2, 0x9A7])``, case ``i`` from ``default_rng([seed, 2, i])``.
    """
    from mfif.commands.synth import _assign, _photo_table
    from mfif.synth import DEFAULT_OPTIONS

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
    from mfif import __version__

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


def write_report(result: BenchResult, out: str | os.PathLike, *, command: str = "", plots: bool = True,
                 warn: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write what :func:`mfif.bench.write_results` writes, plus ``summary.md`` and the plots.

    Returns a dict of the written paths by kind (``results``, ``summary_csv``, ``summary_md``,
    ``run``, ``plots`` -- a list).
    """
    outdir = Path(out)
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"{outdir}: exists and is not a directory")
    result.info.setdefault("git", _git_info())
    result.info.setdefault("environment", _environment())
    paths: dict = {"plots": [], **write_results(result, outdir, command=command)}
    summary = summarize(result.rows)
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
    return paths


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

    from mfif.metrics import as_gray255

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

    from mfif.io import to_float

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


def named_datasets(data_root: Path | None, synth_root: Path | None) -> dict[str, Callable[[], Dataset]]:
    """The built-in data sets as :func:`mfif.bench.resolve_datasets` takes them."""
    return {name: (lambda name=name: builtin_dataset(name, data_root=data_root, synth_root=synth_root))
            for name in BUILTIN_DATASETS}


#: Cases per data set in ``--quick`` mode.
QUICK_CASES = 2


def main(argv: Sequence[str] | None = None) -> int:
    """The project benchmark's command line (``make bench-quick``, ``make bench-paper``)."""
    from mfif.commands.bench import add_run_options, method_params, run_with_progress

    ap = argparse.ArgumentParser(prog="paperbench", description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="*", metavar="DATA", help=f"built-in names ({', '.join(BUILTIN_DATASETS)}) or folders")
    ap.add_argument("-d", "--datasets", metavar="LIST", help="comma-separated built-in names or folders, NAME:N for the first N")
    ap.add_argument("--quick", action="store_true", help=f"CI-sized run: the first {QUICK_CASES} cases of each data set")
    ap.add_argument("--data-root", metavar="DIR", help="shared data folder (default: $MFIF_DATA or ../shared/data)")
    ap.add_argument("--synth-root", metavar="DIR", help="folder with built paper-gray/, paper-color/ (default ./data-synth)")
    ap.add_argument("--grid-case", metavar="DATASET/CASE", help="case shown in the picture grid")
    ap.add_argument("--no-plots", action="store_true", help="skip the plots")
    add_run_options(ap)
    args = ap.parse_args(argv)
    try:
        methods, params = method_params(args)
        data_root, synth_root = find_data_root(args.data_root), find_synth_root(args.synth_root)
        specs = list(args.data) + ([s for s in args.datasets.split(",") if s.strip()] if args.datasets else [])
        explicit = bool(specs)
        warn = lambda msg: print(f"paperbench: {msg}", file=sys.stderr)  # noqa: E731
        datasets = resolve_datasets(specs or list(BUILTIN_DATASETS), named=named_datasets(data_root, synth_root),
                                    skip_missing=not explicit, warn=warn)
        if not datasets:
            raise UsageError("no data set: no built-in data is present; give --data-root DIR or a folder")
        limit = args.limit if args.limit is not None else (QUICK_CASES if args.quick else None)
        if limit is not None:
            datasets = [d.limited(limit) for d in datasets]
        result = run_with_progress(datasets, methods, params, args, grid_case=args.grid_case)
        command = "paperbench " + shlex.join(list(argv if argv is not None else sys.argv[1:]))
        paths = write_report(result, args.out, command=command, plots=not args.no_plots, warn=warn)
    except UsageError as exc:
        print(f"paperbench: error: {exc}", file=sys.stderr)
        return 2
    print(f"paperbench: {result.info['seconds']:.0f} s; wrote {paths['summary_md']}", file=sys.stderr)
    return 1 if (args.strict and result.info.get("failures")) else 0


if __name__ == "__main__":
    sys.exit(main())
