"""Registration of a whole stack: which frame each frame is registered to, fallbacks, results.

Every frame is registered onto a *partner* whose transform to the reference is known, and the
two maps are composed. By default (``chain=True``) the partner is the frame's neighbour toward
the reference: neighbouring frames of a focus stack are focused at nearby depths and share most
of their sharp detail, while the first and last frames of a deep stack may share almost none
with a reference in the middle. Pairwise errors then add up like a random walk (about
``sqrt(k)`` times the pairwise error after ``k`` links), which ECC's sub-pixel accuracy keeps far
below a pixel.

When an attempt fails (:func:`mfif.align.estimate.register_pair` gives the evidence), the
fallbacks are tried in this order before the frame is given up: the other initial guess
(phase correlation instead of features), the reference frame directly instead of the neighbour
(or the other way round), the next aligned frame toward the reference, and finally the simpler
motion models (homography -> affine -> similarity -> translation). A chained transform must
also be plausible with respect to the reference and overlap it.

References
----------
.. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
   correlation coefficient maximization", IEEE Trans. Pattern Analysis and Machine
   Intelligence 30(10):1858-1865, 2008.
"""
from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import AlignmentError, UsageError
from .ecc import PairFailure
from .estimate import Limits, register_pair
from .geometry import apply_transform, implausibility, transform_parameters, valid_box
from .options import resolve_max_residual, resolve_reference
from .pyramid import make_work, work_size_of

#: Motion models, richest last.
MODELS = ("translation", "similarity", "affine", "homography")
#: Smallest frame side that can be registered.
MIN_SIDE = 32


@dataclass
class Registration:
    """Frame -> reference transforms of a stack (output of :func:`estimate_transforms`).

    Attributes
    ----------
    transforms : list of ndarray or None
        One 3x3 float64 matrix per frame mapping *frame* pixel coordinates ``(x, y, 1)`` (full
        resolution, pixel centres at integers) to *reference* pixel coordinates of the uncropped
        reference frame; the identity for the reference, None for a skipped frame. A point at
        reference coordinates ``(x, y)`` lies at ``(x - x0, y - y0)`` in a cropped image.
    status : list of str
        ``"ok"`` or ``"skipped"`` per frame.
    reasons : list of str or None
        Why a frame was skipped (the evidence), None for aligned frames.
    residuals : list of float
        Misregistration left between each frame and its partner, full-resolution px, measured
        on blur-matched copies (:func:`mfif.align.quality.alignment_quality`); 0 for the
        reference, nan where too little common detail exists to measure or for skipped frames.
    correlations : list of float
        ECC correlation coefficient with the partner (prefiltered working copies; lowered by
        defocus differences); 1 for the reference.
    ncc : list of float
        Blur-matched correlation with the partner (not lowered by defocus); 1 for the reference.
    partners : list of int
        Frame each frame was registered to (-1 for the reference and skipped frames).
    inits : list of str
        Initial guess used: ``"features"``, ``"phase"``, ``"reference"`` or ``""``.
    models : list of str
        Motion model finally used per frame (a fallback may simplify it).
    matches : list of int
        RANSAC inlier feature matches with the partner.
    valid_box : tuple of int
        ``(x0, y0, x1, y1)``, reference coordinates, ``x1``/``y1`` exclusive: the largest
        axis-aligned rectangle covered by every aligned frame.
    reference : int
        Index of the reference frame.
    model : str
        Motion model asked for.
    size : tuple of int
        ``(w, h)`` of the frames.
    info : dict
        ``seconds``, ``seconds_prepare`` (reading, working copies), ``seconds_register``,
        ``work_scale``, ``attempts`` per frame.
    """

    transforms: list
    status: list
    reasons: list
    residuals: list
    correlations: list
    ncc: list
    partners: list
    inits: list
    models: list
    matches: list
    valid_box: tuple
    reference: int
    model: str
    size: tuple
    info: dict = field(default_factory=dict)

    @property
    def aligned(self) -> list[int]:
        """Indices of the frames that were aligned (the reference included)."""
        return [i for i, s in enumerate(self.status) if s == "ok"]

    def describe(self, names: Sequence[str] | None = None) -> list[str]:
        """One human-readable line per frame: scale, rotation, shift, residual, correlation."""
        lines = []
        for i, t in enumerate(self.transforms):
            label = f"frame {i}" + (f" ({names[i]})" if names is not None else "")
            if t is None:
                lines.append(f"{label}: skipped: {self.reasons[i]}")
                continue
            s, rot, tx, ty = transform_parameters(t)
            lines.append(f"{label}: scale {s:.4f} rotation {rot:+.3f} deg shift ({tx:+.2f}, {ty:+.2f}) px "
                         f"residual {self.residuals[i]:.2f} px blur-matched correlation {self.ncc[i]:.3f}")
        return lines

    def report(self, sources: Sequence[str | os.PathLike]) -> dict:
        """JSON-ready summary: reference, valid box, and per frame its matrix and evidence."""
        def num(v):
            return None if v is None or not math.isfinite(float(v)) else round(float(v), 4)

        frames = []
        for i, src in enumerate(sources):
            t = self.transforms[i]
            frames.append({
                "source": str(src), "status": self.status[i],
                "matrix": None if t is None else [[float(v) for v in row] for row in t],
                "residual_px": num(self.residuals[i]), "partner": self.partners[i],
                "init": self.inits[i], "model": self.models[i], "matches": int(self.matches[i]),
                "ecc": num(self.correlations[i]), "blur_matched_correlation": num(self.ncc[i]),
                **({"reason": self.reasons[i]} if self.reasons[i] else {}),
            })
        return {"reference": int(self.reference), "valid_box": [int(v) for v in self.valid_box],
                "size": [int(v) for v in self.size], "model": self.model, "frames": frames}


def _simpler(model: str) -> list[str]:
    """``model`` and the simpler models to fall back to, richest first."""
    return list(reversed(MODELS[:MODELS.index(model) + 1]))


def _frame_name(i: int, names) -> str:
    if names is not None and names[i] is not None:
        return f"frame {i} ({names[i]})"
    return f"frame {i}"


def _check_frames(first: np.ndarray, img, i: int, names) -> None:
    """Frame ``i`` must be an image of the first frame's shape and dtype."""
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3) or img.size == 0:
        raise UsageError(f"{_frame_name(i, names)}: expected an HxW or HxWxC array, "
                         f"got {getattr(img, 'shape', type(img).__name__)}")
    if img.shape != first.shape:
        raise UsageError(f"{_frame_name(i, names)} has shape {img.shape}, {_frame_name(0, names)} has "
                         f"{first.shape}; frames of a stack must share a shape")
    if img.dtype != first.dtype:
        raise UsageError(f"{_frame_name(i, names)} is {img.dtype}, {_frame_name(0, names)} is "
                         f"{first.dtype}; frames of a stack must share a dtype")
    if not (img.dtype in (np.uint8, np.uint16) or np.issubdtype(img.dtype, np.floating)):
        raise UsageError(f"{_frame_name(i, names)}: unsupported pixel type {img.dtype}")


def estimate_transforms(frames: Sequence[np.ndarray | str | os.PathLike], *, reference: str | int = "middle",
                        model: str = "similarity", max_residual: float | str | None = "auto",
                        skip_unaligned: bool = False, chain: bool = True, names: Sequence[str] | None = None,
                        work_size: int = 1024, min_matches: int = 20, min_correlation: float = 0.5,
                        scale_range: tuple[float, float] = (0.7, 1.4), max_shear: float = 0.1,
                        max_rotation: float = 20.0, min_overlap: float = 0.25, workers: int | None = None,
                        read: Callable[[Path], np.ndarray] | None = None,
                        progress: Callable[[int, int], object] | None = None) -> Registration:
    """Frame -> reference transforms of a hand-held focus stack, at full resolution.

    Parameters
    ----------
    frames : sequence of ndarray or path-like
        The frames, in focus order: arrays (``HxW`` or ``HxWxC``, ``uint8``, ``uint16`` or
        float, all alike) or image files, read one at a time with ``read`` (only a small gray
        working copy of each is kept).
    reference : {"middle", "first", "last"} or int, keyword-only
        Frame whose geometry is kept (:func:`resolve_reference`).
    model : {"similarity", "translation", "affine", "homography"}, keyword-only
        Motion model: similarity (default: shift, rotation and scale, for focus breathing),
        affine adds shear, homography perspective tilt.
    max_residual : float, "auto" or None, keyword-only
        Largest acceptable residual misregistration (full-resolution px, blur-matched, see
        :attr:`Registration.residuals`) of a frame with its partner; None: no limit; ``"auto"``
        (default): :func:`resolve_max_residual`.
    skip_unaligned : bool, keyword-only
        Leave out frames that cannot be aligned (status ``"skipped"``, the evidence in
        :attr:`Registration.reasons`) instead of raising; at least 2 frames must remain.
    chain : bool, keyword-only
        Register each frame to its neighbour toward the reference first (default), or to the
        reference first (False); either way the other is a fallback.
    names : sequence of str, keyword-only
        Frame names for messages (default: file names of path inputs).
    work_size : int, keyword-only
        Longest side of the working copies (default 1024).
    min_matches : int, keyword-only
        RANSAC inlier feature matches needed for a feature-based initial guess.
    min_correlation : float, keyword-only
        Smallest acceptable blur-matched correlation of an aligned pair.
    scale_range, max_shear, max_rotation : keyword-only
        Plausible motion between two frames (:func:`mfif.align.geometry.implausibility`).
    min_overlap : float, keyword-only
        Smallest area of the common valid box, as a fraction of the frame.
    workers : int, keyword-only
        Threads (default: CPU count, at most 4).
    read : callable, keyword-only
        Reads a path into an array (default :func:`mfif.io.read_image`).
    progress : callable, keyword-only
        ``progress(k, n)`` as frames are prepared.

    Returns
    -------
    Registration

    Raises
    ------
    UsageError
        Bad options; frames that differ in shape or dtype.
    AlignmentError
        A frame cannot be aligned (without ``skip_unaligned``), frames too small to align,
        fewer than 2 frames left, or too little common area. The one-line message names the
        frame and the evidence, e.g. ``frame 4 (IMG_4.jpg) could not be aligned to frame 3
        (IMG_3.jpg): only 5 feature matches (need 20); fallbacks failed too (...)``.

    References
    ----------
    .. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
       correlation coefficient maximization", IEEE TPAMI 30(10):1858-1865, 2008.
    """
    t_start = time.perf_counter()
    if isinstance(frames, np.ndarray) and frames.ndim < 3:
        raise UsageError(f"expected a sequence of frames, got one {frames.ndim}-D array")
    items = list(frames)
    n = len(items)
    if n == 0:
        raise UsageError("no frames given")
    if names is None and all(isinstance(f, (str, os.PathLike)) for f in items):
        names = [Path(f).name if isinstance(f, str) else getattr(f, "name", None) or Path(f).name for f in items]
    if names is not None:
        names = [None if s is None else str(s) for s in names]
        if len(names) != n:
            raise UsageError(f"{len(names)} names for {n} frames")
    if model not in MODELS:
        raise UsageError(f"unknown alignment model {model!r}; use one of {', '.join(MODELS)}")
    if int(work_size) < 64:
        raise UsageError(f"work_size must be at least 64, got {work_size}")
    if max_residual is not None and not (isinstance(max_residual, str) and max_residual == "auto"):
        resolve_max_residual(max_residual, 1, 1)  # validate before any work
    ref = resolve_reference(reference, n)
    if read is None:
        from ..io import read_image as read

    def load(i: int) -> np.ndarray:
        f = items[i]
        # a str becomes a Path; other path-likes (a Path, a TIFF's plane) go to ``read`` as given
        return read(Path(f) if isinstance(f, str) else f) if isinstance(f, (str, os.PathLike)) else f

    first = load(0)
    _check_frames(first, first, 0, names)
    h, w = first.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise AlignmentError(f"{_frame_name(0, names)} is {w}x{h} px, too small to align "
                             f"(need at least {MIN_SIDE}x{MIN_SIDE})")
    limits = Limits(min_matches=int(min_matches), min_correlation=float(min_correlation),
                    scale_range=(float(scale_range[0]), float(scale_range[1])), max_shear=float(max_shear),
                    max_rotation=float(max_rotation), max_residual=resolve_max_residual(max_residual, w, h))
    work_wh = work_size_of(w, h, work_size)
    workers = max(1, int(workers if workers is not None else min(4, os.cpu_count() or 1)))
    done = [0]
    lock = threading.Lock()

    def prepare(i: int):
        img = first if i == 0 else load(i)
        _check_frames(first, img, i, names)
        wk = make_work(img, work_wh)
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], n)
        return wk

    status = ["ok"] * n
    reasons: list = [None] * n
    residuals = [0.0] * n
    correlations = [1.0] * n
    ncc = [1.0] * n
    partners = [-1] * n
    inits = ["reference" if i == ref else "" for i in range(n)]
    models = [model] * n
    matches = [0] * n
    attempts = [0] * n
    transforms: list = [None] * n
    transforms[ref] = np.eye(3)
    order = [i for d in range(1, n) for i in (ref - d, ref + d) if 0 <= i < n]
    toward = {i: (1 if i < ref else -1) for i in order}

    def first_partner(i: int) -> int:
        return i + toward[i] if chain else ref

    with ThreadPoolExecutor(max_workers=workers) as pool:
        works = list(pool.map(prepare, range(n)))
        first = None
        t_reg = time.perf_counter()

        def attempt(i: int, p: int, init: str, mdl: str):
            try:
                return register_pair(works[p], works[i], model=mdl, init=init, limits=limits)
            except PairFailure as exc:
                return exc

        # the first attempt of every frame runs at once; fallbacks only where it fails
        spec = {i: pool.submit(attempt, i, first_partner(i), "features", model) for i in order}
        for i in order:
            # partners: aligned frames toward the reference (nearest first) and the reference
            path = [j for j in range(i + toward[i], ref, toward[i]) if status[j] == "ok"]
            cands = ([path[0]] if path else []) + [ref] + path[1:2]
            if not chain:
                cands = [ref] + path[:1]
            cands = list(dict.fromkeys(cands))
            plan = [(p, init, mdl) for mdl in _simpler(model) for p in cands for init in ("features", "phase")]
            first_try, first_why, tried = None, None, []
            for p, init, mdl in plan:
                if (p, init, mdl) == (first_partner(i), "features", model):
                    r = spec[i].result()
                else:
                    r = attempt(i, p, init, mdl)
                attempts[i] += 1
                if not isinstance(r, PairFailure):
                    t = transforms[p] @ r["transform"]
                    t = t / t[2, 2]
                    why = implausibility(t, w, h, scale_range=limits.scale_range, max_shear=2 * limits.max_shear,
                                         max_rotation=limits.max_rotation)
                    if why is None:
                        box = valid_box([t], w, h)
                        if box is None or (box[2] - box[0]) * (box[3] - box[1]) < min_overlap * w * h:
                            why = "too little overlap"
                    if why is None:
                        transforms[i] = t
                        partners[i], inits[i], models[i] = p, r["init"], mdl
                        residuals[i], correlations[i], ncc[i] = r["residual_px"], r["correlation"], r["ncc"]
                        matches[i] = r["matches"]
                        break
                    r = PairFailure(f"the transform to the reference has {why}")
                msg = str(r).replace("{frame}", _frame_name(i, names)).replace("{target}", _frame_name(p, names))
                if first_why is None:
                    first_try, first_why = p, msg
                else:
                    tried += [lbl for lbl, use in (("phase correlation", init == "phase"),
                                                   ("the reference directly", p == ref != first_try),
                                                   (f"frame {p}", p not in (ref, first_try)),
                                                   (f"the {mdl} model", mdl != model)) if use]
                if r.final:
                    break
            if isinstance(r, PairFailure):
                why = f"{_frame_name(i, names)} could not be aligned to {_frame_name(first_try, names)}: {first_why}"
                if tried:
                    why += f"; also tried {', '.join(dict.fromkeys(tried))}"
                if not skip_unaligned:
                    for f in spec.values():
                        f.cancel()
                    raise AlignmentError(why)
                status[i], reasons[i] = "skipped", why
                residuals[i] = correlations[i] = ncc[i] = float("nan")
        del works
    seconds_register = time.perf_counter() - t_reg

    ok = [i for i in range(n) if status[i] == "ok"]
    if len(ok) < 2 and n >= 2:
        skipped = [reasons[i] for i in range(n) if status[i] == "skipped"]
        raise AlignmentError(f"only {len(ok)} of {n} frames could be aligned (need 2); {skipped[0]}")
    box = valid_box([transforms[i] for i in ok], w, h)
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) < min_overlap * w * h:
        cen = np.array([[(w - 1) / 2.0, (h - 1) / 2.0]])
        far = max(ok, key=lambda i: float(np.hypot(*(apply_transform(transforms[i], cen) - cen)[0])))
        share = 0.0 if box is None else 100.0 * (box[2] - box[0]) * (box[3] - box[1]) / (w * h)
        d = (apply_transform(transforms[far], cen) - cen)[0]
        raise AlignmentError(f"the aligned frames have only {share:.0f}% of the reference frame in common "
                             f"(need {100 * min_overlap:.0f}%); {_frame_name(far, names)} is shifted by "
                             f"({d[0]:+.0f}, {d[1]:+.0f}) px")
    t_end = time.perf_counter()
    return Registration(
        transforms=transforms, status=status, reasons=reasons, residuals=residuals, correlations=correlations,
        ncc=ncc, partners=partners, inits=inits, models=models, matches=matches,
        valid_box=tuple(int(v) for v in box), reference=ref, model=model, size=(w, h),
        info={"seconds": t_end - t_start, "seconds_prepare": t_reg - t_start, "seconds_register": seconds_register,
              "work_scale": work_wh[0] / w, "attempts": attempts})
