"""Dask-engine benchmark: wall time and peak memory per worker of `mfif fuse` on synthetic z-stacks.

For each size (gigapixels per plane) a synthetic z-stack of ``--planes`` gray uint8 planes is
written once as a tiled multi-page TIFF in a scratch folder: a 512x512 case of
:func:`mfif.synth.make_case` (skimage's astronaut, one plane per depth layer) repeated over the
plane, so the focus decision has real structure everywhere. Then, for each worker count, a
``distributed.LocalCluster`` of that many single-threaded worker processes is started and
``mfif fuse STACK.tif -o OUT.ome.zarr --scheduler tcp://...`` runs on it (in this process, the
client): the workers read the TIFF tiles, fuse the chunks and write the Zarr chunks and levels.
Reported per run: wall time of the command (cluster start not included), megapixel-planes per
second, the chunk side chosen from ``--max-memory`` (per worker), each worker's peak resident
memory (``VmHWM`` from ``/proc``, reset just before the run) and its baseline (``VmRSS`` just
before, with the libraries a chunk task imports loaded): the budget bounds peak minus baseline;
and the most task results each worker held at once (sampled every 2 s from ``dask_worker.data``).

Usage (small, as docs/scale.md records them on a 2-core machine)::

    .venv/bin/python benchmarks/bench_dask.py --tolerance      # chunked vs whole-image fusion

    .venv/bin/python benchmarks/bench_dask.py --gp 0.01,0.03,0.06 --workers 1,2

On a bigger machine (the sizes of the issue; about 1.25, 2.5 and 5 GB of TIFF on disk)::

    .venv/bin/python benchmarks/bench_dask.py --gp 0.25,0.5,1 --workers 1,4,8 --max-memory 2000 --scratch /fast/tmp
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile


def make_stack(path: Path, gp: float, planes: int, seed: int = 0, strips: bool = False) -> tuple[int, int]:
    """Write a ``planes`` x (about ``gp`` gigapixels) gray uint8 z-stack as a multi-page TIFF of
    512-px tiles (as slide scanners store them), or of 512-row strips with ``strips``."""
    from skimage.data import astronaut

    from mfif.io import from_float
    from mfif.synth import make_case

    case = make_case(astronaut(), n_sources=planes, rng=np.random.default_rng(seed), size=512, gray=True)
    side = int(math.sqrt(gp * 1e9)) // 512 * 512
    reps = side // 512
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for s in case.sources:
            tile = from_float(np.clip(s, 0, 1), np.uint8)
            # one tile or one band of 512 rows at a time: the plane is never held whole
            if strips:
                tw.write((np.tile(tile, (1, reps)) for _ in range(reps)), shape=(side, side), dtype=np.uint8,
                         photometric="minisblack", rowsperstrip=512, compression=None)
            else:
                tw.write((tile for _ in range(reps * reps)), shape=(side, side), dtype=np.uint8,
                         photometric="minisblack", tile=(512, 512), compression=None)
    return side, side


def _chunk(stack: Path, method: str, max_memory: float) -> int:
    """The chunk side `mfif fuse` chose from the budget (the same planning, no pixels read)."""
    import mfif
    from mfif.zstack import open_zstack

    return mfif.fuse_dask(open_zstack(stack).array, method=method, worker_memory_mb=max_memory)[0].chunks[0][0]


def _warm(method: str) -> None:
    """Import in a worker what fusing a chunk imports (the method, the engine, zarr, tifffile)."""
    import zarr  # noqa: F401

    import mfif.engines.dask  # noqa: F401
    import mfif.zstack  # noqa: F401
    from mfif.methods import get_method

    get_method(method).load()


def held_mb(dask_worker) -> float:
    """MB of task results a worker holds now (``distributed``'s own size estimate)."""
    from dask.sizeof import sizeof

    return sum(sizeof(v) for v in list(dask_worker.data.values())) / 1e6


def _sample_held(address: str, stop, out: dict) -> None:
    """Every 2 s until ``stop`` is set: the largest amount of task results each worker held."""
    from distributed import Client

    with Client(address) as c:
        while not stop.wait(2.0):
            for w, mb in c.run(held_mb).items():
                out[w] = max(out.get(w, 0.0), mb)


def run(stack: Path, out: Path, workers: int, method: str, max_memory: float, tile: int) -> dict:
    import threading

    from distributed import Client, LocalCluster

    from mfif.cli import main
    from mfif.sysinfo import reset_peak, status_kib

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit=0) as cluster, Client(cluster) as client:
        client.run(_warm, method)  # the baseline includes the libraries a chunk task imports
        base = client.run(status_kib, "VmRSS")
        client.run(reset_peak)
        stop, held = threading.Event(), {}
        sampler = threading.Thread(target=_sample_held, args=(cluster.scheduler_address, stop, held))
        sampler.start()
        t0 = time.perf_counter()
        try:
            rc = main(["fuse", str(stack), "-o", str(out), "-m", method, "--scheduler", cluster.scheduler_address,
                       "--max-memory", str(max_memory), "--tile", str(tile), "-q"])
        finally:
            wall = time.perf_counter() - t0
            stop.set()
            sampler.join()
        peaks = client.run(status_kib, "VmHWM")
    if rc != 0:
        raise SystemExit(f"mfif fuse failed ({rc})")
    return {"wall": wall, "chunk": tile or _chunk(stack, method, max_memory),
            "peaks_mb": sorted(v / 1024 for v in peaks.values()), "base_mb": sorted(v / 1024 for v in base.values()),
            "held_mb": sorted(held.values())}


#: (method, stack size, chunk) of the tolerance table: the tests' 300x260 stack at 128-px chunks,
#: and for sff-fast (160-px halo) larger stacks cut into 2 x 2 chunks.
TOLERANCE_CASES = [("focus-map", (300, 260), 128), ("sff", (300, 260), 128),
                   ("sff-fast", (768, 768), 384), ("sff-fast", (1024, 1024), 512), ("sff-fast", (1536, 1536), 768)]


def tolerance(cases=TOLERANCE_CASES) -> None:
    """Chunked (threads) against whole-image fusion on 3-plane synthetic stacks (astronaut)."""
    import dask
    from skimage.data import astronaut

    import mfif
    from mfif.io import from_float
    from mfif.synth import make_case

    print("| method | size | chunk | fused PSNR dB | decisions agreeing |")
    print("|---|---|---|---|---|")
    for m, size, chunk in cases:
        case = make_case(astronaut(), n_sources=3, rng=np.random.default_rng(0), size=size)
        z = np.stack([from_float(np.clip(s, 0, 1), np.uint8) for s in case.sources])
        whole = mfif.fuse(list(z), method=m)
        f, d = dask.compute(*mfif.fuse_dask(z, method=m, chunk=chunk), scheduler="threads")
        mse = float(np.mean((f.astype(np.float64) - from_float(whole.fused, np.uint8)) ** 2))
        p = "identical" if mse == 0 else f"{10 * np.log10(255 ** 2 / mse):.1f}"
        print(f"| {m} | {size[1]}x{size[0]} | {chunk} | {p} | {100 * np.mean(d == whole.decision):.3f} % |",
              flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gp", default="0.01,0.03,0.06", help="gigapixels per plane, comma-separated")
    ap.add_argument("--planes", type=int, default=5)
    ap.add_argument("--workers", default="1,2", help="worker processes, comma-separated")
    ap.add_argument("--method", default="focus-map")
    ap.add_argument("--max-memory", type=float, default=1000, help="per-worker budget, MB (sets the chunk)")
    ap.add_argument("--tile", type=int, default=0, help="chunk side (0: from --max-memory)")
    ap.add_argument("--scratch", default=None, help="folder for the stacks and outputs (default: a temporary one)")
    ap.add_argument("--strips", action="store_true", help="store the planes in 512-row strips, not 512-px tiles")
    ap.add_argument("--tolerance", action="store_true", help="only compare chunked with whole-image fusion")
    args = ap.parse_args(argv)
    if args.tolerance:
        tolerance()
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="mfif-bench-dask-", dir=args.scratch))
    print("| GP/plane | size | planes | workers | chunk | wall s | MP-planes/s | peak MB per worker | baseline MB "
          "| results held MB (max) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for gp in [float(g) for g in args.gp.split(",")]:
            stack = scratch / f"z-{gp:g}.tif"
            h, w = make_stack(stack, gp, args.planes, strips=args.strips)
            for n in [int(k) for k in args.workers.split(",")]:
                out = scratch / f"f-{gp:g}-{n}.ome.zarr"
                r = run(stack, out, n, args.method, args.max_memory, args.tile)
                rate = h * w * args.planes / 1e6 / r["wall"]
                print(f"| {h * w / 1e9:.3f} | {w}x{h} | {args.planes} | {n} | {r['chunk']} | {r['wall']:.1f} | "
                      f"{rate:.1f} | " + ", ".join(f"{p:.0f}" for p in r["peaks_mb"]) + " | "
                      + ", ".join(f"{p:.0f}" for p in r["base_mb"]) + " | "
                      + ", ".join(f"{p:.0f}" for p in r["held_mb"]) + " |", flush=True)
                shutil.rmtree(out, ignore_errors=True)
            stack.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
