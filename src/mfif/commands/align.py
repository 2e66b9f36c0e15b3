"""``mfif align``: register a hand-held stack and write the aligned frames for other tools."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import UsageError
from .fuse import _Progress, add_align_options, align_kwargs


def register(sub):
    p = sub.add_parser(
        "align", help="align the frames of a hand-held stack and write them to a folder",
        description="Register every frame of a focus stack onto a reference frame (the same alignment as "
                    "`mfif fuse --align`) and write the aligned frames, under their own names and in their "
                    "own format and bit depth, to OUTDIR.")
    p.add_argument("sources", nargs="+", metavar="FRAMES",
                   help="image files, glob patterns or a directory; or one multi-page TIFF, whose planes are "
                        "written as STEM-planeK.tif")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for the aligned frames (created; must not be the input folder)")
    p.add_argument("--model", default="similarity", choices=("translation", "similarity", "affine", "homography"),
                   help="motion model (default similarity: shift, rotation, scale)")
    add_align_options(p)
    p.add_argument("--no-crop", action="store_true",
                   help="keep the reference frame's size (uncovered borders mirrored) instead of cropping to the "
                        "area every frame covers")
    p.add_argument("--report", metavar="R.json",
                   help="write the transforms (3x3 frame -> reference matrices), residuals and status as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return p


def run(args) -> int:
    from ..align import estimate_transforms, warp_frame
    import os

    from ..io import TiffPlane, check_output_path, expand_frames, read_image, write_image, write_text

    paths = expand_frames(args.sources)  # a z-stack in one file: its planes are the frames
    if len(paths) < 2:
        raise UsageError(f"need at least 2 frames, got {len(paths)}" + (f" ({paths[0]})" if paths else ""))
    kw = align_kwargs(args, len(paths))
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: is not a directory")
    for p in paths:
        if out_dir.exists() and Path(os.fspath(p)).parent.resolve() == out_dir.resolve():
            raise UsageError(f"{out_dir}: is the folder of the input {p.name}; choose another output folder")
    # a plane of a multi-page TIFF is written as its own file: STEM-planeK.tif
    names = [f"{p.stem}-plane{p.index + 1:03d}.tif" if isinstance(p, TiffPlane) else p.name for p in paths]
    seen = {}
    for p, name in zip(paths, names):
        if name in seen:
            raise UsageError(f"two inputs are named {name} ({seen[name]} and {p}); their aligned copies "
                             "would overwrite each other")
        seen[name] = p
    targets = [out_dir / name for name in names]
    for t in targets:
        check_output_path(t, protect=paths)
    if args.report and Path(args.report).is_dir():
        raise UsageError(f"{args.report}: is a directory")
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    prog = _Progress(not args.quiet and sys.stderr.isatty())
    reg = estimate_transforms(paths, model=args.model, progress=lambda k, n: prog("align", k, n), **kw)
    for line, status in zip(reg.describe([p.name for p in paths]), reg.status):
        log(("warning: " if status != "ok" else "") + line)
    w, h = reg.size
    box = (0, 0, w, h) if args.no_crop else reg.valid_box
    written = 0
    for i in reg.aligned:
        img = warp_frame(read_image(paths[i]), reg.transforms[i], box=box)
        write_image(targets[i], img, protect=paths)
        written += 1
        prog("write", written, len(reg.aligned))
    if args.report:
        rep = reg.report([str(p) for p in paths])
        rep["cropped"] = not args.no_crop
        for f, t in zip(rep["frames"], targets):
            f["output"] = str(t) if f["status"] == "ok" else None
        write_text(Path(args.report), json.dumps(rep, indent=1), protect=paths)
    x0, y0, x1, y1 = box
    log(f"wrote {written} aligned frames ({x1 - x0}x{y1 - y0}) to {out_dir} in {reg.info['seconds']:.2f} s "
        f"of alignment" + (f"; skipped {len(paths) - written}" if written < len(paths) else ""))
    return 0
