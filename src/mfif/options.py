"""One checker for every number a user gives: CLI flags, method options, synthesis options.

Comparisons with NaN are always false, so a plain ``if value < lo`` lets NaN through every
range check; and ``float("inf")`` parses without complaint. :func:`check_number` rejects both
before any range test and names the option and the accepted range in its message, so that every
entry point (the argparse ``type=`` functions built by :func:`number_arg`, :class:`mfif.methods.Param`,
the synthesis options) says the same thing the same way.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable

from .errors import UsageError

__all__ = ["check_number", "number_arg", "numbers_arg", "describe_range"]


def describe_range(lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False,
                   integer: bool = False) -> str:
    """Human wording of an accepted range, e.g. ``"a finite number > 0"``, ``"an integer in 1..100"``."""
    kind = "an integer" if integer else "a finite number"
    if lo is not None and hi is not None:
        if integer and not lo_open and not hi_open:
            return f"{kind} in {lo:g}..{hi:g}"
        left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
        return f"{kind} in {left}{lo:g}, {hi:g}{right}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{kind} {'<' if hi_open else '<='} {hi:g}"
    return kind


class _OutOfRange(Exception):
    """Raised by :func:`_convert`; carries the accepted range and the value as given."""


def _convert(value: Any, *, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool,
             integer: bool) -> float | int:
    shown = value if isinstance(value, str) else repr(value)
    bad = _OutOfRange(f"must be {describe_range(lo, hi, lo_open=lo_open, hi_open=hi_open, integer=integer)}, "
                      f"got {shown}")
    if isinstance(value, bool):
        raise bad
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    if not math.isfinite(x):
        raise bad
    if integer:
        if x != math.floor(x):
            raise bad
        try:  # exact for long digit strings, which float would round
            x = int(value.strip()) if isinstance(value, str) else int(x)
        except ValueError:
            x = int(x)
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise bad
    if hi is not None and (x > hi or (hi_open and x == hi)):
        raise bad
    return x


def check_number(value: Any, name: str, *, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> float | int:
    """Convert ``value`` to a finite number inside a range, or raise :class:`UsageError`.

    Parameters
    ----------
    value : str, int, float
        What the user gave (a CLI string or a Python number). Booleans are refused: ``True`` is
        no radius.
    name : str
        How the message names the option (``"--max-memory"``, ``"method sff: option gf_eps"``).
    lo, hi : float, optional, keyword-only
        Bounds of the accepted range; open bounds with ``lo_open`` / ``hi_open``.
    integer : bool, keyword-only
        Accept integers only (``"3"``, ``3`` and ``3.0``; not ``3.5``) and return an ``int``.

    Returns
    -------
    float or int

    Examples
    --------
    >>> check_number("0.5", "--band", lo=0)
    0.5
    >>> check_number("nan", "--band", lo=0)
    Traceback (most recent call last):
    ...
    mfif.errors.UsageError: --band must be a finite number >= 0, got nan
    """
    try:
        return _convert(value, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, integer=integer)
    except _OutOfRange as exc:
        raise UsageError(f"{name} {exc}") from None


def number_arg(**limits) -> Callable[[str], float | int]:
    """An argparse ``type=`` function with :func:`check_number`'s rules.

    ``parser.add_argument("--band", type=number_arg(lo=0))``. argparse prefixes the flag, so a
    bad value reads ``argument -k/--band: must be a finite number >= 0, got nan``.
    """

    def parse(text: str):
        try:
            return _convert(text, **{"lo": None, "hi": None, "lo_open": False, "hi_open": False,
                                     "integer": False, **limits})
        except _OutOfRange as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def numbers_arg(text: str, count: int, name: str, **limits) -> list[float | int]:
    """Parse ``count`` comma-separated numbers (``"0.8,0.1,0.1"``), each checked by :func:`check_number`."""
    parts = str(text).split(",")
    if len(parts) != count:
        raise UsageError(f"{name} must be {count} comma-separated numbers, got {text!r}")
    return [check_number(p, name, **limits) for p in parts]
