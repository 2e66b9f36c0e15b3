"""``mfif bench``: methods x data sets x metrics, with tables, a CSV and plots.

See :mod:`mfif.bench` for the engine and ``docs/benchmark.md`` for what each column means.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..errors import UsageError
from ..options import number_arg

#: Cases per data set in ``--quick`` mode.
QUICK_CASES = 2


def register(sub):
    from ..bench import BUILTIN_DATASETS

    names = ", ".join(BUILTIN_DATASETS)
    p = sub.add_parser(
        "bench", help="benchmark fusion methods on data sets (SSIM, PSNR, Q^AB/F, ..., time, memory)",
        description=(
            "Fuse every case of each data set with each method, time it, record its peak memory and measure "
            "the result: against the ground truth where a case has one (SSIM, PSNR, boundary-band PSNR, "
            "decision-map accuracy), and with the no-reference fusion metrics everywhere (Q^AB/F, Q_MI, Q_Y, "
            "Q_CB). Writes OUT/results.csv (one row per case and method), OUT/summary.csv, OUT/summary.md "
            "(tables, the paper's Table 2 beside the measured one, the check of its SSIM ordering), a bar "
            "chart per metric and a picture grid. A method that fails is reported and skipped. "
            f"Built-in data sets: {names}."),
        epilog=(
            "DATA folders: an `mfif synth` output (its test split), a folder of case folders (A.png, B.png ... "
            "or image1, image2 ..., optional gt.png and mask.png), or a flat folder of pairs NAME_1.png, "
            "NAME_2.png. Append :N to a data set to keep its first N cases (paper-color:100)."))
    p.add_argument("data", nargs="*", metavar="DATA",
                   help="data set folders or built-in names (default: every built-in data set whose data is present)")
    p.add_argument("-d", "--datasets", metavar="LIST",
                   help=f"comma-separated built-in names or folders, NAME:N for the first N cases ({names})")
    p.add_argument("-m", "--methods", metavar="LIST", help="comma-separated methods (default: all, see `mfif methods`)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="method option, repeatable, e.g. -p sff.stride=8")
    p.add_argument("-o", "--out", default="bench-output", metavar="DIR", help="output folder (default bench-output)")
    p.add_argument("--quick", action="store_true",
                   help=f"CI-sized run: the first {QUICK_CASES} cases of each data set")
    p.add_argument("-n", "--limit", type=number_arg(lo=1, integer=True), metavar="N", help="the first N cases of each data set")
    p.add_argument("-j", "--jobs", type=number_arg(lo=1, hi=256, integer=True), default=1, metavar="J",
                   help="worker processes, one thread each (default 1: one process, all threads; "
                        "times are then comparable with the speed anchors)")
    p.add_argument("--data-root", metavar="DIR",
                   help="shared data folder with test_images/ and real_pairs/ (default: $MFIF_DATA or ../shared/data)")
    p.add_argument("--synth-root", metavar="DIR",
                   help="folder with built synthetic sets paper-gray/, paper-color/ (default ./data-synth); "
                        "sets not built there are synthesised on the fly from the test photos")
    p.add_argument("--reuse", metavar="DIR",
                   help="keep the ok rows of an earlier run's DIR/results.csv and run only the missing "
                        "(data set, case, method) combinations, e.g. to add a method (same options)")
    p.add_argument("--grid-case", metavar="DATASET/CASE", help="case shown in the picture grid (default: the first with ground truth)")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any method failed on any case")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _params(items: list[str], methods: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UsageError(f"option {item!r} is not METHOD.KEY=VALUE")
        key, value = item.split("=", 1)
        method, name = key.split(".", 1)
        if method not in methods:
            raise UsageError(f"option {item!r}: method {method!r} is not benchmarked ({', '.join(methods)})")
        out.setdefault(method, {})[name.strip()] = value.strip()
    return out


def run(args) -> int:
    from .. import bench as B
    from ..methods import METHODS, get_method

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(METHODS)
    for m in methods:
        get_method(m)
    params = _params(args.param, methods)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    warn = lambda msg: print(f"mfif bench: {msg}", file=sys.stderr)  # noqa: E731

    data_root = B.find_data_root(args.data_root)
    synth_root = B.find_synth_root(args.synth_root)
    specs = list(args.data)
    if args.datasets:
        specs += [s for s in args.datasets.split(",") if s.strip()]
    explicit = bool(specs)
    if not explicit:
        specs = list(B.BUILTIN_DATASETS)
    datasets = B.resolve_datasets(specs, data_root=data_root, synth_root=synth_root, skip_missing=not explicit,
                                  warn=warn)
    if not datasets:
        raise UsageError("no data set to benchmark: no built-in data is present (looked for "
                         + (f"{data_root}/test_images and {data_root}/real_pairs" if data_root
                            else "../shared/data or $MFIF_DATA")
                         + "); give a folder of cases, --datasets, or --data-root DIR")
    limit = args.limit if args.limit is not None else (QUICK_CASES if args.quick else None)
    if limit is not None:
        datasets = [d.limited(limit) for d in datasets]
    reuse = B.read_results(args.reuse) if args.reuse else None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")

    total = sum(len(d.cases) for d in datasets)
    log(f"mfif bench: {len(methods)} methods x {total} cases in "
        + ", ".join(f"{d.name} ({len(d.cases)})" for d in datasets)
        + (f", {args.jobs} workers" if args.jobs > 1 else ""))
    for d in datasets:
        log(f"  {d.name}: {d.origin}")
    from tqdm import tqdm

    bar = tqdm(total=total, unit="case", file=sys.stderr, disable=args.quiet, dynamic_ncols=True)

    def progress(done, tot, label):
        bar.update(done - bar.n)
        if label:
            bar.set_postfix_str(label, refresh=False)

    try:
        result = B.run_bench(datasets, methods, params=params, jobs=args.jobs, grid_case=args.grid_case,
                             reuse=reuse, progress=progress)
    finally:
        bar.close()
    if args.reuse:
        result.info["reused_from"] = str(args.reuse)
    command = "mfif bench " + shlex.join(sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "bench" else [])
    paths = B.write_report(result, out, command=command, plots=not args.no_plots, warn=warn)
    fails = result.info.get("failures") or {}
    for m, e in fails.items():
        n_bad = sum(1 for r in result.rows if r["method"] == m and r.get("status") != "ok")
        warn(f"method {m} failed on {n_bad} case(s): {e}")
    log(f"mfif bench: {result.info['seconds']:.0f} s; wrote {paths['summary_md']}, {paths['results']}, "
        f"{paths['summary_csv']}" + (f" and {len(paths['plots'])} plots" if paths["plots"] else ""))
    if not args.quiet:
        _print_headline(result)
    return 1 if (args.strict and fails) else 0


def _print_headline(result) -> None:
    """Mean SSIM (ground-truth sets) or Q^AB/F (others) per method, one line per data set."""
    from ..bench import summarize

    summary = summarize(result.rows)
    for ds in result.datasets:
        key = "ssim" if ds.has_gt else "qabf"
        vals = {s["method"]: s.get(f"{key}_mean") for s in summary if s["dataset"] == ds.name}
        cells = ", ".join(f"{m} {vals[m]:.4f}" if vals.get(m) is not None else f"{m} –" for m in result.methods)
        print(f"{ds.name} ({key}): {cells}", file=sys.stderr)
