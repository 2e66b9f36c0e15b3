"""The Python entry point: :func:`fuse`."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from .errors import UsageError
from .io import check_finite, check_sources, to_float
from .methods import DEFAULT_METHOD, get_method, parse_params
from .result import FusionResult

__all__ = ["fuse", "fuse_frames", "prepare_sources", "float_range"]


def prepare_sources(sources: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Validate sources and convert them to float32 in [0, 1] (alpha dropped).

    Float sources are taken as they are; :func:`fuse` first maps float stacks that leave
    [0, 1] into it (:func:`float_range`).
    """
    srcs = _listed(sources)
    check_sources(srcs, names)
    names = names or [f"source {i + 1}" for i in range(len(srcs))]
    return [unit_float(s, name) for s, name in zip(srcs, names)]


def unit_float(image: np.ndarray, name: str = "source") -> np.ndarray:
    """One source as :func:`prepare_sources` converts it: float32 (integers scaled to [0, 1],
    floats as they are), alpha dropped, a single channel squeezed; bad types, channel counts,
    empty or non-finite images raise :class:`UsageError` naming ``name``."""
    a = np.asarray(image)
    if a.dtype.kind not in "fb" and a.dtype not in (np.uint8, np.uint16):
        raise UsageError(f"{name}: unsupported pixel type {a.dtype} (use uint8, uint16, float or bool)")
    check_finite(a, name)
    f = to_float(a)
    if f.ndim == 3 and f.shape[2] == 4:
        f = f[..., :3]
    if f.ndim == 3 and f.shape[2] not in (1, 3):
        raise UsageError(f"{name}: unsupported channel count {f.shape[2]} (use gray, RGB or RGBA)")
    if f.ndim == 3 and f.shape[2] == 1:
        f = f[..., 0]
    if min(f.shape[:2]) < 1:
        raise UsageError(f"{name}: empty image {f.shape}")
    return np.ascontiguousarray(f, dtype=np.float32)


def map_to_unit(image: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    """A float32 image of intensities in ``value_range = (lo, hi)`` mapped linearly onto [0, 1],
    as :func:`fuse` maps float sources (see :func:`float_range`); ``None`` or ``(0, 1)``: the
    image itself. ``lo == hi`` maps by a span of 1 (a constant stack stays constant)."""
    lo, hi = value_range or (0.0, 1.0)
    if (lo, hi) == (0.0, 1.0):
        return image
    return (image - np.float32(lo)) / np.float32(hi - lo if hi > lo else 1.0)


def _listed(sources) -> list:
    """The sources as a list (a sequence, an NxHxW[xC] array or any iterable of images)."""
    if sources is None or isinstance(sources, (str, bytes)) or not hasattr(sources, "__iter__"):
        raise UsageError(f"sources must be a sequence of two or more images (arrays), got {type(sources).__name__}")
    return list(sources)


def float_range(sources: Sequence[np.ndarray]) -> tuple[float, float]:
    """The interval float sources are mapped from onto [0, 1] for fusion: (0, 1) when they fit in it.

    Float images (a microscope's calibrated intensities, a signed TIFF) keep their own range end
    to end: :func:`fuse` maps the stack's joint ``[min, max]`` linearly onto [0, 1], fuses, and
    maps the result back, so nothing is clipped and the fused values stay comparable to the
    sources. Integer sources are always (0, 1) (they are scaled by their type's maximum).
    """
    lo, hi = 0.0, 1.0
    for s in sources:
        a = np.asarray(s)
        if a.dtype.kind == "f" and a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, hi


def fuse(sources: Sequence[np.ndarray], *, method: str = DEFAULT_METHOD, value_range: tuple[float, float] | None = None,
         **params: Any) -> FusionResult:
    """Fuse two or more multi-focus sources into one all-in-focus image.

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more images of one scene with the same shape: ``HxW`` or ``HxWxC`` (RGB; an
        alpha channel is dropped), ``uint8``, ``uint16`` or float. Float values must be
        finite; outside [0, 1] they keep their own range (see :func:`float_range`).
    method : str, keyword-only
        A name from :data:`mfif.methods.METHODS` (``mfif methods`` lists them). Default
        ``"sff-fast"``, the light Semantic Focus Fusion network (``"sff"``: the paper's CNN).
    value_range : (float, float), optional, keyword-only
        For float sources: the interval mapped onto [0, 1] for fusion, instead of the sources'
        own (:func:`float_range`); a tiled run passes the whole stack's so that every tile is
        mapped alike.
    **params
        Method options (see ``mfif methods``); unknown names or bad values raise
        :class:`~mfif.errors.UsageError`.

    Returns
    -------
    FusionResult
        ``fused`` is float32: in [0, 1] for integer sources (convert with
        :func:`mfif.io.from_float` to the sources' dtype for writing), in the sources' own
        range for float sources.

    Examples
    --------
    >>> import numpy as np, mfif
    >>> a = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    >>> res = mfif.fuse([a, a], method="average")
    >>> bool(np.allclose(res.fused, a))
    True
    """
    m = get_method(method)
    opts = parse_params(m, params)
    sources = _listed(sources)  # iterated three times below: a generator would be spent after one
    srcs = prepare_sources(sources)
    is_float = any(np.asarray(s).dtype.kind == "f" for s in sources)
    lo, hi = (value_range if value_range is not None else float_range(sources)) if is_float else (0.0, 1.0)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi >= lo):
        raise UsageError(f"value_range must be two finite numbers lo <= hi, got {value_range}")
    srcs = [map_to_unit(s, (lo, hi)) for s in srcs]
    func = m.load()
    t0 = time.perf_counter()
    res = func(srcs, **opts)
    return _finish(res, method, opts, t0, (lo, hi))


def _finish(res: FusionResult, method: str, opts: dict, t0: float, value_range: tuple[float, float]) -> FusionResult:
    """What :func:`fuse` and :func:`fuse_frames` add to a method's result: its time and options,
    its name, and the fused image mapped back from [0, 1] to ``value_range``."""
    res.info.setdefault("seconds", time.perf_counter() - t0)
    res.info.setdefault("params", opts)
    lo, hi = value_range
    if (lo, hi) != (0.0, 1.0):
        span = hi - lo if hi > lo else 1.0
        res.fused = np.clip(res.fused * np.float32(span) + np.float32(lo), lo, hi).astype(np.float32)
        res.info["value_range"] = (lo, hi)
    res.method = method
    return res


def fuse_frames(frames, *, method: str = DEFAULT_METHOD, value_range: tuple[float, float] = (0.0, 1.0),
                keep_maps: bool = True, **params: Any) -> FusionResult:
    """:func:`fuse` on frames read on demand: a :class:`mfif.frames.FrameSource` of float32
    frames in [0, 1] (mapped from ``value_range`` by the source).

    A method that declares a frame-source form (``frames_target`` in the registry) reads the
    frames as it needs them; any other method gets them all as a list. ``keep_maps=False``
    lets the method skip its per-frame stage maps. The fused image is mapped back to
    ``value_range``.
    """
    m = get_method(method)
    opts = parse_params(m, params)
    t0 = time.perf_counter()
    func = m.load_frames()
    if func is not None:
        res = func(frames, keep_maps=keep_maps, **opts)
    else:
        res = m.load()([frames.frame(k) for k in range(frames.n)], **opts)
    return _finish(res, method, opts, t0, value_range)
