"""Running a benchmark: every method on every case, timed, its memory measured, its result scored.

For every method and case, :func:`run_bench` fuses the sources with :func:`mfif.fuse`, times
the call, records its peak memory, quantises the result to the sources' bit depth (as writing
it would) and measures it with :func:`mfif.metrics.evaluate` (through
:class:`mfif.metrics.CaseMetrics`, prepared once per case) plus, against a ground truth,
:func:`mfif.metrics.sharpness_ratio` and :func:`mfif.metrics.artifact_rate`. A method that
fails is reported, never fatal. :func:`write_results` writes ``results.csv`` (one row per case
and method), ``summary.csv`` (mean and standard deviation per data set and method) and
``run.json``; :func:`summary_table` prints the summary.

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
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from ..api import fuse
from ..errors import UsageError
from ..io import from_float, write_text
from ..methods import METHODS, get_method, parse_params
from ..metrics import CaseMetrics, as_gray255, evaluate
from ..metrics.sharpness import (  # noqa: F401
    _artifacts,
    _gradient_energy,
    _sharpness,
    artifact_rate,
    sharpness_ratio,
)
from ..sysinfo import PeakMemory, memory_probe
from .cases import CaseData, CaseSpec, Dataset, load_case, scan_folder  # noqa: F401

__all__ = ["CSV_COLUMNS", "SUMMARY_COLUMNS", "BenchResult", "run_bench", "read_results", "summarize",
           "write_results", "summary_table"]


_METRIC_ORDER = ("ssim", "psnr", "ssim_band", "psnr_band", "accuracy", "iou", "boundary_f", "qabf", "qmi", "qy",
                 "qcb", "ssim_avg", "sharpness", "artifacts")


#: Columns of ``results.csv``.
CSV_COLUMNS = ("dataset", "case", "method", "status", "error", "width", "height", "n_sources", "megapixels",
               "seconds", "s_per_mp", "peak_mb") + _METRIC_ORDER


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


def _csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


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


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


#: Columns of ``summary.csv``.
SUMMARY_COLUMNS = tuple(["dataset", "method", "n", "failed", "error"] + [
    c for k in _AGG_KEYS for c in ([f"{k}_mean", f"{k}_std"] + (["s_per_mp_median"] if k == "s_per_mp" else [])
                                   + (["peak_mb_max"] if k == "peak_mb" else []))])


def write_results(result: BenchResult, out: str | os.PathLike, *, command: str = "",
                  extra: dict | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``summary.csv`` and ``run.json`` into the folder ``out``.

    Returns the written paths by kind (``results``, ``summary_csv``, ``run``).
    """
    outdir = Path(out)
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"{outdir}: exists and is not a directory")
    paths = {"results": outdir / "results.csv", "summary_csv": outdir / "summary.csv", "run": outdir / "run.json"}
    write_text(paths["results"], _csv_text(result.rows, CSV_COLUMNS))
    write_text(paths["summary_csv"], _csv_text(summarize(result.rows), SUMMARY_COLUMNS))
    run = {"command": command, "datasets": [{"name": d.name, "origin": d.origin, "cases": len(d.cases),
                                             "available": d.total or len(d.cases)} for d in result.datasets],
           "methods": result.methods, **result.info, **(extra or {})}
    write_text(paths["run"], json.dumps(run, indent=1, default=str) + "\n")
    return paths


#: Columns of :func:`summary_table`: (summary key, heading).
_TABLE_COLUMNS = (("ssim_mean", "SSIM"), ("psnr_mean", "PSNR dB"), ("psnr_band_mean", "band dB"),
                  ("accuracy_mean", "accuracy"), ("qabf_mean", "Q^AB/F"), ("qmi_mean", "Q_MI"), ("qy_mean", "Q_Y"),
                  ("qcb_mean", "Q_CB"), ("s_per_mp_median", "s/MP"), ("peak_mb_max", "peak MiB"))


def summary_table(result: BenchResult) -> str:
    """Plain-text table, one block per data set: method means (ground-truth columns where there is one)."""
    summary = summarize(result.rows)
    out = []
    for ds in result.datasets:
        rows = [s for s in summary if s["dataset"] == ds.name]
        cols = [(k, h) for k, h in _TABLE_COLUMNS if any(r.get(k) is not None for r in rows)]
        body = [[r["method"]] + [_fmt(k.rsplit("_", 1)[0], r.get(k)) for k, _ in cols]
                + [str(r.get("failed") or 0)] for r in rows]
        out.append(f"{ds.name} ({len(ds.cases)} cases)")
        out.append(_table(["method"] + [h for _, h in cols] + ["failed"], body,
                          ["l"] + ["r"] * (len(cols) + 1)))
    return "\n".join(out)

