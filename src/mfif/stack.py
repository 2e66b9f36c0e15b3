"""Fusing real focus stacks: many frames, alignment, bounded memory, tiles.

The pipeline (each frame is decoded once and never held in memory with all the others)::

    read frame -> (align: warp to the reference, crop) -> frame cache on disk (native dtype)
    for each tile (with overlap): read that tile of every frame -> fuse -> feather into output

* **Frame cache.** Frames are decoded one at a time and written, in their native dtype
  (``uint8``, ``uint16`` or ``float32``: no 8-bit step for 16-bit stacks), into a raw file
  in a temporary folder; tiles are then read back from it with file reads (not a memory map,
  whose touched pages would count as resident). Resident memory is therefore set by the
  tile, not by the number of frames. A stack whose native bytes are at most a tenth of
  ``max_memory_mb`` (a pair or a short stack of camera frames: 18 MB for two 3-MP 8-bit RGB
  frames, plus their luminance for methods that read frames on demand) is kept in memory
  instead, its bytes taken off the budget the tiles are planned with: tiles and boxes are then
  views, without a file read per row.
* **Alignment.** Transforms are estimated by :func:`mfif.align.estimate_transforms` on small
  gray copies of the files (each frame read once for it), and each frame is warped by
  :func:`mfif.align.warp_frame` into the rectangle every frame covers as it enters the cache
  (the same two functions ``mfif align`` uses). Frames that cannot be aligned stop the run, or
  with ``skip_unaligned`` are left out.
* **Tiles.** With a tile smaller than the image, each tile is fused with an overlap margin on
  every side (the method's declared ``halo``); the fused tiles are blended with linear ramps
  across the overlaps (no seams) and label maps (decision / depth) take each pixel from the
  tile whose core holds it. Options the method declares as fractions of the image area are
  rescaled to the tile so that a tile removes the same absolute region sizes as a whole-image
  pass, and a method that counts in noise sigmas (``Method.noise_option``) is given the whole
  image's estimate, made once on the frames' central boxes.
* **Memory.** ``tile=0`` picks the largest tile whose estimated working set fits
  ``max_memory_mb``, from the method's declared :class:`~mfif.tiling.Resources` (a measured
  model of the memory per tile pixel and frame, and of any inner pass over tiles of its own,
  such as SFF's CNN), plus the full-size output and decision map and the float accumulator of
  one row of tiles, the only rows that tiles still write (:mod:`mfif.tiling`). The budget counts the
  fusion's peak resident memory on top of the process's baseline (interpreter, libraries,
  model). This engine names no method: everything it knows of one comes from the registry.

References
----------
.. [1] P. Aimonen, focus-stack (task-per-stage C++ focus stacking tool), 2019-2024.
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .api import fuse, fuse_frames, map_to_unit, unit_float
from .errors import UsageError
from .frames import FrameSource
from .io import check_sources, frame_paths, from_float
from .io import read_image as _read_image
from .methods import DEFAULT_METHOD, get_method, parse_params
from .result import FusionResult
from .sysinfo import release_memory
from .tiling import plan_tiles, ramp, tiles


@dataclass
class StackResult:
    """Output of :func:`fuse_stack`: the fused image in the frames' dtype and inspectable maps."""

    fused: np.ndarray
    decision: np.ndarray | None
    maps: dict = field(default_factory=dict)
    alignment: object | None = None
    tiles: int = 1
    tile_size: int = 0
    info: dict = field(default_factory=dict)


_PREADV = hasattr(os, "preadv")

#: a stack of at most this share of ``max_memory_mb`` (native bytes) is cached in memory
IN_MEMORY_SHARE = 0.1


class FrameCache:
    """Frames of one stack in a raw file on disk (native dtype), written one frame at a time.

    Tiles are read back with ordinary file reads into fresh arrays rather than through a
    memory map: pages of a mapped file count in the process's resident size as soon as they are
    touched, so a mapped cache would grow the resident set to the whole stack; read this way
    they stay in the kernel's page cache, which the kernel reclaims as needed. With
    ``in_memory`` (a stack small enough that its bytes in memory do not matter) the frames are
    kept in one array instead and read back as views.
    """

    def __init__(self, n: int, shape: tuple[int, ...], dtype, directory: str | None = None, *,
                 in_memory: bool = False):
        self.n, self.shape, self.dtype = n, tuple(shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.pixel_bytes = self.row_bytes // self.shape[1]
        self.frame_bytes = self.row_bytes * self.shape[0]
        #: running [min, max] of float frames, for :func:`mfif.api.float_range` over the stack
        self.lo, self.hi = 0.0, 1.0
        self.file = None
        #: ``in_memory``: the frames in one array (``read`` then returns views), no file
        self.memory = np.empty((n,) + self.shape, self.dtype) if in_memory else None
        if in_memory:
            self.dir, self.path = "", "(in memory)"
            return
        self.dir = directory or tempfile.gettempdir()
        need = self.frame_bytes * n
        try:
            free = shutil.disk_usage(self.dir).free
        except OSError as exc:
            raise UsageError(f"cannot use {self.dir} for the frame cache: {exc.strerror or exc}") from None
        if need > free:
            raise UsageError(f"the frame cache needs {need / 1e6:.0f} MB but {self.dir} has {free / 1e6:.0f} MB "
                             "free; set TMPDIR to a folder with more space")
        try:
            # unlinked as soon as it is opened: nothing is left on disk however the process ends
            self.file = tempfile.TemporaryFile(prefix="mfif-stack-", dir=self.dir, buffering=0)
        except OSError as exc:
            raise UsageError(f"cannot create the frame cache in {self.dir}: {exc.strerror or exc}") from None
        self.path = f"{self.dir} (unnamed temporary file)"
        self._lock = threading.Lock()

    def write(self, i: int, img: np.ndarray) -> None:
        """Store frame ``i`` (shape and dtype of the cache)."""
        a = np.ascontiguousarray(img, dtype=self.dtype)
        if a.shape != self.shape:
            raise ValueError(f"frame {i}: shape {a.shape}, cache {self.shape}")
        if a.dtype.kind == "f" and a.size:
            self.lo, self.hi = min(self.lo, float(a.min())), max(self.hi, float(a.max()))
        if self.memory is not None:
            self.memory[i] = a
            return
        buf = memoryview(a.reshape(-1).view(np.uint8))
        self.file.seek(i * self.frame_bytes)
        try:
            while len(buf):
                buf = buf[self.file.write(buf):]
        except OSError as exc:
            raise UsageError(f"cannot write the frame cache in {self.dir}: {exc.strerror or exc}") from None

    def read(self, i: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Rows ``y0:y1``, columns ``x0:x1`` of frame ``i``: a new array, or a view of the
        in-memory cache (the caller must not modify it)."""
        if self.memory is not None:
            return self.memory[i, y0:y1, x0:x1]
        out = np.empty((y1 - y0, x1 - x0) + self.shape[2:], self.dtype)
        rows = out.reshape(y1 - y0, -1).view(np.uint8)
        base = i * self.frame_bytes + x0 * self.pixel_bytes
        if x0 == 0 and x1 == self.shape[1]:  # whole rows: one read
            self._read_into(memoryview(rows.reshape(-1)), base + y0 * self.row_bytes)
        else:
            for r in range(y1 - y0):
                self._read_into(memoryview(rows[r]), base + (y0 + r) * self.row_bytes)
        return out

    def _read_into(self, buf: memoryview, offset: int) -> None:
        # positional reads: threads reading boxes at once do not share a file position
        fd = self.file.fileno()
        while len(buf):
            if _PREADV:
                k = os.preadv(fd, [buf], offset)
            else:
                with self._lock:
                    self.file.seek(offset)
                    k = self.file.readinto(buf)
            if not k:
                raise UsageError(f"frame cache {self.path} is truncated")
            buf, offset = buf[k:], offset + k

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.memory = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CacheFrames(FrameSource):
    """One tile of the frame cache as a :class:`mfif.frames.FrameSource`: frames and boxes are
    read from disk when asked for and converted as :func:`mfif.api.fuse` converts sources
    (float32 in [0, 1], alpha dropped; float stacks mapped from ``value_range``). Over an
    in-memory cache each frame's luminance is kept once computed (the network pass makes it;
    the boxes around boundaries take views of it)."""

    def __init__(self, cache: FrameCache, box: tuple[int, int, int, int], value_range: tuple[float, float] | None):
        self.cache, self.box = cache, box
        self.n = cache.n
        if cache.memory is not None:
            self._grays = [None] * cache.n
        y0, y1, x0, x1 = box
        chans = cache.shape[2:]
        c = chans[0] if chans else 0
        self.shape = (y1 - y0, x1 - x0) + ((3,) if c >= 3 else ())
        self.value_range = value_range

    def crop(self, k: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        by, _, bx, _ = self.box
        raw = self.cache.read(k, by + y0, by + y1, bx + x0, bx + x1)
        return map_to_unit(unit_float(raw, f"frame {k + 1}"), self.value_range)

    def frame(self, k: int) -> np.ndarray:
        return self.crop(k, 0, self.shape[0], 0, self.shape[1])


def fuse_stack(paths: Sequence[str | os.PathLike], *, method: str = DEFAULT_METHOD, params: dict | None = None,
               align: bool = False, align_model: str = "similarity", reference: str | int = "middle",
               max_residual: float | str | None = "auto", skip_unaligned: bool = False, tile: int = 0, overlap: int | None = None, max_memory_mb: float = 4096,
               want_maps: bool = False,
               cache_dir: str | None = None, progress: Callable[[str, int, int], None] | None = None,
               log: Callable[[str], None] | None = None,
               on_frame: Callable[[int, np.ndarray], None] | None = None, raw=None) -> StackResult:
    """Fuse a focus stack given as files, with optional alignment and tiling.

    Parameters
    ----------
    paths : sequence of path-like
        The frames (two or more), in focus order; or one multi-page TIFF, whose
        full-resolution pages are the frames (:func:`mfif.io.frame_paths`).
    method : str, keyword-only
        Fusion method (see ``mfif methods``).
    params : dict, keyword-only
        Method options.
    align : bool, keyword-only
        Register every frame to the ``reference`` frame first (hand-held stacks).
    align_model : str, keyword-only
        ``similarity`` (default), ``translation``, ``affine`` or ``homography``.
    reference : {"middle", "first", "last"} or int, keyword-only
        Reference frame of the alignment (0-based index or name).
    max_residual : float, "auto" or None, keyword-only
        Largest residual misregistration (full-resolution px) accepted by the alignment
        (:func:`mfif.align.estimate_transforms`).
    skip_unaligned : bool, keyword-only
        Leave out frames that cannot be aligned (logged) instead of stopping; at least 2 must
        remain.
    tile : int, keyword-only
        Tile side in pixels; 0 chooses from ``max_memory_mb`` (one tile when it fits).
    overlap : int, keyword-only
        Overlap margin (px) on each side of a tile (default: the method's declared ``halo``).
    max_memory_mb : float, keyword-only
        Budget (MB, 10**6 bytes) for the fusion's working set: the peak resident memory of the
        run on top of the process's baseline (interpreter, libraries and, for SFF, PyTorch and
        the model, about 80 MB and 300 MB). The tile is the largest whose estimated working
        set (:func:`estimate_memory`, a measured upper envelope per method) fits; for SFF
        the CNN pass's own tile and worker threads are also lowered when they would take much
        of the budget, unless set (the method's :meth:`~mfif.tiling.Resources.fit`). Not covered: the read
        phase (a few decoded frames at a time) and ``want_maps``.
    want_maps : bool, keyword-only
        Also assemble every stage map (scores, weights...) at full size.
    progress : callable, keyword-only
        ``progress(stage, done, total)`` with stage ``"align"``, ``"read"`` or ``"fuse"``.
    log : callable, keyword-only
        ``log(line)`` receives one line per notable step (alignment residuals, memory budget).
    on_frame : callable, keyword-only
        ``on_frame(i, frame)`` receives every frame as it goes into the fusion (aligned and
        cropped like ``fused``, native dtype), e.g. to keep them for comparison or retouching.
    raw : mfif.raw.RawSettings, keyword-only
        How camera RAW frames are decoded, the same for every frame
        (:func:`mfif.raw.stack_settings` gives the reference frame's white balance).

    Returns
    -------
    StackResult
        ``fused`` in the frames' dtype; ``decision`` (source index per pixel) when the method
        has one.
    """

    read_image = functools.partial(_read_image, raw=raw)
    params = dict(params or {})
    m = get_method(method)
    opts = parse_params(m, params)
    log = log or (lambda s: None)
    prog = progress or (lambda *a: None)
    paths = frame_paths(paths)
    if len(paths) < 2:
        raise UsageError(f"need at least 2 sources, got {len(paths)}")
    t_start = time.perf_counter()
    frames = _Frames(paths, read_image)
    alignment, transforms, box = None, None, (0, 0, frames.shape[1], frames.shape[0])
    if align:
        from .align import estimate_transforms  # the registration code, only for aligned stacks

        alignment = estimate_transforms(paths, reference=reference, model=align_model, max_residual=max_residual,
                                        skip_unaligned=skip_unaligned, read=frames.read,
                                        progress=lambda k, total: prog("align", k, total))
        for line, status in zip(alignment.describe([p.name for p in paths]), alignment.status):
            log(("warning: " if status != "ok" else "") + line)
        frames.keep(alignment.aligned)
        transforms, box = [alignment.transforms[i] for i in alignment.aligned], alignment.valid_box
    n = len(frames.paths)
    h, w = box[3] - box[1], box[2] - box[0]
    out_shape = (h, w) + tuple(frames.shape[2:])
    dtype = frames.dtype
    # in memory: the frames in their dtype and, for methods that read frames on demand, one
    # float32 luminance per frame
    stack_mb = n * h * w * ((out_shape[2] if len(out_shape) == 3 else 1) * dtype.itemsize
                            + (4 if m.frames_target else 0)) / 1e6
    in_memory = stack_mb <= IN_MEMORY_SHARE * max_memory_mb
    with FrameCache(n, out_shape, dtype, cache_dir, in_memory=in_memory) as cache:
        _fill_cache(cache, frames, transforms, box, on_frame, prog)
        t_read = time.perf_counter() - t_start
        # everything known of the method comes from its registry entry: halo, memory, area options
        budget = max_memory_mb - (stack_mb if in_memory else 0.0)
        plan = plan_tiles(m, opts, n, h, w, max_memory_mb=budget, tile=tile, overlap=overlap,
                          channels=out_shape[2] if len(out_shape) == 3 else 1, itemsize=dtype.itemsize,
                          frames=bool(m.frames_target))
        if plan.fitted:
            params.update(plan.fitted)
            log(f"memory budget {max_memory_mb:g} MB: inner pass with "
                + ", ".join(f"{k}={v}" for k, v in plan.fitted.items()))
        if plan.need_mb > budget:
            log(f"memory budget {max_memory_mb:g} MB: {'the smallest tile' if not tile else 'this tile'} "
                f"({plan.tile} px) needs about {plan.need_mb:.0f} MB with {method} and {n} frames")
        fused, decision, maps, n_tiles = _fuse_tiles(cache, m, params, plan, want_maps=want_maps, prog=prog)
    if decision is not None and alignment is not None and len(alignment.aligned) < len(alignment.status):
        decision = np.asarray(alignment.aligned, np.int16)[decision]  # indices of the input frames
    info = {"seconds": time.perf_counter() - t_start, "seconds_read": t_read, "frames": n, "size": (w, h)}
    return StackResult(fused=fused, decision=decision, maps=maps, alignment=alignment, tiles=n_tiles,
                       tile_size=plan.tile, info=info)


class _Frames:
    """The stack's files: the first frame decoded once (it fixes shape and dtype), every frame
    checked against it as it is read. A frame can be decoded ahead on a thread
    (:meth:`prefetch`) while the caller works on another: the decoders release the interpreter
    lock, so a second core decodes."""

    def __init__(self, paths: list[Path], read_image: Callable):
        self.paths, self._read = list(paths), read_image
        self._ahead: dict[Path, _Background] = {}
        self._first = None
        if len(self.paths) > 1:
            self.prefetch(self.paths[1])  # the second frame decodes while the first does
        self._first = read_image(self.paths[0])
        self.shape, self.dtype = self._first.shape, self._first.dtype
        self._ref = np.broadcast_to(np.zeros((), self.dtype), self.shape)  # shape and dtype, no pixels

    def prefetch(self, p: Path) -> None:
        """Start decoding frame ``p`` on a thread; :meth:`read` of ``p`` then waits for it."""
        if p not in self._ahead and not (p == self.paths[0] and self._first is not None):
            self._ahead[p] = _Background(self._read, p)

    def read(self, p: Path) -> np.ndarray:
        """Frame ``p``, checked against the first frame (shape, channels, bit depth)."""
        if p == self.paths[0] and self._first is not None:
            return self._first
        ahead = self._ahead.pop(p, None)
        img = ahead.result() if ahead is not None else self._read(p)
        check_sources([self._ref, img], [str(self.paths[0]), str(p)])
        return img

    def keep(self, indices: Sequence[int]) -> None:
        """Only these frames go on (the ones alignment kept)."""
        if indices[0] != 0:
            self._first = None
        self.paths = [self.paths[i] for i in indices]

    def release_first(self) -> None:
        self._first = None


class _Background:
    """``fn(*args)`` on a daemon thread; :meth:`result` waits and returns it or raises its error."""

    def __init__(self, fn: Callable, *args):
        self._out, self._exc = None, None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable, args: tuple) -> None:
        try:
            self._out = fn(*args)
        except BaseException as exc:  # handed to the caller of result()
            self._exc = exc

    def result(self):
        self._thread.join()
        if self._exc is not None:
            raise self._exc
        out, self._out = self._out, None
        return out


def _fill_cache(cache: FrameCache, frames: _Frames, transforms, box, on_frame, prog) -> None:
    """Read every frame once, warp it into ``box`` (or crop to it) and store it in ``cache``."""
    bx0, by0, bx1, by1 = box
    n = len(frames.paths)
    if transforms is not None:
        from .align import warp_frame
    for i, p in enumerate(frames.paths):
        if i + 1 < n:
            frames.prefetch(frames.paths[i + 1])  # decoded while this one is stored (and warped)
        img = frames.read(p)
        if i == 0:
            frames.release_first()
        img = warp_frame(img, transforms[i], box=box) if transforms is not None else img[by0:by1, bx0:bx1]
        cache.write(i, img)
        if on_frame is not None:
            on_frame(i, img)
        img = None
        prog("read", i + 1, n)


def _fuse_tiles(cache: FrameCache, m, params: dict, plan, *, want_maps: bool, prog):
    """Fuse the cached stack tile by tile: feathered fused image, decision and maps by core.

    Returns ``(fused, decision, maps, n_tiles)``, ``fused`` in the cache's dtype. Several tiles
    are feathered into a float accumulator that holds only the rows tiles still write
    (:class:`_RowBand`).
    """
    n, (h, w) = cache.n, cache.shape[:2]
    value_range = (cache.lo, cache.hi) if cache.dtype.kind == "f" else None
    boxes = list(tiles(h, w, plan.tile, plan.overlap))
    single = len(boxes) == 1
    fused = None
    rows = None if single else _RowBand(np.empty(cache.shape, cache.dtype), min(h, plan.tile + 2 * plan.overlap))
    decision = None
    maps: dict[str, np.ndarray] = {}
    if not single:  # what a tile needs of the whole image (the noise sigma), estimated once
        def noise() -> float:
            from .consistency import frames_noise  # imported only by methods that need it

            return frames_noise(CacheFrames(cache, (0, h, 0, w), value_range))

        params = m.stack_options(params, noise)
    for k, ((cy0, cx0, cy1, cx1), (py0, px0, py1, px1)) in enumerate(boxes):
        tile_params = params if single else m.tile_options(params, full_area=h * w,
                                                           tile_area=(py1 - py0) * (px1 - px0))
        if m.frames_target:  # the method reads what it needs from the cache: one frame at a time
            frames = CacheFrames(cache, (py0, py1, px0, px1), value_range)
            res: FusionResult = fuse_frames(frames, method=m.name, value_range=value_range or (0.0, 1.0),
                                            keep_maps=want_maps, **tile_params)
            frames = None
        else:
            srcs = [cache.read(i, py0, py1, px0, px1) for i in range(n)]
            res = fuse(srcs, method=m.name, value_range=value_range, **tile_params)
            srcs = None
        f = res.fused
        if single:
            fused = _assemble(f, None, cache.shape, cache.dtype)
        else:
            ry = ramp(py1 - py0, cy0 - py0, py1 - cy1, plan.overlap)
            rx = ramp(px1 - px0, cx0 - px0, px1 - cx1, plan.overlap)
            rows.add(py0, px0, f, ry[:, None] * rx[None, :])
        core = (slice(cy0 - py0, cy1 - py0), slice(cx0 - px0, cx1 - px0))
        if res.decision is not None:
            if decision is None:
                decision = np.zeros((h, w), np.int16)
            decision[cy0:cy1, cx0:cx1] = res.decision[core]
        if want_maps:
            for name, arr in res.stage_maps().items():
                if name not in maps:
                    maps[name] = np.zeros((h, w), arr.dtype)
                maps[name][cy0:cy1, cx0:cx1] = arr[core]
        res = f = None
        if k + 1 < len(boxes):  # for the next tile's peak; after the last one nothing follows
            release_memory()
        prog("fuse", k + 1, len(boxes))
    if rows is not None:
        fused = rows.finish()
    return fused, decision, maps, len(boxes)


class _RowBand:
    """Feathered accumulation of tiles in raster order, held only for the rows tiles still write.

    Tiles come a row of tiles at a time, and a tile writes its padded rows only. The float32
    accumulator and weight sum therefore cover one row of padded tiles (``rows`` image rows
    from ``y0``); when a tile starts below ``y0``'s rows, the rows above its first padded row
    are final: they are normalised, converted into ``out`` and dropped, and the rows still in
    use move up. The result is the full-size accumulator's, pixel for pixel, at the memory of
    one row of tiles.
    """

    def __init__(self, out: np.ndarray, rows: int):
        self.out = out
        self.acc = np.zeros((rows,) + out.shape[1:], np.float32)
        self.wsum = np.zeros((rows, out.shape[1]), np.float32)
        self.y0 = 0  # image row of the band's first row

    def add(self, py0: int, px0: int, f: np.ndarray, wt: np.ndarray) -> None:
        """Feather fused tile ``f`` (its padded box from ``(py0, px0)``) with weights ``wt``."""
        if py0 > self.y0:
            self._flush(py0)
        a, b = py0 - self.y0, py0 - self.y0 + f.shape[0]
        self.acc[a:b, px0:px0 + f.shape[1]] += f * (wt[..., None] if f.ndim == 3 else wt)
        self.wsum[a:b, px0:px0 + f.shape[1]] += wt

    def finish(self) -> np.ndarray:
        """The output image, every row written."""
        self._flush(self.out.shape[0])
        return self.out

    def _flush(self, upto: int) -> None:
        """Write image rows ``y0:upto`` to the output and drop them from the band."""
        k = min(upto, self.y0 + self.acc.shape[0]) - self.y0
        self.out[self.y0:self.y0 + k] = _assemble(self.acc[:k], self.wsum[:k], (k,) + self.out.shape[1:],
                                                  self.out.dtype)
        rest = self.acc.shape[0] - k
        self.acc[:rest] = self.acc[k:].copy()  # the rows still in use: a copy of those rows only
        self.wsum[:rest] = self.wsum[k:].copy()
        self.acc[rest:] = 0.0
        self.wsum[rest:] = 0.0
        self.y0 = upto


def _assemble(acc: np.ndarray, wsum: np.ndarray | None, out_shape: tuple, dtype) -> np.ndarray:
    """The fused image in the frames' dtype from the accumulator (normalised by the feather
    sums; ``acc`` may be overwritten)."""
    if dtype == np.float32:
        if wsum is not None:
            acc /= (wsum[..., None] if acc.ndim == 3 else wsum)
        return acc
    fused = np.empty(out_shape, dtype)  # in bands of rows: no full-size temporaries next to acc
    band = max(1, (1 << 22) // max(1, acc[0].size))
    for y in range(0, out_shape[0], band):
        a = acc[y:y + band]
        if wsum is not None:
            ws = wsum[y:y + band]
            a = a / (ws[..., None] if a.ndim == 3 else ws)
        from_float(a, dtype, out=fused[y:y + band])  # which clips
    return fused
