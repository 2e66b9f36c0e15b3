"""Aligning a z-stack for the Dask engine: transforms from small copies, warping chunk by chunk.

A slide's planes are far larger than memory, but the motion between planes (stage drift, focus
breathing) is a global similarity: one transform per plane. :func:`align_zstack` estimates them
with :func:`mfif.align.estimate_transforms` (the same registration as ``mfif fuse --align``) on
block-mean copies of the planes no larger than ``work_size`` px (one pass over each plane,
chunk by chunk), scales them to full resolution, and returns the planes warped into the common
valid rectangle as a new lazy array (:class:`WarpedPlanes`): a window of it reads only the source
region its pixels come from (plus a 3-px margin for cubic interpolation) and warps it with
:func:`mfif.align.warp_frame`, so no plane is ever held whole.

References
----------
.. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
   correlation coefficient maximization", IEEE TPAMI 30(10):1858-1865, 2008.
"""
from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np

from ..align import estimate_transforms, resolve_max_residual, scale_matrix, warp_frame
from ..errors import AlignmentError
from ..io import GRAY_WEIGHTS
from ..zstack import read_planes

__all__ = ["align_zstack", "small_copies", "warp_zstack", "WarpedPlanes"]

#: Context (px) around a chunk's source region: cubic interpolation reads 2 px beyond a sample.
MARGIN = 3


def small_copies(array, *, work_size: int = 1024) -> tuple[list[np.ndarray], int]:
    """Block-mean gray copies of every plane, longer side at most ``work_size``; and the factor.

    Returns ``(copies, f)``: float32 arrays on the planes' own scale, each ``floor(H / f) x
    floor(W / f)``, where ``f`` is the smallest integer that brings the longer side within
    ``work_size`` (1: the planes themselves, in gray).
    """
    z, h, w = array.shape[:3]
    f = max(1, math.ceil(max(h, w) / int(work_size)))
    copies = []
    for k in range(z):
        plane = array[k].astype(np.float32)
        if plane.ndim == 3:
            if plane.shape[2] == 3:
                r, g, b = GRAY_WEIGHTS
                plane = plane[..., 0] * r + plane[..., 1] * g + plane[..., 2] * b
            else:
                plane = plane[..., 0]
        if f > 1:
            plane = da.coarsen(np.mean, plane, {0: f, 1: f}, trim_excess=True)
        copies.append(plane)
    return [np.ascontiguousarray(c, dtype=np.float32) for c in dask.compute(*copies)], f


def _source_region(matrix: np.ndarray, box: tuple[int, int, int, int], h: int, w: int):
    """The frame rectangle ``(x0, y0, x1, y1)`` whose pixels a reference rectangle ``box`` samples."""
    inv = np.linalg.inv(matrix)
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1], [x1 - 1, y0, 1], [x0, y1 - 1, 1], [x1 - 1, y1 - 1, 1]], float).T
    p = inv @ corners
    p = p[:2] / p[2]
    sx0 = max(0, int(math.floor(p[0].min())) - MARGIN)
    sy0 = max(0, int(math.floor(p[1].min())) - MARGIN)
    sx1 = min(w, int(math.ceil(p[0].max())) + MARGIN + 1)
    sy1 = min(h, int(math.ceil(p[1].max())) + MARGIN + 1)
    if sx1 <= sx0 or sy1 <= sy0:  # nothing of the frame there: any pixel will do (reflection)
        sx0, sy0, sx1, sy1 = 0, 0, min(w, 1), min(h, 1)
    return sx0, sy0, sx1, sy1


def _warp_block(region: np.ndarray, matrix: np.ndarray, offset: tuple[int, int], box) -> np.ndarray:
    """Warp a source ``region`` whose top-left pixel is frame pixel ``offset`` into reference ``box``."""
    shift = np.array([[1.0, 0.0, offset[0]], [0.0, 1.0, offset[1]], [0.0, 0.0, 1.0]])
    return warp_frame(np.ascontiguousarray(region), matrix @ shift, box=box)


def _span(key, n: int) -> tuple[int, int]:
    start, stop, step = key.indices(n)
    if step != 1:
        raise IndexError("aligned planes are read in windows of step 1")
    return start, max(start, stop)


class WarpedPlanes:
    """Array-like ``(Z, y1 - y0, x1 - x0[, C])``: planes warped into the reference box ``box`` on read.

    A window ``[zs, ys, xs]`` reads, from each plane, only the source region its pixels sample
    (:func:`_source_region`, with a :data:`MARGIN` for cubic interpolation) and warps it with
    :func:`mfif.align.warp_frame`, so the fusion task that asks for a window warps just that
    window. Picklable when ``planes`` is (the source's window reader, matrices, box).
    """

    def __init__(self, planes, matrices, box: tuple[int, int, int, int]):
        from .dask import as_planes

        self.planes = as_planes(planes)
        self.matrices = [np.asarray(m, float) for m in matrices]
        self.identity = [bool(np.allclose(m, np.eye(3))) for m in self.matrices]  # read as stored
        self.box = tuple(int(v) for v in box)
        x0, y0, x1, y1 = self.box
        self.tail = tuple(self.planes.shape[3:])
        self.shape = (len(self.matrices), y1 - y0, x1 - x0) + self.tail
        self.dtype, self.ndim = np.dtype(self.planes.dtype), len(self.shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        zkey, ykey, xkey = key[:3]
        ints = [isinstance(k, (int, np.integer)) for k in (ykey, xkey)]  # a row or column: read 1 px wide
        ykey, xkey = (slice(int(k) % n, int(k) % n + 1) if i else k
                      for k, i, n in zip((ykey, xkey), ints, self.shape[1:3]))
        (wy0, wy1), (wx0, wx1) = _span(ykey, self.shape[1]), _span(xkey, self.shape[2])
        x0, y0 = self.box[:2]
        b = (x0 + wx0, y0 + wy0, x0 + wx1, y0 + wy1)
        h, w = self.planes.shape[1:3]
        empty = b[2] <= b[0] or b[3] <= b[1]

        def one(k, _):
            if empty:
                return np.zeros((b[3] - b[1], b[2] - b[0]) + self.tail, self.dtype)
            if self.identity[k]:
                return np.asarray(self.planes[k, b[1]:b[3], b[0]:b[2]])
            m = self.matrices[k]
            sx0, sy0, sx1, sy1 = _source_region(m, b, h, w)
            return _warp_block(np.asarray(self.planes[k, sy0:sy1, sx0:sx1]), m, (sx0, sy0), b)

        res = read_planes((zkey,), self.shape[0], one)
        if any(ints):
            lead = (slice(None),) if isinstance(zkey, slice) else ()
            res = res[lead + tuple(0 if i else slice(None) for i in ints)]
        rest = key[3:]
        return res[(slice(None),) * (res.ndim - len(self.tail)) + rest] if rest else res


def warp_zstack(array, matrices, box: tuple[int, int, int, int], *, chunk: int):
    """The planes warped by ``matrices`` (frame -> reference, full resolution) into ``box``, lazily.

    Returns a dask array ``(Z, y1 - y0, x1 - x0[, C])`` of the input's dtype, chunked ``chunk``
    px in Y and X, over :class:`WarpedPlanes`: any slice of it reads and warps only the source
    regions that slice samples.
    """
    planes = WarpedPlanes(array, matrices, box)
    chunks = (planes.shape[0], chunk, chunk) + planes.tail
    return da.from_array(planes, chunks=chunks, lock=False, asarray=False, name=False)


def align_zstack(array, *, reference="middle", model: str = "similarity", max_residual="auto",
                 skip_unaligned: bool = False, work_size: int = 1024, chunk: int = 1024, names=None, log=None):
    """Register every plane of a z-stack to the reference plane and warp the stack into the common box.

    Parameters
    ----------
    array : dask.array.Array
        ``(Z, Y, X[, C])`` planes.
    reference, model, skip_unaligned, names
        As :func:`mfif.align.estimate_transforms`.
    max_residual : float, "auto" or None
        Largest residual in full-resolution px (``"auto"``: 0.2 % of the plane's diagonal, at
        least 2 px), scaled to the small copies for the estimate.
    work_size : int
        Longest side of the small copies the transforms are estimated on.
    chunk : int
        Chunk side of the aligned array.
    log : callable, optional
        ``log(line)`` gets one line per plane (its transform and residual).

    Returns
    -------
    (dask.array.Array, list of int, list of ndarray, tuple)
        The aligned planes (only those kept), their indices in the input, their full-resolution
        frame -> reference matrices, and the valid box ``(x0, y0, x1, y1)`` in the reference's
        full-resolution pixels.

    Raises
    ------
    AlignmentError
        A plane cannot be aligned (without ``skip_unaligned``), or too little common area.
    """
    z, h, w = array.shape[:3]
    copies, f = small_copies(array, work_size=work_size)
    limit = resolve_max_residual(max_residual, w, h)
    reg = estimate_transforms(copies, reference=reference, model=model,
                              max_residual=None if limit is None else limit / f, skip_unaligned=skip_unaligned,
                              names=names, work_size=work_size)
    s = scale_matrix(1.0 / f)
    full = [np.linalg.inv(s) @ np.asarray(t, float) @ s for t in reg.transforms]
    sx0, sy0, sx1, sy1 = reg.valid_box
    box = (math.ceil(sx0 * f), math.ceil(sy0 * f), min(w, math.floor(sx1 * f)), min(h, math.floor(sy1 * f)))
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        raise AlignmentError(f"the aligned planes share too little area ({box[2] - box[0]}x{box[3] - box[1]} px)")
    if log is not None:
        log(f"aligning on copies reduced {f}x (residuals below in their px, x{f} at full resolution)")
        for line, status in zip(reg.describe(names), reg.status):
            log(("warning: " if status != "ok" else "") + line)
    keep = list(reg.aligned)
    aligned = warp_zstack(array[keep], [full[i] for i in keep], box, chunk=chunk)
    return aligned, keep, [full[i] for i in keep], box
