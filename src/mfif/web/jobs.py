"""Fusion jobs for the web page: uploads on disk, one worker thread, results kept in memory.

Nothing here knows about HTTP: the app (:mod:`mfif.web.app`) turns requests into calls of
:class:`JobManager` and its :class:`UsageError` / :class:`JobError` exceptions into answers.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UsageError
from ..io import (IMAGE_EXTENSIONS, TiffPlane, check_sources, frame_paths, from_float, read_image, to_float,
                  write_image)
from .retouch import Stroke, compose

__all__ = ["JobError", "Job", "JobManager", "display_name", "upload_extension", "overall_progress"]

#: Job states, in the order a job goes through them.
STATES = ("queued", "running", "done", "failed")
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class JobError(Exception):
    """A request about a job that cannot be answered; ``status`` is the HTTP status to give."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def display_name(name: str | None, index: int) -> str:
    """The client's file name reduced to something safe to show: its last path part, printable.

    Only ever displayed; files are stored under names of the server's own making.
    """
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(c for c in base if c.isprintable()).strip()[:120]
    return base if base not in ("", ".", "..") else f"frame {index + 1}"


def upload_extension(name: str) -> str:
    """The lower-case image extension of an uploaded file's name, e.g. ``".png"``.

    Raises
    ------
    UsageError
        When the name has no extension mfif reads.
    """
    ext = os.path.splitext(name)[1].lower()
    if ext not in IMAGE_EXTENSIONS:
        raise UsageError(f"{name}: not an image file name (allowed: {', '.join(IMAGE_EXTENSIONS)})")
    return ext


def overall_progress(stage: str, done: int, total: int, *, align: bool) -> float:
    """Map ``fuse_stack``'s per-stage progress to one fraction in [0, 1].

    The stages share the bar in proportion to their usual cost: alignment, reading and
    fusing (fusing dominates).
    """
    spans = {"align": (0.0, 0.3), "read": (0.3, 0.45), "fuse": (0.45, 1.0)} if align else \
        {"read": (0.0, 0.2), "fuse": (0.2, 1.0)}
    lo, hi = spans.get(stage, (0.0, 0.0))
    frac = min(1.0, max(0.0, done / total)) if total > 0 else 1.0
    return lo + (hi - lo) * frac


def user_message(message: str, paths: Sequence[Path], names: Sequence[str]) -> str:
    """``message`` with every stored upload path (or file name) replaced by the user's file name.

    mfif's messages name the files they read; the user knows an upload by its own name.
    """
    for path, name in zip(paths, names):
        message = message.replace(str(path), name).replace(path.name, name)
    return message


def check_upload(path: Path, name: str) -> np.ndarray:
    """Decode one uploaded frame; an unreadable file raises :class:`UsageError` naming ``name``."""
    try:
        return read_image(path)
    except UsageError as exc:
        raise UsageError(user_message(str(exc), [path], [name])) from None


@dataclass
class Job:
    """One fusion: its uploads, state, result and retouch strokes. Fields change under ``lock``."""

    id: str
    folder: Path
    paths: list[Path]
    names: list[str]
    method: str
    align: bool
    depth_map: bool
    created: float = field(default_factory=time.monotonic)
    state: str = "queued"
    stage: str = ""
    progress: float = 0.0
    error: str | None = None
    seconds: float | None = None
    fused: np.ndarray | None = None
    decision: np.ndarray | None = None
    strokes: list[Stroke] = field(default_factory=list)
    version: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _composed: tuple | None = field(default=None, repr=False)
    _renders: dict = field(default_factory=dict, repr=False)

    def status(self) -> dict:
        """The job as the API reports it (``GET /api/jobs/{id}``)."""
        with self.lock:
            out = {"id": self.id, "state": self.state, "stage": self.stage, "progress": round(self.progress, 4),
                   "error": self.error, "method": self.method, "align": self.align, "depth_map": self.depth_map,
                   "frames": len(self.paths), "names": list(self.names), "strokes": len(self.strokes),
                   "version": self.version, "seconds": self.seconds}
            if self.fused is not None:
                h, w = self.fused.shape[:2]
                out.update(width=w, height=h, dtype=str(self.fused.dtype),
                           channels=1 if self.fused.ndim == 2 else self.fused.shape[2],
                           has_depth=self.decision is not None)
            return out

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as it went into the fusion (aligned and cropped), memory-mapped."""
        return np.load(self.folder / f"used_{i:03d}.npy", mmap_mode="r")

    def result(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The fused image and depth map with every stroke applied (recomposed when they change)."""
        with self.lock:
            self._need_done()
            if self._composed is None or self._composed[0] != self.version:
                img, depth = compose(self.fused, self.decision, self.strokes, self.frame)
                self._composed = (self.version, img, depth)
            return self._composed[1], self._composed[2]

    def _need_done(self) -> None:
        if self.state != "done":
            raise JobError(409, f"job {self.id} is {self.state}" + (f": {self.error}" if self.error else ""))

    def add_stroke(self, stroke: Stroke) -> None:
        """Append a retouch stroke (the result is recomposed on the next read)."""
        with self.lock:
            self._need_done()
            self.strokes.append(stroke)
            self._changed()

    def undo(self) -> None:
        """Drop the last stroke."""
        with self.lock:
            self._need_done()
            if not self.strokes:
                raise JobError(409, "nothing to undo")
            self.strokes.pop()
            self._changed()

    def _changed(self) -> None:
        self.version += 1
        for p in self._renders.values():
            p.unlink(missing_ok=True)
        self._renders.clear()

    def render(self, kind: str, fmt: str, preview: bool) -> Path:
        """Encode an image of the job to a file in its folder and return the path (cached).

        Parameters
        ----------
        kind : {"fused", "depth"} or int
            The (retouched) fused image, its depth map, or frame ``kind``.
        fmt : {"png", "tif"}
            File format. Full downloads keep the frames' bit depth (16-bit frames give 16-bit
            files; float frames a float TIFF or a 16-bit PNG); the depth map is the source
            index per pixel, 16-bit.
        preview : bool
            An 8-bit PNG for display instead: the image itself, or the depth map in colour.
        """
        with self.lock:
            key = (kind, "preview" if preview else fmt)
            if key in self._renders and self._renders[key].exists():
                return self._renders[key]
            img, depth = self.result()
            if isinstance(kind, int):
                if not 0 <= kind < len(self.paths):
                    raise JobError(404, f"job {self.id} has no frame {kind} (frames 0 to {len(self.paths) - 1})")
                img = np.asarray(self.frame(kind))
            elif kind == "depth":
                if depth is None or not self.depth_map:
                    raise JobError(404, f"job {self.id} has no depth map (ask for depth_map with a method "
                                        "that has one)")
            if kind == "depth":
                from ..commands.fuse import depth_preview

                arr = depth_preview(depth, len(self.paths)) if preview else depth.astype(np.uint16)
            elif preview:
                arr = from_float(np.clip(to_float(img), 0.0, 1.0), np.uint8)
            elif img.dtype == np.float32 and fmt == "png":
                arr = from_float(np.clip(img, 0.0, 1.0), np.uint16)
            else:
                arr = img
            name = f"{kind if isinstance(kind, str) else f'frame{kind:03d}'}_v{self.version}_{key[1]}"
            path = write_image(self.folder / f"{name}.{'png' if preview else fmt}", np.ascontiguousarray(arr))
            self._renders[key] = path
            return path


class JobManager:
    """Owns the uploads folder, the jobs and the worker thread that fuses them one at a time.

    Parameters
    ----------
    max_frames : int
        Most frames one job may have.
    ttl : float
        Seconds a job (with its files) is kept after it was created; expired jobs are deleted
        by a sweeper thread, and everything is deleted by :meth:`close`.
    max_memory_mb : float
        Memory budget passed to :func:`mfif.stack.fuse_stack`.
    root : str, optional
        Parent of the private uploads folder (default: the system's temporary folder).
    """

    def __init__(self, *, max_frames: int = 64, ttl: float = 3600.0, max_memory_mb: float = 4096,
                 root: str | None = None):
        self.max_frames = max_frames
        self.ttl = ttl
        self.max_memory_mb = max_memory_mb
        self.folder = Path(tempfile.mkdtemp(prefix="mfif-web-", dir=root))  # mode 0700
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mfif-fuse")
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="mfif-sweep", daemon=True)
        self._sweeper.start()

    # -- creating jobs ----------------------------------------------------------------------
    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id (unguessable) and its private folder, for the uploads to go into."""
        job_id = secrets.token_urlsafe(18)
        folder = self.folder / job_id
        folder.mkdir(mode=0o700)
        return job_id, folder

    def submit(self, job_id: str, folder: Path, uploads: Sequence[tuple[str, Path]], *, method: str,
               align: bool, depth_map: bool, params: dict | None = None) -> Job:
        """Check a job's stored uploads and queue its fusion.

        Parameters
        ----------
        job_id, folder
            From :meth:`new_folder`.
        uploads : sequence of (display name, stored path)
            The frames, in focus order, already written into ``folder``; or one multi-page
            TIFF, whose pages are the frames.
        method, align, depth_map
            Fusion method, whether to align first, whether a depth map is wanted.

        Raises
        ------
        UsageError
            Fewer than two or more than ``max_frames`` frames, an unknown method or option, a
            depth map asked of a method without one, a file that is no readable image, frames
            whose sizes, channel counts or bit depths differ. The folder is deleted then.
        """
        from ..methods import get_method, parse_params

        try:
            uploads = list(uploads)
            if len(uploads) == 1:  # one multi-page TIFF is a z-stack: its planes are the frames
                name, path = uploads[0]
                try:
                    frames = frame_paths([path])
                except UsageError as exc:
                    raise UsageError(user_message(str(exc), [path], [name])) from None
                if isinstance(frames[0], TiffPlane):
                    uploads = [(f"{name} plane {k + 1}", plane) for k, plane in enumerate(frames)]
            if len(uploads) < 2:
                raise UsageError(f"need at least 2 frames, got {len(uploads)}")
            if len(uploads) > self.max_frames:
                raise UsageError(f"too many frames: {len(uploads)} (at most {self.max_frames})")
            m = get_method(method)
            parse_params(m, params or {})
            if depth_map and not m.has_decision:
                raise UsageError(f"method {method} has no decision map, so no depth map; "
                                 "try sff or focus-map, or leave the depth map off")
            names = [n for n, _ in uploads]
            paths = [p for _, p in uploads]
            ref = None
            for name, path in uploads:  # decode each frame once, keeping only its shape
                img = check_upload(path, name)
                meta = np.broadcast_to(np.zeros((), img.dtype), img.shape)
                ref = ref or (name, meta)
                check_sources([ref[1], meta], [ref[0], name])
                del img
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = Job(id=job_id, folder=folder, paths=paths, names=names, method=method, align=align,
                  depth_map=depth_map)
        with self._lock:
            self.jobs[job_id] = job
        self._pool.submit(self._run, job, dict(params or {}))
        return job

    def _run(self, job: Job, params: dict) -> None:
        from ..stack import fuse_stack

        if self._stop.is_set() or job.id not in self.jobs:
            return
        with job.lock:
            job.state = "running"

        def progress(stage: str, done: int, total: int) -> None:
            with job.lock:
                job.stage = stage
                job.progress = max(job.progress, overall_progress(stage, done, total, align=job.align))

        def keep(i: int, img: np.ndarray) -> None:
            np.save(job.folder / f"used_{i:03d}.npy", np.ascontiguousarray(img))

        t0 = time.perf_counter()
        try:
            res = fuse_stack(job.paths, method=job.method, params=params, align=job.align,
                             max_memory_mb=self.max_memory_mb, cache_dir=str(job.folder),
                             progress=progress, on_frame=keep)
        except UsageError as exc:
            self._fail(job, user_message(str(exc), job.paths, job.names))
            return
        except MemoryError:
            self._fail(job, "out of memory; try fewer or smaller frames")
            return
        except Exception as exc:  # a bug: report it rather than leave the job running forever
            traceback.print_exc()
            self._fail(job, f"internal error: {type(exc).__name__}: {exc}")
            return
        with job.lock:
            job.fused = res.fused
            job.decision = res.decision
            job.seconds = time.perf_counter() - t0
            job.progress = 1.0
            job.stage = ""
            job.state = "done"

    @staticmethod
    def _fail(job: Job, message: str) -> None:
        with job.lock:
            job.state, job.error, job.stage = "failed", message, ""

    # -- looking jobs up --------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """The job with this id; :class:`JobError` 404 for an unknown (or expired) one."""
        job = self.jobs.get(job_id) if _ID.match(job_id or "") else None
        if job is None:
            raise JobError(404, "no such job (unknown id, or expired)")
        return job

    # -- clean-up ---------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        """Delete jobs older than the TTL that are not running; return how many went."""
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [j for j in self.jobs.values() if now - j.created > self.ttl and j.state != "running"]
            for j in old:
                del self.jobs[j.id]
        for j in old:
            shutil.rmtree(j.folder, ignore_errors=True)
        return len(old)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(min(60.0, max(1.0, self.ttl / 4))):
            self.sweep()

    def close(self) -> None:
        """Stop the worker and the sweeper and delete every upload and result."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self.jobs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
