"""Declarations of every fusion method (name, function, options)."""
from __future__ import annotations

from . import Method, Param, register

register(Method(
    "sff", "mfif.sff.fusion:fuse_sff",
    "Semantic Focus Fusion: dual-stream CNN focus classifier + guided-filter consistency (Ismail & Ghazali 2025)",
    params=(
        Param("weights", str, "", "path of a .pt weights file (default: the shipped model)"),
        Param("threshold", float, 0.5, "score threshold for the initial segmentation", min=0.0, max=1.0),
        Param("min_region", float, 0.01, "remove regions smaller than this fraction of the image", min=0.0, max=0.5),
        Param("gf_radius", int, 8, "guided-filter radius of the consistency step (px)", min=0, max=256),
        Param("gf_eps", float, 0.01, "guided-filter regularisation", min=0.0),
        Param("stride", int, 4, "score-map stride in px (4 or 8)", choices=(4, 8)),
        Param("tile", int, 1024, "tile size for the CNN pass (px, bounds memory)", min=128),
        Param("threads", int, 0, "torch CPU threads (0: all cores)", min=0),
    ),
    needs_torch=True, has_decision=True,
))
