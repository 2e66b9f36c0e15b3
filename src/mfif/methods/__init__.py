"""Registry of fusion methods.

Each method is a pure function ``func(sources, **params) -> FusionResult`` where ``sources``
is a list of float32 arrays in [0, 1] that share one shape (``HxW`` or ``HxWxC``). The
registry holds an import path rather than the function so that listing methods (and the
classic methods themselves) never imports PyTorch.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import UsageError
from ..options import check_number

__all__ = ["Param", "Method", "METHODS", "DEFAULT_METHOD", "get_method", "parse_params"]

#: The method used when none is named (``mfif fuse``, :func:`mfif.fuse`, :func:`mfif.stack.fuse_stack`).
DEFAULT_METHOD = "sff-fast"


@dataclass(frozen=True)
class Param:
    """One option of a method: its type, default, and allowed values or range.

    ``choices`` is a tuple, or a function returning one, called when first needed (so that a
    library that lists them, such as PyWavelets' wavelets, is imported only then).
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | Callable[[], tuple] | None = None
    min: float | None = None
    max: float | None = None

    @property
    def allowed(self) -> tuple | None:
        """The allowed values (``choices`` resolved), or None for any."""
        c = self.choices
        return _resolve_choices(c) if callable(c) else c

    def convert(self, method: str, raw: Any) -> Any:
        """Convert and check a raw value (a string from the CLI or a Python value).

        Numbers go through :func:`mfif.options.check_number`: NaN, infinities and values
        outside ``[min, max]`` are refused with the accepted range in the message.
        """
        label = f"method {method}: option {self.name}"
        if self.type in (int, float):
            value = check_number(raw, label, lo=self.min, hi=self.max, integer=self.type is int)
            if self.allowed is not None and value not in self.allowed:
                raise UsageError(f"{label} must be one of {', '.join(map(str, self.allowed))}, got {raw}")
            return value
        if self.type is bool:
            low = str(raw).strip().lower()
            if isinstance(raw, bool):
                return raw
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise UsageError(f"{label}={raw!r} must be true or false")
            return low in ("1", "true", "yes", "on")
        if not isinstance(raw, str):
            raise UsageError(f"{label}={raw!r} must be a string")
        value = raw
        if self.allowed is not None and value not in self.allowed:
            raise UsageError(f"{label}={value!r} must be one of " + ", ".join(map(str, self.allowed)))
        return value


@dataclass(frozen=True)
class Method:
    """A registered fusion method, and what an engine needs to know to tile it.

    Attributes
    ----------
    name, target, summary, params
        The name users give, ``"module:function"`` of the pure fusion function, one line of
        description and its options.
    needs_torch, has_decision
        Whether it imports PyTorch; whether it returns a decision (depth) map.
    halo : int
        Context (px) a tile needs on each side for its core to come out as in a whole-image
        run; engines overlap tiles by this much.
    area_options : tuple of str
        Options given as fractions of the image area; engines rescale them to a tile's area so
        that a tile removes the same absolute region sizes as a whole-image run.
    resources : Resources or str
        Its memory model (:class:`mfif.tiling.Resources`), or ``"module:attribute"`` of one
        (imported only when an engine asks).
    frames_target : str
        ``"module:function"`` of a form of the method that reads its frames on demand from a
        :class:`mfif.frames.FrameSource` (``func(frames, keep_maps=..., **params)``); an engine
        that holds the frames elsewhere (the local engine's disk cache) then never needs them
        all in memory. Empty: the method takes a list of arrays only.
    frames_resources : Resources or str or None
        The memory model of the frame-source form (engines that use it plan tiles with this;
        None: ``resources``).
    noise_option : str
        The option (0: estimate) through which the method takes the frames' noise sigma. An
        engine that fuses an image in tiles estimates it once on the whole image
        (:func:`mfif.consistency.frames_noise`) and passes it to every tile
        (:meth:`stack_options`), so that thresholds in noise sigmas mean the same in every tile.
        Empty: the method counts in no noise level, or estimates its own.
    """

    name: str
    target: str  # "module:function"
    summary: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    needs_torch: bool = False
    has_decision: bool = False
    halo: int = 64
    area_options: tuple[str, ...] = ()
    resources: Any = None
    frames_target: str = ""
    frames_resources: Any = None
    noise_option: str = ""

    def load(self) -> Callable:
        mod, fn = self.target.split(":")
        return getattr(importlib.import_module(mod), fn)

    def load_frames(self) -> Callable | None:
        """The frame-source form of the method (``frames_target``), or None."""
        if not self.frames_target:
            return None
        mod, fn = self.frames_target.split(":")
        return getattr(importlib.import_module(mod), fn)

    def options(self, given: dict | None = None) -> dict:
        """Every option's value: the defaults, updated with ``given`` (already checked)."""
        out = {p.name: p.default for p in self.params}
        out.update(given or {})
        return out

    def tile_options(self, given: dict, *, full_area: int, tile_area: int) -> dict:
        """``given`` with the declared area-fraction options rescaled from the whole image's area to a
        tile's, so that a tile removes the same absolute region sizes as a whole-image run (at
        most 0.5, the options' own limit)."""
        area = {k: v for k, v in self.options(given).items() if k in self.area_options}
        return {**given, **{k: min(0.5, float(v) * full_area / tile_area) for k, v in area.items()}}

    def stack_options(self, given: dict, noise: Callable[[], float]) -> dict:
        """``given`` with what a tile needs from the whole image: the noise sigma ``noise()``
        (called only if the method declares ``noise_option`` and the user set none), at least
        1e-9 so that a noise-free image is not estimated again per tile."""
        if not self.noise_option or float(self.options(given).get(self.noise_option) or 0) > 0:
            return dict(given)
        return {**given, self.noise_option: max(float(noise()), 1e-9)}

    def load_resources(self, *, frames: bool = False):
        """The :class:`mfif.tiling.Resources` engines plan tiles with (``frames``: for the
        frame-source form, when the method declares one)."""
        from ..tiling import Resources

        r = self.frames_resources if frames and self.frames_resources is not None else self.resources
        if r is None:
            return Resources()
        if isinstance(r, str):
            mod, attr = r.split(":")
            return getattr(importlib.import_module(mod), attr)
        return r


@functools.lru_cache(maxsize=None)
def _resolve_choices(fn) -> tuple:
    return tuple(fn())


def _wavelets() -> tuple:
    import pywt

    return tuple(pywt.wavelist(kind="discrete"))


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """Look up a method by name; :class:`UsageError` lists the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise UsageError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}") from None


def parse_params(method: Method, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate user options for ``method``; unknown names and bad values raise UsageError."""
    known = {p.name: p for p in method.params}
    out = {}
    for key, value in raw.items():
        k = key.replace("-", "_")
        if k not in known:
            names = ", ".join(known) or "(none)"
            raise UsageError(f"method {method.name}: unknown option {key!r}; options: {names}")
        out[k] = known[k].convert(method.name, value)
    return out


# The catalogue. Order is the order `mfif methods` prints.
from . import catalogue  # noqa: E402,F401  (registers the methods)
