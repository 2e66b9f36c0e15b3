"""Image input/output: reading sources and stacks, atomic writing, dtype conversion.

Conventions used throughout mfif
--------------------------------
* Images read from disk keep their **native dtype** (``uint8`` or ``uint16``; float TIFFs
  stay float32) and shape ``HxW`` (gray) or ``HxWxC`` with C = 3 (RGB) or 4 (RGBA). Channel
  order is always RGB(A), never OpenCV's BGR.
* Processing happens on ``float32`` arrays scaled to [0, 1] (:func:`to_float`); results are
  converted back to the input's dtype on output (:func:`from_float`), so 16-bit in gives
  16-bit out with no 8-bit step in between.
* Writing is atomic (a temporary file in the target directory, then :func:`os.replace`) and
  refuses to overwrite any path given in ``protect``.
"""
from __future__ import annotations

from .convert import GRAY_WEIGHTS, from_float, to_float, to_gray
from .paths import (
    IMAGE_EXTENSIONS,
    display_path,
    expand_sources,
    image_files,
    natural_key,
)
from .planes import TiffPlane, expand_frames, frame_paths, tiff_stack_layout, tiff_stack_planes
from .read import (
    ImageInfo,
    check_finite,
    check_sources,
    image_info,
    is_multipage_tiff,
    orient,
    read_image,
    read_stack,
    tiff_planes,
)
from .write import (
    atomic_output,
    check_format,
    check_output_dir,
    check_output_path,
    check_target,
    write_image,
    write_text,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "read_image",
    "write_image",
    "check_output_path",
    "check_target",
    "check_output_dir",
    "check_format",
    "check_finite",
    "atomic_output",
    "write_text",
    "image_info",
    "ImageInfo",
    "orient",
    "display_path",
    "check_sources",
    "expand_sources",
    "image_files",
    "read_stack",
    "to_float",
    "from_float",
    "to_gray",
    "GRAY_WEIGHTS",
    "natural_key",
    "tiff_planes",
    "is_multipage_tiff",
    "TiffPlane",
    "tiff_stack_layout",
    "tiff_stack_planes",
    "expand_frames",
    "frame_paths",
]
