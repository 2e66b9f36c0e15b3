"""Benchmark of :func:`mfif.align.align_stack` on a real hand-held focus stack.

Usage::

    python benchmarks/bench_align.py [STACK_DIR] [--model similarity] [--repeats 3]
        [--interpolation cubic] [--workers N] [--work-size 1024]

``STACK_DIR`` defaults to ``../shared/data/stacks/pcb`` beside the repository (7 hand-held
2048x1536 JPEGs; ``expected.jpg`` there is a fused result, not a frame, and is skipped).
Prints one line per frame (scale, rotation, shift, residual, ECC correlation, how the pair was
initialised) and the wall-clock and CPU time of each repeat.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mfif.align import align_stack  # noqa: E402
from mfif.io import IMAGE_EXTENSIONS, natural_key, read_image  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stack", nargs="?", default=str(REPO.parent / "shared" / "data" / "stacks" / "pcb"))
    ap.add_argument("--model", default="similarity")
    ap.add_argument("--interpolation", default="cubic")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--work-size", type=int, default=1024)
    ap.add_argument("--no-chain", action="store_true", help="register every frame directly to the reference")
    args = ap.parse_args(argv)

    folder = Path(args.stack)
    paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
                    and p.stem.lower() != "expected"), key=natural_key)
    t = time.perf_counter()
    frames = [read_image(p) for p in paths]
    t_read = time.perf_counter() - t
    h, w = frames[0].shape[:2]
    print(f"{folder}: {len(frames)} frames {w}x{h} {frames[0].dtype}, read in {t_read:.2f} s; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    res = None
    for k in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        res = align_stack(frames, model=args.model, interpolation=args.interpolation, workers=args.workers,
                          work_size=args.work_size, chain=not args.no_chain, names=[p.name for p in paths])
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        print(f"run {k + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU (register {res.info['seconds_register']:.2f} s, "
              f"warp {res.info['seconds_warp']:.2f} s)")
    assert res is not None
    for line, p, init, m in zip(res.describe(), paths, res.info["init"], res.info["matches"]):
        print(f"  {p.name}: {line}  [{init}, {m} matches]")
    x0, y0, x1, y1 = res.valid_box
    print(f"valid box {res.valid_box}: {x1 - x0}x{y1 - y0} px, "
          f"{100.0 * (x1 - x0) * (y1 - y0) / (w * h):.1f}% of the frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
