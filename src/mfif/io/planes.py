"""The focal planes of a multi-page TIFF (a z-stack in one file): header checks and plane reads.

A microscope or a stacking camera often writes its focal series as one multi-page TIFF or
OME-TIFF. Its full-resolution top-level pages (:func:`mfif.io.tiff_planes`) are the planes.
Two engines read them:

* the Dask engine (:mod:`mfif.zstack`) reads each chunk's window of every page;
* the local engine (:func:`mfif.stack.fuse_stack`) takes :class:`TiffPlane` references in place
  of file paths and decodes one whole page at a time. This suits a stack whose planes fit in
  memory, and it starts without importing Dask.

Both engines get the layout from :func:`tiff_stack_layout`. So both see the same checks and the
same pixel types, and a stack fuses alike on either engine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .paths import _check_readable, display_path
from .read import ImageInfo, check_finite, tiff_planes

__all__ = ["TiffStackLayout", "TiffPlane", "tiff_stack_layout", "tiff_stack_planes", "frame_paths", "expand_frames"]

#: Pixel types of TIFF planes: kept (uint8, uint16, float32) or read as float32 in their own range.
KEEP = (np.uint8, np.uint16, np.float32)
AS_FLOAT = (np.int8, np.int16, np.float16, np.float64)


@dataclass(frozen=True)
class TiffStackLayout:
    """What the pages of a multi-page TIFF hold, from its headers.

    ``pages`` are the planes' page indices. ``shape`` is a page's stored shape: ``(Y, X)`` or
    ``(Y, X, S)`` with S = 1 or 3. ``dtype`` is the type planes are read as. ``native`` is the
    type they are stored as.
    """

    path: str
    pages: tuple
    shape: tuple
    dtype: np.dtype
    native: np.dtype

    @property
    def samples(self) -> int:
        """Samples per pixel as stored: 1 or 3, or 2 and 4 with an extra (alpha) sample."""
        return self.shape[2] if len(self.shape) == 3 else 1

    @property
    def keep(self):
        """The samples a plane is read with: None (all), ``slice(0, 3)`` (RGB of RGBA) or 0
        (the gray of gray + alpha). Alpha is dropped, as :func:`mfif.io.read_image` drops it."""
        return {4: slice(0, 3), 2: 0}.get(self.samples)

    @property
    def frame_shape(self) -> tuple:
        """A plane's shape as the fusion sees it: ``(H, W)`` or ``(H, W, 3)``."""
        return self.shape[:2] if self.samples in (1, 2) else self.shape[:2] + (3,)


def _desc(shape, dtype) -> str:
    return f"{shape[1]}x{shape[0]}" + (f"x{shape[2]}" if len(shape) > 2 else "") + f" {np.dtype(dtype)}"


#: Axes (tifffile's letters) whose pages can be the focal planes: Z, and T, I, Q (a focus sweep
#: recorded as a time series, or pages without a named axis). C (channels), and any second axis
#: beside one of these, are not.
_PLANE_AXES = set("ZTIQ")
_AXIS_NAMES = {"Z": "z-planes", "T": "time points", "C": "channels", "I": "images", "Q": "pages", "P": "positions",
               "R": "tiles", "H": "lifetime bins", "E": "lambda bins", "A": "angles", "L": "exposures"}


def _check_axes(p: Path, tf) -> None:
    """Refuse an OME-TIFF or ImageJ hyperstack whose pages are not one series of focal planes:
    several images (series), channels stored as pages, or a second axis beside Z (time points
    of a z-stack, channels of a z-stack). Fusing those pages as one stack would mix them."""
    if not (tf.is_ome or tf.is_imagej):
        return  # a plain multi-page TIFF names no axes: its pages are the planes
    series = tf.series
    if tf.is_ome and len(series) > 1:
        raise UsageError(f"{display_path(p)}: holds {len(series)} images (OME series); mfif fuses one z-stack: "
                         "save the one to fuse as its own file")
    if not series:
        return
    axes, shape = series[0].axes, tuple(series[0].shape)
    extra = [(a, n) for a, n in zip(axes, shape) if a not in "YXS" and n > 1]
    if len(extra) == 1 and extra[0][0] in _PLANE_AXES:
        return
    what = " x ".join(f"{n} {_AXIS_NAMES.get(a, a + ' steps')}" for a, n in extra)
    if len(extra) == 1:  # channels (or another axis) of one 2-D image
        raise UsageError(f"{display_path(p)}: its pages are {what} (axes {axes}), not focal planes; mfif fuses a "
                         "z-stack (axes ZYX)")
    raise UsageError(f"{display_path(p)}: {what} (axes {axes}); mfif fuses one z-stack of gray or RGB planes: "
                     "save each channel or time point as its own z-stack first")


def tiff_stack_layout(path: str | os.PathLike) -> TiffStackLayout:
    """Check a multi-page TIFF as a z-stack from its headers alone and return its layout.

    Raises
    ------
    UsageError
        One line naming the file: unreadable, fewer than 2 planes, pages of different sizes or
        pixel types, planes that are not gray or interleaved RGB, a pixel type mfif does not
        fuse, or an OME-TIFF / ImageJ hyperstack whose pages are not one series of focal planes
        (several images, channels, or time points beside Z).
    """
    import tifffile  # imported where used: most runs read no TIFF

    p = Path(path)
    _check_readable(p)
    try:
        tf = tifffile.TiffFile(str(p))
    except Exception as exc:  # tifffile raises many types for files that are not TIFF
        raise UsageError(f"{display_path(p)}: cannot read TIFF ({type(exc).__name__}: {exc})") from None
    with tf:
        pages = tiff_planes(tf)
        if len(pages) < 2:
            raise UsageError(f"{display_path(p)}: one plane only; a z-stack needs at least 2 focal planes "
                             "(pages of a TIFF)")
        first = tf.pages[pages[0]]
        shape, native = tuple(first.shape), np.dtype(first.dtype)
        for k, i in enumerate(pages):
            pg = tf.pages[i]
            if tuple(pg.shape) != shape or np.dtype(pg.dtype) != native:
                raise UsageError(f"{display_path(p)}: pages must share a size and pixel type: plane 1 is "
                                 f"{_desc(shape, native)}, plane {k + 1} is {_desc(pg.shape, pg.dtype)}")
            if int(pg.photometric) not in (1, 2) or int(getattr(pg, "planarconfig", 1) or 1) != 1:
                raise UsageError(f"{display_path(p)}: plane {k + 1} is not gray or interleaved RGB "
                                 "(photometric min-is-black or RGB); convert the stack first")
        _check_axes(p, tf)  # after the pages: reading the series turns pages into lighter frames
    if len(shape) == 3 and shape[2] not in (1, 2, 3, 4):
        raise UsageError(f"{display_path(p)}: planes of {shape[2]} samples; mfif fuses gray and RGB "
                         "(an alpha sample is dropped)")
    if len(shape) not in (2, 3) or min(shape[:2]) < 1:
        raise UsageError(f"{display_path(p)}: planes of shape {shape}; mfif fuses 2-D gray and RGB planes")
    if native.type in KEEP:
        dtype = native
    elif native.type in AS_FLOAT:
        dtype = np.dtype(np.float32)  # signed or float data: kept in its own range, never clipped
    else:
        raise UsageError(f"{display_path(p)}: {native} planes are not supported; mfif reads 8/16-bit "
                         "unsigned, 8/16-bit signed and float TIFF")
    return TiffStackLayout(str(p), tuple(pages), shape, dtype, native)


@dataclass(frozen=True)
class TiffPlane:
    """One focal plane of a multi-page TIFF, in place of a frame's file path.

    It is path-like (``os.fspath`` gives the TIFF's path). So the checks that keep outputs off
    the inputs protect the stack's file. :func:`mfif.io.image_info` and
    :func:`mfif.io.read_image` read the plane, not the file.
    """

    layout: TiffStackLayout
    index: int  # 0-based plane number

    def __fspath__(self) -> str:
        return self.layout.path

    @property
    def name(self) -> str:
        """``z.tif plane 3`` (1-based, as messages and the Dask engine name planes)."""
        return f"{Path(self.layout.path).name} plane {self.index + 1}"

    @property
    def suffix(self) -> str:
        return Path(self.layout.path).suffix

    @property
    def stem(self) -> str:
        return Path(self.layout.path).stem

    def __str__(self) -> str:
        return f"{display_path(self.layout.path)} plane {self.index + 1}"

    def info(self) -> ImageInfo:
        """Shape and dtype :meth:`read` returns (from the headers read once for the stack)."""
        return ImageInfo(tuple(self.layout.frame_shape), np.dtype(self.layout.dtype))

    def read(self) -> np.ndarray:
        """The whole plane: ``(H, W)`` or ``(H, W, 3)`` in ``uint8``, ``uint16`` or ``float32``.

        Raises
        ------
        UsageError
            The page cannot be decoded, or a float plane holds NaN or infinite values.
        """
        import tifffile

        lay = self.layout
        try:
            with tifffile.TiffFile(lay.path) as tf:
                img = tf.pages[lay.pages[self.index]].asarray()
        except MemoryError:
            raise UsageError(f"{self}: not enough memory to decode this plane") from None
        except Exception as exc:  # decoder errors come in many types
            raise UsageError(f"{self}: cannot read plane ({type(exc).__name__}: {exc})") from None
        if tuple(img.shape) != tuple(lay.shape):
            raise UsageError(f"{self}: the page decodes to {img.shape}, its header says {lay.shape}")
        if lay.keep is not None:
            img = img[..., lay.keep]
        img = img.astype(lay.dtype, copy=False).reshape(lay.frame_shape)
        if img.dtype.kind == "f":
            check_finite(img, str(self))
        return np.ascontiguousarray(img)


def tiff_stack_planes(path: str | os.PathLike) -> list[TiffPlane]:
    """The planes of a multi-page TIFF as frames for :func:`mfif.stack.fuse_stack` (checked
    from the headers by :func:`tiff_stack_layout`)."""
    layout = tiff_stack_layout(path)
    return [TiffPlane(layout, k) for k in range(len(layout.pages))]


def frame_paths(paths) -> list:
    """The frames of a stack given as files: one :class:`~pathlib.Path` per file (planes already
    made stay as they are), or the planes of one multi-page TIFF given alone, in page order."""
    from .read import is_multipage_tiff

    paths = [p if isinstance(p, TiffPlane) else Path(p) for p in paths]
    if len(paths) == 1 and isinstance(paths[0], Path) and is_multipage_tiff(paths[0]):
        return tiff_stack_planes(paths[0])
    return paths


def expand_frames(specs) -> list:
    """The frames of ``mfif fuse``-style sources: :func:`mfif.io.expand_sources`, then
    :func:`frame_paths` (one multi-page TIFF, given alone or alone in a folder or glob, gives
    its planes)."""
    from .paths import expand_sources

    return frame_paths(expand_sources(specs))
