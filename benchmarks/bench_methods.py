"""Time every registered fusion method on a synthetic 2-source colour pair.

Usage::

    .venv/bin/python benchmarks/bench_methods.py [--size 1000] [--repeats 3] [--methods a,b]

Prints a Markdown table: wall-clock seconds per megapixel (median of ``--repeats`` runs of
``mfif.fuse``; the pair is ``size`` x ``size`` RGB, so 1 MP per source by default), the
process CPU seconds per megapixel of the same runs (all threads; steadier than wall time on a
busy machine), peak extra memory, and the wall time relative to ``average``.

Each method runs in a fresh Python process so that memory figures do not leak from one method
to the next. Two memory figures are given:

* ``tracemalloc``: peak of Python-tracked allocations (NumPy arrays included) during an untimed
  first run, relative to the start of that run. It does not see memory allocated inside C/C++
  libraries that bypass Python's allocator (OpenCV's internal buffers, PyTorch).
* ``peak RSS``: the process's peak resident set size during that first run minus its resident
  set size just before it, after the inputs are loaded and the method's module is imported.
  Measured by :class:`mfif.sysinfo.PeakMemory`, the package's one memory probe: ``VmHWM`` in
  ``/proc/self/status`` after resetting it with ``/proc/self/clear_refs`` and returning freed
  heap to the system (Linux); it sees every allocation, C/C++ included. Elsewhere it falls
  back to Python-tracked allocations; the table says which probe ran.

``sff`` is included only if ``mfif.sff.fusion`` imports; otherwise, or if it fails, its row
says why.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_pair(size: int, seed: int = 0) -> np.ndarray:
    """A ``2 x size x size x 3`` float32 multi-focus pair: left half blurred in A, right in B."""
    import cv2

    rng = np.random.default_rng(seed)
    try:
        from skimage import data

        sharp = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_CUBIC)
        sharp = sharp.astype(np.float32) / 255.0
    except Exception:  # noqa: BLE001 - fall back to a texture if scikit-image data is missing
        sharp = cv2.GaussianBlur(rng.random((size, size, 3), dtype=np.float32), (0, 0), 1.0)
    noise = rng.normal(0.0, 0.01, sharp.shape).astype(np.float32)
    sharp = np.clip(sharp + cv2.GaussianBlur(noise, (0, 0), 0.5), 0.0, 1.0)
    blur = cv2.GaussianBlur(sharp, (0, 0), 3.0)
    half = size // 2
    a, b = sharp.copy(), sharp.copy()
    a[:, :half] = blur[:, :half]
    b[:, half:] = blur[:, half:]
    return np.stack([a, b])


def worker(method: str, pair_path: str, repeats: int) -> dict:
    """Run one method ``repeats`` times in this process; return timings and memory."""
    import gc
    import time
    import tracemalloc

    import mfif
    from mfif.methods import get_method

    pair = np.load(pair_path)
    sources = [pair[0], pair[1]]
    megapixels = pair.shape[1] * pair.shape[2] / 1e6
    if method == "sff":
        try:
            import mfif.sff.fusion  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return {"method": method, "error": f"mfif.sff.fusion does not import ({type(exc).__name__}: {exc})"}
    try:
        get_method(method).load()  # import cost is not part of the timing
    except Exception as exc:  # noqa: BLE001
        return {"method": method, "error": f"cannot load ({type(exc).__name__}: {exc})"}
    gc.collect()
    # Run 0: memory (tracemalloc slows it down, so it is not timed; it also warms caches).
    from mfif.sysinfo import PeakMemory, memory_probe

    tracemalloc.start()
    try:
        with PeakMemory() as mem:
            mfif.fuse(sources, method=method)
    except Exception as exc:  # noqa: BLE001
        return {"method": method, "error": f"{type(exc).__name__}: {exc}"}
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    # Runs 1..repeats: timing.
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        mfif.fuse(sources, method=method)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        gc.collect()
    timed = times
    return {
        "method": method,
        "times": times,
        "seconds": float(np.median(timed)),
        "s_per_mp": float(np.median(timed)) / megapixels,
        "cpu_s_per_mp": float(np.median(cpu)) / megapixels,
        "tracemalloc_mb": traced_peak / 2**20,
        "rss_delta_mb": mem.peak_mb,
        "rss_source": memory_probe(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1000, help="side of the square pair in px (default 1000: 1 MP)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method (median reported, default 3)")
    ap.add_argument("--methods", default="", help="comma-separated subset (default: all registered)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--pair", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.pair, args.repeats)))
        return 0

    sys.path.insert(0, str(REPO / "src"))
    from mfif.methods import METHODS

    names = [m for m in args.methods.split(",") if m] or list(METHODS)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s): {', '.join(unknown)}")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    repeats = args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        pair_path = os.path.join(tmp, "pair.npy")
        np.save(pair_path, make_pair(args.size))
        rows = []
        for name in names:
            env = dict(os.environ)
            env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
            proc = subprocess.run([sys.executable, __file__, "--worker", name, "--pair", pair_path,
                                   "--repeats", str(repeats)], capture_output=True, text=True, env=env)
            try:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            except (json.JSONDecodeError, IndexError):
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"method": name, "error": f"worker failed: {tail}"})
            print(f"# {name}: done", file=sys.stderr, flush=True)

    base = next((r["seconds"] for r in rows if r["method"] == "average" and "seconds" in r), None)
    mp = args.size * args.size / 1e6
    print(f"Synthetic {args.size}x{args.size} RGB pair ({mp:g} MP per source, 2 sources), "
          f"median of {args.repeats} runs of mfif.fuse; {os.cpu_count()} CPUs.\n")
    src = next((r["rss_source"] for r in rows if "rss_source" in r), "rss+trim")
    print(f"| method | s per MP (wall) | CPU s per MP | peak extra memory, tracemalloc (MB) | peak extra memory, {src} - RSS before (MB) | x average |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | skipped: {r['error']} | | | | |")
            continue
        ratio = f"{r['seconds'] / base:.1f}" if base else "n/a"
        print(f"| {r['method']} | {r['s_per_mp']:.3f} | {r['cpu_s_per_mp']:.3f} | {r['tracemalloc_mb']:.0f} | "
              f"{r['rss_delta_mb']:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
