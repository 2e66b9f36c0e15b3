"""The Python entry point: :func:`fuse`."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from .errors import UsageError
from .io import check_sources, to_float
from .methods import get_method, parse_params
from .result import FusionResult

__all__ = ["fuse", "prepare_sources"]


def prepare_sources(sources: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Validate sources and convert them to float32 in [0, 1] (alpha dropped)."""
    srcs = list(sources)  # a list of images or an NxHxW[xC] array
    check_sources(srcs, names)
    out = []
    for s in srcs:
        f = to_float(np.asarray(s))
        if f.ndim == 3 and f.shape[2] == 4:
            f = f[..., :3]
        if f.ndim == 3 and f.shape[2] not in (1, 3):
            raise UsageError(f"unsupported channel count {f.shape[2]} (use gray, RGB or RGBA)")
        if f.ndim == 3 and f.shape[2] == 1:
            f = f[..., 0]
        out.append(np.ascontiguousarray(f, dtype=np.float32))
    return out


def fuse(sources: Sequence[np.ndarray], *, method: str = "sff", **params: Any) -> FusionResult:
    """Fuse two or more multi-focus sources into one all-in-focus image.

    Parameters
    ----------
    sources : sequence of ndarray
        Two or more images of one scene with the same shape: ``HxW`` or ``HxWxC`` (RGB; an
        alpha channel is dropped), ``uint8``, ``uint16`` or float in [0, 1].
    method : str, keyword-only
        A name from :data:`mfif.methods.METHODS` (``mfif methods`` lists them). Default
        ``"sff"``, the Semantic Focus Fusion CNN.
    **params
        Method options (see ``mfif methods``); unknown names or bad values raise
        :class:`~mfif.errors.UsageError`.

    Returns
    -------
    FusionResult
        ``fused`` is float32 in [0, 1]; convert with :func:`mfif.io.from_float` to the
        sources' dtype for writing.

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
    srcs = prepare_sources(sources)
    func = m.load()
    t0 = time.perf_counter()
    res = func(srcs, **opts)
    res.info.setdefault("seconds", time.perf_counter() - t0)
    res.info.setdefault("params", opts)
    res.method = method
    return res
