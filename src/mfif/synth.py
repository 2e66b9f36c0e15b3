"""Synthetic multi-focus data with ground truth, made from sharp natural photos.

A *case* is one all-in-focus photo (the ground truth), a label map saying which depth layer
each pixel belongs to, and ``N`` sources, each focused on one layer with the others defocused
by a layered thin-lens model:

* **Layers.** Layer ``0`` is the *nearest* (the foreground), layer ``N-1`` the background,
  which covers the whole frame. Layers ``0..N-2`` are drawn as natural shapes (smooth random
  blobs, or unions of adjacent graph-based segments of the photo itself, so that depth edges follow
  image edges) and painted far to near, so nearer layers occlude farther ones.
* **Sources.** Source ``k`` is focused on layer ``k``, so ``mask == k`` exactly where source
  ``k`` is sharp. For ``N = 2``: source A (index 0) has the foreground sharp and the background
  blurred, source B (index 1) the reverse, as in the paper's data.
* **Defocus.** Each layer sits at an inverse-depth position ``p_j`` in [0, 1] (``p_0 = 0``,
  ``p_{N-1} = 1``). In source ``k`` layer ``j`` is blurred with radius
  ``r_kj = r * |p_j - p_k| * g_k`` (thin-lens blur circle, proportional to the difference of
  inverse depths), where ``r`` is drawn log-uniform over a wide range (default 0.6 to 8 px)
  and ``g_k`` is a small per-source jitter; out-of-focus radii are clipped into the range.
  The point-spread function is a pillbox (anti-aliased disk of radius ``r``) or a Gaussian of
  the same second moment (``sigma = r / 2``).
* **Occlusion.** Layers are composited back to front with the blurred layer mask as alpha
  (``I = blur(L_j * D_j) + (1 - blur(D_j)) * I``). When the foreground is defocused its blur
  spreads over the sharp background; when the background is defocused the sharp foreground
  edge stays crisp and no foreground colour bleeds into the blurred background, because every
  layer's hidden part (behind nearer layers) is filled from that layer's own visible pixels
  (push-pull pyramid inpainting) before it is blurred.
* **Degradations** (sources only; ``gt`` stays clean): optional signal-dependent Gaussian
  sensor noise, JPEG compression and small per-source brightness gains.

Every random choice is drawn from the ``rng`` given to :func:`make_case` and recorded in
:attr:`SynthCase.params`, so a case is reproducible from its seed and its parameters.

Sizes. ``size=S`` (or ``(h, w)``) crops a random ``S x S`` window from the photo. When the
photo is smaller than that (BSDS500 photos are 481x321, the paper's pairs are 512x512) the
photo is first **upscaled** with bicubic interpolation so that its short side equals ``S``
(default ``fit="scale"``), or, with ``fit="reflect"``, padded by mirror reflection. Upscaling
by 1.6 softens the photo slightly; the ground truth is the upscaled photo, so pairs and truth
stay consistent.

References
----------
.. [1] S. W. Hasinoff and K. N. Kutulakos, "A layer-based restoration framework for
   variable-aperture photography", ICCV 2007 (layered defocus with occlusion).
.. [2] T. Porter and T. Duff, "Compositing digital images", SIGGRAPH 1984 (alpha compositing).
.. [3] N. Asada, H. Fujiwara and T. Matsuyama, "Seeing behind the scene: analysis of
   photometric properties of occluding edges by the reversed projection blurring model",
   IEEE TPAMI 20(2), 1998 (a defocused occluder's blur spreads over the sharp background).
.. [4] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient graph-based image
   segmentation", IJCV 59(2), 2004 (object-like foreground shapes).
.. [5] P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour detection and hierarchical
   image segmentation", IEEE TPAMI 33(5), 2011 (the BSDS500 photos).
.. [6] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
   convolutional network", Information Fusion 36, 2017 (patch pairs from synthetic blur).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .errors import UsageError
from .io import IMAGE_EXTENSIONS, check_finite, from_float, natural_key, read_image, to_float, to_gray
from .options import check_number

__all__ = [
    "SynthCase",
    "HandheldStack",
    "handheld_stack",
    "make_case",
    "PatchSampler",
    "load_photos",
    "list_photos",
    "split_by_photo",
    "psf_kernel",
    "defocus",
    "blob_mask",
    "segment_mask",
    "DEFAULT_OPTIONS",
    "SOURCE_NAMES",
    "torch_dataset",
    "contact_sheet",
]

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


# --------------------------------------------------------------------------------------------
# Case container
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Point-spread functions and blur
# --------------------------------------------------------------------------------------------
def psf_kernel(kind: str, radius: float) -> np.ndarray:
    """Normalised 2-D point-spread function.

    Parameters
    ----------
    kind : {"disk", "gaussian"}
        ``"disk"``: pillbox of radius ``radius`` (the geometric-optics blur circle of a thin
        lens), anti-aliased by 8x8 supersampling of each pixel. ``"gaussian"``: Gaussian with
        ``sigma = radius / 2`` (the same second moment as the disk), truncated at 3 sigma.
    radius : float
        Blur radius in pixels (> 0).

    Returns
    -------
    ndarray
        float32 ``(2R+1) x (2R+1)`` kernel summing to 1.
    """
    r = float(radius)
    if r <= 0:
        return np.ones((1, 1), np.float32)
    if kind == "disk":
        R = int(math.ceil(r - 0.5 + 1e-9)) if r > 0.5 else 1
        ss = 8
        t = (np.arange((2 * R + 1) * ss) + 0.5) / ss - (R + 0.5)
        yy, xx = np.meshgrid(t, t, indexing="ij")
        inside = (yy * yy + xx * xx) <= r * r
        k = inside.reshape(2 * R + 1, ss, 2 * R + 1, ss).mean(axis=(1, 3))
        if k.sum() <= 0:
            k = np.zeros((2 * R + 1, 2 * R + 1)); k[R, R] = 1.0
    elif kind == "gaussian":
        s = r / 2.0
        R = max(1, int(math.ceil(3.0 * s)))
        t = np.arange(-R, R + 1, dtype=np.float64)
        g = np.exp(-0.5 * (t / s) ** 2)
        k = np.outer(g, g)
    else:
        raise UsageError(f"unknown PSF {kind!r} (use disk or gaussian)")
    return (k / k.sum()).astype(np.float32)


def defocus(img: np.ndarray, kind: str, radius: float) -> np.ndarray:
    """Blur ``img`` (``HxW`` or ``HxWxC`` float32) with :func:`psf_kernel` (mirror borders)."""
    if radius <= 0:
        return img.astype(np.float32, copy=True)
    if kind == "gaussian":
        k = psf_kernel("gaussian", radius)
        c = k.shape[0] // 2
        g = np.ascontiguousarray(k[c] / k[c].sum())
        return cv2.sepFilter2D(img, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT_101)
    return cv2.filter2D(img, cv2.CV_32F, psf_kernel(kind, radius), borderType=cv2.BORDER_REFLECT_101)


def _push_pull_fill(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Fill pixels where ``m == 0`` from those where ``m == 1`` (push-pull pyramid).

    Pixels with ``m == 1`` are returned unchanged (bit-exact); holes receive a smooth
    extrapolation of the surrounding valid colours only.
    """
    m = m.astype(np.float32)
    mm = m if img.ndim == 2 else m[..., None]
    c = img * mm
    levels = []
    w = m
    while True:
        levels.append((c, w))
        h, wd = w.shape
        if min(h, wd) <= 4:
            break
        c = cv2.pyrDown(c)
        w = cv2.pyrDown(w)
        if c.ndim == 2 and img.ndim == 3:
            c = c[..., None]
    # coarsest level: fill holes with the mean of valid pixels
    c, w = levels[-1]
    wv = w if img.ndim == 2 else w[..., None]
    tot = float(w.sum())
    mean = (c.reshape(-1, *c.shape[2:]).sum(0) / tot) if tot > 1e-6 else np.zeros(c.shape[2:], np.float32)
    filled = np.where(wv > 1e-6, c / np.maximum(wv, 1e-6), mean).astype(np.float32)
    for c, w in reversed(levels[:-1]):
        h, wd = w.shape
        up = cv2.pyrUp(filled, dstsize=(wd, h))
        if up.ndim == 2 and img.ndim == 3:
            up = up[..., None]
        wv = w if img.ndim == 2 else w[..., None]
        a = np.clip(wv, 0.0, 1.0)
        v = c / np.maximum(wv, 1e-6)
        filled = (a * v + (1.0 - a) * up).astype(np.float32)
    # exactness where valid
    return np.where(mm > 0.5, img, filled).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Foreground shapes
# --------------------------------------------------------------------------------------------
def blob_mask(shape: tuple[int, int], rng: np.random.Generator, *, fraction: float) -> tuple[np.ndarray, dict]:
    """Smooth random blob: thresholded low-pass noise plus a bump at a random centre.

    Returns a boolean ``HxW`` mask covering about ``fraction`` of the frame and its parameters.
    """
    h, w = shape
    cell = 8
    lh, lw = max(4, -(-h // cell)), max(4, -(-w // cell))
    smooth = float(rng.uniform(1.5, 5.0))           # low-res px (x8 at full res)
    bump_w = float(rng.uniform(0.0, 2.0))
    cy, cx = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))
    bump_s = float(rng.uniform(0.15, 0.4))
    noise = rng.standard_normal((lh, lw)).astype(np.float32)
    field_ = cv2.GaussianBlur(noise, (0, 0), smooth, borderType=cv2.BORDER_REFLECT_101)
    field_ /= float(field_.std()) + 1e-6
    yy, xx = np.meshgrid(np.linspace(0, 1, lh), np.linspace(0, 1, lw), indexing="ij")
    field_ += bump_w * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * bump_s ** 2)).astype(np.float32)
    big = cv2.resize(field_, (w, h), interpolation=cv2.INTER_CUBIC)
    thr = float(np.quantile(big, 1.0 - fraction))
    m = big > thr
    return m, {"kind": "blob", "fraction": float(fraction), "smooth_px": smooth * cell,
               "bump_weight": bump_w, "bump_center": [cy, cx], "bump_sigma": bump_s}


def _graph_segments(img: np.ndarray, k: float, min_size: int) -> np.ndarray:
    """Felzenszwalb-Huttenlocher segmentation (OpenCV contrib; scikit-image as fallback)."""
    ximgproc = getattr(cv2, "ximgproc", None)
    if ximgproc is not None:
        u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        seg = ximgproc.segmentation.createGraphSegmentation(sigma=0.8, k=float(k), min_size=int(min_size))
        return np.asarray(seg.processImage(u8), dtype=np.int64)
    from skimage.segmentation import felzenszwalb  # pragma: no cover - contrib build is a dependency

    return felzenszwalb(img.astype(np.float64), scale=k, sigma=0.8, min_size=min_size,
                        channel_axis=None if img.ndim == 2 else -1).astype(np.int64)


def segment_mask(image: np.ndarray, rng: np.random.Generator, *, fraction: float) -> tuple[np.ndarray, dict]:
    """Object-like region: a connected union of adjacent segments of the photo itself.

    The photo (a copy whose long side is about 160 px) is over-segmented with the graph-based
    method of Felzenszwalb and Huttenlocher; a random seed segment grows by random adjacent
    segments until it covers about ``fraction`` of the frame (a segment that would overshoot
    the target by more than half is skipped); holes are filled and the staircase of the
    upscaled labels is smoothed. The outline follows image edges, as real depth edges do.

    Returns a boolean ``HxW`` mask and its parameters.

    References
    ----------
    .. [1] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient graph-based image
       segmentation", IJCV 59(2), 2004.
    """
    from scipy import ndimage as ndi

    h, w = image.shape[:2]
    scale = min(1.0, 160.0 / max(h, w))
    sh, sw = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else image
    fz_scale = float(math.exp(rng.uniform(math.log(60.0), math.log(400.0))))
    min_size = max(8, int(sh * sw * 0.003))
    labels = _graph_segments(small, fz_scale, min_size)
    n = int(labels.max()) + 1
    sizes = np.bincount(labels.ravel(), minlength=n).astype(np.int64)
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        d = a != b
        pairs.append(np.stack([a[d], b[d]], 1))
    pairs = np.unique(np.sort(np.concatenate(pairs), 1), axis=0)
    nbrs: list[set] = [set() for _ in range(n)]
    for a, b in pairs.tolist():
        nbrs[a].add(b)
        nbrs[b].add(a)
    target = fraction * labels.size
    # seed: a random pixel's segment (favours larger segments), not bigger than 1.5 x target
    ok = np.nonzero(sizes <= 1.5 * target)[0]
    if ok.size == 0:
        ok = np.array([int(np.argmin(sizes))])
    seed = int(ok[int(rng.choice(ok.size, p=sizes[ok] / sizes[ok].sum()))])
    region = {seed}
    area = int(sizes[seed])
    frontier = set(nbrs[seed])
    while area < target and frontier:
        cand = sorted(frontier)
        pick = cand[int(rng.integers(len(cand)))]
        frontier.discard(pick)
        if area + sizes[pick] > 1.5 * target:
            continue
        region.add(pick)
        area += int(sizes[pick])
        frontier |= nbrs[pick] - region
    sel = np.zeros(n, bool)
    sel[list(region)] = True
    m_small = ndi.binary_fill_holes(sel[labels])
    big = cv2.resize(m_small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    big = cv2.GaussianBlur(big, (0, 0), max(0.7, 0.5 / scale), borderType=cv2.BORDER_REFLECT_101)
    m = big > 0.5
    return m, {"kind": "segment", "fraction": float(fraction), "fz_scale": fz_scale, "min_size": min_size,
               "n_segments": n, "seed_segment": seed, "n_picked": len(region)}


# --------------------------------------------------------------------------------------------
# Photo preparation
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# The case generator
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Photos and splits
# --------------------------------------------------------------------------------------------
def list_photos(directory: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``directory``, naturally sorted."""
    p = Path(directory)
    if not p.is_dir():
        raise UsageError(f"{p}: not a directory")
    files = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise UsageError(f"{p}: directory holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(files, key=natural_key)


def load_photos(directory: str | os.PathLike, *, gray: bool = False, limit: int | None = None) -> list[np.ndarray]:
    """Read the photos of a directory as float32 in [0, 1] (naturally sorted).

    Parameters
    ----------
    directory : path-like
        Folder of images (PNG, JPEG, BMP, TIFF).
    gray : bool, keyword-only
        Convert to gray (BT.601 luma).
    limit : int, optional, keyword-only
        Read only the first ``limit`` photos.
    """
    paths = list_photos(directory)
    if limit is not None:
        paths = paths[: int(limit)]
    out = []
    for p in paths:
        f = to_float(read_image(p))
        if f.ndim == 3 and f.shape[2] == 4:
            f = f[..., :3]
        out.append(to_gray(f) if gray else f)
    return out


def _largest_remainder(total: int, fractions: Sequence[float]) -> list[int]:
    fr = np.asarray(fractions, float)
    fr = fr / fr.sum()
    raw = fr * total
    base = np.floor(raw).astype(int)
    rest = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return [int(x) for x in base]


def split_by_photo(names: Sequence[str], *, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                   splits: Sequence[str] = ("train", "val", "test")) -> dict[str, list[str]]:
    """Assign whole photos to splits, so no photo feeds two splits.

    Parameters
    ----------
    names : sequence of str
        Photo identifiers (file names).
    seed : int, keyword-only
        Shuffle seed; the assignment depends only on the seed and the set of names.
    fractions : sequence of float, keyword-only
        Share of photos per split (normalised; largest-remainder rounding).
    splits : sequence of str, keyword-only
        Split names, same length as ``fractions``.

    Returns
    -------
    dict
        ``{split: [names...]}``, each list naturally sorted.
    """
    if len(fractions) != len(splits):
        raise UsageError("fractions and splits must have the same length")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise UsageError("split fractions must be >= 0 and not all 0")
    uniq = sorted(set(map(str, names)), key=natural_key)
    perm = np.random.default_rng([int(seed), 0x5B117]).permutation(len(uniq))
    counts = _largest_remainder(len(uniq), fractions)
    out, i = {}, 0
    for s, c in zip(splits, counts):
        out[s] = sorted((uniq[j] for j in perm[i:i + c]), key=natural_key)
        i += c
    return out


# --------------------------------------------------------------------------------------------
# Training patch sampler
# --------------------------------------------------------------------------------------------
class PatchSampler:
    """Balanced patch pairs with focused/defocused labels for training a focus classifier.

    A pool of 2-source cases (one photo each, a random ``case_size`` square crop) is
    synthesised with :func:`make_case`; patches are cut from them at the same location in
    both sources, and each case is replaced by a fresh one (new photo, crop, mask and blur)
    after ``patches_per_case`` patches on average.

    Parameters
    ----------
    images : list of ndarray
        Sharp photos, float32 in [0, 1] (``HxW`` or ``HxWx3``).
    patch : int, keyword-only
        Patch side (px).
    seed : int, keyword-only
        Seed; the sequence of batches is a pure function of the seed and the arguments.
    gray : bool, keyword-only
        Gray patches ``(B, 1, p, p)``; otherwise colour ``(B, 3, p, p)``.
    case_size : int, keyword-only
        Side of the synthesised cases (default 256; photos smaller than that are upscaled).
    pool : int, keyword-only
        Number of cases in the pool (default 16).
    patches_per_case : int, keyword-only
        Patches drawn from a case before it is replaced (default 1024).
    p_boundary : float, keyword-only
        Share of patches placed across a depth boundary (default 0.2): mixed labels.
    p_flat : float, keyword-only
        Share of patches taken from the flattest 10 % of positions of a case (default 0.15):
        little texture, so focus is hard to see.
    p_small_blur : float, keyword-only
        Share of cases whose blur radius is small, ``small_radius`` = 1 to 2 px (Gaussian
        sigma 0.5 to 1 px), default 0.25. The other cases use ``radius`` (default 0.6 to 8 px,
        log-uniform, so they include small blur too).
    **options
        Passed to :func:`make_case` (``psf``, ``radius``, ``mask_kind``, ``noise``, ...).

    Notes
    -----
    ``sample(batch)`` returns ``(a, b, label)``: ``a`` and ``b`` are patches of the two sources
    of one case at one location, ``label`` the fraction of the patch where ``a`` is the sharp
    one (1 = ``a`` focused and ``b`` defocused, 0 the reverse, in between on a depth
    boundary). ``a`` is source A or source B with probability 1/2 each, so labels are balanced
    (mean 0.5). The remaining ``1 - p_boundary - p_flat`` of the patches are placed uniformly.

    References
    ----------
    .. [1] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
       convolutional network", Information Fusion 36, 2017.
    """

    _N_BOUNDARY = 4096
    _N_FLAT = 1024

    def __init__(self, images: Sequence[np.ndarray], *, patch: int = 16, seed: int = 0, gray: bool = True,
                 case_size: int = 256, pool: int = 16, patches_per_case: int = 1024,
                 p_boundary: float = 0.2, p_flat: float = 0.15, p_small_blur: float = 0.25,
                 small_radius: tuple[float, float] = (1.0, 2.0), **options):
        if not images:
            raise UsageError("PatchSampler needs at least one photo")
        if int(patch) < 2:
            raise UsageError(f"patch must be >= 2, got {patch}")
        if not (0 <= p_boundary and 0 <= p_flat and p_boundary + p_flat <= 1):
            raise UsageError("p_boundary and p_flat must be >= 0 and sum to <= 1")
        self.images = list(images)
        self.patch = int(patch)
        self.gray = bool(gray)
        self.case_size = max(int(case_size), 2 * self.patch)
        self.pool_size = max(1, int(pool))
        self.patches_per_case = max(1, int(patches_per_case))
        self.p_boundary, self.p_flat, self.p_small_blur = float(p_boundary), float(p_flat), float(p_small_blur)
        self.small_radius = tuple(float(x) for x in small_radius)
        _check_options(options)
        self.options = dict(options)
        self.rng = np.random.default_rng([int(seed), 0xFACADE])
        self.cases_made = 0
        P, cs, p = self.pool_size, self.case_size, self.patch
        ch = 1 if self.gray else 3
        self._src = np.zeros((P, 2, ch, cs, cs), np.float32)
        self._views = np.lib.stride_tricks.sliding_window_view(self._src, (p, p), axis=(3, 4))
        self._integral = np.zeros((P, cs + 1, cs + 1), np.int32)
        self._bnd = np.zeros((P, self._N_BOUNDARY, 2), np.int32)
        self._has_bnd = np.zeros(P, bool)
        self._flat = np.zeros((P, self._N_FLAT, 2), np.int32)
        self._used = np.zeros(P, np.int64)
        for s in range(P):
            self._refill(s)

    # -- pool management ---------------------------------------------------------------------
    def _refill(self, s: int) -> None:
        rng = self.rng
        idx = int(rng.integers(len(self.images)))
        crng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        opts = dict(self.options)
        if rng.random() < self.p_small_blur:
            opts["radius"] = self.small_radius
        cs, p = self.case_size, self.patch
        img = self.images[idx]
        if self.gray and img.ndim == 3:
            img = to_gray(img)
        elif not self.gray and img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        case = make_case(img, n_sources=2, rng=crng, size=cs, gray=self.gray, **opts)
        self.cases_made += 1
        for k in range(2):
            src = case.sources[k]
            self._src[s, k] = src[None] if src.ndim == 2 else np.moveaxis(src, -1, 0)
        mk = case.mask
        m0 = (mk == 0).astype(np.int32)
        self._integral[s, 1:, 1:] = m0.cumsum(0).cumsum(1)
        edge = np.zeros(mk.shape, bool)
        edge[:, 1:] |= mk[:, 1:] != mk[:, :-1]
        edge[1:, :] |= mk[1:, :] != mk[:-1, :]
        by, bx = np.nonzero(edge)
        self._has_bnd[s] = by.size > 0
        if by.size:
            pick = rng.integers(0, by.size, self._N_BOUNDARY)
            self._bnd[s, :, 0], self._bnd[s, :, 1] = by[pick], bx[pick]
        g = case.gt if case.gt.ndim == 2 else to_gray(case.gt)
        mu = cv2.boxFilter(g, cv2.CV_32F, (p, p), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        mu2 = cv2.boxFilter(g * g, cv2.CV_32F, (p, p), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        sd = np.sqrt(np.maximum(mu2 - mu * mu, 0))[: cs - p + 1: 2, : cs - p + 1: 2]
        fy, fx = np.nonzero(sd <= np.quantile(sd, 0.1))
        pick = rng.integers(0, fy.size, self._N_FLAT)
        self._flat[s, :, 0], self._flat[s, :, 1] = fy[pick] * 2, fx[pick] * 2
        self._used[s] = 0

    # -- public ------------------------------------------------------------------------------
    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``batch`` patch pairs.

        Returns
        -------
        a, b : ndarray
            float32 ``(batch, C, patch, patch)`` with ``C`` = 1 (gray) or 3.
        label : ndarray
            float32 ``(batch,)``: fraction of the patch where ``a`` is the focused source.
        """
        n = int(batch)
        p, rng = self.patch, self.rng
        lim = self.case_size - p
        slot = rng.integers(0, self.pool_size, n)
        ys = rng.integers(0, lim + 1, n)
        xs = rng.integers(0, lim + 1, n)
        u = rng.random(n)
        nb = (u < self.p_boundary) & self._has_bnd[slot]
        nf = (u >= self.p_boundary) & (u < self.p_boundary + self.p_flat)
        k = int(nb.sum())
        if k:
            pts = self._bnd[slot[nb], rng.integers(0, self._N_BOUNDARY, k)]
            ys[nb] = np.clip(pts[:, 0] - rng.integers(1, p, k), 0, lim)
            xs[nb] = np.clip(pts[:, 1] - rng.integers(1, p, k), 0, lim)
        k = int(nf.sum())
        if k:
            pts = self._flat[slot[nf], rng.integers(0, self._N_FLAT, k)]
            ys[nf] = np.minimum(pts[:, 0], lim)
            xs[nf] = np.minimum(pts[:, 1], lim)
        swap = rng.random(n) < 0.5
        ia = swap.astype(np.intp)
        a = self._views[slot, ia, :, ys, xs]
        b = self._views[slot, 1 - ia, :, ys, xs]
        I = self._integral
        frac = (I[slot, ys + p, xs + p] - I[slot, ys, xs + p] - I[slot, ys + p, xs] + I[slot, ys, xs]) / float(p * p)
        label = np.where(swap, 1.0 - frac, frac).astype(np.float32)
        self._used += np.bincount(slot, minlength=self.pool_size)
        for s in np.nonzero(self._used >= self.patches_per_case)[0]:
            self._refill(int(s))
        return a, b, label

    def iter_batches(self, batch: int, n_batches: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``n_batches`` batches (forever when ``None``)."""
        i = 0
        while n_batches is None or i < n_batches:
            yield self.sample(batch)
            i += 1


def torch_dataset(images: Sequence[np.ndarray], *, batch: int = 32, n_batches: int | None = None,
                  seed: int = 0, **sampler_options):
    """A ``torch.utils.data.IterableDataset`` yielding ready batches ``(a, b, label)`` as tensors.

    Use with ``DataLoader(ds, batch_size=None)``. Each DataLoader worker gets its own sampler
    seeded ``(seed, worker_id)``; with ``n_batches`` each worker yields that many batches.
    torch is imported only here.
    """
    import torch

    class _DS(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            wid = 0 if info is None else info.id
            s = seed if info is None else int(np.random.SeedSequence([seed, wid]).generate_state(1)[0])
            sampler = PatchSampler(images, seed=s, **sampler_options)
            for a, b, lab in sampler.iter_batches(batch, n_batches):
                yield torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(lab)

    return _DS()


# --------------------------------------------------------------------------------------------
# Preview
# --------------------------------------------------------------------------------------------
def contact_sheet(cases: Sequence[SynthCase], *, tile: int = 160, gap: int = 4,
                  titles: Sequence[str] | None = None) -> np.ndarray:
    """Render cases as an RGB uint8 contact sheet: one row per case.

    Each row shows the sources (A, B, ...), the ground truth and the label mask (turbo colour
    map: source A dark blue ... last source dark red); ``titles`` adds a caption line under
    each row.
    """
    cap = 18 if titles is not None else 0
    font = cv2.FONT_HERSHEY_SIMPLEX

    def rgb(x, tw):
        u8 = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
        u8 = np.repeat(u8[..., None], 3, 2) if u8.ndim == 2 else u8
        return cv2.resize(u8, (tw, tile), interpolation=cv2.INTER_AREA)

    rows = []
    for i, c in enumerate(cases):
        h, w = c.mask.shape
        tw = int(round(tile * w / h))
        tiles = [rgb(s, tw) for s in c.sources] + [rgb(c.gt, tw)]
        m = np.clip(np.rint(c.mask.astype(np.float32) * (255.0 / max(c.n_sources - 1, 1))), 0, 255).astype(np.uint8)
        m = cv2.cvtColor(cv2.applyColorMap(m, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
        tiles.append(cv2.resize(m, (tw, tile), interpolation=cv2.INTER_NEAREST))
        for t, lab in zip(tiles, list(c.names) + ["gt", "mask"]):
            cv2.putText(t, lab, (5, 17), font, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(t, lab, (5, 17), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        row = np.full((tile + cap, len(tiles) * (tw + gap) - gap, 3), 255, np.uint8)
        for j, t in enumerate(tiles):
            row[:tile, j * (tw + gap): j * (tw + gap) + tw] = t
        if cap and titles[i]:
            cv2.putText(row, str(titles[i]), (3, tile + cap - 5), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rh = tile + cap
    sheet = np.full((len(rows) * (rh + gap) - gap, width, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        sheet[i * (rh + gap): i * (rh + gap) + rh, : r.shape[1]] = r
    return sheet


@dataclass
class HandheldStack:
    """A synthetic hand-held focus stack with known motion (see :func:`handheld_stack`).

    Attributes
    ----------
    frames : list of ndarray
        ``uint8`` RGB frames, all ``h x w``.
    transforms : list of ndarray
        True 3x3 frame -> reference maps (pixel centres at integers); the identity for the
        reference.
    reference : int
        Index of the reference frame (the middle one).
    blur : list of float
        Largest defocus radius (px) in each frame.
    """

    frames: list
    transforms: list
    reference: int
    blur: list


def handheld_stack(photo: np.ndarray, *, rng: np.random.Generator, n: int = 7, size: tuple[int, int] = (1200, 800),
                   max_shift: float = 60.0, max_rotation: float = 2.5, breathing: float = 0.02,
                   max_blur: float = 20.0, flicker: float = 0.1, noise: float = 0.01) -> HandheldStack:
    """Synthesise a hand-held focus stack of one photo with known camera motion.

    The photo is resized to a canvas larger than the frame by the largest motion on every side
    (so every frame shows real content everywhere). The scene has a smooth random depth map;
    frame ``i`` is focused at depth ``i / (n - 1)`` and every scene point is blurred with a
    pillbox of radius ``max_blur * |depth - focus|`` (from sharp to ``max_blur`` across the
    stack), in scene coordinates. Then each frame is cut from the canvas through its own motion:
    a random shift of up to ``max_shift`` px per axis, a rotation of up to ``max_rotation``
    degrees about the centre and a magnification growing linearly through the stack by
    ``+-breathing`` (focus breathing), relative to the middle (reference) frame. Last, an
    exposure gain of ``1 +- flicker`` and Gaussian sensor noise of ``noise`` (of full scale).

    Parameters
    ----------
    photo : ndarray
        ``HxWx3`` photo (uint8 or float in [0, 1]).
    rng : numpy.random.Generator, keyword-only
        Source of every random choice.
    n : int, keyword-only
        Frames.
    size : (int, int), keyword-only
        ``(w, h)`` of the frames.

    Returns
    -------
    HandheldStack
    """
    w, h = size
    ref = n // 2
    img = to_float(photo)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[0] > img.shape[1]:  # portrait photo: turn it to landscape
        img = np.ascontiguousarray(np.rot90(img))
    radius = math.hypot(w, h) / 2.0
    margin = int(math.ceil(max_shift + radius * (math.radians(max_rotation) + breathing) + 4))
    cw, ch = w + 2 * margin, h + 2 * margin
    canvas = cv2.resize(img[..., :3], (cw, ch), interpolation=cv2.INTER_CUBIC)
    coarse = rng.random((3, 4)).astype(np.float32)
    depth = cv2.resize(coarse, (cw, ch), interpolation=cv2.INTER_CUBIC)
    depth = (depth - depth.min()) / max(float(depth.max() - depth.min()), 1e-6)
    radii = np.array([0.0, 1.0, 2.0, 3.5, 5.0, 7.5, 10.0, 13.0, 16.5, 20.0]) * (max_blur / 20.0)
    blurred = [defocus(canvas, "disk", float(r)) for r in radii]
    frames, transforms, blur = [], [], []
    for i in range(n):
        focus = i / max(n - 1, 1)
        r = max_blur * np.abs(depth - focus)
        k = np.clip(np.searchsorted(radii, r, side="right") - 1, 0, len(radii) - 2)
        frac = np.clip((r - radii[k]) / (radii[k + 1] - radii[k]), 0.0, 1.0)[..., None]
        scene = np.zeros_like(canvas)
        for j in np.unique(k):  # linear blend of the two nearest blur radii
            m = (k == j)[..., None]
            scene += m * ((1.0 - frac) * blurred[j] + frac * blurred[j + 1])
        if i == ref:
            t = np.eye(3)
        else:
            s = 1.0 + breathing * (2.0 * i / max(n - 1, 1) - 1.0)
            a = math.radians(rng.uniform(-max_rotation, max_rotation))
            lin = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
            t = np.eye(3)
            t[:2, :2] = lin
            t[:2, 2] = c - lin @ c + rng.uniform(-max_shift, max_shift, 2)
        # frame pixel x shows reference point t @ x, i.e. canvas point t @ x + margin
        m = np.array([[1.0, 0.0, margin], [0.0, 1.0, margin], [0.0, 0.0, 1.0]]) @ t
        f = cv2.warpAffine(scene, m[:2], (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)
        f = f * rng.uniform(1.0 - flicker, 1.0 + flicker) + rng.normal(0.0, noise, f.shape).astype(np.float32)
        frames.append(from_float(np.clip(f, 0.0, 1.0)))
        transforms.append(t)
        blur.append(float(r.max()))
    return HandheldStack(frames, transforms, ref, blur)
