"""Alignment (registration) of hand-held focus stacks.

Frames of a hand-held focus stack differ by small camera motions (shift, roll, a little tilt)
and, because refocusing moves the lens, by a small change of magnification ("focus
breathing"). This package registers every frame onto one reference frame with a global
parametric model (translation, similarity, affine or homography) and warps the frames so that
they can be fused pixel by pixel.

Modules
-------
``pyramid``       gray working copies (longer side ``work_size``), pyramid, ORB features
``estimate``      one pair: feature / phase-correlation guess, ECC refinement, the evidence
``ecc``           inverse-compositional ECC, coarse to fine (Evangelidis & Psarakis 2008 [1]_)
``quality``       blur-matched residual and correlation of an aligned pair (blind to focus)
``registration``  the whole stack: partners, fallbacks, :func:`estimate_transforms`
``warp``          :func:`warp_frame`: full-resolution warp in the native dtype
``stack``         :func:`align_stack`: estimate and warp a stack held in memory
``geometry``      transforms, plausibility, the common valid box
``options``       the reference frame and the residual limit, checked before any work

:func:`mfif.stack.fuse_stack` (``mfif fuse --align``) and ``mfif align`` both call
:func:`estimate_transforms` on the files and :func:`warp_frame` per frame.

References
----------
.. [1] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment using enhanced
   correlation coefficient maximization", IEEE Trans. Pattern Analysis and Machine
   Intelligence 30(10):1858-1865, 2008.
"""
import importlib

# Submodules are imported on first use of a name (PEP 562): checking the alignment options, which
# `mfif fuse` does for every stack, imports no registration code.
_WHERE = {
    "apply_transform": "geometry", "largest_rectangle": "geometry", "row_intervals": "geometry",
    "scale_matrix": "geometry", "transform_parameters": "geometry",
    "Quality": "quality", "alignment_quality": "quality",
    "MODELS": "registration", "Registration": "registration", "estimate_transforms": "registration",
    "resolve_max_residual": "options", "resolve_reference": "options",
    "AlignResult": "stack", "align_stack": "stack",
    "INTERPOLATIONS": "warp", "warp_frame": "warp",
}

__all__ = ["AlignResult", "MODELS", "INTERPOLATIONS", "Quality", "Registration", "align_stack",
           "alignment_quality", "apply_transform", "estimate_transforms", "resolve_max_residual",
           "resolve_reference", "scale_matrix", "transform_parameters", "warp_frame"]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
