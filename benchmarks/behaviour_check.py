"""Same results before and after a change: fuse the same inputs with two commits and compare.

Fuses the demo pair, every shared real pair (classic, MFFW2, MFFW3 multi-source) and the pcb
stack (aligned) with every method, once with the code of ``--base`` (checked out into a
temporary git worktree) and once with the working tree, each in its own process, and prints
per method the largest absolute difference of the fused images (on the 0..255 scale) and the
fraction of pixels whose decision differs::

    .venv/bin/python benchmarks/behaviour_check.py --base b118cfe
    .venv/bin/python benchmarks/behaviour_check.py --base 7c60654 --head HEAD
    .venv/bin/python benchmarks/behaviour_check.py --base HEAD~3 --cases demo,classic --methods focus-map

Needs ``../shared/data`` for everything but the demo pair.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CASES = ("demo", "classic", "mffw2", "mffw3", "pcb")


def _inputs(cases: list[str]) -> list[tuple[str, list[str]]]:
    """(case name, frame paths) for the file-based cases; the demo pair is made in the worker."""
    out = []
    rp = DATA / "real_pairs"
    if "classic" in cases:
        for p in sorted((rp / "classic").glob("*_1.png")):
            out.append((f"classic/{p.stem[:-2]}", [str(p), str(p.with_name(p.stem[:-2] + "_2.png"))]))
    if "mffw2" in cases:
        for d in sorted((rp / "mffw2").iterdir(), key=lambda q: int(q.name)):
            out.append((f"mffw2/{d.name}", [str(d / "image1.tif"), str(d / "image2.tif")]))
    if "mffw3" in cases:
        for d in sorted((rp / "mffw3_multi").iterdir(), key=lambda q: int(q.name)):
            out.append((f"mffw3/{d.name}", sorted(str(f) for f in d.iterdir() if not f.name.startswith("."))))
    if "pcb" in cases:
        frames = sorted(str(f) for f in (DATA / "stacks" / "pcb").iterdir() if f.name != "expected.jpg")
        out.append(("pcb", frames))
    return out


def worker(out_dir: Path, cases: list[str], methods: list[str]) -> None:
    """Runs inside one tree (its ``src`` first on sys.path): fuse everything, save .npy files."""
    import mfif
    from mfif.io import from_float
    from mfif.stack import fuse_stack

    times = {}
    if "demo" in cases:
        from mfif.commands.demo import make_demo_pair

        case = make_demo_pair(7)
        for m in methods:
            res = mfif.fuse(case.sources, method=m)
            np.save(out_dir / f"demo__{m}__fused.npy", from_float(res.fused))
            if res.decision is not None:
                np.save(out_dir / f"demo__{m}__decision.npy", res.decision)
    for name, frames in _inputs(cases):
        for m in methods:
            if name == "pcb" and m in ("pcanet", "pca", "dwt"):
                continue  # slow or memory-hungry on 7 x 3 MP; the pairs cover them
            t0 = time.perf_counter()
            res = fuse_stack(frames, method=m, align=name == "pcb")
            times[f"{name}/{m}"] = time.perf_counter() - t0
            key = name.replace("/", "_")
            np.save(out_dir / f"{key}__{m}__fused.npy", res.fused)
            if res.decision is not None:
                np.save(out_dir / f"{key}__{m}__decision.npy", res.decision)
    (out_dir / "times.json").write_text(json.dumps(times))


def _run_tree(src: Path, out_dir: Path, cases: list[str], methods: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--worker", str(out_dir), "--cases", ",".join(cases),
           "--methods", ",".join(methods)]
    subprocess.run(cmd, env=env, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="HEAD", help="the commit to compare with")
    ap.add_argument("--head", default="", help="the commit to compare (default: the working tree)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--methods", default="", help="comma-separated (default: every method)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    if args.worker:
        methods = args.methods.split(",")
        worker(Path(args.worker), cases, methods)
        return 0
    sys.path.insert(0, str(REPO / "src"))
    from mfif.methods import METHODS

    methods = [m for m in args.methods.split(",") if m] or list(METHODS)
    with tempfile.TemporaryDirectory(prefix="mfif-behaviour-") as tmp:
        tmp = Path(tmp)
        trees = {"base": tmp / "base", "head": tmp / "head" if args.head else REPO}
        for label, rev in (("base", args.base), ("head", args.head)):
            if rev:
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(trees[label]), rev],
                               check=True)
        try:
            outs = {}
            for label in ("base", "head"):
                src = trees[label] / "src"
                outs[label] = tmp / f"out-{label}"
                outs[label].mkdir()
                t0 = time.perf_counter()
                _run_tree(src, outs[label], cases, methods)
                print(f"{label}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        finally:
            for label, tree in trees.items():
                if tree != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        rows = {}
        for f in sorted(outs["base"].glob("*__fused.npy")):
            case, method, _ = f.name.split("__")
            g = outs["head"] / f.name
            a = np.load(f).astype(np.float64)
            b = np.load(g).astype(np.float64) if g.exists() else None
            scale = 255.0 / 65535.0 if np.load(f).dtype == np.uint16 else 1.0
            r = rows.setdefault(method, {"cases": 0, "max_abs": 0.0, "decision": 0.0, "missing": 0})
            r["cases"] += 1
            if b is None or a.shape != b.shape:
                r["missing"] += 1
                continue
            r["max_abs"] = max(r["max_abs"], float(np.abs(a - b).max()) * scale)
            da, db = outs["base"] / f.name.replace("fused", "decision"), outs["head"] / f.name.replace("fused", "decision")
            if da.exists() and db.exists():
                r["decision"] = max(r["decision"], float(np.mean(np.load(da) != np.load(db))))
    print(f"base {args.base} vs {args.head or 'the working tree'}; cases: {', '.join(cases)}")
    print(f"{'method':<10} {'cases':>5} {'max |diff| (0..255)':>20} {'decision differs':>17} {'missing':>8}")
    for m, r in rows.items():
        print(f"{m:<10} {r['cases']:>5} {r['max_abs']:>20.4f} {r['decision'] * 100:>16.4f}% {r['missing']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
