"""The case generator: layered thin-lens defocus with occlusion (see :mod:`mfif.synth`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import UsageError
from ..io import check_finite, to_float, to_gray
from ..options import check_number
from .psf import _push_pull_fill, defocus
from .shapes import blob_mask, segment_mask


#: File stems of the sources of a case: A, B, C, ...
SOURCE_NAMES = tuple(chr(ord("A") + i) for i in range(26))

#: Options accepted by :func:`make_case` (keyword ``**options``) with their defaults.
DEFAULT_OPTIONS: dict = {
    "psf": "mixed",            # "disk", "gaussian" or "mixed" (50/50 per case)
    "radius": (0.6, 8.0),      # blur radius range in px, drawn log-uniform per case
    "mask_kind": "mixed",      # "blob", "segment" or "mixed" (50/50 per layer)
    "fg_fraction": (0.2, 0.6), # target area of the foreground (N=2); per layer for N>2
    "noise": 0.0,              # max sensor-noise sigma (per case ~ U(0, noise)); 0 = off
    "jpeg": None,              # min JPEG quality (per case ~ U[jpeg, 95]); None = off
    "brightness": 0.0,         # max per-source gain deviation (gain ~ 1 + U(-b, b)); 0 = off
    "fit": "scale",            # "scale" (bicubic upscaling) or "reflect" when photo < size
}



@dataclass
class SynthCase:
    """One synthetic multi-focus case.

    Attributes
    ----------
    sources : list of ndarray
        ``N`` float32 images in [0, 1] (``HxW`` gray or ``HxWx3``); source ``k`` is focused
        on depth layer ``k`` (layer 0 nearest).
    gt : ndarray
        The all-in-focus ground truth (the cropped/resized photo), float32, same shape.
    mask : ndarray
        ``HxW`` int16 label map: index of the source that is sharp at each pixel.
    params : dict
        Every random parameter (JSON-serialisable).
    """

    sources: list
    gt: np.ndarray
    mask: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def n_sources(self) -> int:
        return len(self.sources)

    @property
    def names(self) -> list[str]:
        """File stems of the sources (``A``, ``B``, ...)."""
        return list(SOURCE_NAMES[: len(self.sources)])


def _prepare(image: np.ndarray, size, rng: np.random.Generator, fit: str) -> tuple[np.ndarray, dict]:
    img = np.asarray(image)
    if img.dtype.kind not in "uifb":
        raise UsageError(f"make_case: unsupported pixel type {img.dtype}")
    check_finite(img, "make_case: image")
    if img.dtype != np.float32:
        img = to_float(img)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise UsageError(f"make_case: expected an HxW or HxWx3 image, got shape {img.shape}")
    h, w = img.shape[:2]
    if size is None:
        return np.ascontiguousarray(img), {"crop": [0, 0, h, w], "scale": 1.0, "fit": "none"}
    dims = (size, size) if np.isscalar(size) else tuple(size)
    if len(dims) != 2:
        raise UsageError(f"size must be an int or an (height, width) pair, got {size!r}")
    th, tw = (check_number(d, "size", lo=16, hi=1 << 16, integer=True) for d in dims)
    scale = 1.0
    info: dict = {"fit": "none"}
    if h < th or w < tw:
        if fit == "scale":
            scale = max(th / h, tw / w)
            nh, nw = max(th, int(round(h * scale))), max(tw, int(round(w * scale)))
            img = np.clip(cv2.resize(img, (nw, nh), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
            info["fit"] = "scale"
        elif fit == "reflect":
            ph, pw = max(0, th - h), max(0, tw - w)
            pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)) + (((0, 0),) if img.ndim == 3 else ())
            img = np.pad(img, pad, mode="reflect")
            info["fit"] = "reflect"
        else:
            raise UsageError(f"unknown fit {fit!r} (use scale or reflect)")
    h, w = img.shape[:2]
    y0 = int(rng.integers(0, h - th + 1))
    x0 = int(rng.integers(0, w - tw + 1))
    out = np.ascontiguousarray(img[y0:y0 + th, x0:x0 + tw]).astype(np.float32)
    info.update({"crop": [y0, x0, th, tw], "scale": float(scale)})
    return out, info


def _pair_range(v, name, **limits) -> tuple[float, float]:
    """A scalar or a (min, max) pair of finite numbers within ``limits``."""
    if np.isscalar(v):
        x = check_number(v, name, **limits)
        return x, x
    try:
        lo, hi = v
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number or a (min, max) pair, got {v!r}") from None
    lo, hi = check_number(lo, name, **limits), check_number(hi, name, **limits)
    if lo > hi:
        raise UsageError(f"{name}: minimum {lo} exceeds maximum {hi}")
    return lo, hi


def _check_options(options: dict) -> dict:
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise UsageError(f"make_case: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(DEFAULT_OPTIONS)}")
    o = dict(DEFAULT_OPTIONS)
    o.update({k: v for k, v in options.items() if v is not None or k == "jpeg"})
    if o["psf"] not in ("disk", "gaussian", "mixed"):
        raise UsageError(f"psf must be disk, gaussian or mixed, got {o['psf']!r}")
    if o["mask_kind"] not in ("blob", "segment", "mixed"):
        raise UsageError(f"mask_kind must be blob, segment or mixed, got {o['mask_kind']!r}")
    if o["fit"] not in ("scale", "reflect"):
        raise UsageError(f"fit must be scale or reflect, got {o['fit']!r}")
    o["radius"] = _pair_range(o["radius"], "radius", lo=0, lo_open=True, hi=1000)
    o["fg_fraction"] = _pair_range(o["fg_fraction"], "fg_fraction", lo=0, hi=1, lo_open=True, hi_open=True)
    o["noise"] = check_number(o["noise"], "noise", lo=0, hi=1)
    o["brightness"] = check_number(o["brightness"], "brightness", lo=0, hi=1, hi_open=True)
    if o["jpeg"] is not None:
        o["jpeg"] = check_number(o["jpeg"], "jpeg quality", lo=1, hi=100, integer=True)
    return o


def _layer_masks(img: np.ndarray, n: int, rng: np.random.Generator, o: dict) -> tuple[np.ndarray, list, list]:
    """Drawn extents ``D_j`` of layers ``0..n-2`` (nearest first) and the visible label map."""
    h, w = img.shape[:2]
    flo, fhi = o["fg_fraction"]
    min_visible = 0.1 if n == 2 else 0.05
    best = None
    for attempt in range(8):
        drawn, mparams = [], []
        for j in range(n - 1):
            frac = float(rng.uniform(flo, fhi)) if n == 2 else float(rng.uniform(flo, fhi)) * 0.8
            kind = o["mask_kind"]
            if kind == "mixed":
                kind = "blob" if rng.random() < 0.5 else "segment"
            if attempt >= 4:  # e.g. a featureless photo that segments into one region
                kind = "blob"
            if kind == "blob":
                m, p = blob_mask((h, w), rng, fraction=frac)
            else:
                m, p = segment_mask(img, rng, fraction=frac)
            drawn.append(m)
            mparams.append(p)
        label = np.full((h, w), n - 1, np.int16)
        for j in range(n - 2, -1, -1):  # paint far to near: nearest last
            label[drawn[j]] = j
        vis = np.bincount(label.ravel(), minlength=n) / label.size
        score = float(vis.min())
        if best is None or score > best[0]:
            best = (score, drawn, mparams, label, attempt)
        if score >= min_visible and vis[n - 1] <= 1 - min_visible:
            break
    _, drawn, mparams, label, attempt = best
    for p, v in zip(mparams, np.bincount(label.ravel(), minlength=n)[:-1] / label.size):
        p["visible_fraction"] = float(v)
    return label, drawn, mparams


def make_case(image: np.ndarray, *, n_sources: int = 2, rng: np.random.Generator, size=None,
              gray: bool = False, **options) -> SynthCase:
    """Synthesise one multi-focus case from a sharp photo.

    Parameters
    ----------
    image : ndarray
        The sharp photo, float32 ``HxW`` or ``HxWx3`` in [0, 1] (integer images are scaled with
        :func:`mfif.io.to_float`).
    n_sources : int, keyword-only
        Number of sources = number of depth layers (2 to 26).
    rng : numpy.random.Generator, keyword-only
        Source of every random choice; the same generator state gives the same case.
    size : int or (int, int) or None, keyword-only
        Output size. ``None`` keeps the photo's size; otherwise a random crop, after bicubic
        upscaling (``fit="scale"``) or mirror padding (``fit="reflect"``) when the photo is
        smaller.
    gray : bool, keyword-only
        Convert to gray (BT.601 luma) before synthesis; sources and ``gt`` are then ``HxW``.
    **options
        See :data:`DEFAULT_OPTIONS`: ``psf`` (``"disk"``, ``"gaussian"``, ``"mixed"``),
        ``radius`` (``(min, max)`` px, log-uniform), ``mask_kind`` (``"blob"``, ``"segment"``,
        ``"mixed"``), ``fg_fraction`` (``(min, max)``), ``noise`` (max sigma), ``jpeg`` (min
        quality or None), ``brightness`` (max gain deviation), ``fit``.

    Returns
    -------
    SynthCase
        ``mask == k`` where source ``k`` is sharp; layer 0 (source A) is the nearest.

    Notes
    -----
    Without degradations (the defaults) ``sources[k] == gt`` bit-exactly on every pixel of
    layer ``k`` whose distance to a nearer layer exceeds that layer's PSF support; pixels of
    the nearest in-focus layer equal ``gt`` everywhere, up to the very edge (an in-focus
    occluder stays crisp).

    References
    ----------
    .. [1] S. W. Hasinoff and K. N. Kutulakos, "A layer-based restoration framework for
       variable-aperture photography", ICCV 2007.
    .. [2] T. Porter and T. Duff, "Compositing digital images", SIGGRAPH 1984.

    Examples
    --------
    >>> import numpy as np
    >>> from mfif.synth import make_case
    >>> photo = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    >>> case = make_case(photo, rng=np.random.default_rng(1))
    >>> len(case.sources), case.mask.dtype.name
    (2, 'int16')
    """
    n = check_number(n_sources, "n_sources", lo=2, hi=len(SOURCE_NAMES), integer=True)
    o = _check_options(options)
    img, geo = _prepare(image, size, rng, o["fit"])
    if gray and img.ndim == 3:
        img = to_gray(img)
    h, w = img.shape[:2]

    label, drawn, mparams = _layer_masks(img, n, rng, o)

    # Depth layout (inverse depth, 0 = nearest) and blur radii.
    if n == 2:
        pos = [0.0, 1.0]
    else:
        gaps = rng.uniform(0.5, 1.5, n - 1)
        pos = [0.0] + list(np.cumsum(gaps) / gaps.sum())
    pos = [float(p) for p in pos]
    rlo, rhi = o["radius"]
    r_scale = float(math.exp(rng.uniform(math.log(rlo), math.log(rhi)))) if rhi > rlo else rlo
    jitter = [float(math.exp(rng.uniform(math.log(0.8), math.log(1.25)))) for _ in range(n)]
    psf = o["psf"]
    if psf == "mixed":
        psf = "disk" if rng.random() < 0.5 else "gaussian"
    radii = [[0.0 if j == k else float(np.clip(r_scale * abs(pos[j] - pos[k]) * jitter[k], rlo, max(rhi, rlo)))
              for j in range(n)] for k in range(n)]

    # Layer appearances: each layer's hidden part filled from its own visible pixels.
    appear = []
    for j in range(n):
        vis = (label == j).astype(np.float32)
        appear.append(_push_pull_fill(img, vis) if vis.min() < 1 else img)
    extents = [d.astype(np.float32) for d in drawn]   # D_0..D_{n-2}; background covers all

    sources = []
    for k in range(n):
        res = defocus(appear[n - 1], psf, radii[k][n - 1])
        for j in range(n - 2, -1, -1):
            d = extents[j]
            r = radii[k][j]
            premult = appear[j] * (d if img.ndim == 2 else d[..., None])
            if r > 0:
                a = defocus(d, psf, r)
                c = defocus(premult, psf, r)
                # FFT-based filtering leaves ~1e-7 residue where the PSF does not reach:
                # snap it so that pixels beyond the PSF support stay bit-exact.
                zero, one = a < 1e-5, a > 1.0 - 1e-5
                a[zero], a[one] = 0.0, 1.0
                c[zero] = 0.0
            else:
                a, c = d, premult
            av = a if img.ndim == 2 else a[..., None]
            res = c + (1.0 - av) * res
        sources.append(np.clip(res, 0.0, 1.0).astype(np.float32))

    # Degradations (sources only).
    noise_sigma = float(rng.uniform(0.0, o["noise"])) if o["noise"] > 0 else 0.0
    gains = [float(1.0 + rng.uniform(-o["brightness"], o["brightness"])) if o["brightness"] > 0 else 1.0
             for _ in range(n)]
    quality = None
    if o["jpeg"] is not None:
        q0 = int(o["jpeg"])
        quality = int(rng.integers(q0, 96)) if q0 <= 95 else q0
    noise_seeds = [int(x) for x in rng.integers(0, 2**31 - 1, n)] if noise_sigma > 0 else []
    for k in range(n):
        s = sources[k]
        if gains[k] != 1.0:
            s = s * np.float32(gains[k])
        if noise_sigma > 0:
            nr = np.random.default_rng(noise_seeds[k])
            std = noise_sigma * np.sqrt(0.25 + 0.75 * np.clip(s, 0, 1))  # shot + read noise
            s = s + nr.standard_normal(s.shape).astype(np.float32) * std.astype(np.float32)
        s = np.clip(s, 0.0, 1.0).astype(np.float32)
        if quality is not None:
            u8 = np.clip(np.rint(s * 255.0), 0, 255).astype(np.uint8)
            enc = u8 if u8.ndim == 2 else cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".jpg", enc, [cv2.IMWRITE_JPEG_QUALITY, quality])
            dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED if u8.ndim == 2 else cv2.IMREAD_COLOR)
            if u8.ndim == 3:
                dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
            s = dec.astype(np.float32) / np.float32(255.0)
        sources[k] = s

    params = {
        "n_sources": n,
        "size": [h, w],
        "gray": bool(img.ndim == 2),
        "geometry": geo,
        "layer_order": "near-to-far (layer 0 = nearest; source k focused on layer k)",
        "layers": mparams,
        "visible_fraction": [float(v) for v in np.bincount(label.ravel(), minlength=n) / label.size],
        "inverse_depth": pos,
        "psf": psf,
        "radius_scale": r_scale,
        "radius_jitter": jitter,
        "radii": radii,
        "noise_sigma": noise_sigma,
        "noise_seeds": noise_seeds,
        "jpeg_quality": quality,
        "gains": gains,
    }
    return SynthCase(sources=sources, gt=img.astype(np.float32), mask=label, params=params)
