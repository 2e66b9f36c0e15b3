"""Frames read on demand: what a method that visits each frame a few times needs from an engine.

A method that scores each frame on its own and then touches the frames again only where its
decision needs them (``sff-fast``: the network pass, the chosen pixels, the boxes around
boundaries) does not need the whole stack in memory as float32. It takes a
:class:`FrameSource`, which hands out one frame, or one box of a frame, at a time as float32 in
[0, 1]. :class:`ArrayFrames` wraps frames already in memory (the :func:`mfif.fuse` path); the
local engine's frame cache gives one that reads from disk (:class:`mfif.stack.CacheFrames`), so
the fusion holds one frame at a time.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .io import to_gray

__all__ = ["FrameSource", "ArrayFrames", "as_frames"]


class FrameSource:
    """``n`` frames of one ``shape`` (``(H, W)`` or ``(H, W, C)``), float32 in [0, 1], on demand.

    Subclasses implement :meth:`frame` and may implement :meth:`crop` more cheaply than
    cutting a whole frame.
    """

    n: int
    shape: tuple
    #: each frame's luminance once computed (a list of ``n`` slots), or None: computed per request
    _grays: list | None = None

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` (float32 in [0, 1]; may be a view the caller must not modify)."""
        raise NotImplementedError

    def crop(self, k: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Rows ``y0:y1``, columns ``x0:x1`` of frame ``k`` (float32, possibly a view)."""
        return self.frame(k)[y0:y1, x0:x1]

    def gray(self, k: int) -> np.ndarray:
        """Luminance of frame ``k`` (:func:`mfif.io.to_gray`), kept when the source keeps them."""
        if self._grays is None:
            return to_gray(self.frame(k))
        if self._grays[k] is None:
            self._grays[k] = to_gray(self.frame(k))
        return self._grays[k]

    def gray_crop(self, k: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Luminance of a box of frame ``k`` (a view of the kept luminance, if there is one)."""
        if self._grays is not None and self._grays[k] is not None:
            return self._grays[k][y0:y1, x0:x1]
        return to_gray(self.crop(k, y0, y1, x0, x1))

    def crop_and_gray(self, k: int, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
        """A box of frame ``k`` and its luminance, the box read once."""
        c = self.crop(k, y0, y1, x0, x1)
        if self._grays is not None and self._grays[k] is not None:
            return c, self._grays[k][y0:y1, x0:x1]
        return c, to_gray(c)

    def __len__(self) -> int:
        return self.n


class ArrayFrames(FrameSource):
    """Frames already in memory: a list of float32 ``HxW`` or ``HxWxC`` arrays in [0, 1].

    Their luminance is computed once per frame, when first asked for, and kept (boxes of it are
    views).
    """

    def __init__(self, sources: Sequence[np.ndarray]):
        self.sources = list(sources)
        self.n = len(self.sources)
        self.shape = tuple(self.sources[0].shape)
        self._grays = [None] * self.n

    def frame(self, k: int) -> np.ndarray:
        return self.sources[k]

    def gray_crop(self, k: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.gray(k)[y0:y1, x0:x1]

    def crop_and_gray(self, k: int, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
        return self.crop(k, y0, y1, x0, x1), self.gray_crop(k, y0, y1, x0, x1)


def as_frames(frames) -> FrameSource:
    """``frames`` as a :class:`FrameSource` (a sequence of arrays is wrapped in :class:`ArrayFrames`)."""
    return frames if isinstance(frames, FrameSource) else ArrayFrames(frames)
