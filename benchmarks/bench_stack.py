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
    .venv/bin/python benchmarks/bench_stack.py big --methods "sff-fast:tile=2;sff-fast;focus-map"
    .venv/bin/python benchmarks/bench_stack.py mem [--frames-list 2,5,10] [--sides 256,1024] [--methods focus-map,sff]
    .venv/bin/python benchmarks/bench_stack.py mem --verify [--frames-list 10] [--mp 4] [--budgets 800,1500]
    .venv/bin/python benchmarks/bench_stack.py pairwise [--frames-list 10,15,20] [--sides 378]

* ``mem``: the working set of ``fuse_stack`` per tile, i.e. what ``--max-memory`` bounds. Each
  run is a fresh process that imports mfif, loads the method (SFF: the model, and a 64 px
  warm-up fusion so that library initialisation is part of the baseline), takes its resident
  size as the baseline, resets the peak (``/proc/self/clear_refs``) and fuses a synthetic
  ``SIDE x SIDE`` RGB stack of N frames as one tile; peak = ``VmHWM - baseline``. The table
  compares it with :func:`mfif.tiling.estimate_memory` (through :func:`mfif.tiling.plan_tiles`). ``sff`` in ``--methods`` measures
  the default and ``scale=0.5``; ``sff:scale=0.5`` one of them. With ``--verify`` the stack
  is (first of ``--frames-list``) x ``--mp`` MP, the tile is chosen from each of ``--budgets``
  as ``fuse_stack`` does, and the peak is checked against the budget.
* ``pairwise``: SFF's CNN pass over one internal tile, split into features + projections (once
  per frame) and the pairwise head (once per pair of frames, ``N(N-1)/2``).
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
    from mfif.align import estimate_transforms, warp_frame
    from mfif.io import read_image

    reg = estimate_transforms(frames)  # what fuse --align does
    out = [warp_frame(read_image(f), t, box=reg.valid_box) for f, t in zip(frames, reg.transforms)]
    box = reg.valid_box
    return out, box, reg.reference


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
    # every blur level once (Gaussian sigma 0.8 px per depth step), then each frame picks per pixel
    levels = [base] + [cv2.GaussianBlur(base, (0, 0), 0.8 * d) for d in range(1, args.frames)]
    paths = []
    for k in range(args.frames):
        dist = np.abs(di - k)
        frame = base.copy()
        for d in range(1, int(dist.max()) + 1):
            m = dist == d
            if m.any():
                frame[m] = levels[d][m]
        p = scratch / f"frame{k:03d}.tif"
        import tifffile

        tifffile.imwrite(p, frame, photometric="rgb")
        paths.append(p)
    print(f"synthetic stack: {args.frames} frames of {w}x{h} ({w * h / 1e6:.1f} MP) written in "
          f"{time.perf_counter() - t0:.0f} s to {scratch}")
    # the frames' dirty pages go to disk now, not during the first method's run, which would
    # otherwise pay for them (docs/speed.md)
    os.sync()
    print("| method | wall s | s per MP per frame | peak RSS MB | tiles |")
    print("|---|---:|---:|---:|---:|")
    for m in args.methods.split(";" if ";" in args.methods or ":" in args.methods else ","):
        # a method may carry its own options, "sff-fast:tile=2,weak=6"; methods are then separated by ";"
        name, _, opts = m.partition(":")
        extra = sum((["-p", p] for p in args.param), []) if name == "sff" else []
        extra += sum((["-p", kv] for kv in opts.split(",") if kv), [])
        out = scratch / f"fused-{name}.tif"
        dt, peak = run_fuse([str(scratch / "frame*.tif"), "-o", str(out), "-m", name, "-q",
                             "--max-memory", str(args.max_memory), *extra])
        print(f"| {m} | {dt:.0f} | {dt / (w * h / 1e6 * args.frames):.3f} | {peak:.0f} | auto |")
    if not args.keep:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


_MEM_CHILD = r"""
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from mfif.api import fuse
from mfif.stack import fuse_stack
method, params, tile, budget = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
paths = sys.argv[6:]

from mfif.sysinfo import reset_peak, status_kib

def status():  # MB of 10**6 bytes, as --max-memory
    return {k: (status_kib(k) or 0) * 1024 / 1e6 for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}

warm = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
fuse(list(warm), method=method, **params)  # imports, model load, library initialisation
del warm
gc.collect()
base = status()
reset_peak()  # VmHWM back to the current RSS
t0 = time.perf_counter()
res = fuse_stack(paths, method=method, params=params, tile=tile, max_memory_mb=budget)
dt = time.perf_counter() - t0
end = status()
print(json.dumps({"base": base["VmRSS"], "hwm": end["VmHWM"], "peak": end["VmHWM"] - base["VmRSS"],
                  "rss_file_end": end["RssFile"], "tiles": res.tiles, "tile": res.tile_size, "seconds": dt}))
"""


def _mem_run(method: str, params: dict, paths, *, tile: int = 0, budget: float = 1e9) -> dict:
    import json

    proc = subprocess.run([sys.executable, "-c", _MEM_CHILD, str(ROOT / "src"), method, json.dumps(params), str(tile),
                           str(budget), *map(str, paths)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def synth_stack(folder: Path, n: int, h: int, w: int, seed: int = 0) -> list[Path]:
    """N RGB frames (PNG) of one photo: frame k sharp where a smooth random depth map is k."""
    from skimage import data

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    base = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    blur = cv2.GaussianBlur(base, (0, 0), 3.0)
    depth = cv2.resize(rng.random((5, 7)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    depth = (depth - depth.min()) / (np.ptp(depth) + 1e-6) * (n - 1)
    paths = []
    for k in range(n):
        a = np.clip(np.abs(depth - k), 0, 1)[..., None]
        frame = np.clip(base * (1 - a) + blur * a, 0, 255).astype(np.uint8)
        p = folder / f"f{k:03d}.png"
        cv2.imwrite(str(p), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        paths.append(p)
    return paths


def _configs(args) -> list[tuple[str, str, dict]]:
    out = []
    for m in args.methods.split(","):
        if m == "sff":
            out.append(("sff", "sff", {}))
            out.append(("sff scale=0.5", "sff", {"scale": 0.5}))
        elif m.startswith("sff:"):  # sff:scale=0.5 -> that configuration only
            k, v = m[4:].split("=")
            out.append((f"sff {k}={v}", "sff", {k: float(v)}))
        else:
            out.append((m, m, {}))
    return out


def mem(args) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from mfif.methods import get_method
    from mfif.tiling import plan_tiles

    scratch = Path(tempfile.mkdtemp(prefix="mfif-mem-"))
    try:
        if args.verify:
            n = int(args.frames_list.split(",")[0])
            w = int(round(np.sqrt(args.mp * 1e6 * 1.5)))
            h = int(round(args.mp * 1e6 / w))
            paths = synth_stack(scratch / "v", n, h, w)
            print(f"{n} frames of {w}x{h} ({w * h / 1e6:.1f} MP), tile chosen from the budget; "
                  "peak = VmHWM - baseline (MB)")
            print("| method | budget MB | tile px | tiles | CNN options | estimate MB | peak MB | whole process MB "
                  "| wall s |")
            print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
            for budget in map(float, args.budgets.split(",")):
                for label, m, params in _configs(args):
                    plan = plan_tiles(get_method(m), params, n, h, w, max_memory_mb=budget)  # as fuse_stack does
                    cnn, pred = plan.fitted, plan.need_mb
                    r = _mem_run(m, params, paths, budget=budget)
                    flag = "" if r["peak"] <= budget else " (over)"
                    opts = ", ".join(f"{k}={v}" for k, v in cnn.items()) or "-"
                    print(f"| {label} | {budget:.0f} | {r['tile'] or 'whole'} | {r['tiles']} | {opts} | {pred:.0f} | "
                          f"{r['peak']:.0f}{flag} | {r['hwm']:.0f} | {r['seconds']:.0f} |", flush=True)
            return
        print("one tile of SIDE x SIDE px, N RGB frames; peak = VmHWM - baseline (MB), model = "
              "mfif.tiling.estimate_memory")
        print("| method | N | side px | baseline MB | peak MB | model MB | peak bytes/px | wall s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for n in map(int, args.frames_list.split(",")):
            for side in map(int, args.sides.split(",")):
                paths = synth_stack(scratch / f"{n}-{side}", n, side, side)
                for label, m, params in _configs(args):
                    r = _mem_run(m, params, paths, tile=0)
                    pred = plan_tiles(get_method(m), params, n, side, side, max_memory_mb=1e9).need_mb
                    print(f"| {label} | {n} | {side} | {r['base']:.0f} | {r['peak']:.0f} | {pred:.0f} | "
                          f"{r['peak'] * 1e6 / side ** 2:.0f} | {r['seconds']:.1f} |", flush=True)
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


_PAIR_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from mfif.sff.inference import pairwise_from_projections
from mfif.sff.weights import load_model

from mfif.sysinfo import reset_peak, status_kib

def rss():
    return {k: (status_kib(k) or 0) * 1024 / 1e6 for k in ("VmHWM", "VmRSS")}

n, side = int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)  # as each worker of the CNN pass runs
net, _ = load_model()
rng = np.random.default_rng(0)
xs = [torch.from_numpy(rng.random((side, side), dtype=np.float32))[None, None].contiguous(
      memory_format=torch.channels_last) for _ in range(n)]
with torch.inference_mode():
    net.project(net.features(xs[0][..., :64, :64], dense_stride=4))  # warm-up
    base = rss()["VmRSS"]
    reset_peak()
    t0 = time.perf_counter()
    proj = [net.project(net.features(x, dense_stride=4)) for x in xs]
    t1 = time.perf_counter()
    after_proj = rss()
    reset_peak()
    s = pairwise_from_projections(net, proj)
    t2 = time.perf_counter()
    end = rss()
print(json.dumps({"features_s": t1 - t0, "pairwise_s": t2 - t1, "proj_mb": after_proj["VmRSS"] - base,
                  "features_peak_mb": after_proj["VmHWM"] - base,
                  "pairwise_peak_mb": end["VmHWM"] - after_proj["VmRSS"]}))
"""


def pairwise(args) -> None:
    """Time and memory of SFF's CNN pass on one internal tile: features vs the pairwise head."""
    import json

    side = int(args.sides.split(",")[0])
    print(f"one internal CNN tile of {side}x{side} px (stride 4), one thread (as one worker of the CNN pass); "
          "MB over the baseline")
    print("| N | pairs | features + projections s | pairwise head s | head share | projections MB | "
          "features peak MB | head peak MB (transient) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in map(int, args.frames_list.split(",")):
        proc = subprocess.run([sys.executable, "-c", _PAIR_CHILD, str(ROOT / "src"), str(n), str(side)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        share = r["pairwise_s"] / (r["pairwise_s"] + r["features_s"])
        print(f"| {n} | {n * (n - 1) // 2} | {r['features_s']:.2f} | {r['pairwise_s']:.2f} | {share:.0%} | "
              f"{r['proj_mb']:.0f} | {r['features_peak_mb']:.0f} | {r['pairwise_peak_mb']:.0f} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=("pcb", "big", "mem", "pairwise"))
    ap.add_argument("--methods", default="sff,focus-map")
    ap.add_argument("-p", "--param", action="append", default=[], help="sff option KEY=VALUE")
    ap.add_argument("--crop", default="")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--mp", type=float, default=50.0)
    ap.add_argument("--max-memory", type=float, default=4096)
    ap.add_argument("--scratch", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--frames-list", default="2,5,10",
                    help="mem: numbers of frames (with --verify: the first one)")
    ap.add_argument("--sides", default="256,512,1024", help="mem: tile sides (px)")
    ap.add_argument("--verify", action="store_true", help="mem: tiles chosen from --budgets on an --mp stack")
    ap.add_argument("--budgets", default="800,1500", help="mem --verify: --max-memory values (MB)")
    args = ap.parse_args()
    {"pcb": pcb, "big": big, "mem": mem, "pairwise": pairwise}[args.which](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
