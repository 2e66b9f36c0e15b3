"""``mfif eval``: fusion-quality metrics of a fused image.

Label images (``--mask``, ``--decision``) are read as source indices: label ``i`` means source
``i`` (0-based, in command-line order) is in focus. Accepted encodings, tried in order:

1. values that already are indices ``0..N-1`` (e.g. a 16-bit ``--depth-map`` from ``mfif fuse``);
2. values ``round(i * 255 / (N-1))`` on the 8-bit scale (the ``decision.png`` of
   ``mfif fuse --save-maps``); for a pair this is the usual binary 0/255 mask, 0 -> source 1,
   255 -> source 2. A 16-bit image with values 0/65535 is treated likewise.

RGB label images are accepted when their three channels are equal.
"""
from __future__ import annotations

import json
import math

import numpy as np

from ..errors import UsageError
from ..options import number_arg


def register(sub):
    p = sub.add_parser(
        "eval", help="measure the quality of a fused image (SSIM, PSNR, Q^AB/F, Q_MI, Q_Y, Q_CB...)",
        description="Measure a fused image against its sources (no-reference metrics), a ground-"
                    "truth image (--reference) and a ground-truth focus mask (--mask). Metrics are "
                    "computed on the gray image; see docs/metrics.md for the definitions.")
    p.add_argument("fused", metavar="FUSED", help="the fused image")
    p.add_argument("sources", nargs="+", metavar="SRC", help="two or more source images (files, globs or a directory), or one multi-page TIFF")
    p.add_argument("-r", "--reference", metavar="GT", help="ground-truth all-in-focus image: adds ssim, psnr")
    p.add_argument("--mask", metavar="MASK",
                   help="ground-truth label image (0/255 for a pair, or source indices): with "
                        "--reference adds ssim_band, psnr_band; with --decision adds accuracy, iou, boundary_f")
    p.add_argument("--decision", metavar="DMAP",
                   help="decision map to score against --mask (mfif fuse --save-maps decision.png or --depth-map)")
    p.add_argument("-k", "--band", type=number_arg(lo=0, hi=10000), default=10.0, metavar="PX",
                   help="half-width of the focus-boundary band in pixels (default 10)")
    p.add_argument("--qabf-variant", choices=("toolbox", "strict"), default="toolbox",
                   help="Q^AB/F as the published MATLAB toolbox computes it (default) or as its formulas read")
    p.add_argument("--qy-constants", choices=("toolbox", "wang"), default="toolbox",
                   help="Q_Y's SSIM constants: the published toolbox's 2e-16 (default) or Wang's SSIM constants")
    p.add_argument("--json", action="store_true", help="print one JSON object {metric: value} instead of a table")
    return p


def read_labels(path, n_sources: int, what: str) -> np.ndarray:
    """Read a label image and return ``HxW`` int64 source indices (see module docstring)."""
    from ..io import read_image

    img = read_image(path)
    if img.ndim == 3:
        if not all(np.array_equal(img[..., 0], img[..., c]) for c in range(1, img.shape[2])):
            raise UsageError(f"{path}: {what} must be a gray label image (its colour channels differ)")
        img = img[..., 0]
    if np.issubdtype(img.dtype, np.floating):
        if not np.all(np.isfinite(img)) or not np.all(img == np.round(img)):
            raise UsageError(f"{path}: {what} must hold integer labels")
    vals = np.unique(img).astype(np.int64)
    if vals.min() >= 0 and vals.max() <= n_sources - 1:
        return img.astype(np.int64)
    full = 65535 if img.dtype == np.uint16 and vals.max() > 255 else 255
    if n_sources >= 2:
        levels = np.rint(np.arange(n_sources) * (full / (n_sources - 1))).astype(np.int64)
        if np.all(np.isin(vals, levels)):
            lut = {int(v): i for i, v in enumerate(levels)}
            out = np.zeros(img.shape, dtype=np.int64)
            for v in vals:
                out[img == v] = lut[int(v)]
            return out
    shown = ", ".join(str(int(v)) for v in vals[:8]) + (", ..." if len(vals) > 8 else "")
    raise UsageError(f"{path}: {what} values ({shown}) are neither source indices 0..{n_sources - 1} "
                     f"nor 0..{full} levels for {n_sources} sources")


def _check_size(path, img, fused_path, fused) -> None:
    if img.shape[:2] != fused.shape[:2]:
        h, w = img.shape[:2]
        fh, fw = fused.shape[:2]
        raise UsageError(f"{path} is {w}x{h} but {fused_path} is {fw}x{fh}; sizes must match")


def _fmt(name: str, v: float) -> str:
    if math.isinf(v):
        return "inf"
    return f"{v:.2f}" if name.startswith("psnr") else f"{v:.4f}"


def run(args) -> int:
    from ..io import check_sources, expand_frames, read_image
    from ..metrics import METRICS, evaluate

    if args.decision and not args.mask:
        raise UsageError("--decision needs --mask (the ground truth to score it against)")
    paths = expand_frames(args.sources)  # one multi-page TIFF gives its planes
    if len(paths) < 2:
        raise UsageError(f"need at least 2 sources, got {len(paths)}" + (f" ({paths[0]})" if paths else ""))
    fused = read_image(args.fused)
    sources = [read_image(p) for p in paths]
    check_sources(sources, [str(p) for p in paths])
    for p, s in zip(paths, sources):
        _check_size(p, s, args.fused, fused)
    reference = mask = decision = None
    if args.reference:
        reference = read_image(args.reference)
        _check_size(args.reference, reference, args.fused, fused)
    if args.mask:
        mask = read_labels(args.mask, len(sources), "mask")
        _check_size(args.mask, mask, args.fused, fused)
    if args.decision:
        decision = read_labels(args.decision, len(sources), "decision map")
        _check_size(args.decision, decision, args.fused, fused)
    res = evaluate(fused, sources, reference=reference, mask=mask, decision=decision, k=args.band,
                   qabf_variant=args.qabf_variant, qy_constants=args.qy_constants)
    if args.json:
        # infinite PSNR (identical images) has no JSON number: written as null
        print(json.dumps({k: (v if math.isfinite(v) else None) for k, v in res.items()}))
        return 0
    rows = [(k, _fmt(k, v), METRICS[k]) for k, v in res.items()]
    w0 = max(len("metric"), *(len(r[0]) for r in rows))
    w1 = max(len("value"), *(len(r[1]) for r in rows))
    print(f"{'metric':<{w0}}  {'value':>{w1}}  description")
    for name, val, desc in rows:
        if name.endswith("_band"):
            desc = desc.replace("k px", f"{args.band:g} px")
        print(f"{name:<{w0}}  {val:>{w1}}  {desc}")
    return 0
