"""The options every alignment takes: which frame is the reference, how large a residual is allowed.

Kept apart from the registration so that checking these options (which ``mfif fuse`` does for
every stack, aligned or not) imports none of it.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UsageError

__all__ = ["resolve_reference", "resolve_max_residual"]


def resolve_reference(reference: str | int, n: int, *, option: str = "reference",
                      allow_negative: bool = True) -> int:
    """Index of the reference frame of an ``n``-frame stack.

    Parameters
    ----------
    reference : {"first", "middle", "last"} or int or str of an int
        ``"middle"`` is ``n // 2``; integers are 0-based (negative ones count from the end when
        ``allow_negative``).
    n : int
        Number of frames.
    option : str, keyword-only
        Name of the option in error messages (e.g. ``--reference``).

    Raises
    ------
    UsageError
        Not one of the names, not an integer, or out of range; the message names ``option``
        and the accepted values.
    """
    names = {"first": 0, "middle": n // 2, "last": n - 1}
    accepted = f"first, middle, last or a frame index 0..{n - 1}"
    if isinstance(reference, str):
        key = reference.strip().lower()
        if key in names:
            return names[key]
        try:
            reference = int(key)
        except ValueError:
            raise UsageError(f"{option} must be {accepted}; got {reference!r}") from None
    if isinstance(reference, (bool, np.bool_)) or not isinstance(reference, (int, np.integer)):
        raise UsageError(f"{option} must be {accepted}; got {reference!r}")
    lo = -n if allow_negative else 0
    if not lo <= int(reference) < n:
        raise UsageError(f"{option} {reference} is out of range for {n} frames; use {accepted}")
    return int(reference) % n


def resolve_max_residual(max_residual: float | str | None, w: int, h: int) -> float | None:
    """Residual limit in full-resolution px: a number, None (no limit) or ``"auto"``.

    ``"auto"`` is 0.2 % of the frame diagonal, at least 2 px (5.1 px for 2048 x 1536).
    """
    if max_residual is None:
        return None
    if isinstance(max_residual, str) and max_residual == "auto":
        return max(2.0, 0.002 * math.hypot(w, h))
    try:
        v = float(max_residual)
    except (TypeError, ValueError):
        v = float("nan")
    if not v > 0 or not math.isfinite(v):
        raise UsageError(f"max_residual must be a positive number of pixels, 'auto' or None, got {max_residual!r}")
    return v
