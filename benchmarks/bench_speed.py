"""Speed and memory of mfif against the C++ focus-stack, in the same run (ratios, not absolutes).

Each measurement is a separate process; peak memory is its maximum resident set size
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper whose only child it is). Runs of the
tools alternate, ``--repeat`` times, and the table gives the median, so load on this shared
machine hits every tool alike.

* ``pcb``: the real hand-held 7-frame stack (``../shared/data/stacks/pcb``, 7 x 3.1 MP), aligned,
  with a depth map: ``mfif fuse --align --depth-map`` with each of ``--methods`` against
  ``focus-stack --no-opencl --depthmap=...`` (``../shared/tools/focus-stack``; it needs Debian's
  libopencv-dev).
* ``cli``: whole ``mfif fuse`` calls: a 3.0-MP pair (two neighbouring pcb frames, registered
  first), a 0.27-MP pair (a 600 x 450 crop of them) and, for the start-up cost, a 64 x 64 pair
  with ``-m average``.
* ``inproc``: ``mfif.fuse`` in one process on a 1-MP pair (after one warm-up call), with the
  per-stage times of ``info["timings"]``: a crop of two neighbouring pcb frames as shot (not
  registered: boundaries everywhere) and a synthetic case from a BSDS500 test photo.
* ``zstack``: a multi-page TIFF z-stack given alone (the pcb frames as pages, whole and as a
  640 x 512 crop) on the local engine, the same file on the Dask engine (``--scheduler
  threads``) and the same planes as TIFF files, with ``--depth-map``.
* ``runtime``: the sff-fast network on one 2048 x 1536 frame with each runtime (ONNX Runtime,
  OpenCV's DNN module, PyTorch), and each runtime's import time in a fresh process.
* ``cold``: the first passes of that frame in fresh processes, ONNX Runtime's session built as
  ``mfif.sff.fast_runtime`` builds it, with and without its memory pattern (a pair's CLI call
  is two such passes); each process's peak memory.

Usage::

    .venv/bin/python benchmarks/bench_speed.py pcb [--methods sff-fast,focus-map] [--repeat 3]
    .venv/bin/python benchmarks/bench_speed.py cli [--methods sff-fast] [--repeat 5]
    .venv/bin/python benchmarks/bench_speed.py inproc [--methods sff-fast,focus-map] [--repeat 5]
    .venv/bin/python benchmarks/bench_speed.py zstack [--methods sff-fast] [--repeat 5]
    .venv/bin/python benchmarks/bench_speed.py runtime [--repeat 5]
    .venv/bin/python benchmarks/bench_speed.py cold [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PCB = ROOT.parent / "shared" / "data" / "stacks" / "pcb"
FOCUS_STACK = ROOT.parent / "shared" / "tools" / "focus-stack" / "focus-stack"
_WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def _env() -> dict:
    """The child processes' environment: mfif from this tree, with its bytecode cache in use.

    An installed package has compiled bytecode; a machine that sets PYTHONDONTWRITEBYTECODE
    would otherwise recompile every mfif module on every call (about 0.1 s of each run)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def compile_tree() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "mfif")], env=_env(), check=True)


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` in a fresh wrapper; (wall seconds, peak RSS MB)."""
    env = _env()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return dt, int(proc.stderr.strip().splitlines()[-1]) / 1024.0


# `mfif` whose method function, when called, prints the wall clock (time.time()) on stderr: the
# moment fusing starts, for the start-up figure (interpreter, imports, options, reading the pair).
_STARTS = ("import sys, time; import mfif.methods as M; load = M.Method.load\n"
           "def traced(self):\n"
           "    f = load(self)\n"
           "    def g(*a, **k):\n"
           "        print('fusing-starts', repr(time.time()), file=sys.stderr, flush=True); return f(*a, **k)\n"
           "    return g\n"
           "M.Method.load = traced; from mfif.cli import main; sys.exit(main(sys.argv[1:]))")


def time_to_fusing(args: list[str]) -> float:
    """Seconds from spawning ``mfif ARGS`` to the method function being called (wall clock)."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", _STARTS, *args], capture_output=True, text=True, env=_env())
    marks = [ln for ln in proc.stderr.splitlines() if ln.startswith("fusing-starts")]
    if proc.returncode != 0 or not marks:
        raise SystemExit(f"failed: mfif {' '.join(args)}\n{proc.stderr[-2000:]}")
    return float(marks[0].split()[1]) - t0


def mfif_cmd() -> list[str]:
    return [sys.executable, "-m", "mfif"]


def table(rows: list[tuple], ref: str | None) -> None:
    print(f"\n| run | wall s (median) | min | peak MB | time / {ref or 'first'} | memory / {ref or 'first'} |")
    print("|---|---|---|---|---|---|")
    base = next((r for r in rows if r[0] == ref), rows[0])
    for name, times, mems in rows:
        t, m = statistics.median(times), max(mems)
        bt, bm = statistics.median(base[1]), max(base[2])
        print(f"| {name} | {t:.2f} | {min(times):.2f} | {m:.0f} | {t / bt:.2f} | {m / bm:.2f} |")


def bench_pcb(args) -> None:
    frames = sorted(str(p) for p in PCB.glob("pcb_*.jpg"))
    tools: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if FOCUS_STACK.is_file() and not args.no_peer:
            tools["focus-stack"] = [str(FOCUS_STACK), "--no-opencl", f"--depthmap={tmp}/fs-depth.png",
                                    f"--output={tmp}/fs.jpg", *frames]
        for m in args.methods.split(","):
            tools[f"mfif -m {m}"] = [*mfif_cmd(), "fuse", *frames, "-m", m, "--align", "-q",
                                     "--depth-map", f"{tmp}/{m}-depth.png", "-o", f"{tmp}/{m}.jpg"]
        res = {k: ([], []) for k in tools}
        for _ in range(args.repeat):
            for name, cmd in tools.items():
                for f in Path(tmp).glob("*"):
                    f.unlink()
                t, m = timed(cmd)
                res[name][0].append(t)
                res[name][1].append(m)
                print(f"  {name}: {t:.2f} s, {m:.0f} MB", flush=True)
    print(f"\npcb: 7 x {len(frames) and 3.1} MP, aligned, with depth map; {args.repeat} alternating runs")
    table([(k, *v) for k, v in res.items()], "focus-stack" if "focus-stack" in res else None)


def _pair_files(tmp: str) -> dict[str, list[str]]:
    """Two neighbouring pcb frames registered to each other (``mfif.align``, as a tripod pair
    would be), whole (2005 x 1504 after cropping to the common area, 3.0 MP) and cropped."""
    import cv2

    sys.path.insert(0, str(ROOT / "src"))
    from mfif.align import estimate_transforms, warp_frame

    paths = [PCB / f"pcb_00{k}.jpg" for k in (3, 4)]
    reg = estimate_transforms(paths, reference="first")
    a, b = (warp_frame(cv2.imread(str(p)), t, box=reg.valid_box) for p, t in zip(paths, reg.transforms))
    out = {}
    for name, crop in [("3.0-MP pair", None), ("0.27-MP pair", (600, 450)), ("64x64 pair", (64, 64))]:
        files = []
        for k, img in enumerate((a, b)):
            if crop:
                w, h = crop
                y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
                img = img[y:y + h, x:x + w]
            f = f"{tmp}/{name.split()[0]}_{k}.jpg"
            cv2.imwrite(f, img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            files.append(f)
        out[name] = files
    return out


def bench_cli(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pairs = _pair_files(tmp)
        runs = {}
        for m in args.methods.split(","):
            for name in ("3.0-MP pair", "0.27-MP pair"):
                runs[f"{name}, -m {m}"] = [*mfif_cmd(), "fuse", *pairs[name], "-m", m, "-q", "-o", f"{tmp}/out.jpg"]
        runs["64x64 pair, -m average (start-up)"] = [*mfif_cmd(), "fuse", *pairs["64x64 pair"], "-m", "average",
                                                     "-q", "-o", f"{tmp}/out.jpg"]
        runs["python -c 'import mfif'"] = [sys.executable, "-c", "import mfif"]
        # every row is timed through the same Python wrapper (for its peak-memory figure): its own
        # start-up and the spawn, what this row costs, are in every other row too
        runs["the timing wrapper alone (runs `true`)"] = ["true"]
        res = {k: ([], []) for k in runs}
        starts = []
        for _ in range(args.repeat):
            for name, cmd in runs.items():
                Path(f"{tmp}/out.jpg").unlink(missing_ok=True)
                t, m = timed(cmd)
                res[name][0].append(t)
                res[name][1].append(m)
            Path(f"{tmp}/out.jpg").unlink(missing_ok=True)
            starts.append(time_to_fusing(["fuse", *pairs["64x64 pair"], "-m", "average", "-q", "-o", f"{tmp}/out.jpg"]))
    print(f"\nwhole CLI calls (JPEG in and out), {args.repeat} alternating runs")
    table([(k, *v) for k, v in res.items()], None)
    print(f"\n`mfif fuse` of the 64x64 pair, -m average: fusing starts {statistics.median(starts):.3f} s after the "
          f"process is spawned (median; min {min(starts):.3f}, max {max(starts):.3f})")


def bench_zstack(args) -> None:
    import cv2
    import tifffile

    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(PCB.glob("pcb_*.jpg"))]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, crop in (("7 x 3.1 MP", None), ("7 x 0.33 MP", (640, 512))):
            planes = []
            for img in frames:
                if crop:
                    w, h = crop
                    y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
                    img = img[y:y + h, x:x + w]
                planes.append(img)
            tag = name.split()[-2]
            z, folder = f"{tmp}/z{tag}.tif", Path(f"{tmp}/planes{tag}")
            folder.mkdir()
            with tifffile.TiffWriter(z) as tw:
                for k, img in enumerate(planes):
                    tw.write(img, photometric="rgb")
                    tifffile.imwrite(folder / f"p{k}.tif", img, photometric="rgb")
            for m in args.methods.split(","):
                out = ["-m", m, "-q", "-o", f"{tmp}/out.tif", "--depth-map", f"{tmp}/depth.png"]
                runs[f"{name}, -m {m}: multi-page TIFF (local engine)"] = [*mfif_cmd(), "fuse", z, *out]
                runs[f"{name}, -m {m}: multi-page TIFF on Dask (--scheduler threads)"] = [
                    *mfif_cmd(), "fuse", z, *out, "--scheduler", "threads"]
                runs[f"{name}, -m {m}: the planes as TIFF files"] = [*mfif_cmd(), "fuse", str(folder), *out]
        res = {k: ([], []) for k in runs}
        for _ in range(args.repeat):
            for name, cmd in runs.items():
                for f in ("out.tif", "depth.png", "depth-preview.png"):
                    Path(f"{tmp}/{f}").unlink(missing_ok=True)
                t, mb = timed(cmd)
                res[name][0].append(t)
                res[name][1].append(mb)
    print(f"\nz-stacks through whole `mfif fuse` calls, with --depth-map; {args.repeat} alternating runs")
    table([(k, *v) for k, v in res.items()], None)


def bench_inproc(args) -> None:
    import cv2
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    from mfif import fuse
    from mfif.io import to_float

    from mfif.synth import make_case

    a, b = (cv2.imread(str(PCB / f"pcb_00{k}.jpg"))[:, :, ::-1] for k in (3, 4))
    y, x = (a.shape[0] - 864) // 2, (a.shape[1] - 1152) // 2
    pairs = {"pcb crop (unregistered)": [to_float(np.ascontiguousarray(i[y:y + 864, x:x + 1152])) for i in (a, b)]}
    photo = to_float(cv2.imread(str(ROOT.parent / "shared/data/test_images/100007.jpg"))[:, :, ::-1].copy())
    pairs["synthetic (BSDS test 100007)"] = make_case(photo, n_sources=2, rng=np.random.default_rng(0),
                                                       size=(864, 1152)).sources
    print(f"\nin process, 1152 x 864 (1.0 MP) colour pairs, median of {args.repeat} after a warm-up call")
    print("| pair | method | total s | stages (s) | stages 3-4 share |")
    print("|---|---|---|---|---|")
    for pname, src in pairs.items():
        for m in args.methods.split(","):
            fuse(src, method=m)
            totals, stages = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                r = fuse(src, method=m)
                totals.append(time.perf_counter() - t0)
                stages.append(r.info.get("timings", {}))
            med = statistics.median(totals)
            parts = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
            later = sum(v for k, v in parts.items() if k not in ("focus_detection", "segmentation"))
            share = f"{later / sum(parts.values()):.0%}" if parts else ""
            print(f"| {pname} | {m} | {med:.3f} | " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
                  + f" | {share} |")


def bench_runtime(args) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    from mfif.sff.fast_runtime import default_fast_weights

    pt = default_fast_weights()
    onnx = str(pt.with_suffix(".onnx"))
    x = np.random.default_rng(0).random((1, 1, 1536, 2048)).astype(np.float32)
    imports = {}
    for mod in ("onnxruntime", "cv2", "torch"):
        imports[mod] = statistics.median(timed([sys.executable, "-c", f"import {mod}"])[0]
                                         - timed([sys.executable, "-c", "pass"])[0] for _ in range(args.repeat))
    import json

    import cv2
    import onnxruntime as ort
    import torch

    from mfif.sff.fast_model import from_card

    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
    dnn = cv2.dnn.readNetFromONNX(onnx)
    net = from_card(json.loads(pt.with_suffix(".json").read_text())).eval()
    net.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))

    def run_dnn():
        dnn.setInput(x)
        return dnn.forward()

    def run_torch():
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    runs = {"onnxruntime": lambda: sess.run(None, {"gray": x})[0], "opencv dnn": run_dnn, "pytorch": run_torch}
    ref = run_torch()
    print(f"\nsff-fast network on one 2048 x 1536 frame, median of {args.repeat} after a warm-up run")
    print("| runtime | import s | first run s | run s (median) | max abs diff to PyTorch |")
    print("|---|---|---|---|---|")
    for name, fn in runs.items():
        t0 = time.perf_counter()
        out = fn()
        first = time.perf_counter() - t0
        ts = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        mod = {"onnxruntime": "onnxruntime", "opencv dnn": "cv2", "pytorch": "torch"}[name]
        print(f"| {name} | {imports[mod]:.2f} | {first:.3f} | {statistics.median(ts):.3f} | "
              f"{float(np.abs(np.asarray(out) - ref).max()):.1e} |")


#: One fresh process of ``cold``: eight passes of a 2048 x 1536 frame through the shipped export.
_COLD = """
import json, resource, sys, time
import numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.intra_op_num_threads = 0
so.inter_op_num_threads = 1
so.log_severity_level = 3
so.add_session_config_entry("session.intra_op.allow_spinning", "0")
so.enable_mem_pattern = sys.argv[2] == "1"
sess = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).random((1, 1, 1536, 2048)).astype(np.float32)
ts = []
for _ in range(8):
    t0 = time.perf_counter()
    sess.run(None, {"gray": x})
    ts.append(time.perf_counter() - t0)
print(json.dumps({"t": ts, "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_cold(args) -> None:
    import json

    sys.path.insert(0, str(ROOT / "src"))
    from mfif.sff.fast_runtime import default_fast_weights

    onnx = str(default_fast_weights().with_suffix(".onnx"))
    runs: dict[str, list] = {"with the memory pattern": [], "without (shipped)": []}
    for _ in range(args.repeat):
        for name, flag in zip(runs, ("1", "0")):
            out = subprocess.run([sys.executable, "-c", _COLD, onnx, flag], capture_output=True, text=True,
                                 check=True, env=_env())
            runs[name].append(json.loads(out.stdout))
    print(f"\nsff-fast network, fresh processes, one 2048 x 1536 frame 8 times; medians of {args.repeat} "
          "alternating processes")
    print("| session | first pass s | second pass s | passes 3-8 s | peak MB |")
    print("|---|---|---|---|---|")
    for name, rs in runs.items():
        med = statistics.median
        print(f"| {name} | {med(r['t'][0] for r in rs):.3f} | {med(r['t'][1] for r in rs):.3f} | "
              f"{med(med(r['t'][2:]) for r in rs):.3f} | {med(r['mb'] for r in rs):.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("pcb", "cli", "inproc", "zstack", "runtime", "cold"))
    ap.add_argument("--methods", default="sff-fast,focus-map")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-peer", action="store_true", help="pcb: skip focus-stack")
    args = ap.parse_args()
    compile_tree()
    {"pcb": bench_pcb, "cli": bench_cli, "inproc": bench_inproc, "zstack": bench_zstack, "runtime": bench_runtime,
     "cold": bench_cold}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
