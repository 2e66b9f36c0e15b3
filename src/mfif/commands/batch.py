"""``mfif batch``: fuse every stack of a shoot in one command, resumably.

Stacks are found under ROOT: every sub-folder holding at least two frames is one stack, named
after the folder; every multi-page TIFF directly in ROOT is one stack (its pages are the frames),
named after the file; the other frames directly in ROOT are one stack named after ROOT, or, with
``--every N`` or ``--split-by-time SECONDS``, several (named after their first frame). Each
becomes ``OUTDIR/NAME.EXT``. A finished output (outputs are written atomically, so one that
exists is complete) is skipped unless ``--force``; a stack that fails is reported and the
others go on. ``OUTDIR/summary.json`` lists every stack with its frames, method, time and
status.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..io import image_files, is_multipage_tiff, natural_key
from ..options import number_arg
from .fuse import FORMATS, add_stack_options, fuse_job, method_options, plan_stack


def register(sub):
    p = sub.add_parser(
        "batch", help="fuse every stack under a folder (one per sub-folder, or split a flat folder)",
        description="Fuse every focus stack under ROOT into OUTDIR/NAME.EXT: each sub-folder with at least two "
                    "frames is a stack, and so is each multi-page TIFF in ROOT; the other frames directly in ROOT "
                    "form one stack, or several with --every or --split-by-time. Finished outputs are skipped (resumable) unless --force. Exit status 0 "
                    "when every stack was fused or skipped, 1 when some failed, 2 for usage errors.")
    p.add_argument("root", metavar="ROOT", help="folder of stacks (sub-folders) or of frames")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the fused images")
    p.add_argument("--format", choices=tuple(FORMATS), default="tif", help="output format (default tif)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--split-by-time", type=number_arg(lo=0, lo_open=True), default=None, metavar="SECONDS",
                       help="split the frames directly in ROOT where the capture time (EXIF DateTimeOriginal, "
                            "else the file's modification time) jumps by more than SECONDS")
    split.add_argument("--every", type=number_arg(lo=2, integer=True), default=None, metavar="N",
                       help="split the frames directly in ROOT into stacks of N frames")
    p.add_argument("--force", action="store_true", help="fuse again stacks whose output exists")
    p.add_argument("--depth-maps", action="store_true", help="also write OUTDIR/NAME-depth.png (source index per pixel)")
    add_stack_options(p)
    return p


@dataclass
class Stack:
    """One stack of a batch: its name, frames, output and, once run, what happened."""

    name: str
    frames: list
    output: Path | None = None
    status: str = "pending"
    error: str | None = None
    seconds: float | None = None
    files: list = field(default_factory=list)
    job: object = field(default=None, repr=False)

    def record(self, method: str) -> dict:
        return {"name": self.name, "frames": [str(f) for f in self.frames], "method": method,
                "seconds": None if self.seconds is None else round(self.seconds, 3),
                "output": None if self.output is None or self.status == "failed" else str(self.output),
                "error": self.error, "status": self.status}


def capture_times(frames: list[Path], warn) -> list[float]:
    """Capture time of each frame: EXIF DateTimeOriginal, else the file's mtime (with a warning)."""
    from ..metadata import capture_time

    out, fallback = [], []
    for f in frames:
        t = capture_time(f)
        if t is None:
            fallback.append(f.name)
            t = f.stat().st_mtime
        out.append(t)
    if fallback:
        warn(f"warning: {len(fallback)} frame(s) without EXIF DateTimeOriginal ({', '.join(fallback[:3])}"
             + (", ..." if len(fallback) > 3 else "") + "): using the file modification time")
    return out


def split_flat(frames: list[Path], *, every: int | None = None, gap: float | None = None,
               times: list[float] | None = None) -> list[list[Path]]:
    """Split naturally sorted frames into stacks: by count ``every``, or where consecutive
    ``times`` differ by more than ``gap`` seconds; neither: one stack."""
    if every:
        return [frames[i:i + every] for i in range(0, len(frames), every)]
    if gap is not None and frames:
        groups = [[frames[0]]]
        for prev, cur, f in zip(times, times[1:], frames[1:]):
            if abs(cur - prev) > gap:
                groups.append([])
            groups[-1].append(f)
        return groups
    return [frames] if frames else []


def find_stacks(root: Path, out_dir: Path, *, every=None, gap=None, warn=lambda s: None) -> list[Stack]:
    """The stacks under ``root`` (see the module notes), ``out_dir`` left out of the scan.

    Raises
    ------
    UsageError
        ``root`` is missing or not a folder, ``out_dir`` is ``root`` or a stack's folder (the
        outputs would be read as frames by the next run), or two stacks share a name.
    """
    if not root.is_dir():
        raise UsageError(f"{root}: " + ("is not a directory" if root.exists() else "no such directory"))
    out_key = os.path.normcase(os.path.abspath(out_dir.resolve()))
    if out_key == os.path.normcase(os.path.abspath(root.resolve())):
        raise UsageError(f"-o {out_dir} is ROOT itself; the outputs would be read as frames by the next run: "
                         "choose another folder")
    stacks: list[Stack] = []
    flat = image_files(root)
    zstacks = [f for f in flat if is_multipage_tiff(f)]  # a z-stack in one file: a stack of its own
    flat = [f for f in flat if f not in zstacks]
    stacks.extend(Stack(f.stem, [f]) for f in zstacks)
    if flat:
        times = capture_times(flat, warn) if gap is not None else None
        groups = split_flat(flat, every=every, gap=gap, times=times)
        if len(groups) == 1 and not every and gap is None:
            stacks.append(Stack(root.resolve().name, groups[0]))
        else:
            stacks.extend(Stack(g[0].stem, g) for g in groups)
    for sub in sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=natural_key):
        if os.path.normcase(os.path.abspath(sub.resolve())) == out_key:
            continue  # the output folder inside ROOT is no stack
        frames = image_files(sub)
        if len(frames) >= 2 or (len(frames) == 1 and is_multipage_tiff(frames[0])):  # a z-stack in one file
            stacks.append(Stack(sub.name, frames))
        elif frames:
            warn(f"warning: {sub} holds one frame; not a stack")
    seen = {}
    for s in stacks:
        where = s.frames[0] if s.frames[0] in zstacks else s.frames[0].parent
        if s.name in seen:
            raise UsageError(f"two stacks are named {s.name} ({seen[s.name]} and {where}); "
                             "their outputs would overwrite each other")
        seen[s.name] = where
    return stacks


def _table(stacks: list[Stack]) -> str:
    rows = [("stack", "frames", "status", "seconds", "output or error")]
    for s in stacks:
        rows.append((s.name, str(len(s.frames)), s.status, "" if s.seconds is None else f"{s.seconds:.1f}",
                     s.error if s.status == "failed" else str(s.output or "")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows)


def run(args) -> int:
    from ..io import check_output_dir, write_text
    from ..outputs import depth_paths
    from ..io import frame_paths

    # usage errors first, before any stack is touched: options, ROOT, OUTDIR
    params = method_options(args, depth_maps=args.depth_maps)
    root, out_dir = Path(args.root), Path(args.output)
    check_output_dir(out_dir)
    warn = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    stacks = find_stacks(root, out_dir, every=args.every, gap=args.split_by_time, warn=warn)
    if not stacks:
        raise UsageError(f"{root}: no stack found (a sub-folder with at least 2 frames, or frames in ROOT)")
    ext = FORMATS[args.format]
    owner: dict[str, str] = {"summary.json": "the summary"}
    for s in stacks:  # every output of the batch is its own file
        s.output = out_dir / (s.name + ext)
        depth = out_dir / f"{s.name}-depth.png" if args.depth_maps else None
        s.files = [s.output] + (list(depth_paths(depth)) if depth else [])
        for f in s.files:
            if f.name in owner:
                raise UsageError(f"stack {s.name}'s output {f} is also {owner[f.name]}'s; rename one of them")
            owner[f.name] = f"stack {s.name}"
    for s in stacks:  # each stack checked before any is fused; a bad one fails alone
        depth = s.files[1] if args.depth_maps else None
        done = s.files
        if not args.force and all(p.is_file() for p in done):
            s.status = "skipped"
            continue
        try:
            s.frames = frame_paths(s.frames)  # a multi-page TIFF's planes (its headers checked here)
            s.job = plan_stack(s.frames, s.output, args, depth_map=depth)
        except UsageError as exc:
            s.status, s.error = "failed", str(exc)
    todo = [s for s in stacks if s.job is not None]
    bar = None
    if todo and not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="stacks", unit="stack", file=sys.stderr)
    for s in todo:
        if bar is not None:
            bar.set_postfix_str(s.name)
        t0 = time.perf_counter()
        try:
            fuse_job(s.job, args, params, log=lambda *a: None, progress=None)
            s.status = "ok"
        except UsageError as exc:
            s.status, s.error = "failed", str(exc)
        except Exception as exc:  # this stack's problem, whatever its kind: report it, go on with the rest
            s.status, s.error = "failed", f"{type(exc).__name__}: {exc}"
        s.seconds = time.perf_counter() - t0
        s.job = None
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    summary = {"root": str(root), "output": str(out_dir), "method": args.method, "format": args.format,
               "stacks": [s.record(args.method) for s in stacks]}
    write_text(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    failed = sum(s.status == "failed" for s in stacks)
    if not args.quiet:
        print(_table(stacks))
        counts = {k: sum(s.status == k for s in stacks) for k in ("ok", "skipped", "failed")}
        print(f"{counts['ok']} fused, {counts['skipped']} skipped (already done), {counts['failed']} failed; "
              f"summary in {out_dir / 'summary.json'}")
    for s in stacks:
        if s.status == "failed":
            print(f"mfif: stack {s.name} failed: {s.error}", file=sys.stderr)
    return 1 if failed else 0
