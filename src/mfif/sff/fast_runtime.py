"""Running the ``sff-fast`` scorer: ONNX Runtime on the CPU, PyTorch where a GPU is asked for.

The package ships ``mfif/data/sff_fast.pt`` (the PyTorch ``state_dict`` that ``mfif train --arch
sff-fast`` writes), ``mfif/data/sff_fast.onnx`` (the same network, exported by the training
command) and ``mfif/data/sff_fast.json`` (the model card, with the sha256 of both files). The
three share a name; each file is hash-checked before use.

Why ONNX Runtime: it imports in a fraction of PyTorch's time and runs this network faster
than OpenCV's DNN module (measured in ``docs/speed.md``). Importing this module imports
neither; :func:`load_scorer` imports the one it needs.

Devices: ``cpu`` runs ONNX Runtime's CPU provider; ``cuda`` runs ONNX Runtime's CUDA provider
when the installed ONNX Runtime has one, otherwise PyTorch on CUDA; ``mps`` runs PyTorch on
Apple's Metal; ``auto`` takes ONNX Runtime's CUDA provider if present and the CPU otherwise
(it never imports PyTorch just to look for a GPU).
"""
from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ..errors import UsageError
from .weights import resolve_device, sha256_file, verify

__all__ = ["DEVICES", "STRIDE", "HALO", "default_fast_weights", "load_scorer", "FocusScorer", "pad_to_grid"]

DEVICES = ("auto", "cpu", "cuda", "mps")
STRIDE = 4  #: the score map's stride (px); kept equal to ``fast_model.STRIDE`` (tested)
HALO = 96  #: px of context per side beyond the network's receptive radius (68 px); a multiple of STRIDE
WEIGHTS_NAME = "sff_fast.pt"


def default_fast_weights() -> Path:
    """Path of the shipped ``sff-fast`` weights (``.pt``; the ``.onnx`` and ``.json`` lie beside it)."""
    return Path(str(resources.files("mfif") / "data" / WEIGHTS_NAME))


def pad_to_grid(gray: np.ndarray, multiple: int = STRIDE) -> np.ndarray:
    """Reflect-pad an ``HxW`` image at the bottom and right to multiples of ``multiple``."""
    h, w = gray.shape
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        gray = cv2.copyMakeBorder(gray, 0, ph, 0, pw, cv2.BORDER_REFLECT_101 if min(h, w) > 1 else cv2.BORDER_REPLICATE)
    return gray


class FocusScorer:
    """A loaded ``sff-fast`` network: gray frame in, focus score map out.

    Use :func:`load_scorer` to get one (cached per weights, device and threads).

    Attributes
    ----------
    card : dict
        The model card.
    device : str
        The device it runs on (``cpu``, ``cuda`` or ``mps``).
    runtime : str
        ``onnxruntime`` or ``torch``.
    """

    def __init__(self, card: dict, device: str, runtime: str, run):
        self.card, self.device, self.runtime = card, device, runtime
        self._run = run

    def score(self, gray: np.ndarray, *, tile: float = 2.0) -> np.ndarray:
        """Score map of one gray frame.

        Parameters
        ----------
        gray : ndarray
            ``HxW`` float32 in [0, 1].
        tile : float, keyword-only
            Largest area (megapixels) of one network pass; bigger frames run in horizontal
            strips with :data:`HALO` px of overlap, which gives the same scores as one pass.

        Returns
        -------
        ndarray
            float32 ``(ceil(H/4), ceil(W/4))``: the score of each 4x4 cell (higher = sharper;
            only differences between frames mean something).
        """
        g = pad_to_grid(np.ascontiguousarray(gray, dtype=np.float32))
        hp, wp = g.shape
        rows = max(STRIDE * 8, int(tile * 1e6 / max(wp, 1)) // STRIDE * STRIDE)
        if hp <= rows:
            return self._run(g[None, None])[0, 0]
        out = np.empty((hp // STRIDE, wp // STRIDE), np.float32)
        core = max(STRIDE * 8, rows - 2 * HALO)
        for y0 in range(0, hp, core):
            y1 = min(hp, y0 + core)
            a, b = max(0, y0 - HALO), min(hp, y1 + HALO)
            s = self._run(np.ascontiguousarray(g[a:b])[None, None])[0, 0]
            out[y0 // STRIDE:y1 // STRIDE] = s[(y0 - a) // STRIDE:(y1 - a) // STRIDE]
        return out


def _onnx_path(weights: Path, card: dict) -> Path:
    """The ONNX export beside ``weights`` (same name, ``.onnx``), checked against the card's sha256."""
    info = card.get("onnx") or {}
    if "sha256" not in info:
        raise UsageError(f"{weights}: its model card has no sha256 of an ONNX export (retrain with "
                         "`mfif train --arch sff-fast`)")
    path = weights.with_suffix(".onnx")
    if not path.is_file():
        raise UsageError(f"{path}: ONNX export of {weights.name} is missing (its model card expects one)")
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise UsageError(f"{path}: sha256 {digest[:12]}... does not match its model card "
                         f"({info['sha256'][:12]}...); the file is corrupt or not the one described")
    return path


def _ort_session(path: Path, providers: list[str], threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads) or (os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # ONNX Runtime's threads otherwise spin for work after a run, taking the cores from the
    # stages that follow it (docs/speed.md)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # a memory pattern is planned after the first run and allocated by the second, which made
    # a pair's second frame as slow as its first and raised the peak; the arena alone reuses
    # the first run's buffers from the second run on (docs/speed.md)
    so.enable_mem_pattern = False
    sess = ort.InferenceSession(str(path), so, providers=providers)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def _torch_runner(weights: Path, card: dict, device: str, threads: int):
    resolve_device(device)  # PyTorch installed and the device there, or a one-line error
    import torch

    from .fast_model import from_card

    net = from_card(card)
    try:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise UsageError(f"{weights}: cannot load sff-fast weights ({type(exc).__name__}: {exc})") from None
    net = net.eval().to(device)
    if threads:
        torch.set_num_threads(int(threads))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run


@lru_cache(maxsize=4)
def _load(path: str, stamps: tuple, device: str, threads: int) -> FocusScorer:
    weights = Path(path)
    card = verify(weights)  # the .pt file against the card
    if card.get("architecture", {}).get("name") != "FastFocusNet":
        raise UsageError(f"{weights}: not sff-fast weights (its model card describes {card.get('model', 'another model')!r})")
    onnx = _onnx_path(weights, card) if device in ("auto", "cpu", "cuda") else None
    if device in ("auto", "cuda"):
        try:
            import onnxruntime as ort

            has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        except ImportError:
            has_cuda = False
        if has_cuda:
            run = _ort_session(onnx, ["CUDAExecutionProvider", "CPUExecutionProvider"], threads)
            return FocusScorer(card, "cuda", "onnxruntime", run)
        if device == "cuda":
            return FocusScorer(card, "cuda", "torch", _torch_runner(weights, card, "cuda", threads))
    if device == "mps":
        return FocusScorer(card, "mps", "torch", _torch_runner(weights, card, "mps", threads))
    try:
        run = _ort_session(onnx, ["CPUExecutionProvider"], threads)
    except ImportError:
        raise UsageError("method sff-fast: needs onnxruntime on the CPU (pip install onnxruntime)") from None
    return FocusScorer(card, "cpu", "onnxruntime", run)


def load_scorer(weights: str | os.PathLike | None = None, *, device: str = "auto", threads: int = 0) -> FocusScorer:
    """Load (and cache) the ``sff-fast`` network.

    Parameters
    ----------
    weights : path-like, optional
        A ``.pt`` file with its model card beside it (default: the shipped network).
    device : {"auto", "cpu", "cuda", "mps"}, keyword-only
    threads : int, keyword-only
        CPU threads (0: all cores).

    Raises
    ------
    UsageError
        Missing or mismatching files, an unknown or unavailable device.
    """
    if device not in DEVICES:
        raise UsageError(f"device {device!r}: must be one of {', '.join(DEVICES)}")
    p = Path(weights) if weights else default_fast_weights()
    if not p.is_file():
        if weights:
            raise UsageError(f"{p}: no such weights file")
        raise UsageError(f"shipped sff-fast weights missing at {p}; reinstall mfif")
    # the cache is keyed by the three files' modification times: a replaced file is checked anew
    stamps = tuple(f.stat().st_mtime_ns if f.is_file() else 0 for f in (p, p.with_suffix(".json"), p.with_suffix(".onnx")))
    return _load(str(p.resolve()), stamps, device, int(threads))
