"""``mfif train``: train the SFF network with the paper's recipe."""
from __future__ import annotations

import os
import sys

from ..options import number_arg, numbers_arg


def register(sub):
    p = sub.add_parser(
        "train", help="train the SFF focus classifier on synthetic patches from sharp photos",
        description="Train SFF with the paper's recipe (Adam, lr 1e-4, BCE, batch 32, <= 100 epochs, early "
                    "stopping on validation loss) on multi-focus patch pairs synthesised from a folder of sharp "
                    "photos. Writes best.pt + best.json (model card), checkpoint.pt, log.csv, curves.png.")
    p.add_argument("photos", nargs="?", help="folder of sharp photos (e.g. ../shared/data/train_images)")
    p.add_argument("--out", help="run folder (required to train)")
    p.add_argument("--export-onnx", metavar="WEIGHTS", default="",
                   help="instead of training: export trained sff-fast weights (.pt, hash-checked against their card) "
                        "to ONNX again, beside them, and record the export's sha256 in their card")
    p.add_argument("--arch", choices=("sff", "sff-fast"), default="sff",
                   help="sff: the paper's dual-stream classifier on 22x22 patch pairs (default); sff-fast: mfif's "
                        "light per-frame scorer on 128x128 crops with dense labels, also exported to ONNX")
    p.add_argument("--fine-stride", type=int, choices=(1, 2), default=2,
                   help="sff-fast: stride of its full-resolution filters (2, the shipped network: every second row "
                        "and column, a quarter of their cost; 1: every pixel)")
    p.add_argument("--lr", type=number_arg(lo=0, lo_open=True), default=1e-4, help="Adam learning rate (default 1e-4)")
    p.add_argument("--lr-final", type=number_arg(lo=0), default=0.0,
                   help="decay the learning rate per step along a cosine from --lr to this over --epochs "
                        "(0, the default: a constant --lr, as the paper)")
    p.add_argument("--batch", type=number_arg(lo=1, integer=True), default=32, help="mini-batch size (default 32)")
    p.add_argument("--epochs", type=number_arg(lo=1, integer=True), default=100, help="maximum epochs (default 100)")
    p.add_argument("--patience", type=number_arg(lo=0, integer=True), default=5, help="early-stopping patience in epochs (default 5; 0: none, every epoch runs)")
    p.add_argument("--epoch-pairs", type=number_arg(lo=1, integer=True), default=32768, help="patch pairs per epoch (default 32768)")
    p.add_argument("--val-pairs", type=number_arg(lo=1, integer=True), default=8192, help="fixed validation pairs (default 8192)")
    p.add_argument("--val-fraction", type=number_arg(lo=0, hi=1, lo_open=True, hi_open=True), default=0.1, help="fraction of photos held out for validation")
    p.add_argument("--seed", type=number_arg(lo=0, integer=True), default=0)
    p.add_argument("--max-minutes", type=number_arg(lo=0), default=0.0, help="stop after this much training time (0: none)")
    p.add_argument("--limit-photos", type=number_arg(lo=0, integer=True), default=0, help="use only the first N photos (0: all)")
    p.add_argument("--threads", type=number_arg(lo=0, integer=True), default=0, help="torch threads (0: all cores)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--init", default="", metavar="WEIGHTS",
                   help="start from these weights (hash-checked against their model card), e.g. to fine-tune")
    p.add_argument("--noise", type=number_arg(lo=0, hi=1), default=None, metavar="SIGMA",
                   help="sensor noise on the synthetic sources: sigma ~ U(0, SIGMA) per case, on [0, 1] intensities")
    p.add_argument("--jpeg", type=number_arg(lo=1, hi=100, integer=True), default=None, metavar="Q",
                   help="JPEG-compress the synthetic sources at a quality ~ U[Q, 95] per case")
    p.add_argument("--brightness", type=number_arg(lo=0, hi=1, hi_open=True), default=None, metavar="B",
                   help="per-source gain deviation ~ U(-B, B) on the synthetic sources")
    p.add_argument("--radius", default=None, metavar="MIN,MAX",
                   help="blur radius range of the synthetic cases in px, drawn log-uniform per case (default "
                        "0.6,8, the paper's range; a wider range covers the far frames of deep stacks)")
    p.add_argument("--graphics", type=number_arg(lo=0, hi=10), default=0.0, metavar="F",
                   help="add procedural graphic scenes (barcodes, printed blocks, flat shapes) to the photos of "
                        "each split, F times as many as it has photos (default 0: photos only)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def radius_option(text: str) -> tuple[float, float]:
    """``--radius MIN,MAX`` as the sampler's ``radius`` option (checked: two finite numbers in
    (0, 1000]; the sampler checks their order)."""
    return tuple(float(x) for x in numbers_arg(text, 2, "--radius", lo=0, lo_open=True, hi=1000))


def run(args) -> int:
    from ..errors import UsageError

    from ..io import check_output_dir

    if args.export_onnx:
        if args.photos or args.out:
            raise UsageError("--export-onnx re-exports trained weights; give it without PHOTOS and --out")
        from ..sff.train import reexport_onnx

        card = reexport_onnx(args.export_onnx)
        print(f"wrote {os.path.splitext(args.export_onnx)[0]}.onnx and its sha256 in {card}", file=sys.stderr)
        return 0
    if not args.photos or not args.out:
        raise UsageError("mfif train needs PHOTOS (a folder of sharp photos) and --out RUN_FOLDER")
    check_output_dir(args.out)
    if args.init and not os.path.isfile(args.init):
        raise UsageError(f"--init {args.init}: no such file")
    options = {k: getattr(args, k) for k in ("noise", "jpeg", "brightness") if getattr(args, k) is not None}
    if args.radius is not None:
        options["radius"] = radius_option(args.radius)
    from ..synth import _check_options

    _check_options(options)  # fail fast on bad values, with the sampler's own checks
    from ..sff.train import TrainConfig, train

    cfg = TrainConfig(photos=args.photos, out_dir=args.out, lr=args.lr, lr_final=args.lr_final, batch=args.batch, max_epochs=args.epochs,
                      patience=args.patience, epoch_pairs=args.epoch_pairs, val_pairs=args.val_pairs,
                      val_fraction=args.val_fraction, seed=args.seed, max_minutes=args.max_minutes,
                      threads=args.threads, resume=args.resume, limit_photos=args.limit_photos,
                      sampler_options=options, init=args.init, arch=args.arch,
                      fine_stride=args.fine_stride, graphics=args.graphics)
    train(cfg, progress=not args.quiet and sys.stderr.isatty(),
          log=(lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr)))
    return 0
