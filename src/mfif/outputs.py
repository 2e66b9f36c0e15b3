"""The output plan of one run: every file it will write, checked before any work starts.

A fusion writes more than its fused image: a depth map and its colour preview, the stage maps
of ``--save-maps``. Each must be writable in its format and bit depth, none may be an input,
and no two may be the same file (a depth map named like the output would silently replace it).
:func:`plan_fuse_outputs` lists them and :func:`check_plan` checks all of that at once, so a
clash is one clear line before the first frame is decoded, not a lost result after the fusion.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import UsageError
from .io import check_output_dir, check_output_path, display_path

__all__ = ["PlannedOutput", "STAGE_MAP_NAME", "plan_fuse_outputs", "check_plan", "depth_paths"]

#: Names :meth:`mfif.result.FusionResult.stage_maps` can give a map; ``--save-maps DIR`` writes
#: each as ``DIR/NAME.png``.
STAGE_MAP_NAME = re.compile(r"^(?:score|initial_decision|decision|(?:score|weight|detail_weight)_\d+)$")


@dataclass(frozen=True)
class PlannedOutput:
    """One file a run will write: where, what it is (for messages), and its pixel type."""

    path: Path
    what: str
    dtype: np.dtype | None = None


def depth_paths(depth_map: str | os.PathLike) -> tuple[Path, Path]:
    """The depth map as given (``.png`` or ``.tif``) and its colour preview ``STEM-preview.png``."""
    dm = Path(depth_map)
    return dm, dm.with_name(dm.stem + "-preview.png")


def plan_fuse_outputs(output: str | os.PathLike, *, dtype, depth_map: str | os.PathLike | None = None,
                      maps_dir: str | os.PathLike | None = None) -> list[PlannedOutput]:
    """Every file ``mfif fuse`` writes, with the pixel type each will hold.

    Parameters
    ----------
    output : path-like
        The fused image (``-o``); holds ``dtype`` pixels (the sources' type).
    dtype : numpy dtype, keyword-only
        The sources' pixel type.
    depth_map : path-like, optional, keyword-only
        ``--depth-map``: a 16-bit source-index image, plus its 8-bit colour preview.
    maps_dir : path-like, optional, keyword-only
        ``--save-maps``: a folder of 8-bit PNG stage maps (names: :data:`STAGE_MAP_NAME`).
    """
    plan = [PlannedOutput(Path(output), "-o", np.dtype(dtype))]
    if depth_map is not None:
        dm, preview = depth_paths(depth_map)
        plan.append(PlannedOutput(dm, "--depth-map", np.dtype(np.uint16)))
        plan.append(PlannedOutput(preview, "the depth map's preview", np.dtype(np.uint8)))
    if maps_dir is not None:
        plan.append(PlannedOutput(Path(maps_dir), "--save-maps", None))
    return plan


def _key(p: Path) -> str:
    """A comparable form of a path that may not exist yet."""
    try:
        return os.path.normcase(str(p.resolve()))
    except OSError:
        return os.path.normcase(os.path.abspath(p))


def check_plan(plan: Sequence[PlannedOutput], *, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Check a run's outputs against the inputs and against each other; creates nothing.

    Raises
    ------
    UsageError
        One line naming the output (and the other side of a clash): a format that cannot hold
        its pixels, an input as target, two outputs on one file, a file inside the stage-map
        folder that a map would replace, or a folder that cannot be written.
    """
    inputs = [Path(p) for p in inputs]
    files = [o for o in plan if o.dtype is not None]
    folders = [o for o in plan if o.dtype is None]
    for o in files:
        try:
            check_output_path(o.path, protect=inputs, dtype=o.dtype)
        except UsageError as exc:
            raise UsageError(f"{o.what} {exc}") from None
    seen: dict[str, PlannedOutput] = {}
    for o in files:
        k = _key(o.path)
        if k in seen:
            first = seen[k]
            raise UsageError(f"{o.what} {display_path(o.path)} is the same file as {first.what} {display_path(first.path)}; "
                             "give each output its own name")
        seen[k] = o
    for d in folders:
        _check_maps_dir(d, files, inputs)


def _check_maps_dir(d: PlannedOutput, files: Sequence[PlannedOutput], inputs: Sequence[Path]) -> None:
    try:
        check_output_dir(d.path)
    except UsageError as exc:
        raise UsageError(f"{d.what} {exc}") from None
    home = _key(d.path)

    def replaced(p: Path) -> bool:  # a stage map DIR/NAME.png would land on p
        return _key(p.parent) == home and p.suffix.lower() == ".png" and bool(STAGE_MAP_NAME.match(p.stem))

    for o in files:
        if replaced(o.path):
            raise UsageError(f"{o.what} {display_path(o.path)} would be replaced by a stage map of {d.what} "
                             f"{display_path(d.path)}; choose another name or folder")
    for p in inputs:
        if replaced(p):
            raise UsageError(f"{d.what} {display_path(d.path)} would overwrite the input {display_path(p)} with a stage map; "
                             "choose another folder")
