"""``mfif synth``: synthetic multi-focus cases with ground truth from sharp photos."""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..options import number_arg, numbers_arg

SPLITS = ("train", "val", "test")


def register(sub):
    p = sub.add_parser(
        "synth", help="make synthetic multi-focus cases (sources, ground truth, label mask) from photos",
        description=(
            "Synthesise multi-focus cases from sharp photos: per case the sources A.png, B.png, ... "
            "(source k focused on depth layer k, layer 0 = nearest), the all-in-focus ground truth "
            "gt.png and the label map mask.png (8-bit, value = index of the sharp source), written to "
            "OUT_DIR/{train,val,test}/case_XXXX/, plus OUT_DIR/manifest.json and manifest.csv with every "
            "random parameter. Photos are assigned to splits whole, so no photo feeds two splits. "
            "The same command gives byte-identical output."))
    p.add_argument("images", nargs="+", metavar="IMAGES_DIR", help="folder(s) of sharp photos")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder")
    p.add_argument("--test-images", action="append", default=[], metavar="DIR",
                   help="take test cases only from the photos in DIR (repeatable); IMAGES_DIR photos then feed "
                        "train and val only")
    p.add_argument("-n", "--sources", type=number_arg(lo=2, hi=26, integer=True), default=2, metavar="N", help="sources (depth layers) per case (default 2)")
    p.add_argument("-k", "--count", type=number_arg(lo=1, integer=True), default=100, metavar="K",
                   help="total number of cases, shared among splits by --split (default 100)")
    p.add_argument("--counts", metavar="TRAIN,VAL,TEST", help="exact case count per split (overrides --count)")
    p.add_argument("--split", default=None, metavar="TRAIN,VAL,TEST",
                   help="fractions of photos per split (default 0.8,0.1,0.1; with --test-images the test "
                        "fraction is ignored and IMAGES_DIR photos split train:val)")
    p.add_argument("-s", "--size", type=number_arg(lo=16, integer=True), default=None, metavar="S",
                   help="case size SxS: random crop, photos smaller than S are upscaled (bicubic) first "
                        "(default: keep each photo's size)")
    p.add_argument("--fit", choices=("scale", "reflect"), default="scale",
                   help="how photos smaller than --size are enlarged: bicubic upscaling or mirror padding (default scale)")
    p.add_argument("--gray", action="store_true", help="gray cases (BT.601 luma)")
    p.add_argument("--seed", type=number_arg(lo=0, integer=True), default=0, metavar="X", help="random seed (default 0)")
    p.add_argument("--psf", choices=("disk", "gaussian", "mixed"), default="mixed",
                   help="point-spread function: pillbox disk, Gaussian or a 50/50 mix (default mixed)")
    p.add_argument("--radius", default="0.6,8", metavar="MIN,MAX",
                   help="blur radius range in px, drawn log-uniform per case (default 0.6,8)")
    p.add_argument("--mask-kind", choices=("blob", "segment", "mixed"), default="mixed",
                   help="foreground shapes: smooth random blobs, object-like unions of segments of the photo (Felzenszwalb), or a mix")
    p.add_argument("--fg-fraction", default="0.2,0.6", metavar="MIN,MAX",
                   help="foreground area range (default 0.2,0.6)")
    p.add_argument("--noise", type=number_arg(lo=0, hi=1), default=0.0, metavar="SIGMA",
                   help="max sensor-noise sigma in [0,1] units, per case ~ U(0, SIGMA) (default 0: off)")
    p.add_argument("--jpeg", type=number_arg(lo=1, hi=100, integer=True), default=None, metavar="QMIN",
                   help="JPEG-compress the sources, quality per case ~ U[QMIN, 95] (default off)")
    p.add_argument("--brightness", type=number_arg(lo=0, hi=1, hi_open=True), default=0.0, metavar="B",
                   help="per-source brightness gain 1 + U(-B, B) (default 0: off)")
    p.add_argument("-j", "--jobs", type=number_arg(lo=1, hi=256, integer=True), default=1, metavar="J",
                   help="worker processes (output does not depend on it; default 1)")
    p.add_argument("--force", action="store_true", help="replace the cases of an existing OUT_DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    return p


def _photo_table(dirs: list[str]) -> dict[str, Path]:
    from ..synth import list_photos

    table: dict[str, Path] = {}
    for d in dirs:
        for f in list_photos(d):
            key = f"{Path(d).name}/{f.name}"
            if key in table:
                key = f"{d}/{f.name}"
            table[key] = f
    return table


def _assign(keys: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` photo keys, each photo used equally often (round robin over reshuffled lists)."""
    out: list[str] = []
    while len(out) < n:
        perm = rng.permutation(len(keys))
        out.extend(keys[i] for i in perm[: n - len(out)])
    return out


def _make_one(job: dict) -> dict:
    """Synthesise and write one case (runs in a worker process when --jobs > 1)."""
    from ..io import from_float, read_image, to_float, write_image
    from ..synth import SOURCE_NAMES, make_case

    rng = np.random.default_rng(job["seed"])
    img = to_float(read_image(job["path"]))
    case = make_case(img, n_sources=job["n"], rng=rng, size=job["size"], gray=job["gray"], **job["options"])
    d = Path(job["dir"])
    d.mkdir(parents=True, exist_ok=True)
    files = []
    for k, src in enumerate(case.sources):
        write_image(d / f"{SOURCE_NAMES[k]}.png", from_float(src))
        files.append(f"{SOURCE_NAMES[k]}.png")
    write_image(d / "gt.png", from_float(case.gt))
    write_image(d / "mask.png", case.mask.astype(np.uint8))
    return {"params": case.params, "files": files + ["gt.png", "mask.png"]}


def _csv_row(entry: dict) -> dict:
    p = entry["params"]
    return {
        "id": entry["id"], "split": entry["split"], "photo": entry["photo"], "seed": json.dumps(entry["seed"]),
        "n_sources": p["n_sources"], "height": p["size"][0], "width": p["size"][1], "gray": int(p["gray"]),
        "crop_y": p["geometry"]["crop"][0], "crop_x": p["geometry"]["crop"][1],
        "scale": f"{p['geometry']['scale']:.6g}", "psf": p["psf"], "radius_scale": f"{p['radius_scale']:.6g}",
        "radii": json.dumps([[round(r, 4) for r in row] for row in p["radii"]]),
        "mask_kinds": "+".join(layer["kind"] for layer in p["layers"]),
        "visible_fraction": json.dumps([round(v, 4) for v in p["visible_fraction"]]),
        "noise_sigma": f"{p['noise_sigma']:.6g}", "jpeg_quality": "" if p["jpeg_quality"] is None else p["jpeg_quality"],
        "gains": json.dumps([round(g, 5) for g in p["gains"]]),
    }


def run(args) -> int:
    from ..io import write_text
    from ..synth import _check_options, split_by_photo

    in_dirs, out = list(args.images), Path(args.out_dir)
    for d in in_dirs + list(args.test_images):
        if not Path(d).is_dir():
            raise UsageError(f"{d}: not a directory")
    if args.size is not None:
        _check_memory(args.size, args.sources, args.jobs)
    options = {
        "psf": args.psf, "radius": tuple(numbers_arg(args.radius, 2, "--radius", lo=0, lo_open=True, hi=1000)), "mask_kind": args.mask_kind,
        "fg_fraction": tuple(numbers_arg(args.fg_fraction, 2, "--fg-fraction", lo=0, hi=1, lo_open=True, hi_open=True)), "noise": float(args.noise),
        "jpeg": args.jpeg, "brightness": float(args.brightness), "fit": args.fit,
    }
    _check_options(options)  # fail fast on bad values

    # Photos and splits (whole photos per split).
    fractions = numbers_arg(args.split, 3, "--split", lo=0) if args.split else [0.8, 0.1, 0.1]
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise UsageError("--split fractions must be >= 0 and not all 0")
    table = _photo_table(in_dirs)
    if args.test_images:
        test_table = _photo_table(list(args.test_images))
        overlap = {p.resolve() for p in table.values()} & {p.resolve() for p in test_table.values()}
        if overlap:
            raise UsageError(f"{len(overlap)} photo(s) are both in IMAGES_DIR and --test-images, e.g. {sorted(overlap)[0]}")
        tv = fractions[:2] if sum(fractions[:2]) > 0 else [1.0, 0.0]
        sp = split_by_photo(list(table), seed=args.seed, fractions=tv, splits=("train", "val"))
        sp["test"] = list(test_table)
        table.update(test_table)
    else:
        sp = split_by_photo(list(table), seed=args.seed, fractions=fractions)
    if args.counts:
        counts = dict(zip(SPLITS, numbers_arg(args.counts, 3, "--counts", lo=0, hi=10_000_000, integer=True)))
    else:
        from ..synth import _largest_remainder

        share = list(fractions)
        if args.test_images and share[2] == 0:
            share[2] = 0.1 * sum(share) or 1.0
        counts = dict(zip(SPLITS, _largest_remainder(int(args.count), share)))
    for s in SPLITS:
        if counts[s] > 0 and not sp.get(s):
            raise UsageError(f"split {s} needs {counts[s]} case(s) but got no photo; adjust --split or --counts")

    # Output folder.
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise UsageError(f"{out}: not empty; use --force to replace its cases")
        for s in SPLITS:
            d = out / s
            if d.is_dir():
                if any(not c.name.startswith("case_") for c in d.iterdir()):
                    raise UsageError(f"{d}: holds files that are not cases; refusing to delete it")
                shutil.rmtree(d)
        for f in ("manifest.json", "manifest.csv"):
            (out / f).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out}: cannot create ({exc.strerror})") from None

    total = sum(counts.values())
    width = max(4, len(str(max(counts.values()) - 1)))
    jobs, entries = [], []
    for si, s in enumerate(SPLITS):
        if counts[s] == 0:
            continue
        photos = _assign(sp[s], counts[s], np.random.default_rng([args.seed, si, 0x9A7]))
        for i, key in enumerate(photos):
            seed = [int(args.seed), si, i]
            cid = f"{s}/case_{i:0{width}d}"
            jobs.append({"seed": seed, "path": str(table[key]), "n": args.sources, "size": args.size,
                         "gray": bool(args.gray), "options": options, "dir": str(out / cid)})
            entries.append({"id": cid, "split": s, "photo": key, "seed": seed})

    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    log(f"synthesising {total} cases ({', '.join(f'{s} {counts[s]}' for s in SPLITS)}) from "
        f"{', '.join(f'{len(sp.get(s, []))} {s}' for s in SPLITS)} photos into {out}")
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=total, unit="case", file=sys.stderr, disable=args.quiet, dynamic_ncols=True)
    try:
        if args.jobs > 1 and total > 1:
            import multiprocessing as mp

            # spawn, never fork: a child forked after OpenCV/OpenMP thread pools have started
            # can deadlock (it did, intermittently, in the test suite)
            ctx = mp.get_context("spawn")
            with ctx.Pool(args.jobs, initializer=_worker_init) as pool:
                for entry, res in zip(entries, pool.imap(_make_one, jobs, chunksize=4)):
                    entry.update(res)
                    bar.update(1)
        else:
            for entry, job in zip(entries, jobs):
                entry.update(_make_one(job))
                bar.update(1)
    finally:
        bar.close()

    manifest = {
        "format": "mfif-synth/1",
        "seed": int(args.seed),
        "n_sources": int(args.sources),
        "source_order": "source k (A, B, ...) is focused on depth layer k; layer 0 is the nearest; "
                        "mask.png holds the index of the sharp source",
        "options": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
                    "size": args.size, "gray": bool(args.gray)},
        "inputs": {"images": in_dirs, "test_images": list(args.test_images)},
        "splits": {s: {"cases": counts[s], "photos": sp.get(s, [])} for s in SPLITS},
        "cases": entries,
    }
    write_text(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    buf = io.StringIO()
    rows = [_csv_row(e) for e in entries]
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["id"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(out / "manifest.csv", buf.getvalue())
    dt = time.perf_counter() - t0
    log(f"wrote {total} cases to {out} in {dt:.1f} s ({dt / max(total, 1) * 1000:.0f} ms per case)")
    return 0


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


#: Peak memory of one case per pixel of its S x S size: a base plus a part per source
#: (``benchmarks``-style measurement with resource.getrusage on colour cases).
CASE_BYTES_PER_PIXEL = (160, 30)


def _check_memory(size: int, n_sources: int, jobs: int) -> None:
    """Refuse a --size whose cases would not fit in the memory available (before any work)."""
    from ..sysinfo import available_memory

    need = (CASE_BYTES_PER_PIXEL[0] + CASE_BYTES_PER_PIXEL[1] * n_sources) * size * size * max(1, jobs)
    avail = available_memory()
    if avail is not None and need > avail:
        raise UsageError(f"--size {size}: {max(1, jobs)} case(s) of {size}x{size} px with {n_sources} sources need "
                         f"about {need / 1e9:.1f} GB of memory, {avail / 1e9:.1f} GB available; use a smaller "
                         "--size (or fewer --jobs)")
