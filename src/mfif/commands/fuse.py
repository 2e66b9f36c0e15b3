"""``mfif fuse``: fuse a stack of sources into one image."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..methods import DEFAULT_METHOD
from ..options import number_arg


#: ``--format`` names and the extensions they write.
FORMATS = {"tif": ".tif", "png": ".png", "jpg": ".jpg"}


def register(sub):
    p = sub.add_parser(
        "fuse", help="fuse two or more sources into one all-in-focus image",
        description="Fuse two or more multi-focus sources (files, globs or a directory) into one image.")
    p.add_argument("sources", nargs="+", metavar="SRC",
                   help="image or camera RAW files, glob patterns or directories; or one z-stack file (a multi-page "
                        "TIFF, whose pages are the frames, or an OME-Zarr)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="fused image (.png, .tif, .jpg; no extension: --format's) or a folder (an existing one, or "
                        "ending in /): the name comes from the stack; bit depth follows the sources unless --depth")
    p.add_argument("--format", choices=tuple(FORMATS), default=None,
                   help="format when -o is a folder or has no extension (default: tif for RAW, else the frames' own)")
    p.add_argument("--save-maps", metavar="DIR", help="write the score, decision and weight maps as PNGs here")
    p.add_argument("--depth-map", metavar="FILE",
                   help="write the per-pixel source index as a 16-bit .png or .tif (plus STEM-preview.png in colour)")
    add_stack_options(p)
    p.add_argument("--scheduler", default=None, metavar="threads|local:N|tcp://HOST:PORT",
                   help="fuse on the Dask engine (chunk by chunk; the default for an OME-Zarr, a .ome.zarr / .ome.tif "
                        "output, or TIFF planes too large to decode within --max-memory): threads (default), a local cluster of N worker "
                        "processes, or a running Dask scheduler; --max-memory is then per worker and --tile the "
                        "chunk side (docs/scale.md)")
    p.add_argument("--connect-timeout", type=number_arg(lo=0, lo_open=True, hi=3600), default=10, metavar="S",
                   help="seconds to wait for a tcp:// scheduler (default 10)")
    return p


def add_stack_options(p) -> None:
    """The options of fusing one stack, which ``mfif fuse`` and ``mfif batch`` share."""
    p.add_argument("-m", "--method", default=DEFAULT_METHOD,
                   help=f"fusion method (see `mfif methods`; default {DEFAULT_METHOD})")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, repeatable (see `mfif methods -v`)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None,
                   help="where a network method runs (method option device; sff-fast default auto, sff cpu)")
    p.add_argument("--prefer", choices=("none", "near", "far"), default=None,
                   help="where focus evidence is weak, take the near (first) or far (last) frame; frames are "
                        "near-first (method option prefer; default none)")
    p.add_argument("--align", action="store_true", help="register every frame to the reference frame first (hand-held stacks)")
    p.add_argument("--align-model", default="similarity", choices=("translation", "similarity", "affine", "homography"),
                   help="motion model for --align (default similarity: shift, rotation, scale)")
    add_align_options(p)
    p.add_argument("--raw-gamma", choices=("srgb", "linear"), default="srgb",
                   help="tone curve of RAW frames (default srgb)")
    p.add_argument("--raw-space", choices=("srgb", "adobe", "prophoto"), default="srgb",
                   help="colour space RAW frames are decoded to (default srgb)")
    p.add_argument("--metadata-from", default=None, metavar="first|middle|last|N|none",
                   help="frame whose EXIF, XMP and ICC profile the output carries (default: the reference frame, "
                        "--reference)")
    p.add_argument("--depth", type=int, choices=(8, 16), default=None,
                   help="bit depth of the output (default: the sources'; 8 for .jpg from 16-bit or RAW frames)")
    p.add_argument("--jpeg-quality", type=number_arg(lo=1, hi=100, integer=True), default=95, metavar="Q",
                   help="JPEG quality 1..100 (default 95)")
    p.add_argument("--tile", type=number_arg(lo=0, integer=True), default=0, metavar="PX",
                   help="process in tiles of PX pixels with overlap (default: chosen from --max-memory)")
    p.add_argument("--max-memory", type=number_arg(lo=0, lo_open=True), default=4096, metavar="MB",
                   help="memory budget for the fusion (default 4096): peak resident memory on top of the "
                        "process's baseline (Python, libraries, for sff PyTorch and the model: about 80 and "
                        "300 MB); sets the tile size from a per-method model (docs/stacks.md)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def add_align_options(p) -> None:
    """The alignment options ``mfif fuse --align`` and ``mfif align`` share."""
    p.add_argument("--reference", default="middle", metavar="first|middle|last|N",
                   help="reference frame of the alignment: its geometry is kept (N: 0-based index; default middle)")
    p.add_argument("--max-residual", type=number_arg(lo=0, lo_open=True), default=None, metavar="PX",
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
    from ..metadata import software_only

    written = []
    for name, arr in maps.items():
        kind = "decision" if "decision" in name else ("unit" if name.startswith(("weight", "score")) else "auto")
        written.append(write_image(out_dir / f"{name}.png", map_to_png(arr, kind=kind, n_sources=n), protect=protect,
                                   metadata=software_only()))
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


def method_options(args, *, depth_maps: bool = False) -> dict:
    """Validated method options of ``args`` (``-p`` and ``--prefer``); checks ``--tile`` too."""
    from ..methods import get_method, parse_params

    params = parse_kv(args.param)
    method = get_method(args.method)
    if args.prefer is not None:
        if "prefer" not in {q.name for q in method.params}:
            raise UsageError(f"method {args.method} has no decision map; --prefer needs one (try sff or focus-map)")
        params["prefer"] = args.prefer
    if getattr(args, "device", None) is not None:
        if "device" not in {q.name for q in method.params}:
            raise UsageError(f"--device: method {args.method} runs on the CPU only (sff and sff-fast take a device)")
        params["device"] = args.device
    parse_params(method, params)
    if depth_maps and not method.has_decision:
        raise UsageError(f"method {args.method} has no decision map; a depth map needs one (try sff or focus-map)")
    if 0 < args.tile < 64:
        raise UsageError(f"--tile must be 0 (automatic) or at least 64 px, got {args.tile}")
    return params


@dataclass
class StackJob:
    """One stack, checked and ready to fuse: its frames, outputs and how to read and write them."""

    paths: list
    output: Path
    dtype: np.dtype
    raw: object = None
    metadata: object = None
    depth_map: Path | None = None
    maps_dir: Path | None = None


def default_extension(paths, fmt: str | None) -> str:
    """``--format``'s extension, else ``.tif`` for RAW frames, else the first frame's own."""
    from ..raw import is_raw

    if fmt:
        return FORMATS[fmt]
    ext = Path(paths[0]).suffix.lower()
    return ".tif" if is_raw(paths[0]) or ext not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp") else ext


def resolve_output(output: str, specs, paths, fmt: str | None) -> Path:
    """The fused image's path from ``-o``: a file, a file without extension, or a folder.

    A folder (an existing one, or a path ending in a separator) gets the stack's name: the
    source folder's name when the stack is one folder, else the first frame's stem + ``-fused``.
    """
    if not str(output).strip():
        raise UsageError("-o is empty; give an output file or folder")
    if str(output) == "-":
        raise UsageError("-o -: writing the image to standard output is not supported; give a file name")
    ext = default_extension(paths, fmt)
    o = Path(output)
    if str(output).endswith(("/", os.sep)) or o.is_dir():
        one = Path(specs[0]) if len(specs) == 1 else None
        name = one.resolve().name if one is not None and one.is_dir() else Path(paths[0]).stem + "-fused"
        return o / (name + ext)
    if not o.suffix:
        return o.with_name(o.name + ext)
    if fmt and o.suffix.lower() not in ({".jpg", ".jpeg"} if fmt == "jpg" else {FORMATS[fmt], FORMATS[fmt] + "f"}):
        raise UsageError(f"-o {output} and --format {fmt} disagree; give one of them")
    return o


def plan_stack(paths, output: Path, args, *, depth_map=None, maps_dir=None) -> StackJob:
    """Check one stack before any pixel is decoded: every frame's header, the RAW decoding,
    the metadata source, the output depth and every output against the inputs and each other.

    Raises
    ------
    UsageError
        One line naming the file or option at fault.
    """
    from ..align import resolve_reference
    from ..io import check_sources, image_info, read_image
    from ..metadata import for_output, read_metadata, software_only
    from ..outputs import check_plan, plan_fuse_outputs
    from ..raw import RawSettings, stack_settings

    paths = list(paths)
    if len(paths) < 2:
        raise UsageError(f"need at least 2 sources, got {len(paths)}" + (f" ({paths[0]})" if paths else ""))
    infos = [image_info(p) for p in paths]
    check_sources(infos, [str(p) for p in paths])
    ref = resolve_reference(args.reference, len(paths), option="--reference", allow_negative=False)
    raw = stack_settings(paths, ref, RawSettings(gamma=args.raw_gamma, space=args.raw_space))
    if infos[0].dtype.kind == "f":  # NaN and inf are only seen in the pixels: look before fusing
        if args.depth:
            raise UsageError("--depth is for 8- and 16-bit sources; float TIFFs are written as float")
        for p in paths:
            read_image(p)
    dtype = infos[0].dtype if not args.depth else np.dtype(np.uint8 if args.depth == 8 else np.uint16)
    if output.suffix.lower() in (".jpg", ".jpeg", ".bmp") and dtype == np.uint16:
        what = "RAW frames decode to 16 bits" if raw is not None else "the sources are 16-bit"
        raise UsageError(f"-o {output}: {output.suffix} holds 8 bits and {what}; write .tif or .png, "
                         "or give --depth 8")
    plan = plan_fuse_outputs(output, dtype=dtype, depth_map=depth_map, maps_dir=maps_dir)
    check_plan(plan, inputs=paths)
    source = args.reference if args.metadata_from is None else args.metadata_from
    if str(source).strip().lower() == "none":
        meta = software_only()
    else:
        k = resolve_reference(source, len(paths), option="--metadata-from", allow_negative=False)
        meta = for_output(read_metadata(paths[k]))
    return StackJob(paths=paths, output=output, dtype=dtype, raw=raw, metadata=meta,
                    depth_map=Path(depth_map) if depth_map else None, maps_dir=Path(maps_dir) if maps_dir else None)


def fuse_job(job: StackJob, args, params: dict, *, log, progress):
    """Fuse one planned stack and write its outputs; returns the :class:`mfif.stack.StackResult`."""
    from ..io import from_float, to_float, write_image
    from ..metadata import software_only
    from ..outputs import depth_paths
    from ..stack import fuse_stack

    paths, protect = job.paths, list(job.paths)
    alignment = align_kwargs(args, len(paths)) if args.align else {}
    log(f"fusing {len(paths)} sources with {args.method}" + (" after alignment" if args.align else ""))
    res = fuse_stack(paths, method=args.method, params=params, align=args.align, align_model=args.align_model,
                     **alignment, tile=args.tile, max_memory_mb=args.max_memory, want_maps=job.maps_dir is not None,
                     progress=progress, log=log, raw=job.raw)
    fused = res.fused if res.fused.dtype == job.dtype else from_float(to_float(res.fused), job.dtype)
    write_image(job.output, fused, protect=protect, quality=args.jpeg_quality, metadata=job.metadata)
    w, h = res.info["size"]
    log(f"wrote {job.output} ({w}x{h} {fused.dtype}) in {res.info['seconds']:.2f} s"
        + (f", {res.tiles} tiles of {res.tile_size} px" if res.tiles > 1 else ""))
    if job.maps_dir is not None:
        written = save_stage_maps(res.maps, job.maps_dir, len(paths), protect)
        log(f"wrote {len(written)} maps to {job.maps_dir}")
    if job.depth_map is not None:
        dm, preview = depth_paths(job.depth_map)
        write_image(dm, res.decision.astype(np.uint16), protect=protect, metadata=software_only())
        write_image(preview, depth_preview(res.decision, len(paths)), protect=protect, metadata=software_only())
        log(f"wrote depth map {dm} (source index per pixel) and its colour preview {preview}")
    return res


def quiet_log(args):
    """``log(line)`` to stderr, silent with ``-q``."""
    return (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))


def uses_dask(args) -> bool:
    """Whether ``mfif fuse`` runs on the Dask engine: an OME-Zarr z-stack, a pyramidal output
    (.ome.zarr, .ome.tif), a --scheduler, or TIFF planes too large to decode whole
    (:func:`planes_too_large`, for the pages of a multi-page TIFF as for files); decided without
    importing Dask. A multi-page TIFF whose planes fit the budget stays on the local engine,
    which starts without Dask and fuses it as it fuses the same planes as files."""
    from ..ome import pyramid_kind

    if args.scheduler is not None or pyramid_kind(args.output) is not None or (
            args.depth_map is not None and pyramid_kind(args.depth_map) is not None):
        return True
    if len(args.sources) == 1:
        from ..zstack import is_zarr

        if is_zarr(args.sources[0]):
            return True
    # stage maps are whole-image PNGs, which only the local engine writes: asked for, it keeps the stack
    return not args.save_maps and planes_too_large(args.sources, args.max_memory)


def missing_dask_extra() -> list[str]:
    """The packages of the dask extra that are not installed (looked up, not imported)."""
    import importlib.util

    return [m for m in ("dask", "distributed", "zarr") if importlib.util.find_spec(m) is None]


def planes_too_large(sources, max_memory_mb: float) -> bool:
    """Whether ``sources`` are TIFF planes the Dask engine reads tile by tile
    (:func:`mfif.zstack.window_page`), one of which would not fit ``max_memory_mb`` decoded.

    The local engine decodes each frame whole into its cache; such planes are read in windows
    instead. Only TIFF names are looked at (headers only), so other stacks cost nothing here.
    Without the dask extra installed, the local engine keeps them.
    """
    from ..io import expand_sources, is_multipage_tiff

    if not all(str(s).lower().endswith((".tif", ".tiff")) or os.path.isdir(s) for s in sources):
        return False
    if missing_dask_extra():
        return False
    try:
        paths = expand_sources(sources)
    except UsageError:
        return False  # the ordinary path reports it
    if len(sources) == 1 and len(paths) == 1 and is_multipage_tiff(sources[0]):
        from ..io import tiff_stack_layout

        try:
            lay = tiff_stack_layout(paths[0])
        except UsageError:
            return False  # the local engine's reader reports it
        return int(np.prod(lay.shape)) * lay.dtype.itemsize / 1e6 > max_memory_mb
    if len(paths) < 2 or not all(p.suffix.lower() in (".tif", ".tiff") for p in paths):
        return False
    from ..io import image_info

    try:
        info = image_info(paths[0])
    except UsageError:
        return False
    if np.prod(info.shape) * info.dtype.itemsize / 1e6 <= max_memory_mb:
        return False
    from ..zstack import window_page  # only for planes that large: tifffile's Zarr store

    return all(window_page(p) is not None for p in paths)


def run(args) -> int:
    from ..io import expand_frames

    # Everything is checked before the first pixel is decoded: options, every source's header,
    # and every output against the inputs and against each other.
    params = method_options(args, depth_maps=bool(args.depth_map))
    if uses_dask(args):
        missing = missing_dask_extra()
        if missing:
            raise UsageError(f"this input or output needs the Dask engine, which needs the dask extra "
                             f"(missing: {', '.join(missing)}): pip install 'mfif[dask]'")
        from .fuse_zstack import run_zstack

        return run_zstack(args, params)
    paths = expand_frames(args.sources)  # one multi-page TIFF gives its planes
    output = resolve_output(args.output, args.sources, paths, args.format) if paths else Path(args.output)
    job = plan_stack(paths, output, args, depth_map=args.depth_map, maps_dir=args.save_maps)
    fuse_job(job, args, params, log=quiet_log(args), progress=_Progress(not args.quiet and sys.stderr.isatty()))
    return 0
