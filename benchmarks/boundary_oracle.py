"""Where a decision-map method loses PSNR on synthetic pairs: the boundary or the regions.

For each two-source case with ground truth the method is scored as configured, then its
decision map alone (each pixel from the source it chose: no weights, no seam), then that
decision with the ground-truth mask put in within ``k`` px of the method's own boundary. The gain at small ``k`` is what
an exact boundary would buy; the rest of the distance to "mask everywhere" is whole regions
decided wrongly. Two reference rows need no method: the ground-truth mask's hard selection and
the per-pixel oracle (the source closer to the truth at each pixel). A last table gives, by
signed distance to the true boundary (negative: inside source A's sharp region), how often the
method chooses B and each source's squared error there (x 1e4).

Usage (a folder laid out as ``mfif synth`` writes it; use a validation split, never a test one)::

    .venv/bin/python benchmarks/boundary_oracle.py DATA/paper-gray/val --method sff-fast --cases 60
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mfif import fuse
from mfif.bench.cases import load_case, scan_folder
from mfif.consistency import within_disc
from mfif.decision import label_boundary
from mfif.io import to_float
from mfif.metrics import evaluate

REACH = (2, 4, 8, 16, 32)
SD = 10  # signed distances -SD .. SD in the last table


def _pick(decision: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m = decision == 1
    return np.where(m[..., None] if a.ndim == 3 else m, b, a).astype(np.float32)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Rounded signed L2 distance to the mask boundary: > 0 where mask is 1, < 0 where it is 0."""
    one = (mask == 1).astype(np.uint8)
    inside = cv2.distanceTransform(one, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - one, cv2.DIST_L2, 5)
    return np.rint(np.where(one == 1, inside, -outside)).astype(int)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a split folder of two-source cases with gt.png and mask.png")
    ap.add_argument("--method", default="sff-fast", help="METHOD or METHOD:key=value,... (default sff-fast)")
    ap.add_argument("--cases", type=int, default=60, help="first N cases (default 60)")
    args = ap.parse_args(argv)
    method, _, opts = args.method.partition(":")
    params = dict(kv.split("=", 1) for kv in filter(None, opts.split(",")))
    rows: dict[str, list] = {}
    chose_b = np.zeros(2 * SD + 1)
    err = np.zeros((2, 2 * SD + 1))
    count = np.zeros(2 * SD + 1)

    def add(name, img, src, gt, mask):
        e = evaluate(img, src, reference=gt, mask=mask)
        rows.setdefault(name, []).append((e["psnr"], e["psnr_band"]))

    specs = scan_folder(args.folder, name="cases").cases[: args.cases]
    for spec in specs:
        d = load_case(spec)
        src = [to_float(s) for s in d.sources]
        if len(src) != 2 or d.gt is None or d.mask is None:
            continue
        a, b = src
        gt, mask = to_float(d.gt), d.mask
        r = fuse(src, method=method, **params)
        add(f"{args.method} as configured", r.fused, src, gt, mask)
        dec = r.decision
        add(f"{args.method}, its decision alone (hard)", _pick(dec, a, b), src, gt, mask)
        edge = label_boundary(dec)
        for k in REACH:
            add(f"  + truth within {k} px of its boundary", _pick(np.where(within_disc(edge, k), mask, dec), a, b),
                src, gt, mask)
        add("ground-truth mask", _pick(mask, a, b), src, gt, mask)
        ea, eb = (a - gt) ** 2, (b - gt) ** 2
        if ea.ndim == 3:
            ea, eb = ea.sum(-1), eb.sum(-1)
        add("per-pixel oracle", _pick((eb < ea).astype(np.int16), a, b), src, gt, mask)
        idx = (np.clip(_signed_distance(mask), -SD, SD) + SD).ravel()
        count += np.bincount(idx, minlength=2 * SD + 1)
        chose_b += np.bincount(idx, weights=(dec == 1).ravel().astype(float), minlength=2 * SD + 1)
        err[0] += np.bincount(idx, weights=ea.ravel(), minlength=2 * SD + 1)
        err[1] += np.bincount(idx, weights=eb.ravel(), minlength=2 * SD + 1)
    n = len(next(iter(rows.values()), []))
    print(f"{n} cases of {args.folder}\n")
    print("| decision | PSNR dB | band PSNR dB |\n|---|---|---|")
    for name, v in rows.items():
        v = np.asarray(v, float)
        print(f"| {name} | {v[:, 0].mean():.2f} | {v[:, 1].mean():.2f} |")
    print("\n| signed distance (px) | chose B | A's error x1e4 | B's error x1e4 |\n|---|---|---|---|")
    for j in range(2 * SD + 1):
        if count[j] > 0:
            print(f"| {j - SD:+d} | {chose_b[j] / count[j]:.3f} | {1e4 * err[0, j] / count[j]:.2f} | "
                  f"{1e4 * err[1, j] / count[j]:.2f} |")


if __name__ == "__main__":
    main()
