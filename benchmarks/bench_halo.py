"""Halo benchmark: bright foreground edges over a defocused background.

The most common complaint about focus stackers is a bright halo where a sharp, bright
foreground meets a background that is in focus in another frame: in the background-focused
frame the defocused bright foreground spreads over the background, and a hard decision map
copies that glow into the result. This script synthesises such scenes (alpha-matting model,
see mfif.synth), fuses them with each method and measures, in a band of width 2r outside the
foreground (r = blur radius), the mean absolute error against ground truth and the *halo
excess* (mean of max(fused - truth, 0), the bright spill). It also writes a crop sheet.

Usage::

    .venv/bin/python benchmarks/bench_halo.py [--cases 12] [--sheet docs/img/halo_crops.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mfif import fuse  # noqa: E402
from mfif.synth import blob_mask, defocus  # noqa: E402

METHODS = [
    ("laplacian", "laplacian", {}),
    ("gff", "gff", {}),
    ("focus-map", "focus-map", {}),
    ("sff hard map (paper steps)", "sff", {"keep_confident": 2.0, "refine_band": 0, "seam": "none", "gf_radius": 0}),
    ("sff paper (guided filter)", "sff", {"keep_confident": 2.0, "refine_band": 0, "seam": "none", "gf_radius": 8, "gf_eps": 0.01}),
    ("sff (its defaults)", "sff", {}),
    ("sff-fast (mfif default)", "sff-fast", {}),
    ("sff-fast seam=laplacian", "sff-fast", {"seam": "laplacian"}),
]


def photos(n: int, size: int) -> list[np.ndarray]:
    folder = ROOT.parent / "shared" / "data" / "test_images"
    files = sorted(folder.glob("*.jpg"))[: 2 * n] if folder.is_dir() else []
    if not files:
        from skimage import data

        imgs = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()] * n
    else:
        imgs = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    out = []
    for im in imgs[: 2 * n]:
        im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        out.append(im)
    return out


def scene(bg: np.ndarray, fg: np.ndarray, rng: np.random.Generator, radius: float):
    """(A, B, gt, fg_mask): A focused on a bright foreground, B on the background."""
    h, w = bg.shape[:2]
    m, _ = blob_mask((h, w), rng, fraction=float(rng.uniform(0.2, 0.35)))
    alpha = m.astype(np.float32)[..., None]
    bright = np.clip(0.45 + 0.8 * fg, 0, 1)  # a bright, textured foreground
    dark_bg = bg * 0.6
    gt = alpha * bright + (1 - alpha) * dark_bg
    a_alpha = alpha
    a = a_alpha * bright + (1 - a_alpha) * defocus(dark_bg, "disk", radius)
    b_alpha = np.atleast_3d(defocus(alpha[..., 0], "disk", radius))
    b = b_alpha * defocus(bright, "disk", radius) + (1 - b_alpha) * dark_bg
    return [a.astype(np.float32), b.astype(np.float32)], gt.astype(np.float32), m


def band_outside(m: np.ndarray, width: float) -> np.ndarray:
    dist = cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 5)
    return (dist > 0) & (dist <= width)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sheet", default="", help="write a crop sheet PNG here")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    ph = photos(args.cases, args.size)
    stats = {name: [] for name, _, _ in METHODS}
    sheet_rows = []
    t0 = time.perf_counter()
    for i in range(args.cases):
        radius = float(rng.uniform(4.0, 8.0))
        srcs, gt, m = scene(ph[2 * i], ph[2 * i + 1], rng, radius)
        band = band_outside(m, 2 * radius)
        row = []
        for name, method, params in METHODS:
            f = fuse(srcs, method=method, **params).fused
            err = (f - gt).mean(axis=2)
            stats[name].append((np.abs(err[band]).mean() * 255, np.maximum(err[band], 0).mean() * 255))
            row.append(f)
        if i < 3:
            ys, xs = np.nonzero(band)
            cy, cx = int(np.median(ys)), int(np.median(xs))
            half = 48
            cy, cx = np.clip(cy, half, args.size - half), np.clip(cx, half, args.size - half)
            crop = lambda im: cv2.resize(im[cy - half:cy + half, cx - half:cx + half], (192, 192),  # noqa: E731
                                         interpolation=cv2.INTER_NEAREST)
            sheet_rows.append(np.hstack([crop(x) for x in [srcs[0], srcs[1], gt, *row]]))
    print(f"halo benchmark: {args.cases} synthetic scenes, {args.size}x{args.size}, disk blur r = 4..8 px, "
          f"band = 2r outside the bright foreground ({time.perf_counter() - t0:.0f} s)")
    print()
    print("| method | band MAE (0-255) | halo excess (0-255) | halo vs hard map |")
    print("|---|---:|---:|---:|")
    ref = np.mean([s[1] for s in stats["sff hard map (paper steps)"]])
    for name, _, _ in METHODS:
        v = np.array(stats[name])
        print(f"| {name} | {v[:, 0].mean():.2f} | {v[:, 1].mean():.2f} | {v[:, 1].mean() / ref:.2f} |")
    if args.sheet:
        sheet = (np.clip(np.vstack(sheet_rows), 0, 1) * 255).astype(np.uint8)
        Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(args.sheet, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(f"\ncrop sheet (A, B, truth, {', '.join(n for n, _, _ in METHODS)}): {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
