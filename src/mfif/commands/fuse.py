"""``mfif fuse``: fuse a stack of sources into one image."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import UsageError


def register(sub):
    p = sub.add_parser(
        "fuse", help="fuse two or more sources into one all-in-focus image",
        description="Fuse two or more multi-focus sources (files, globs or a directory) into one image.")
    p.add_argument("sources", nargs="+", metavar="SRC", help="image files, glob patterns or directories")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="fused image (.png, .tif, .jpg); bit depth follows the sources")
    p.add_argument("-m", "--method", default="sff", help="fusion method (see `mfif methods`; default sff)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, repeatable (see `mfif methods -v`)")
    p.add_argument("--save-maps", metavar="DIR", help="write the score, decision and weight maps as PNGs here")
    p.add_argument("--depth-map", metavar="FILE",
                   help="write the per-pixel source index as a 16-bit PNG (plus FILE-preview.png in colour)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return p


def parse_kv(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"option {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        if not k:
            raise UsageError(f"option {item!r} has no name")
        out[k.strip()] = v.strip()
    return out


def map_to_png(arr: np.ndarray, *, kind: str, n_sources: int) -> np.ndarray:
    """Render an intermediate map as an 8-bit image for viewing."""
    a = np.asarray(arr)
    if kind == "decision":
        scale = 255.0 / max(n_sources - 1, 1)
        return np.clip(np.rint(a.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    a = a.astype(np.float32)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if kind == "unit" or (lo >= 0.0 and hi <= 1.0):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:
        return np.zeros(a.shape, np.uint8)
    return np.clip(np.rint((a - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def depth_preview(decision: np.ndarray, n: int) -> np.ndarray:
    """Colour-coded RGB preview of a source-index map (turbo colour map)."""
    import cv2

    gray = map_to_png(decision, kind="decision", n_sources=n)
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def save_stage_maps(result, out_dir: Path, n: int, protect) -> list[Path]:
    from ..io import write_image

    written = []
    for name, arr in result.stage_maps().items():
        kind = "decision" if "decision" in name else ("unit" if name.startswith(("weight", "score")) else "auto")
        written.append(write_image(out_dir / f"{name}.png", map_to_png(arr, kind=kind, n_sources=n), protect=protect))
    return written


def run(args) -> int:
    from ..api import fuse
    from ..io import check_output_path, from_float, read_stack, write_image

    params = parse_kv(args.param)
    from ..methods import get_method, parse_params

    parse_params(get_method(args.method), params)  # fail fast, before reading images
    out = Path(args.output)
    images, paths = read_stack(args.sources)
    protect = list(paths)
    for target in [out, args.depth_map]:
        if target is not None:
            check_output_path(Path(target).with_suffix(".png") if target == args.depth_map else target,
                              protect=protect)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    log(f"fusing {len(images)} sources ({images[0].shape[1]}x{images[0].shape[0]}) with {args.method}")
    res = fuse(images, method=args.method, **params)
    write_image(out, from_float(res.fused, images[0].dtype), protect=protect)
    log(f"wrote {out} in {res.info.get('seconds', 0):.2f} s")
    if args.save_maps:
        written = save_stage_maps(res, Path(args.save_maps), len(images), protect)
        log(f"wrote {len(written)} maps to {args.save_maps}")
    if args.depth_map:
        if res.decision is None:
            raise UsageError(f"method {args.method} has no decision map; --depth-map needs one (try sff or focus-map)")
        dm = Path(args.depth_map)
        write_image(dm.with_suffix(".png"), res.decision.astype(np.uint16), protect=protect)
        write_image(dm.with_name(dm.stem + "-preview.png"), depth_preview(res.decision, len(images)), protect=protect)
        log(f"wrote depth map {dm.with_suffix('.png')}")
    return 0
