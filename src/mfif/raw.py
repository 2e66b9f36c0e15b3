"""Camera RAW frames through rawpy (LibRaw), decoded alike for every frame of a stack.

A focus stack is fused from frames that must look alike except for focus. Decoding each RAW
file with its own automatic choices (its own white balance, LibRaw's automatic brightness)
would give frames of slightly different colour and exposure, which a focus measure reads as
detail. :class:`RawSettings` therefore fixes one set of choices for the whole stack: the
reference frame's camera white balance (read once, passed as ``user_wb`` to every frame),
no automatic brightness, 16-bit output, one gamma curve and one output colour space.

References
----------
.. [1] LibRaw, "LibRaw: Data Structures and Constants" and "Postprocessing" (``user_wb``,
   ``no_auto_bright``, ``output_bps``, ``gamm``, ``output_color``), https://www.libraw.org/docs
.. [2] M. Riechert, rawpy (Python wrapper for LibRaw), ``RawPy.postprocess``,
   https://letmaik.github.io/rawpy/
.. [3] IEC 61966-2-1:1999, sRGB (the 2.4 / 12.92 tone curve).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UsageError

__all__ = ["RAW_EXTENSIONS", "RAW_GAMMAS", "RAW_SPACES", "RawSettings", "is_raw", "raw_shape", "decode_raw",
           "camera_white_balance", "stack_settings"]

#: File extensions read as camera RAW (compared in lower case).
RAW_EXTENSIONS = (".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".dng")
#: ``--raw-gamma`` names and LibRaw's (power, toe slope) pairs: the sRGB curve, or linear.
RAW_GAMMAS = {"srgb": (2.4, 12.92), "linear": (1.0, 1.0)}
#: ``--raw-space`` names and rawpy's ``ColorSpace`` members.
RAW_SPACES = {"srgb": "sRGB", "adobe": "Adobe", "prophoto": "ProPhoto"}


def is_raw(path: str | os.PathLike) -> bool:
    """True when ``path``'s extension is a camera RAW format (:data:`RAW_EXTENSIONS`)."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


@dataclass(frozen=True)
class RawSettings:
    """How every RAW frame of one stack is decoded.

    Parameters
    ----------
    gamma : {"srgb", "linear"}
        Tone curve of the output (:data:`RAW_GAMMAS`).
    space : {"srgb", "adobe", "prophoto"}
        Output colour space (:data:`RAW_SPACES`).
    user_wb : tuple of 4 float, optional
        White-balance multipliers (R, G, B, G2) used for every frame; ``None`` means the
        frame's own camera balance (a stack should set it: :func:`stack_settings`).
    """

    gamma: str = "srgb"
    space: str = "srgb"
    user_wb: tuple | None = None

    def __post_init__(self):
        if self.gamma not in RAW_GAMMAS:
            raise UsageError(f"--raw-gamma must be one of {', '.join(RAW_GAMMAS)}, got {self.gamma!r}")
        if self.space not in RAW_SPACES:
            raise UsageError(f"--raw-space must be one of {', '.join(RAW_SPACES)}, got {self.space!r}")
        if self.user_wb is not None:
            wb = tuple(float(v) for v in self.user_wb)
            if len(wb) != 4 or not all(np.isfinite(wb)) or min(wb) <= 0:
                raise UsageError(f"RAW white balance must be 4 finite positive multipliers, got {self.user_wb}")
            object.__setattr__(self, "user_wb", wb)

    def postprocess_kwargs(self) -> dict:
        """Keyword arguments of ``rawpy.RawPy.postprocess`` for these settings."""
        import rawpy

        kw = dict(output_bps=16, no_auto_bright=True, gamma=RAW_GAMMAS[self.gamma],
                  output_color=getattr(rawpy.ColorSpace, RAW_SPACES[self.space]))
        if self.user_wb is not None:
            kw["user_wb"] = list(self.user_wb)
        else:
            kw["use_camera_wb"] = True
        return kw


def _rawpy():
    try:
        import rawpy
    except ImportError:
        raise UsageError("reading camera RAW files needs rawpy: pip install 'mfif[raw]'") from None
    return rawpy


def _open(path: Path, *, unpack: bool = False):
    """A ``rawpy.RawPy`` of ``path``, its header read (and with ``unpack`` its sensor data, which
    decoding needs and sizes and white balance do not); LibRaw's complaints as one-line
    :class:`UsageError` naming the file."""
    from .io import display_path

    rawpy = _rawpy()
    r = rawpy.RawPy()
    try:
        r.open_file(str(path))
        if unpack:
            r.unpack()
        return r
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        r.close()
        raise UsageError(f"{display_path(path)}: cannot read RAW file ({type(exc).__name__}: {exc})") from None


def raw_shape(path: str | os.PathLike) -> tuple:
    """``(H, W, 3)`` of what :func:`decode_raw` returns, from LibRaw's sizes (flip honoured).

    LibRaw's ``flip`` is 0 (as stored), 3 (180 degrees), 5 or 6 (quarter turns, which swap
    width and height).
    """
    with _open(Path(path)) as r:
        s = r.sizes
        h, w = int(s.height), int(s.width)
        if s.pixel_aspect and abs(float(s.pixel_aspect) - 1.0) > 1e-6:  # LibRaw stretches one axis
            if s.pixel_aspect > 1:
                w = int(w * float(s.pixel_aspect) + 0.5)
            else:
                h = int(h / float(s.pixel_aspect) + 0.5)
        if int(s.flip) in (5, 6):
            h, w = w, h
    return (h, w, 3)


def decode_raw(path: str | os.PathLike, settings: RawSettings | None = None) -> np.ndarray:
    """Demosaic one RAW file to an upright ``HxWx3`` ``uint16`` RGB image.

    Parameters
    ----------
    path : path-like
        A RAW file (:data:`RAW_EXTENSIONS`).
    settings : RawSettings, optional
        Decoding choices; default ``RawSettings()`` (the file's own camera balance).

    Returns
    -------
    ndarray
        ``uint16`` RGB, the orientation LibRaw reads from the file applied.
    """
    from .io import display_path

    settings = settings or RawSettings()
    rawpy = _rawpy()
    with _open(Path(path), unpack=True) as r:
        try:
            return np.ascontiguousarray(r.postprocess(**settings.postprocess_kwargs()))
        except (rawpy.LibRawError, ValueError) as exc:
            raise UsageError(f"{display_path(path)}: cannot decode RAW file ({type(exc).__name__}: {exc})") from None


def camera_white_balance(path: str | os.PathLike) -> tuple:
    """The white-balance multipliers (R, G, B, G2) the camera recorded in ``path``.

    Falls back to LibRaw's daylight balance when the file records none, and to 1 for each
    channel when neither is known; a missing G2 is taken from G.
    """
    with _open(Path(path)) as r:
        for wb in (r.camera_whitebalance, r.daylight_whitebalance):
            wb = [float(v) for v in wb]
            if len(wb) == 4 and min(wb[:3]) > 0:
                if not wb[3] > 0:
                    wb[3] = wb[1]
                return tuple(wb)
    return (1.0, 1.0, 1.0, 1.0)


def stack_settings(paths: Sequence[str | os.PathLike], reference: int, settings: RawSettings | None = None
                   ) -> RawSettings | None:
    """``settings`` with the white balance of ``paths[reference]``, or None for a stack without RAW.

    Raises
    ------
    UsageError
        The stack mixes RAW and other files (their colours would not match).
    """
    raw = [is_raw(p) for p in paths]
    if not any(raw):
        return None
    if not all(raw):
        from .io import display_path

        a = next(p for p, r in zip(paths, raw) if r)
        b = next(p for p, r in zip(paths, raw) if not r)
        raise UsageError(f"a stack must be all RAW or no RAW: {display_path(a)} is RAW, {display_path(b)} is not")
    settings = settings or RawSettings()
    return replace(settings, user_wb=camera_white_balance(paths[reference]))
