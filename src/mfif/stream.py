"""Streaming fusion: frames pushed one at a time, the fused image and depth map at any point.

A microscope or a camera pushes frames as it shoots; :class:`StackStream` folds each one into
a running state of fixed size (independent of the number of frames) and drops it. What it
computes is the *soft* blend of a per-frame focus score ``s_k`` (the ``sff-fast`` network or a
classic focus measure): the fused image is ``sum_k w_k I_k`` with ``w_k = softmax_k(s_k / T)``,
the depth map is ``argmax_k s_k``. Kept in log-sum-exp form (a running maximum of ``s / T``
and the weights relative to it), this is exactly the batch result
``mfif.fuse(frames, method=..., blend="soft")`` after every frame, up to float rounding.

Memory: the frame being pushed and its score map, plus, per pixel, the weighted sum (``C``
float32), the weight total and the running maximum (one float32 each) and the depth index
(int16), whatever the number of frames. Focus scores are per frame, so a frame's cost does not
grow with the stack.

References
----------
.. [1] I. Ismail and K. H. Ghazali, "Deep Learning-Based Semantic Focus Fusion for
   High-Quality Multifocus Image", 2025 (the focus network's task).
.. [2] S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8), 1994.
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError
from .io import to_gray
from .result import FusionResult

__all__ = ["StackStream", "STREAM_METHODS"]

#: Methods whose focus score is a function of one frame, and so can stream.
STREAM_METHODS = ("sff-fast", "focus-map")


class StackStream:
    """Fuse a focus stack frame by frame with bounded memory.

    Parameters
    ----------
    method : {"sff-fast", "focus-map"}, keyword-only
        Where the per-frame score comes from: the light SFF network, or the classic focus
        measure of ``focus-map`` (``measure``, ``window``).
    temperature : float, keyword-only
        Softmax temperature of the blend (the ``temperature`` option of ``blend="soft"``).
    **options
        The method's scoring options: ``weights``, ``device``, ``threads``, ``tile`` for
        ``sff-fast``; ``measure``, ``window`` for ``focus-map``.

    Examples
    --------
    >>> import numpy as np
    >>> from mfif.stream import StackStream
    >>> rng = np.random.default_rng(0)
    >>> stream = StackStream(method="focus-map")
    >>> for _ in range(3):
    ...     stream.push(rng.random((32, 32)).astype(np.float32))
    >>> result = stream.result()
    >>> result.fused.shape, int(result.decision.max()) <= 2
    ((32, 32), True)
    """

    def __init__(self, *, method: str = "sff-fast", temperature: float = 0.25, **options):
        from .methods import get_method, parse_params

        if method not in STREAM_METHODS:
            raise UsageError(f"method {method!r} cannot stream; streaming methods: {', '.join(STREAM_METHODS)}")
        m = get_method(method)
        allowed = {"sff-fast": ("weights", "device", "threads", "tile"), "focus-map": ("measure", "window")}[method]
        extra = set(options) - set(allowed)
        if extra:
            raise UsageError(f"StackStream(method={method!r}): unknown option(s) {', '.join(sorted(extra))}; "
                             f"options: {', '.join(allowed)}, temperature")
        self.method = method
        # both methods declare the soft blend's temperature: checked as batch fusion checks it
        self.options = m.options(parse_params(m, {**options, "temperature": temperature}))
        self.temperature = float(self.options["temperature"])
        self.count = 0
        self._shape: tuple[int, ...] | None = None
        self._acc = self._total = self._max = self._depth = None

    def frame_score(self, gray: np.ndarray) -> np.ndarray:
        """The per-frame focus score at full resolution (``HxW`` float32)."""
        if self.method == "sff-fast":
            from .sff.fast_fusion import fast_scores, upsample_scores

            o = self.options
            grid = fast_scores([gray], weights=o["weights"], device=o["device"], threads=o["threads"], tile=o["tile"])
            return upsample_scores(grid[0], gray.shape)
        from .methods.focus_map import frame_scores

        return frame_scores(gray, measure=self.options["measure"], window=self.options["window"])

    def push(self, frame: np.ndarray) -> None:
        """Fold one frame (float32 in [0, 1], ``HxW`` or ``HxWxC``, the shape of the first) into the state."""
        f = np.asarray(frame)
        if f.dtype != np.float32:
            raise UsageError(f"frame {self.count + 1}: dtype {f.dtype}, expected float32 in [0, 1] "
                             "(mfif.io.to_float converts integer images)")
        if self._shape is None:
            if f.ndim not in (2, 3) or min(f.shape[:2]) < 1:
                raise UsageError(f"frame 1: shape {f.shape}, expected HxW or HxWxC")
            self._shape = f.shape
        elif f.shape != self._shape:
            raise UsageError(f"frame {self.count + 1}: shape {f.shape}, the stream's frames are {self._shape}")
        if not np.isfinite(f).all():
            raise UsageError(f"frame {self.count + 1}: {int((~np.isfinite(f)).sum())} non-finite pixel(s)")
        s = self.frame_score(to_gray(f)) / np.float32(self.temperature)
        k = self.count
        if k == 0:
            self._max = s.astype(np.float32, copy=True)
            self._total = np.ones(s.shape, np.float32)
            self._acc = np.array(f, dtype=np.float32, copy=True)
            self._depth = np.zeros(s.shape, np.int16)
        else:
            new_max = np.maximum(self._max, s)
            old = np.exp(self._max - new_max)  # rescales what came before
            cur = np.exp(s - new_max)
            self._depth[s > self._max] = k  # ties keep the earlier frame, as arg-max does
            self._total *= old
            self._total += cur
            if f.ndim == 3:
                old, cur = old[..., None], cur[..., None]
            self._acc *= old
            self._acc += cur * f
            self._max = new_max
        self.count += 1

    def result(self) -> FusionResult:
        """The fused image and depth map of the frames pushed so far."""
        if self.count == 0:
            raise UsageError("StackStream.result(): no frame pushed yet")
        total = self._total[..., None] if self._acc.ndim == 3 else self._total
        fused = np.clip(self._acc / total, 0.0, 1.0).astype(np.float32)
        return FusionResult(fused=fused, method=self.method, decision=self._depth.copy(),
                            info={"frames": self.count, "blend": "soft", "temperature": self.temperature})
