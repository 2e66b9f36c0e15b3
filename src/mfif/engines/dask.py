"""The Dask engine: fuse a z-stack ``(Z, Y, X[, C])`` chunk by chunk, on threads or a cluster.

Each chunk (full Z, ``chunk`` px in Y and X) is fused by :func:`mfif.fuse` with the method's
declared ``halo`` of context around it and cut back to its core, so chunks never need each
other's results and no seam blending is needed: a method's halo is by definition the context its
core needs to come out as in a whole-image run.

Each chunk's task reads its own padded window from the source (:func:`as_planes`: a TIFF's or
Zarr's tiles under the window, or that slice of any Dask array) rather than assembling it from
neighbouring chunk tasks (``dask.array.map_overlap``). The halo is read twice, by each chunk it
borders, but the tasks share no intermediate data: they are independent roots, and a worker
holds only the chunks it is fusing and those waiting to be stored, so its memory is set by the
chunk, not by the slide (docs/scale.md; with ``map_overlap`` the overlap pieces and the input's
rechunk pieces a worker held grew with the slide's width). What else a chunk needs of the whole
image is given to it up front:

* **value range** -- a float stack is mapped onto [0, 1] by the whole stack's ``[min, max]``
  (:func:`mfif.api.float_range`), computed first in one cheap reduction, so every chunk maps
  alike;
* **area options** -- options declared as fractions of the image area
  (``Method.area_options``, e.g. ``min_region``) are rescaled to the padded chunk's area, as the
  local engine does for its tiles (:mod:`mfif.stack`);
* **noise level** -- a method that counts in noise sigmas (``Method.noise_option``:
  sff-fast) is given the whole stack's estimate (:func:`stack_noise`, on each plane's central
  box, read once), so that a chunk of smooth sky and one of dense texture count in the same
  sigma and decide areas that span them alike;
* **chunk size** -- the largest (multiple of 64) whose padded tile fits a per-worker memory
  budget by the method's :class:`~mfif.tiling.Resources` (:func:`choose_chunk`, through
  :func:`mfif.tiling.plan_tiles`); a worker holds about one padded chunk of every plane.

Tolerance of chunked against whole-image fusion (tests/test_dask.py: focus-map and sff on a
3-plane 300x260 synthetic stack in 128-px chunks, sff-fast on 768x768 in 384-px chunks): fused
PSNR above 40 dB and depth (decision) maps agreeing on more than 99 % of pixels (sff-fast: 98 %).
They differ at all only where a decision is made from context wider than the halo: small-region
removal of regions that span chunks, and sff-fast's filling of areas without evidence and its
vote on large areas without detail, which reach further than its 160-px halo (docs/scale.md has
the measured agreement by chunk size).

Schedulers (:func:`scheduler`): local threads (default), ``local:N`` (a
``distributed.LocalCluster`` of N single-threaded worker processes) or ``tcp://HOST:PORT`` (an
existing scheduler: dask-jobqueue, dask-kubernetes, dask-gateway, ``distributed.SSHCluster``;
docs/scale.md).

References
----------
.. [1] M. Rocklin, "Dask: parallel computation with blocked algorithms and task scheduling",
   Proc. 14th Python in Science Conference (SciPy 2015), 126-132.
"""
from __future__ import annotations

import contextlib
import re
import sys
import uuid
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..api import fuse
from ..errors import RunFailed, UsageError
from ..io import from_float
from ..methods import DEFAULT_METHOD, get_method, parse_params
from ..tiling import plan_tiles

__all__ = ["fuse_dask", "as_planes", "DaskPlanes", "choose_chunk", "stack_value_range", "stack_noise", "parse_scheduler",
           "scheduler", "compute"]


def choose_chunk(method, given: dict, n: int, *, channels: int, itemsize: int, worker_memory_mb: float,
                 largest: int = 2048, multiple: int = 512) -> tuple[int, dict]:
    """Largest chunk side (256..``largest``) whose padded tile fits one worker's budget.

    A chunk of side ``c`` is fused as one tile of ``c + 2 * halo`` px a side; it fits when
    :func:`mfif.tiling.plan_tiles` plans that tile as a single one within ``worker_memory_mb``.
    The side is a multiple of ``multiple`` (the writers' 512-px chunks and tiles, so that storing
    a fused chunk only splits it and never waits for a neighbour; measured in docs/scale.md)
    when at least that, else of 64.

    Returns
    -------
    (int, dict)
        The chunk side, and option changes the method's resources fitted to the budget (SFF's
        inner pass), to pass on with the options.
    """
    halo = method.halo

    def plan(c):
        side = c + 2 * halo
        return plan_tiles(method, given, n, side, side, max_memory_mb=worker_memory_mb, channels=channels,
                          itemsize=itemsize)

    lo, hi = 256, max(256, int(largest) // 64 * 64)
    if plan(hi).tile == 0:
        lo = hi  # the largest fits
    while hi - lo > 64:  # the estimate grows with the side: bisect on multiples of 64
        mid = (lo + hi) // 128 * 64
        if plan(mid).tile == 0:
            lo = mid
        else:
            hi = mid
    if lo >= multiple:
        lo = lo // multiple * multiple
    return lo, plan(lo).fitted


def stack_value_range(array) -> tuple[float, float] | None:
    """The interval a float stack is mapped from onto [0, 1] (:func:`mfif.api.float_range`), over the
    whole array in one reduction; None for integer stacks and floats already inside [0, 1]."""
    if np.dtype(array.dtype).kind != "f":
        return None
    lo, hi = dask.compute(array.min(), array.max())
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise UsageError("the stack has NaN or infinite values; mfif needs finite pixel values")
    lo, hi = min(lo, 0.0), max(hi, 1.0)
    return None if (lo, hi) == (0.0, 1.0) else (lo, hi)


def stack_noise(planes, value_range: tuple[float, float] | None = None) -> float:
    """The noise sigma of a whole ``(Z, Y, X[, C])`` stack as a whole-image run estimates it
    (:func:`mfif.consistency.frames_noise`): each plane's central box, read once, converted as
    :func:`mfif.api.fuse` converts sources (float stacks mapped from ``value_range``)."""
    from ..api import map_to_unit, unit_float
    from ..consistency import NOISE_PIXELS, central_box, frames_noise
    from ..frames import ArrayFrames

    y0, y1, x0, x1 = central_box(int(planes.shape[1]), int(planes.shape[2]), NOISE_PIXELS)
    block = np.asarray(planes[:, y0:y1, x0:x1])
    frames = [map_to_unit(unit_float(block[i], f"plane {i + 1}"), value_range) for i in range(block.shape[0])]
    return frames_noise(ArrayFrames(frames), max_pixels=None)


def _axis_chunks(size: int, chunk: int, halo: int) -> tuple:
    """Chunks of one axis: ``chunk`` px, a last one shorter than the halo merged into the one before
    (a chunk thinner than its own context would be read and fused mostly for its neighbours)."""
    sizes = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
    if len(sizes) > 1 and sizes[-1] < halo:
        tail = sizes.pop()
        sizes[-1] += tail
    return tuple(sizes)


class DaskPlanes:
    """A window reader over a Dask array: ``planes[:, y0:y1, x0:x1]`` computes just that slice,
    synchronously, in the task that asks (only the source chunks under the window are read)."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), array.ndim

    def __getitem__(self, key):
        return np.asarray(self.array[key].compute(scheduler="sync"))


def as_planes(array):
    """The window reader a fusion task reads its padded chunk from: a Dask array wrapped in
    :class:`DaskPlanes`; an array-like with ``shape``, ``dtype`` and NumPy slicing (ndarray, zarr
    array, :class:`mfif.zstack.TiffPlanes`) as it is; anything else through ``np.asarray``."""
    if isinstance(array, da.Array):
        return DaskPlanes(array)
    if all(hasattr(array, a) for a in ("shape", "dtype", "__getitem__")) and len(array.shape) in (3, 4):
        return array
    return np.asarray(array)


def _fuse_window(planes, *, method: str, opts: dict, full_shape: tuple, halo: int, value_range,
                 has_decision: bool, block_info=None) -> np.ndarray:
    """Read one chunk with ``halo`` px of context (clipped at the image's edges) from ``planes``,
    fuse it, and return its core ``(y, x, C + 1)`` float32: the fused channels, then the decision
    (plane index) as float."""
    (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
    h, w = full_shape
    py0, px0, py1, px1 = max(0, y0 - halo), max(0, x0 - halo), min(h, y1 + halo), min(w, x1 + halo)
    block = np.asarray(planes[:, py0:py1, px0:px1])
    if block.ndim == 3:
        block = block[..., None]
    z, ph, pw, c = block.shape
    tile_opts = get_method(method).tile_options(opts, full_area=h * w, tile_area=ph * pw)
    frames = [block[i, ..., 0] if c == 1 else block[i] for i in range(z)]
    del block
    res = fuse(frames, method=method, value_range=value_range, **tile_opts)
    f = res.fused.reshape(ph, pw, c)
    d = res.decision if has_decision and res.decision is not None else np.zeros((ph, pw))
    out = np.concatenate([f, d.reshape(ph, pw, 1).astype(np.float32)], axis=2)
    return np.ascontiguousarray(out[y0 - py0:y1 - py0, x0 - px0:x1 - px0])


def fuse_dask(array, *, method: str = DEFAULT_METHOD, chunk: int = 0, worker_memory_mb: float = 2048,
              value_range: tuple[float, float] | None = None, **options: Any):
    """Fuse a z-stack given as a Dask (or NumPy) array, lazily, chunk by chunk.

    Parameters
    ----------
    array : dask.array.Array, ndarray or array-like
        ``(Z, Y, X)`` or ``(Z, Y, X, C)`` (C = 1 or 3), Z >= 2 focal planes, ``uint8``,
        ``uint16`` or float (finite; outside [0, 1] it keeps its own range). Any object with
        ``shape``, ``dtype`` and NumPy slicing (a zarr array, :class:`mfif.zstack.TiffPlanes`)
        is read window by window as it is (:func:`as_planes`); on a cluster it must pickle.
    method : str, keyword-only
        A name from :data:`mfif.methods.METHODS`.
    chunk : int, keyword-only
        Chunk side in Y and X (px, at least the method's halo); 0 chooses the largest that fits
        ``worker_memory_mb`` (:func:`choose_chunk`).
    worker_memory_mb : float, keyword-only
        Memory budget of one worker (MB, 10**6 bytes) for one chunk's fusion, over its baseline.
    value_range : (float, float), optional, keyword-only
        For float stacks: the interval mapped onto [0, 1]; default the whole stack's
        (:func:`stack_value_range`, computed now).
    **options
        Method options, checked (:func:`mfif.methods.parse_params`).

    Returns
    -------
    (dask.array.Array, dask.array.Array or None)
        ``fused`` ``(Y, X[, C])`` in the stack's dtype (float: its own range) and ``depth``
        ``(Y, X)`` ``uint16`` plane index per pixel (None for methods without a decision map).
        Nothing is computed until they are (``dask.compute``, ``da.store``, the writers of
        :mod:`mfif.ome`).

    Raises
    ------
    UsageError
        A bad shape, pixel type, chunk or option.
    """
    m = get_method(method)
    opts = parse_params(m, options)
    planes = as_planes(array)
    shape = tuple(int(n) for n in planes.shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
        raise UsageError(f"a z-stack must be (Z, Y, X) or (Z, Y, X, C) with C = 1 or 3, got shape {shape}")
    if shape[0] < 2:
        raise UsageError(f"a z-stack needs at least 2 focal planes, got {shape[0]}")
    dtype = np.dtype(planes.dtype)
    if dtype not in (np.uint8, np.uint16) and dtype.kind != "f":
        raise UsageError(f"unsupported pixel type {dtype}; use uint8, uint16 or float")
    gray = len(shape) == 3
    z, h, w = shape[:3]
    c = 1 if gray else shape[3]
    if chunk:
        chunk = int(chunk)
        if chunk < m.halo:
            raise UsageError(f"chunk {chunk} px is smaller than method {method}'s halo ({m.halo} px)")
        fitted = {}
    else:
        chunk, fitted = choose_chunk(m, opts, z, channels=c, itemsize=dtype.itemsize,
                                     worker_memory_mb=worker_memory_mb)
    opts = {**opts, **fitted}
    if dtype.kind == "f":
        if value_range is None:
            lazy = array if isinstance(array, da.Array) else da.from_array(planes, chunks=(z, 1024, 1024) + shape[3:])
            value_range = stack_value_range(lazy)
        else:
            value_range = tuple(map(float, value_range))
    else:
        value_range = None
    halo = m.halo
    yc, xc = _axis_chunks(h, chunk, halo), _axis_chunks(w, chunk, halo)
    if len(yc) * len(xc) > 1:  # one chunk estimates what a whole-image run does
        opts = m.stack_options(opts, lambda: stack_noise(planes, value_range))
    # One graph key holds the reader; every chunk task depends on it alone, so the tasks are
    # independent roots that a distributed scheduler queues (runs as workers free up) instead of
    # reading ahead: a worker holds its chunks in flight, whatever the slide's size.
    source = dask.delayed(planes, name=f"zstack-planes-{uuid.uuid4().hex}")
    out = da.map_blocks(_fuse_window, source, chunks=(yc, xc, (c + 1,)), dtype=np.float32,
                        meta=np.empty((0, 0, 0), np.float32), method=method, opts=opts, full_shape=(h, w),
                        halo=halo, value_range=value_range, has_decision=m.has_decision)
    fused = out[..., 0] if gray else out[..., :c]
    if dtype.kind != "f":
        fused = fused.map_blocks(from_float, dtype, dtype=dtype)
    depth = out[..., c].astype(np.uint16) if m.has_decision else None
    return fused, depth


# --------------------------------------------------------------------------------------------
# Schedulers
# --------------------------------------------------------------------------------------------
_TCP = re.compile(r"^(tcp|tls)://[^\s:/]+:\d{1,5}$")


def parse_scheduler(spec: str | None) -> tuple[str, Any]:
    """``("threads", None)``, ``("local", N)`` or ``("remote", address)`` from ``--scheduler``.

    Raises
    ------
    UsageError
        Anything else, with the accepted forms.
    """
    s = (spec or "threads").strip()
    if s == "threads":
        return "threads", None
    if s.startswith("local:"):
        n = s[6:]
        if n.isdigit() and 1 <= int(n) <= 1024:
            return "local", int(n)
    elif _TCP.match(s):
        return "remote", s
    raise UsageError(f"--scheduler {spec}: use threads, local:N (N worker processes, 1..1024) or tcp://HOST:PORT")


@contextlib.contextmanager
def scheduler(spec: str | None = None, *, connect_timeout: float = 10.0, log=None):
    """Run the Dask computations inside on the scheduler ``spec`` names (:func:`parse_scheduler`).

    Yields the ``distributed.Client`` (None for threads). ``local:N`` starts a
    ``distributed.LocalCluster`` of N worker processes of one thread each (closed on exit);
    ``tcp://HOST:PORT`` connects to a running scheduler within ``connect_timeout`` seconds.

    Raises
    ------
    UsageError
        A bad ``spec`` or a scheduler that cannot be reached.
    """
    kind, arg = parse_scheduler(spec)
    log = log or (lambda s: None)
    if kind == "threads":
        with dask.config.set(scheduler="threads"):
            yield None
        return
    import logging

    from distributed import Client, LocalCluster

    if kind == "local":
        with LocalCluster(n_workers=arg, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            log(f"dask: local cluster of {arg} worker processes")
            yield client
        return
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": f"{connect_timeout}s"}):
            client = Client(arg, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"--scheduler {arg}: cannot reach the Dask scheduler within {connect_timeout:g} s "
                         f"({type(exc).__name__}); start one (dask scheduler) or check the address") from None
    with client:
        log(f"dask: scheduler {arg} with {len(client.scheduler_info().get('workers', {}))} workers")
        yield client


def compute(*objs, progress: bool = False):
    """Compute Dask collections on the current scheduler, with Dask's progress bar when asked.

    Threads: :class:`dask.diagnostics.ProgressBar`; a distributed client: ``distributed.progress``
    on the futures. Returns the results as :func:`dask.compute` does. A worker that dies is
    replaced and its tasks run again (Dask's own retry); a task that keeps killing workers, or a
    scheduler that goes away, ends the run with :class:`~mfif.errors.RunFailed`.

    Raises
    ------
    RunFailed
        The cluster could not complete the computation (the message says what was lost).
    """
    try:
        return _compute(objs, progress)
    except BaseException as exc:
        message = _cluster_failure(exc)
        if message is None:
            raise
        raise RunFailed(message) from None


def _cluster_failure(exc: BaseException) -> str | None:
    """One line for a failure of the cluster rather than of the computation, else None."""
    import asyncio
    import concurrent.futures

    d = sys.modules.get("distributed")
    if d is None:
        return None
    if isinstance(exc, d.KilledWorker):
        task = getattr(exc, "task", None) or (exc.args[0] if exc.args else "?")
        return (f"Dask workers died while running task {task}; a worker that runs out of memory dies: give each "
                "worker more memory or a smaller --max-memory, and see the workers' logs; the run did not complete")
    comm = getattr(getattr(d, "comm", None), "CommClosedError", ())
    if isinstance(exc, (asyncio.CancelledError, concurrent.futures.CancelledError)) or (comm and isinstance(exc, comm)):
        return f"the Dask scheduler went away during the run ({type(exc).__name__}); the run did not complete"
    return None


def _compute(objs, progress: bool):
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        client = None
    if client is None:
        if not progress:
            return dask.compute(*objs)
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stderr):
            return dask.compute(*objs)
    futures = client.compute(list(objs))
    if progress:
        from distributed import progress as show

        show(futures)
    return tuple(client.gather(futures))
