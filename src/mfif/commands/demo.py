"""``mfif demo``: a self-contained example, no data of the user's needed.

Synthesises a two-source multi-focus pair from a free photo that scikit-image ships
(``skimage.data.astronaut``, NASA, public domain) with mfif's own defocus model, fuses it,
writes sources, ground truth, fused image and the stage maps, and prints the quality of each
method against the known sharp image.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..methods import DEFAULT_METHOD
from ..options import number_arg


def register(sub):
    p = sub.add_parser("demo", help="synthesise an example pair, fuse it, report SSIM against the truth",
                       description="Synthesise a multi-focus pair from a photo that scikit-image ships, fuse it "
                                   "with SFF (and the classic methods for comparison), write everything to OUT.")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    p.add_argument("--method", default=DEFAULT_METHOD, help=f"main method (default {DEFAULT_METHOD})")
    p.add_argument("--seed", type=number_arg(lo=0, integer=True), default=7, help="seed of the synthetic pair")
    p.add_argument("--compare", default="sff,average,dwt,laplacian,gff,focus-map",
                   help="comma-separated methods to compare against ('' for none)")
    return p


def make_demo_pair(seed: int = 7):
    """The demo case: (sources, gt, mask) synthesised from ``skimage.data.astronaut``."""
    import numpy as np
    from skimage import data

    from ..io import to_float
    from ..synth import make_case

    photo = to_float(data.astronaut())
    case = make_case(photo, n_sources=2, rng=np.random.default_rng(seed), radius=(3.0, 6.0), psf="disk",
                     mask_kind="segment")
    return case


def run(args) -> int:
    from ..api import fuse
    from ..io import from_float, write_image
    from ..methods import get_method
    from ..metrics import psnr, ssim
    from .fuse import save_stage_maps

    methods = [args.method] + [m for m in args.compare.split(",") if m and m != args.method]
    for m in methods:
        get_method(m)
    out = Path(args.out)
    case = make_demo_pair(args.seed)
    names = ["A.png", "B.png"]
    for name, src in zip(names, case.sources):
        write_image(out / name, from_float(src))
    write_image(out / "gt.png", from_float(case.gt))
    write_image(out / "mask.png", (case.mask * 255).astype("uint8"))
    gt8 = from_float(case.gt)
    print(f"demo pair: {case.gt.shape[1]}x{case.gt.shape[0]} colour, from skimage.data.astronaut; "
          f"blur {case.params.get('psf', '?')} -> {out}/A.png, B.png, gt.png, mask.png")
    print(f"{'method':<10} {'SSIM':>7} {'PSNR dB':>8} {'seconds':>8}")
    for m in methods:
        t0 = time.perf_counter()
        res = fuse(case.sources, method=m)
        dt = time.perf_counter() - t0
        f8 = from_float(res.fused)
        if m == args.method:
            write_image(out / "fused.png", f8)
            save_stage_maps(res.stage_maps(), out / "maps", 2, protect=[])
        else:
            write_image(out / "compare" / f"{m}.png", f8)
        print(f"{m:<10} {ssim(f8, gt8):7.4f} {psnr(f8, gt8):8.2f} {dt:8.2f}")
    print(f"fused image: {out}/fused.png; stage maps: {out}/maps/; other methods: {out}/compare/", file=sys.stderr)
    return 0
