"""Loading SFF weights with their hash checked against the model card.

The package ships ``mfif/data/sff_weights.pt`` (a PyTorch ``state_dict``) and
``mfif/data/sff_weights.json`` (its model card: data, recipe, seed, validation numbers and
the sha256 of the ``.pt`` file). :func:`load_model` refuses weights whose hash differs from the
card beside them, so a corrupted or swapped file never silently changes results. Weights
written by ``mfif train`` get such a card too.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import UsageError

WEIGHTS_NAME = "sff_weights.pt"


def default_weights_path() -> Path:
    """Path of the weights shipped inside the package."""
    return Path(str(resources.files("mfif") / "data" / WEIGHTS_NAME))


def card_path(weights: str | os.PathLike) -> Path:
    """The model card that belongs to a weights file: same name, ``.json`` suffix."""
    return Path(weights).with_suffix(".json")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(weights: str | os.PathLike) -> dict:
    """Read and return the model card of ``weights``; UsageError if it is missing or invalid."""
    card = card_path(weights)
    if not card.is_file():
        raise UsageError(f"{weights}: no model card {card.name} beside it (it holds the sha256 the weights "
                         "are checked against; `mfif train` writes one)")
    try:
        meta = json.loads(card.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{card}: unreadable model card ({exc})") from None
    if "sha256" not in meta:
        raise UsageError(f"{card}: model card has no sha256")
    return meta


def verify(weights: str | os.PathLike) -> dict:
    """Check that ``weights`` exists and matches the sha256 of its model card; return the card."""
    p = Path(weights)
    if not p.is_file():
        raise UsageError(f"{p}: no such weights file")
    meta = read_card(p)
    digest = sha256_file(p)
    if digest != meta["sha256"]:
        raise UsageError(f"{p}: sha256 {digest[:12]}... does not match its model card "
                         f"({meta['sha256'][:12]}...); the file is corrupt or not the one described")
    return meta


def resolve_device(device: str) -> str:
    """The PyTorch device for ``device`` (``auto``: CUDA, else Apple's MPS, else the CPU);
    :class:`UsageError` if a named one is not available or PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        raise UsageError(f"device {device}: needs PyTorch, which is not installed; use device=cpu") from None
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else ("mps" if mps else "cpu")
    if (device == "cuda" and not torch.cuda.is_available()) or (device == "mps" and not mps):
        raise UsageError(f"device {device}: not available on this machine (PyTorch {torch.__version__} sees none); "
                         "use device=cpu or device=auto")
    return device


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float, device: str = "cpu"):
    import torch

    from .model import SFFNet

    meta = verify(path)
    arch = meta.get("architecture", {})
    net = SFFNet(widths=tuple(arch.get("widths", (64, 128, 256))), fc=int(arch.get("fc", 256)))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:
        raise UsageError(f"{path}: cannot load SFF weights ({type(exc).__name__}: {exc})") from None
    net.eval()
    if device != "cpu":
        net = net.to(device)
    return net, meta


def load_model(path: str | os.PathLike | None = None, *, device: str = "cpu"):
    """Load (and cache) an :class:`~mfif.sff.model.SFFNet` in eval mode.

    Parameters
    ----------
    path : path-like, optional
        Weights file; default: the shipped model. Its model card (``.json`` beside it) must
        hold the file's sha256.

    Returns
    -------
    (SFFNet, dict)
        The network and its model card.
    """
    p = Path(path) if path else default_weights_path()
    if not p.is_file():
        if path:
            raise UsageError(f"{p}: no such weights file")
        raise UsageError(f"shipped SFF weights missing at {p}; reinstall mfif or pass -p weights=FILE")
    return _load_cached(str(p.resolve()), p.stat().st_mtime, device)
