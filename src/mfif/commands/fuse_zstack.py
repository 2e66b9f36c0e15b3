"""``mfif fuse`` on the Dask engine: a z-stack in, a fused image (a pyramid or a plain file) out.

Chosen by :func:`mfif.commands.fuse.uses_dask`. Everything is checked before the fusion starts:
the options this engine does not offer, the scheduler's form, the stack's headers
(:func:`mfif.zstack.open_zstack` reads no pixels) and every output against the inputs and each
other. The fused image and the depth map come from one computation: their level 0 (or their
pixels, for plain files) are computed together, then the reduced levels are made from what was
stored.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..io import check_output_path, display_path, from_float, to_float, write_image
from ..io.paths import _same_file
from ..metadata import software_only
from ..ome import PyramidWriter, check_pyramid_target, pyramid_kind
from ..outputs import depth_paths
from .fuse import align_kwargs, depth_preview, quiet_log, resolve_output


def dask_config_threads() -> int:
    """Threads the Dask threaded scheduler runs (its ``num_workers`` setting, else the CPU count)."""
    import os

    import dask

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _inputs(sources) -> list[Path]:
    return [Path(s) for s in sources]


def _check_options(args) -> None:
    """Options of ``mfif fuse`` the Dask engine does not carry out: refused, never ignored."""
    if args.save_maps:
        raise UsageError("--save-maps is not available on the Dask engine (stage maps are whole-image PNGs); "
                         "use --depth-map")
    if 0 < args.tile < 64:
        raise UsageError(f"--tile must be 0 (automatic) or at least 64 px, got {args.tile}")


def _check_output(path: Path, inputs, dtype, what: str) -> None:
    try:
        if pyramid_kind(path) is not None:
            check_pyramid_target(path, protect=inputs)
        else:
            check_output_path(path, protect=inputs, dtype=dtype)
    except UsageError as exc:
        raise UsageError(f"{what} {exc}") from None


def run_zstack(args, params: dict) -> int:
    """Fuse ``args.sources`` as one z-stack on the Dask engine and write the outputs; returns 0."""
    from ..engines.dask import compute, fuse_dask, parse_scheduler, scheduler
    from ..zstack import open_zstack

    _check_options(args)
    kind, _ = parse_scheduler(args.scheduler)
    log = quiet_log(args)
    stack = open_zstack(args.sources, chunk=max(args.tile, 64) if args.tile else 1024)
    inputs = _inputs(args.sources)
    dtype = stack.dtype if not args.depth else np.dtype(np.uint8 if args.depth == 8 else np.uint16)
    if args.depth and stack.dtype.kind == "f":
        raise UsageError("--depth is for 8- and 16-bit sources; float stacks are written as float")
    output = Path(args.output) if pyramid_kind(args.output) else resolve_output(
        args.output, args.sources, [Path(args.sources[0])], args.format)
    _check_output(output, inputs, dtype, "-o")
    depth_map = Path(args.depth_map) if args.depth_map else None
    if depth_map is not None:
        _check_output(depth_map, inputs, np.dtype(np.uint16), "--depth-map")
        if _same_file(depth_map, output) or depth_map == output:
            raise UsageError(f"--depth-map {display_path(depth_map)} is the same file as -o {display_path(output)}; "
                             "give each output its own name")
        if pyramid_kind(depth_map) is None:
            _check_output(depth_paths(depth_map)[1], inputs, np.dtype(np.uint8), "the depth map's preview")
    h, w = stack.array.shape[1:3]
    show = not args.quiet and sys.stderr.isatty()
    t0 = time.perf_counter()
    # A worker process runs one chunk at a time (LocalCluster: one thread each; a remote cluster:
    # docs/scale.md). The threads scheduler runs a chunk on every thread of this process, so the
    # process's budget is shared among them.
    threads = dask_config_threads() if kind == "threads" else 1
    task_budget = args.max_memory / threads
    with scheduler(args.scheduler, connect_timeout=args.connect_timeout, log=log):
        planes, kept = stack.array, list(range(stack.n))
        if args.align:
            from ..engines.align import align_zstack

            planes, kept, _, box = align_zstack(stack.array, model=args.align_model, names=stack.names,
                                                chunk=stack.array.chunks[1][0], log=log, **align_kwargs(args, stack.n))
            h, w = box[3] - box[1], box[2] - box[0]
        fused, depth = fuse_dask(planes, method=args.method, chunk=args.tile, worker_memory_mb=task_budget,
                                 **params)
        if depth is not None and len(kept) < stack.n:  # plane indices of the input, not of those kept
            depth = depth.map_blocks(lambda d: np.asarray(kept, np.uint16)[d], dtype=np.uint16)
        if dtype != stack.dtype:
            fused = fused.map_blocks(lambda a: from_float(to_float(a), dtype), dtype=dtype)
        chunk = fused.chunks[0][0]
        log(f"fusing {stack.n} planes of {w}x{h} with {args.method} on Dask ({args.scheduler or 'threads'}), "
            f"chunks of {chunk} px ({fused.numblocks[0] * fused.numblocks[1]} chunks)")
        jobs = [(output, fused, False, "fused")] + ([(depth_map, depth, True, "depth")] if depth_map else [])
        writers = {p: PyramidWriter(p, labels=lab, name=name) for p, _, lab, name in jobs if pyramid_kind(p)}
        try:
            lazy = [writers[p].level0(a) if p in writers else a for p, a, _, _ in jobs]
            done = compute(*lazy, progress=show)
            for (p, _, _, _), value in zip(jobs, done):
                if p in writers:
                    writers[p].finish(lambda *o: compute(*o, progress=False))
                elif p == output:
                    write_image(p, value, protect=inputs, quality=args.jpeg_quality, metadata=software_only())
                else:
                    dm, preview = depth_paths(p)
                    write_image(dm, value, protect=inputs, metadata=software_only())
                    write_image(preview, depth_preview(value, stack.n), protect=inputs, metadata=software_only())
        except BaseException:
            for wr in writers.values():
                wr.abort()
            raise
    log(f"wrote {output} ({w}x{h} {np.dtype(dtype)}) in {time.perf_counter() - t0:.2f} s"
        + (f" and depth map {depth_map}" if depth_map else ""))
    return 0
