"""Focus-stack benchmark: seconds per megapixel per frame and peak memory of `mfif fuse`.

Each run is a separate `mfif fuse` process; peak memory is its maximum resident set size
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper process whose only child it is).

* ``pcb``: the real hand-held 7-frame stack (../shared/data/stacks/pcb), with ``--align``; also
  writes a side-by-side crop against ``expected.jpg`` (the C++ focus-stack's result) and the
  no-reference metrics of both, computed on the aligned, cropped frames.
* ``big``: a synthetic stack of ``--frames`` frames of ``--mp`` megapixels (default 20 x 50 MP),
  written as TIFFs to a scratch folder: one photo upscaled, a smooth random depth map, frame k
  sharp where the depth is k, blur growing with the depth difference.

Usage::

    .venv/bin/python benchmarks/bench_stack.py pcb [--methods sff,focus-map] [--crop docs/img/pcb_crop.png]
    .venv/bin/python benchmarks/bench_stack.py big [--frames 20] [--mp 50] [--methods focus-map] [-p scale=0.25]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MFIF = [sys.executable, "-m", "mfif"]
PCB = ROOT.parent / "shared" / "data" / "stacks" / "pcb"


_WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def run_fuse(args: list[str]) -> tuple[float, float]:
    """Run ``mfif fuse ARGS`` in a fresh wrapper; return (wall seconds, peak RSS in MB of mfif)."""
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-c", _WRAP, *MFIF, "fuse", *args], capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mfif fuse failed: {proc.stderr.strip()}")
    return dt, int(proc.stderr.strip().splitlines()[-1]) / 1024.0


def pcb(args) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from mfif import metrics
    from mfif.io import read_image

    frames = sorted(PCB.glob("pcb_*.jpg"))
    if not frames:
        raise SystemExit(f"{PCB}: pcb stack not found")
    h, w = read_image(frames[0]).shape[:2]
    mp = h * w / 1e6
    out = Path(tempfile.mkdtemp(prefix="mfif-pcb-"))
    rows = []
    for m in args.methods.split(","):
        extra = sum((["-p", p] for p in args.param), []) if m == "sff" else []
        dt, peak = run_fuse([*map(str, frames), "-o", str(out / f"{m}.png"), "-m", m, "--align", "-q", *extra])
        rows.append((m, dt, dt / (mp * len(frames)), peak))
    print(f"pcb: {len(frames)} frames, {w}x{h} ({mp:.2f} MP), --align")
    print("| method | wall s | s per MP per frame | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for m, dt, spm, peak in rows:
        print(f"| {m} | {dt:.1f} | {spm:.3f} | {peak:.0f} |")
    # metrics on the aligned frames (mfif's geometry); expected.jpg registered onto it
    from mfif.align import align_stack

    ours = {m: read_image(out / f"{m}.png") for m in args.methods.split(",")}
    exp = read_image(PCB / "expected.jpg")
    aligned, (x0, y0, x1, y1), ref_index = _aligned_frames(frames)
    # expected.jpg registered onto mfif's reference frame, then cropped like mfif's output
    reg = align_stack([read_image(frames[ref_index]), exp], reference=0, crop=False, max_residual=None,
                      chain=False)
    exp_on = reg.images[1][y0:y1, x0:x1]
    print()
    print("| result | Q^AB/F | Q_MI | Q_Y | Q_CB |")
    print("|---|---:|---:|---:|---:|")
    for name, img in [*ours.items(), ("focus-stack (expected.jpg)", exp_on)]:
        q = [metrics.qabf(img, aligned), metrics.qmi(img, aligned), metrics.qy(img, aligned), metrics.qcb(img, aligned)]
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in q) + " |")
    if args.crop:
        y, x, s = 560, 760, 360
        tiles = [cv2.resize(img[y:y + s, x:x + s], (s, s)) for img in [*ours.values(), exp_on]]
        sheet = np.hstack(tiles)
        cv2.imwrite(args.crop, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(f"\ncrop ({', '.join([*ours, 'focus-stack'])}) -> {args.crop}")


def _aligned_frames(frames):
    """The frames as mfif aligns and crops them (same geometry as its fused output)."""
    sys.path.insert(0, str(ROOT / "src"))
    from mfif.io import read_image
    from mfif.stack import _scale_transform, _small_gray
    from mfif.align import align_stack
    import math

    imgs = [read_image(f) for f in frames]
    smalls = [_small_gray(i, 1024) for i in imgs]
    scale = smalls[0][1]
    al = align_stack([s for s, _ in smalls], crop=True, work_size=1024)
    x0, y0, x1, y1 = al.valid_box
    h, w = imgs[0].shape[:2]
    box = (math.ceil(x0 / scale), math.ceil(y0 / scale), min(w, math.floor(x1 / scale)), min(h, math.floor(y1 / scale)))
    out = []
    for img, t in zip(imgs, al.transforms):
        tf = _scale_transform(t, scale)
        wimg = cv2.warpAffine(img, (tf / tf[2, 2])[:2], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        out.append(wimg[box[1]:box[3], box[0]:box[2]])
    return out, box, al.reference


def big(args) -> None:
    rng = np.random.default_rng(0)
    w = int(round(np.sqrt(args.mp * 1e6 * 1.5)))
    h = int(round(args.mp * 1e6 / w))
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="mfif-big-"))
    scratch.mkdir(parents=True, exist_ok=True)
    from skimage import data

    base = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 12, (h // 4, w // 4, 1)).astype(np.float32)
    base = np.clip(base.astype(np.float32) + cv2.resize(noise, (w, h))[..., None], 0, 255).astype(np.uint8)
    low = rng.random((6, 9)).astype(np.float32)
    depth = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    depth = np.clip((depth - depth.min()) / (np.ptp(depth) + 1e-6) * (args.frames - 1), 0, args.frames - 1)
    di = np.rint(depth).astype(np.int16)
    del depth
    t0 = time.perf_counter()
    paths = []
    for k in range(args.frames):
        dist = np.abs(di - k)
        frame = base.copy()
        for d in range(1, int(dist.max()) + 1):
            sigma = 0.8 * d
            m = dist == d
            if not m.any():
                continue
            ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            pad = int(3 * sigma) + 1
            y0, y1 = max(0, ys[0] - pad), min(h, ys[-1] + pad + 1)
            x0, x1 = max(0, xs[0] - pad), min(w, xs[-1] + pad + 1)
            blurred = cv2.GaussianBlur(base[y0:y1, x0:x1], (0, 0), sigma)
            sub = m[y0:y1, x0:x1]
            frame[y0:y1, x0:x1][sub] = blurred[sub]
        p = scratch / f"frame{k:03d}.tif"
        import tifffile

        tifffile.imwrite(p, frame, photometric="rgb")
        paths.append(p)
    print(f"synthetic stack: {args.frames} frames of {w}x{h} ({w * h / 1e6:.1f} MP) written in "
          f"{time.perf_counter() - t0:.0f} s to {scratch}")
    print("| method | wall s | s per MP per frame | peak RSS MB | tiles |")
    print("|---|---:|---:|---:|---:|")
    for m in args.methods.split(","):
        extra = sum((["-p", p] for p in args.param), []) if m == "sff" else []
        out = scratch / f"fused-{m}.tif"
        dt, peak = run_fuse([str(scratch / "frame*.tif"), "-o", str(out), "-m", m, "-q",
                             "--max-memory", str(args.max_memory), *extra])
        print(f"| {m} | {dt:.0f} | {dt / (w * h / 1e6 * args.frames):.3f} | {peak:.0f} | auto |")
    if not args.keep:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=("pcb", "big"))
    ap.add_argument("--methods", default="sff,focus-map")
    ap.add_argument("-p", "--param", action="append", default=[], help="sff option KEY=VALUE")
    ap.add_argument("--crop", default="")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--mp", type=float, default=50.0)
    ap.add_argument("--max-memory", type=float, default=4096)
    ap.add_argument("--scratch", default="")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    pcb(args) if args.which == "pcb" else big(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
