"""``mfif bench``: methods x the user's folders of cases x metrics, time and memory.

See :mod:`mfif.bench` for the engine and ``docs/benchmark.md`` for what each column means. The
project's own benchmark (the paper-shaped data sets, Table 2, plots) is
``benchmarks/paperbench.py`` in the repository, built on the same helpers.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..errors import UsageError
from ..options import number_arg


def add_run_options(p) -> None:
    """The options every benchmark front end shares (methods, options, output, workers...)."""
    p.add_argument("-m", "--methods", metavar="LIST", help="comma-separated methods (default: all, see `mfif methods`)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="method option, repeatable, e.g. -p sff.stride=8")
    p.add_argument("-o", "--out", default="bench-output", metavar="DIR", help="output folder (default bench-output)")
    p.add_argument("-n", "--limit", type=number_arg(lo=1, integer=True), metavar="N", help="the first N cases of each data set")
    p.add_argument("-j", "--jobs", type=number_arg(lo=1, hi=256, integer=True), default=1, metavar="J",
                   help="worker processes, one thread each (default 1: one process, all threads)")
    p.add_argument("--reuse", metavar="DIR",
                   help="keep the ok rows of an earlier run's DIR/results.csv and run only the missing "
                        "(data set, case, method) combinations, e.g. to add a method (same options)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any method failed on any case")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def register(sub):
    p = sub.add_parser(
        "bench", help="benchmark fusion methods on folders of cases (SSIM, PSNR, Q^AB/F, ..., time, memory)",
        description=(
            "Fuse every case of each data set with each method, time it, record its peak memory and measure "
            "the result: against the ground truth where a case has one (SSIM, PSNR, boundary-band PSNR, "
            "decision-map accuracy), and with the no-reference fusion metrics everywhere (Q^AB/F, Q_MI, Q_Y, "
            "Q_CB). Writes OUT/results.csv (one row per case and method), OUT/summary.csv and OUT/run.json, "
            "and prints the summary. A method that fails is reported and skipped."),
        epilog=(
            "DATA folders: an `mfif synth` output (its test split), a folder of case folders (A.png, B.png ... "
            "or image1, image2 ..., optional gt.png and mask.png), or a flat folder of pairs NAME_1.png, "
            "NAME_2.png. Append :N to a folder to keep its first N cases."))
    p.add_argument("data", nargs="+", metavar="DATA", help="data set folders")
    add_run_options(p)
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


def method_params(args) -> tuple[list[str], dict]:
    """The methods to run and their options, checked (unknown names and bad values refused)."""
    from ..methods import METHODS, get_method, parse_params

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(METHODS)
    for m in methods:
        get_method(m)
    params = _params(args.param, methods)
    for m, opts in params.items():
        parse_params(get_method(m), opts)
    return methods, params


def run_with_progress(datasets, methods, params, args, *, grid_case=None):
    """:func:`mfif.bench.run_bench` with a progress bar on stderr (unless ``-q``)."""
    from tqdm import tqdm

    from ..bench import read_results, run_bench

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    reuse = read_results(args.reuse) if args.reuse else None
    total = sum(len(d.cases) for d in datasets)
    if not args.quiet:
        print(f"{len(methods)} methods x {total} cases in " + ", ".join(f"{d.name} ({len(d.cases)})" for d in datasets)
              + (f", {args.jobs} workers" if args.jobs > 1 else ""), file=sys.stderr)
    bar = tqdm(total=total, unit="case", file=sys.stderr, disable=args.quiet, dynamic_ncols=True)

    def progress(done, tot, label):
        bar.update(done - bar.n)
        if label:
            bar.set_postfix_str(label, refresh=False)

    try:
        result = run_bench(datasets, methods, params=params, jobs=args.jobs, grid_case=grid_case, reuse=reuse,
                           progress=progress)
    finally:
        bar.close()
    if args.reuse:
        result.info["reused_from"] = str(args.reuse)
    for m, e in (result.info.get("failures") or {}).items():
        n_bad = sum(1 for r in result.rows if r["method"] == m and r.get("status") != "ok")
        print(f"mfif bench: method {m} failed on {n_bad} case(s): {e}", file=sys.stderr)
    return result


def run(args) -> int:
    from ..bench import resolve_datasets, summary_table, write_results

    methods, params = method_params(args)
    datasets = resolve_datasets(args.data)
    if args.limit is not None:
        datasets = [d.limited(args.limit) for d in datasets]
    result = run_with_progress(datasets, methods, params, args)
    command = "mfif bench " + shlex.join(sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "bench" else [])
    paths = write_results(result, args.out, command=command)
    print(summary_table(result))
    if not args.quiet:
        print(f"mfif bench: {result.info['seconds']:.0f} s; wrote {paths['results']}, {paths['summary_csv']}",
              file=sys.stderr)
    return 1 if (args.strict and result.info.get("failures")) else 0
