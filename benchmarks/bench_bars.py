"""A synthetic barcode stack: wide flat bars with crisp edges, one sharp frame and two defocused ones.

Inside a wide flat bar the sharp frame is flat, while a defocused frame shows the soft ramp of
the bar's edges, so a focus measure that sees only local texture prefers the defocused frame.
The scene: vertical bars 4-40 px wide at levels 0.1 and 0.75 (512 x 384, seed 0). Frames: the
bars blurred by a disk of radius ``r`` and ``r / 2``, and sharp, each with its own sensor noise
(sigma 0.01). The table gives the share of pixels that each variant takes from the sharp frame,
the share of the sff-fast network's own grid arg-max that picks it, and the PSNR of the fused image
against the sharp frame.

Usage::

    .venv/bin/python benchmarks/bench_bars.py [VARIANT ...]

A variant is ``sff-fast`` or ``sff-fast:key=value,...`` (``weights=runs/x/best.pt``, ``flat=0``).
"""
from __future__ import annotations

import argparse
import math

import cv2
import numpy as np

from tune_defaults import parse_variant  # also puts this tree's src first on sys.path

import mfif  # noqa: E402
from mfif.sff.fast_fusion import fast_scores  # noqa: E402
from mfif.synth.graphics import barcode  # noqa: E402
from mfif.synth.psf import psf_kernel  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", default=["sff-fast"])
    args = ap.parse_args(argv)
    print("| variant | r px | from the sharp frame | network's grid arg-max | PSNR dB |")
    print("|---|---:|---:|---:|---:|")
    for text in args.variants:
        method, opts = parse_variant(text)
        rng = np.random.default_rng(0)
        sharp = barcode(rng, shape=(384, 512), widths=(4, 40), levels=(0.1, 0.75))
        for r in (12, 20, 32):
            def noisy(a):
                return np.clip(a + rng.normal(0, 0.01, a.shape).astype(np.float32), 0, 1)

            def blur(radius):
                return cv2.filter2D(sharp, -1, psf_kernel("disk", radius), borderType=cv2.BORDER_REFLECT)

            frames = [noisy(blur(r)), noisy(blur(r / 2)), noisy(sharp)]
            res = mfif.fuse(frames, method=method, **opts)
            share = float(np.mean(res.decision == 2))
            if method == "sff-fast":
                grid = fast_scores(frames, weights=opts.get("weights", ""))
                net = f"{100 * float(np.mean(grid.argmax(0) == 2)):.1f} %"
            else:
                net = "–"
            mse = float(np.mean((res.fused - frames[2]) ** 2))
            psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse)
            print(f"| {text} | {r} | {100 * share:.1f} % | {net} | {psnr:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
