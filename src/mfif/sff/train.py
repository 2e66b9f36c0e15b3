"""Training SFF: the paper's recipe on synthetic multi-focus patches.

Recipe (Ismail & Ghazali 2025): Adam, learning rate 1e-4, binary cross-entropy, mini-batch
32, at most 100 epochs, early stopping on the validation loss; the best checkpoint is kept.

Data: patch pairs cut from multi-focus cases synthesised on the fly from sharp photos by
:class:`mfif.synth.PatchSampler` (the same defocus model as ``mfif synth``). Photos are split
into training and validation *by photo*; the validation pairs are drawn once, with a fixed
seed, so the validation loss is comparable across epochs and runs. Labels are the fraction of
the patch where source A is the sharp one, so patches on a depth boundary carry soft labels.

An *epoch* is ``epoch_pairs`` freshly synthesised patch pairs (the data are unlimited).
Training is seedable and resumable: a checkpoint with the optimiser state is written after
every epoch and each epoch's sampler is seeded from ``(seed, epoch)``.

Outputs in ``out_dir``: ``best.pt`` + ``best.json`` (model card with sha256),
``checkpoint.pt``, ``log.csv`` and ``curves.png``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import synth
from ..errors import UsageError
from ..io import atomic_output, write_text
from .model import PATCH, SFFNet
from .weights import sha256_file


@dataclass
class TrainConfig:
    """Every knob of a training run (all recorded in the model card)."""

    photos: str
    out_dir: str
    lr: float = 1e-4
    lr_final: float = 0.0  # > 0: cosine decay per step from lr to this over max_epochs; 0: constant lr
    batch: int = 32
    max_epochs: int = 100
    patience: int = 5  # 0: no early stopping
    epoch_pairs: int = 32768
    val_pairs: int = 8192
    val_fraction: float = 0.1
    seed: int = 0
    max_minutes: float = 0.0  # 0 = no time limit
    threads: int = 0
    resume: bool = False
    limit_photos: int = 0
    sampler_options: dict = field(default_factory=dict)
    init: str = ""  # weights (with model card) to start from; "" = random initialisation
    arch: str = "sff"  # "sff" (the paper's network) or "sff-fast" (mfif's light per-frame scorer)
    fine_stride: int = 2  # sff-fast: stride of its full-resolution filters
    graphics: float = 0.0  # procedural graphic scenes added, as a fraction of the photos of each split


def _photo_split(names: list[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    n_val = max(1, int(round(val_fraction * len(names))))
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def step_lr(cfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate of optimiser step ``step`` of ``total``: ``cfg.lr`` throughout, or with
    ``cfg.lr_final`` a cosine decay from ``cfg.lr`` at step 0 to ``cfg.lr_final`` at the last step
    (a function of the step alone, so a resumed run continues the same schedule)."""
    if cfg.lr_final <= 0 or total <= 1:
        return cfg.lr
    t = min(step / (total - 1), 1.0)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1.0 + math.cos(math.pi * t))


def _batches(sampler, batch: int, n_pairs: int):
    steps = math.ceil(n_pairs / batch)
    for _ in range(steps):
        a, b, y = sampler.sample(batch)
        yield torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(y)


class _Arch:
    """What differs between the two networks' training: the network, its data and its pair logit."""

    def __init__(self, name: str, fine_stride: int = 2):
        if name not in ("sff", "sff-fast"):
            raise UsageError(f"--arch {name!r}: must be sff or sff-fast")
        self.name, self.fine_stride = name, int(fine_stride)

    def net(self) -> nn.Module:
        if self.name == "sff":
            return SFFNet()
        from .fast_model import FastFocusNet

        return FastFocusNet(fine_stride=self.fine_stride)

    def sampler(self, photos, *, seed: int, options: dict):
        if self.name == "sff":
            return synth.PatchSampler(photos, patch=PATCH, seed=seed, **options)
        from ..synth.dense import DenseSampler

        return DenseSampler(photos, seed=seed, **options)

    @staticmethod
    def pair_logit(net: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if isinstance(net, SFFNet):
            return net(a, b)
        return net(a) - net(b)  # per-frame scores: a Siamese ranking

    def card(self, net: nn.Module) -> tuple[str, dict, str]:
        params = sum(p.numel() for p in net.parameters())
        if self.name == "sff":
            return ("SFF dual-stream focus classifier (mfif)",
                    {"widths": [64, 128, 256], "fc": 256, "patch": PATCH, "shared_streams": True,
                     "output": "sigmoid(h(fA,fB) - h(fB,fA))", "parameters": params}, "mfif.synth.PatchSampler")
        from .fast_model import DILATIONS, STRIDE

        return ("sff-fast per-frame focus scorer (mfif)",
                {"name": "FastFocusNet", "bands": net.bands, "width": net.width, "dilations": list(DILATIONS),
                 "stride": STRIDE, "fine_stride": net.fine_stride, "output": "sigmoid(s(A) - s(B))", "parameters": params,
                 "mac_per_pixel": net.mac_per_pixel()}, "mfif.synth.DenseSampler")


def evaluate(net: nn.Module, val: tuple[np.ndarray, np.ndarray, np.ndarray], *, batch: int = 512) -> tuple[float, float]:
    """Mean BCE loss and accuracy on fixed validation pairs (accuracy ignores 50/50 labels)."""
    net.eval()
    a_all, b_all, y_all = val
    loss_sum, correct, counted = 0.0, 0, 0
    with torch.inference_mode():
        for i in range(0, len(y_all), batch):
            a = torch.from_numpy(a_all[i:i + batch])
            b = torch.from_numpy(b_all[i:i + batch])
            y = torch.from_numpy(y_all[i:i + batch])
            logit = _Arch.pair_logit(net, a, b)
            loss_sum += nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="sum").item()
            decided = (y != 0.5)
            correct += ((logit > 0) == (y > 0.5))[decided].sum().item()
            counted += decided.sum().item()
    net.train()
    return loss_sum / y_all.size, correct / max(counted, 1)


def _plot_curves(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional
        return
    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(ep, [r["train_loss"] for r in rows], label="train")
    ax[0].plot(ep, [r["val_loss"] for r in rows], label="validation")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("BCE loss"); ax[0].legend()
    ax[1].plot(ep, [r["train_acc"] for r in rows], label="train")
    ax[1].plot(ep, [r["val_acc"] for r in rows], label="validation")
    ax[1].set_xlabel("epoch"); ax[1].set_ylabel("accuracy"); ax[1].legend()
    fig.tight_layout()
    with atomic_output(path) as f:
        fig.savefig(f, dpi=90, format="png")
    plt.close(fig)


def write_card(weights: Path, card: dict) -> Path:
    """Write the model card beside ``weights`` with its sha256."""
    card = dict(card)
    card["sha256"] = sha256_file(weights)
    path = weights.with_suffix(".json")
    with atomic_output(path) as f:
        f.write((json.dumps(card, indent=2, sort_keys=False) + "\n").encode("utf-8"))
    return path


def _atomic_save(obj, path: Path) -> None:
    with atomic_output(path) as f:
        torch.save(obj, f)


def train(cfg: TrainConfig, *, progress: bool = True, log=print) -> dict:
    """Run the training recipe; returns the final model card.

    Raises
    ------
    UsageError
        If the photo folder holds too few images or the output folder is unusable.
    """

    torch.manual_seed(cfg.seed)
    n_threads = cfg.threads or os.cpu_count() or 1
    torch.set_num_threads(n_threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    photos_dir = Path(cfg.photos)
    if not photos_dir.is_dir():
        raise UsageError(f"{photos_dir}: not a directory of training photos")
    from ..io import IMAGE_EXTENSIONS, natural_key

    names = sorted([p.name for p in photos_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS], key=natural_key)
    if cfg.limit_photos:
        names = names[: cfg.limit_photos]
    if len(names) < 2:
        raise UsageError(f"{photos_dir}: need at least 2 photos to train (one for validation), found {len(names)}")
    photos = synth.load_photos(photos_dir, gray=True, limit=cfg.limit_photos or None)
    tr_idx, va_idx = _photo_split(names, cfg.val_fraction, cfg.seed)
    train_photos = [photos[i] for i in tr_idx]
    val_photos = [photos[i] for i in va_idx]
    log(f"training photos: {len(train_photos)}, validation photos: {len(val_photos)}")
    if cfg.graphics > 0:
        # scenes of flat areas and crisp edges (mfif.synth.graphics), disjoint between the splits
        from ..synth.graphics import graphic_images

        n_tr, n_va = (max(1, int(round(cfg.graphics * len(p)))) for p in (train_photos, val_photos))
        train_photos = train_photos + graphic_images(n_tr, seed=cfg.seed)
        val_photos = val_photos + graphic_images(n_va, seed=cfg.seed + 1_000_003)
        log(f"graphic scenes: {n_tr} for training, {n_va} for validation")
    arch = _Arch(cfg.arch, cfg.fine_stride)
    val_sampler = arch.sampler(val_photos, seed=10_000 + cfg.seed, options=cfg.sampler_options)
    va = [val_sampler.sample(cfg.val_pairs)]
    val = tuple(np.concatenate([v[i] for v in va]) for i in range(3))

    net = arch.net()
    init_sha = ""
    if cfg.init and not cfg.resume:
        from .weights import verify

        init_sha = verify(cfg.init)["sha256"]  # hash-checked against its card
        net.load_state_dict(torch.load(cfg.init, map_location="cpu", weights_only=True))
        log(f"initialised from {cfg.init} (sha256 {init_sha[:12]}...)")
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    start_epoch, best_val, best_epoch, stale, rows = 0, math.inf, -1, 0, []
    ckpt_path = out / "checkpoint.pt"
    if cfg.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, best_val, best_epoch, stale, rows = ck["epoch"] + 1, ck["best_val"], ck["best_epoch"], ck["stale"], ck["rows"]
        torch.set_rng_state(ck["torch_rng"])
        log(f"resumed from epoch {ck['epoch']} (best validation loss {best_val:.4f} at epoch {best_epoch})")
    t_start = time.perf_counter()
    elapsed_before = rows[-1]["elapsed_s"] if rows else 0.0
    stop_reason = "max_epochs"
    net.train()
    for epoch in range(start_epoch, cfg.max_epochs):
        sampler = arch.sampler(train_photos, seed=cfg.seed * 100_003 + epoch, options=cfg.sampler_options)
        steps = math.ceil(cfg.epoch_pairs / cfg.batch)
        it = _batches(sampler, cfg.batch, cfg.epoch_pairs)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=steps, desc=f"epoch {epoch + 1}/{cfg.max_epochs}", leave=False, mininterval=2.0)
        t0 = time.perf_counter()
        loss_sum, correct, counted, seen = 0.0, 0, 0, 0
        for i, (a, b, y) in enumerate(it):
            if cfg.lr_final > 0:
                for group in opt.param_groups:
                    group["lr"] = step_lr(cfg, epoch * steps + i, cfg.max_epochs * steps)
            logit = arch.pair_logit(net, a, b)
            loss = nn.functional.binary_cross_entropy_with_logits(logit, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
            decided = y != 0.5
            correct += ((logit.detach() > 0) == (y > 0.5))[decided].sum().item()
            counted += decided.sum().item()
        val_loss, val_acc = evaluate(net, val)
        epoch_s = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / max(counted, 1),
               "val_loss": val_loss, "val_acc": val_acc, "epoch_s": round(epoch_s, 2),
               "elapsed_s": round(elapsed_before + time.perf_counter() - t_start, 2)}
        rows.append(row)
        improved = val_loss < best_val - 1e-5
        if improved:
            best_val, best_epoch, stale = val_loss, epoch + 1, 0
            _atomic_save(net.state_dict(), out / "best.pt")
            _best_card(cfg, arch, net, photos_dir, out, names, va_idx, len(train_photos), init_sha, rows,
                       best_epoch, "in progress", n_threads)
        else:
            stale += 1
        log(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
            f"val loss {val_loss:.4f} acc {val_acc:.4f} | {epoch_s:.0f} s" + (" *" if improved else ""))
        _write_log(rows, out / "log.csv")
        _plot_curves(rows, out / "curves.png")
        _atomic_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "best_val": best_val,
                      "best_epoch": best_epoch, "stale": stale, "rows": rows, "torch_rng": torch.get_rng_state(),
                      "config": asdict(cfg)}, ckpt_path)
        if cfg.patience and stale >= cfg.patience:
            stop_reason = f"early stopping (no validation improvement for {cfg.patience} epochs)"
            break
        if cfg.max_minutes and (elapsed_before + time.perf_counter() - t_start) > 60 * cfg.max_minutes:
            stop_reason = f"time budget of {cfg.max_minutes} min reached"
            break
    best = next(r for r in rows if r["epoch"] == best_epoch) if best_epoch > 0 else rows[-1]
    card = _best_card(cfg, arch, net, photos_dir, out, names, va_idx, len(train_photos), init_sha, rows,
                      best_epoch, stop_reason, n_threads)
    log(f"done: {stop_reason}; best epoch {best_epoch} val loss {best['val_loss']:.4f} acc {best['val_acc']:.4f}")
    return card


def _best_card(cfg: TrainConfig, arch: _Arch, net: nn.Module, photos_dir: Path, out: Path, names: list, va_idx: list,
               n_train: int, init_sha: str, rows: list, best_epoch: int, stop_reason: str, n_threads: int) -> dict:
    """Write ``best.json`` (and, for sff-fast, ``best.onnx``) for the current ``best.pt``; return the card.

    Called after every improvement as well as at the end, so that a run that is stopped keeps a
    usable, hash-carded best model."""
    best = next(r for r in rows if r["epoch"] == best_epoch) if best_epoch > 0 else rows[-1]
    model_name, arch_card, generator = arch.card(net)
    card = {
        "model": model_name,
        "architecture": arch_card,
        "data": {"photos": str(photos_dir), "n_train_photos": n_train, "n_val_photos": len(va_idx),
                 "val_photo_names": [names[i] for i in va_idx], "generator": generator,
                 "sampler_options": cfg.sampler_options, "val_pairs": cfg.val_pairs,
                 **({"graphics": cfg.graphics, "graphics_generator": "mfif.synth.graphics.graphic_images"}
                    if cfg.graphics > 0 else {})},
        "init": {"weights": cfg.init, "sha256": init_sha} if cfg.init else None,
        "recipe": {"optimizer": "Adam", "lr": cfg.lr,
                   "lr_schedule": (f"cosine per step to {cfg.lr_final:g} over max_epochs" if cfg.lr_final > 0
                                   else "constant"), "loss": "binary cross-entropy (soft labels)",
                   "batch": cfg.batch, "max_epochs": cfg.max_epochs, "epoch_pairs": cfg.epoch_pairs,
                   "early_stopping_patience": cfg.patience, "seed": cfg.seed, "max_minutes": cfg.max_minutes},
        "result": {"epochs_run": rows[-1]["epoch"], "best_epoch": best_epoch, "stop_reason": stop_reason,
                   "val_loss": best["val_loss"], "val_acc": best["val_acc"], "train_loss": best["train_loss"],
                   "train_acc": best["train_acc"], "train_seconds": rows[-1]["elapsed_s"]},
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "threads": n_threads,
                        "machine": platform.machine()},
        "retrain": _retrain_command(cfg, photos_dir, out),
    }
    if (out / "best.pt").is_file():
        if cfg.arch == "sff-fast":
            _attach_onnx(out / "best.pt", card)
        write_card(out / "best.pt", card)
    return card


def _attach_onnx(weights: Path, card: dict) -> None:
    """Export the ``sff-fast`` network of ``weights`` (its architecture from ``card``) to ONNX beside
    them, and record the export's hash in ``card``."""
    from .fast_model import export_onnx, from_card

    net = from_card(card)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    onnx = weights.with_suffix(".onnx")
    export_onnx(net, onnx)
    card["onnx"] = {"sha256": sha256_file(onnx), "opset": 17,
                    "note": "the ONNX export lies beside the .pt file, with the same name"}


def reexport_onnx(weights: str | os.PathLike) -> Path:
    """Export trained ``sff-fast`` weights to ONNX again, beside them, and update their card.

    For a new form of the export (:func:`mfif.sff.fast_model.export_onnx`) of the same weights:
    the ``.pt`` is checked against its card first and left as it is; only the ``.onnx`` and the
    card's ``onnx`` entry change.
    """
    from .weights import verify

    weights = Path(weights)
    card = verify(weights)
    name = (card.get("architecture") or {}).get("name")
    if name != "FastFocusNet":
        raise UsageError(f"{weights}: its model card describes {name or 'another network'}, not sff-fast's "
                         "FastFocusNet")
    _attach_onnx(weights, card)
    return write_card(weights, card)


def _retrain_command(cfg: TrainConfig, photos_dir: Path, out: Path) -> str:
    """The ``mfif train`` command line that reproduces this run: every option that shapes it, the
    ones left at their defaults omitted (``--resume`` is not one: a resumed run is the same run)."""
    d = TrainConfig(photos="", out_dir="")
    parts = [f"mfif train {photos_dir} --out {out} --batch {cfg.batch} --seed {cfg.seed}"]
    if cfg.arch != d.arch:
        parts.append(f"--arch {cfg.arch} --fine-stride {cfg.fine_stride}")
    parts.append(f"--lr {cfg.lr:g} --epoch-pairs {cfg.epoch_pairs} --val-pairs {cfg.val_pairs}")
    optional = (("--lr-final", cfg.lr_final, d.lr_final), ("--epochs", cfg.max_epochs, d.max_epochs),
                ("--patience", cfg.patience, d.patience), ("--val-fraction", cfg.val_fraction, d.val_fraction),
                ("--limit-photos", cfg.limit_photos, d.limit_photos), ("--threads", cfg.threads, d.threads),
                ("--max-minutes", cfg.max_minutes, d.max_minutes), ("--graphics", cfg.graphics, d.graphics))
    parts += [f"{flag} {value:g}" for flag, value, default in optional if value != default]
    if cfg.init:
        parts.append(f"--init {cfg.init}")
    for key in ("noise", "jpeg", "brightness"):
        if cfg.sampler_options.get(key) is not None:
            parts.append(f"--{key} {cfg.sampler_options[key]:g}")
    if cfg.sampler_options.get("radius") is not None:
        lo, hi = cfg.sampler_options["radius"]
        parts.append(f"--radius {lo:g},{hi:g}")
    return " ".join(parts)


def _write_log(rows: list[dict], path: Path) -> None:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())
