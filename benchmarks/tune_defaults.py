"""Choose method defaults on validation cases *and* on the shared real pairs, never on a test split.

Validation cases are synthesised (``mfif.synth.make_case``) from the validation photos named in
a model card (photos of ``train_images`` that the network never trained on), gray and colour,
two sources, with the training degradations (noise, JPEG, gain). Real pairs are every case of
``real_pairs/classic``, ``real_pairs/mffw2`` and ``real_pairs/mffw3_multi`` (no ground truth).

Each variant is a method plus options; the table gives, per set, the mean PSNR / SSIM / boundary
band PSNR (validation) and the mean Q^AB/F, Q_MI, Q_Y, Q_CB (published toolbox variants), and the
mean in-process fusion time. A variant is written ``METHOD`` or ``METHOD:key=value,key=value``.

Usage::

    python benchmarks/tune_defaults.py sff-fast sff-fast:seam=laplacian focus-map sff \\
        [--val 40] [--card src/mfif/data/sff_fast.json] [--sets val,classic,mffw2,mffw3] [--csv out.csv]

``--sets paper-val`` adds the first ``--paper-val`` cases (default 60) of the paper-shaped gray
*validation* split (``make synth-paper``; its photos are training photos, so the test split stays
unseen): noise-free pairs like the test split, with mean PSNR / SSIM / band PSNR.
``--all-metrics`` scores the 8-bit result of sets with ground truth with the no-reference
metrics as well, so that both kinds of score can be compared on the same images.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mfif import fuse  # noqa: E402
from mfif.bench.cases import load_case, scan_folder  # noqa: E402
from mfif.io import from_float, to_float  # noqa: E402
from mfif.metrics import evaluate  # noqa: E402
from mfif.synth import load_photos, make_case  # noqa: E402

DATA = REPO.parent / "shared" / "data"
NO_REF = ("qabf", "qmi", "qy", "qcb")
WITH_REF = ("psnr", "ssim", "psnr_band")


def parse_variant(text: str) -> tuple[str, dict]:
    method, _, opts = text.partition(":")
    params = {}
    for kv in filter(None, opts.split(",")):
        k, _, v = kv.partition("=")
        params[k] = v
    return method, params


def validation_cases(card: Path, n: int, seed: int = 2026):
    """``n`` cases from the card's validation photos: alternately gray and colour, 2 sources, 384 px."""
    names = json.loads(card.read_text())["data"]["val_photo_names"]
    folder = DATA / "train_images"
    photos = load_photos(folder)
    by_name = dict(zip(sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png")), photos))
    pics = [by_name[x] for x in names if x in by_name]
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        c = make_case(pics[i % len(pics)], n_sources=2, rng=rng, size=384, gray=(i % 2 == 0),
                      noise=0.01, jpeg=80, brightness=0.03)
        cases.append((f"val{i:03d}", c.sources, c.gt, c.mask))
    return cases


def folder_cases(folder: Path, name: str, limit: int | None = None):
    """The (first ``limit``) cases of a folder of cases (``mfif.bench.cases.scan_folder``), with their
    ground truth and label mask where the folder has them (None otherwise)."""
    out = []
    for spec in scan_folder(folder, name=name).cases[:limit]:
        data = load_case(spec)
        gt = None if data.gt is None else to_float(data.gt)
        mask = None if data.mask is None else data.mask.astype(np.int16)
        out.append((spec.name, [to_float(s) for s in data.sources], gt, mask))
    return out


def real_cases(name: str):
    folder = {"classic": "real_pairs/classic", "mffw2": "real_pairs/mffw2", "mffw3": "real_pairs/mffw3_multi"}[name]
    return folder_cases(DATA / folder, name)


def paper_val_cases(n: int):
    """The first ``n`` cases of the paper-shaped gray *validation* split (``make synth-paper``: from
    training photos, never the test split), without degradations, as the paper's data."""
    folder = REPO / "data-synth" / "paper-gray" / "val"
    if not folder.is_dir():
        raise SystemExit(f"tune_defaults: {folder} is not built (make synth-paper)")
    return folder_cases(folder, "paper-val", n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--val", type=int, default=40, help="validation cases (default 40)")
    ap.add_argument("--card", default=str(REPO / "src/mfif/data/sff_fast.json"))
    ap.add_argument("--paper-val", type=int, default=60, help="cases of the paper-val set (default 60)")
    ap.add_argument("--sets", default="val,classic,mffw2,mffw3",
                    help="val, classic, mffw2, mffw3, paper-val (the paper-shaped gray validation split)")
    ap.add_argument("--all-metrics", action="store_true",
                    help="on sets with ground truth, also the no-reference metrics (all on the 8-bit result)")
    ap.add_argument("--csv", default="")
    args = ap.parse_args(argv)
    sets = {}
    for s in args.sets.split(","):
        if s == "val":
            sets[s] = validation_cases(Path(args.card), args.val)
        elif s == "paper-val":
            sets[s] = paper_val_cases(args.paper_val)
        else:
            sets[s] = real_cases(s)
    rows = []
    for text in args.variants:
        method, params = parse_variant(text)
        for set_name, cases in sets.items():
            acc: dict[str, list] = {}
            for name, sources, gt, mask in cases:
                t0 = time.perf_counter()
                r = fuse(sources, method=method, **params)
                dt = time.perf_counter() - t0
                # real pairs are 8-bit files: score the 8-bit result a user gets, as `mfif eval` would
                eight = gt is None or args.all_metrics
                fused = from_float(r.fused, np.uint8) if eight else r.fused
                m = evaluate(fused, sources, reference=gt, mask=mask)
                keys = NO_REF if gt is None else (WITH_REF + NO_REF if args.all_metrics else WITH_REF)
                for k in keys:
                    if k in m and np.isfinite(m[k]):
                        acc.setdefault(k, []).append(m[k])
                acc.setdefault("seconds", []).append(dt)
            row = {"variant": text, "set": set_name, "cases": len(cases)}
            row.update({k: float(np.mean(v)) for k, v in acc.items()})
            rows.append(row)
            print(f"{text:48s} {set_name:8s} " + " ".join(f"{k}={row[k]:.4f}" for k in acc), flush=True)
    if args.csv:
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("variant", "set", "cases"), k))
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
