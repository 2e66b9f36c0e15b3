"""``mfif fuse``: fuse a stack of sources into one image."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..options import number_arg


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
                   help="write the per-pixel source index as a 16-bit .png or .tif (plus STEM-preview.png in colour)")
    p.add_argument("--align", action="store_true", help="register every frame to the reference frame first (hand-held stacks)")
    p.add_argument("--align-model", default="similarity", choices=("translation", "similarity", "affine", "homography"),
                   help="motion model for --align (default similarity: shift, rotation, scale)")
    add_align_options(p)
    p.add_argument("--tile", type=number_arg(lo=0, integer=True), default=0, metavar="PX",
                   help="process in tiles of PX pixels with overlap (default: chosen from --max-memory)")
    p.add_argument("--max-memory", type=number_arg(lo=0, lo_open=True), default=4096, metavar="MB",
                   help="memory budget for the fusion (default 4096): peak resident memory on top of the "
                        "process's baseline (Python, libraries, for sff PyTorch and the model: about 80 and "
                        "300 MB); sets the tile size from a per-method model (docs/stacks.md)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return p


def add_align_options(p) -> None:
    """The alignment options ``mfif fuse --align`` and ``mfif align`` share."""
    p.add_argument("--reference", default="middle", metavar="first|middle|last|N",
                   help="reference frame of the alignment: its geometry is kept (N: 0-based index; default middle)")
    p.add_argument("--max-residual", type=float, default=None, metavar="PX",
                   help="largest residual misregistration accepted, in full-resolution pixels (default: 0.2%% of "
                        "the frame diagonal, at least 2)")
    p.add_argument("--skip-unaligned", action="store_true",
                   help="leave out frames that cannot be aligned (with a warning) instead of stopping")


def align_kwargs(args, n: int) -> dict:
    """Validated keyword arguments of the alignment from the shared options, for ``n`` frames."""
    from ..align import resolve_reference

    if args.max_residual is not None and not args.max_residual > 0:
        raise UsageError(f"--max-residual must be a positive number of pixels, got {args.max_residual:g}")
    return {"reference": resolve_reference(args.reference, n, option="--reference", allow_negative=False),
            "max_residual": "auto" if args.max_residual is None else args.max_residual,
            "skip_unaligned": args.skip_unaligned}


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


def save_stage_maps(maps: dict, out_dir: Path, n: int, protect) -> list[Path]:
    """Write each stage map (``FusionResult.stage_maps()``) as ``out_dir/NAME.png``."""
    from ..io import write_image

    written = []
    for name, arr in maps.items():
        kind = "decision" if "decision" in name else ("unit" if name.startswith(("weight", "score")) else "auto")
        written.append(write_image(out_dir / f"{name}.png", map_to_png(arr, kind=kind, n_sources=n), protect=protect))
    return written


class _Progress:
    """tqdm bars on stderr per stage; silent with --quiet or when stderr is not a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        label = {"align": "aligning", "read": "reading", "fuse": "fusing tiles"}.get(stage, stage)
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=label, unit="frame" if stage != "fuse" else "tile",
                                          leave=False, file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


def run(args) -> int:
    from ..io import check_sources, expand_sources, image_info, read_image, write_image
    from ..methods import get_method, parse_params
    from ..outputs import check_plan, depth_paths, plan_fuse_outputs
    from ..stack import fuse_stack

    # Everything is checked before the first pixel is decoded: options, every source's header,
    # and every output against the inputs and against each other.
    params = parse_kv(args.param)
    method = get_method(args.method)
    parse_params(method, params)
    if args.depth_map and not method.has_decision:
        raise UsageError(f"method {args.method} has no decision map; --depth-map needs one (try sff or focus-map)")
    if 0 < args.tile < 64:
        raise UsageError(f"--tile must be 0 (automatic) or at least 64 px, got {args.tile}")
    paths = expand_sources(args.sources)
    if len(paths) < 2:
        raise UsageError(f"need at least 2 sources, got {len(paths)}" + (f" ({paths[0]})" if paths else ""))
    infos = [image_info(p) for p in paths]
    check_sources(infos, [str(p) for p in paths])
    if infos[0].dtype.kind == "f":  # NaN and inf are only seen in the pixels: look before fusing
        for p in paths:
            read_image(p)
    plan = plan_fuse_outputs(args.output, dtype=infos[0].dtype, depth_map=args.depth_map, maps_dir=args.save_maps)
    check_plan(plan, inputs=paths)
    protect = list(paths)
    out = Path(args.output)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    alignment = align_kwargs(args, len(paths)) if args.align else {}
    log(f"fusing {len(paths)} sources with {args.method}" + (" after alignment" if args.align else ""))
    res = fuse_stack(paths, method=args.method, params=params, align=args.align, align_model=args.align_model,
                     **alignment,
                     tile=args.tile, max_memory_mb=args.max_memory, want_maps=bool(args.save_maps),
                     progress=_Progress(not args.quiet and sys.stderr.isatty()), log=log)
    write_image(out, res.fused, protect=protect)
    w, h = res.info["size"]
    log(f"wrote {out} ({w}x{h} {res.fused.dtype}) in {res.info['seconds']:.2f} s"
        + (f", {res.tiles} tiles of {res.tile_size} px" if res.tiles > 1 else ""))
    if args.save_maps:
        written = save_stage_maps(res.maps, Path(args.save_maps), len(paths), protect)
        log(f"wrote {len(written)} maps to {args.save_maps}")
    if args.depth_map:
        dm, preview = depth_paths(args.depth_map)
        write_image(dm, res.decision.astype(np.uint16), protect=protect)
        write_image(preview, depth_preview(res.decision, len(paths)), protect=protect)
        log(f"wrote depth map {dm} (source index per pixel) and its colour preview {preview}")
    return 0
