"""Alignment benchmarks: speed on the real ``pcb`` stack, accuracy on synthetic hand-held stacks.

Usage::

    python benchmarks/bench_align.py pcb [STACK_DIR] [--repeats 3] [--model similarity] [--workers N]
    python benchmarks/bench_align.py synthetic [--stacks 12] [--frames 7] [--size 1200x800] [--seed 0]

``pcb``: ``STACK_DIR`` defaults to ``../shared/data/stacks/pcb`` (7 hand-held 2048x1536 JPEGs;
``expected.jpg`` is a fused result and is skipped). Frames are read first (not timed); each
repeat times :func:`mfif.align.estimate_transforms` on the arrays and :func:`warp_frame` of
every frame into the valid box (what ``mfif fuse --align`` does per frame), and prints a table.

``synthetic``: stacks made by :func:`mfif.synth.handheld_stack` from the BSDS500 photos in
``../shared/data/train_images`` (shifts up to 60 px, rotation up to 2.5 degrees, focus
breathing +-2 %, defocus from sharp to 20 px, exposure flicker +-10 %, noise 1 %). The error of
a frame is measured on a 9 x 9 grid of points spanning the valid box: each point's true
position in the frame is mapped back with the estimated matrix and compared with the point
(full-resolution px). Prints a table per stack and the totals (median, worst, failures).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mfif.align import apply_transform, estimate_transforms, warp_frame  # noqa: E402
from mfif.errors import AlignmentError  # noqa: E402
from mfif.io import IMAGE_EXTENSIONS, natural_key, read_image  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def point_errors(est: np.ndarray, truth: np.ndarray, box) -> np.ndarray:
    """Distances (px) between true and estimated reference positions of a grid in ``box``."""
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.linspace(x0, x1 - 1, 9), np.linspace(y0, y1 - 1, 9))
    p = np.c_[xs.ravel(), ys.ravel()]
    q = apply_transform(np.linalg.inv(truth), p)  # where each point lies in the frame
    return np.hypot(*(apply_transform(est, q) - p).T)


def bench_pcb(args) -> int:
    folder = Path(args.stack or DATA / "stacks" / "pcb")
    paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
                    and p.stem.lower() != "expected"), key=natural_key)
    frames = [read_image(p) for p in paths]
    h, w = frames[0].shape[:2]
    print(f"{folder}: {len(frames)} frames {w}x{h}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("| run | estimate s | warp s | total s | CPU s |")
    print("|---:|---:|---:|---:|---:|")
    reg = None
    for k in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        reg = estimate_transforms(frames, model=args.model, workers=args.workers, names=[p.name for p in paths])
        t1 = time.perf_counter()
        for i in reg.aligned:
            warp_frame(frames[i], reg.transforms[i], box=reg.valid_box)
        t2 = time.perf_counter()
        print(f"| {k + 1} | {t1 - t:.2f} | {t2 - t1:.2f} | {t2 - t:.2f} | {time.process_time() - c:.2f} |")
    for line, init, m in zip(reg.describe([p.name for p in paths]), reg.inits, reg.matches):
        print(f"  {line}  [{init}, {m} matches]")
    x0, y0, x1, y1 = reg.valid_box
    print(f"valid box {reg.valid_box}: {100.0 * (x1 - x0) * (y1 - y0) / (w * h):.1f}% of the frame")
    return 0


def bench_synthetic(args) -> int:
    from mfif.synth import handheld_stack, list_photos

    photos = list_photos(DATA / "train_images")
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(photos), size=args.stacks, replace=False)
    w, h = (int(v) for v in args.size.split("x"))
    print(f"{args.stacks} synthetic stacks of {args.frames} frames {w}x{h} (seed {args.seed}); "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| stack | photo | median px | worst px | residual px (max) | estimate s | status |")
    print("|---:|---|---:|---:|---:|---:|---|")
    errs, worst, fails, secs = [], [], 0, []
    for k, idx in enumerate(picks):
        st = handheld_stack(read_image(photos[idx]), rng=np.random.default_rng(args.seed * 1000 + k),
                            n=args.frames, size=(w, h))
        t = time.perf_counter()
        try:
            reg = estimate_transforms(st.frames, reference=st.reference, model=args.model)
        except AlignmentError as exc:
            fails += 1
            print(f"| {k} | {photos[idx].name} | | | | | FAILED: {exc} |")
            continue
        secs.append(time.perf_counter() - t)
        e = np.concatenate([point_errors(reg.transforms[i], st.transforms[i], reg.valid_box)
                            for i in range(args.frames) if i != st.reference])
        skipped = sum(s != "ok" for s in reg.status)
        fails += skipped
        errs.append(e)
        worst.append(float(e.max()))
        res = max(r for r in reg.residuals if np.isfinite(r))
        print(f"| {k} | {photos[idx].name} | {np.median(e):.3f} | {e.max():.3f} | {res:.2f} | {secs[-1]:.2f} | "
              f"{'ok' if not skipped else f'{skipped} skipped'} |")
    if errs:
        allv = np.concatenate(errs)
        print(f"\nall {len(allv)} points: median {np.median(allv):.3f} px, 95th percentile "
              f"{np.percentile(allv, 95):.3f} px, worst {allv.max():.3f} px; failures {fails}; "
              f"estimate {np.median(secs):.2f} s per stack (median)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pcb")
    p.add_argument("stack", nargs="?")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="similarity")
    p.add_argument("--workers", type=int, default=None)
    s = sub.add_parser("synthetic")
    s.add_argument("--stacks", type=int, default=12)
    s.add_argument("--frames", type=int, default=7)
    s.add_argument("--size", default="1200x800")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--model", default="similarity")
    args = ap.parse_args(argv)
    return bench_pcb(args) if args.what == "pcb" else bench_synthetic(args)


if __name__ == "__main__":
    raise SystemExit(main())
