"""Fusion-quality metrics: with a reference, with a label mask, and without reference.

``docs/metrics.md`` lists each formula, its constants, its variant and its reference. The
no-reference metrics default to the published MATLAB toolbox's variants (the code behind the
survey tables mfif compares itself with).

Input scale
-----------
All metrics work on a **gray image on the 0..255 scale**, built by :func:`as_gray255`:

* ``uint8`` RGB(A): MATLAB ``rgb2gray`` on ``uint8`` -- weights 0.2989, 0.5870, 0.1140 applied in
  double precision, then rounded to the nearest integer (halves away from zero) like MATLAB's
  ``uint8`` result. ``uint8`` gray is used as is.
* ``uint16``: the same weights (no rounding), then scaled by 255 / 65535.
* float (``float32``/``float64``), mfif's processing scale [0, 1]: the same weights, then x 255.
  Values outside [-0.5, 1.5] are refused, since they mean the image is not on that scale.
* other integer types (``int64`` arrays written by hand, ``bool``): integers in 0..255 are read
  as ``uint8``; ``bool`` as 0 / 255.

An alpha channel is ignored. Results are plain Python floats.

Several sources
---------------
No-reference metrics take a sequence of two or more sources. Their definitions are for two
sources (A, B); the generalisation to N sources is stated in each docstring and reduces to the
two-source definition when N = 2.
"""
from __future__ import annotations

from ._base import as_gray255
from .evaluate import METRICS, CaseMetrics, evaluate
from .gradient import qabf
from .information import qmi
from .labels import boundary_fscore, decision_accuracy, decision_iou
from .perceptual import qcb
from .reference import (
    boundary_band,
    boundary_band_psnr,
    boundary_band_ssim,
    focus_boundary,
    psnr,
    ssim,
    ssim_map,
)
from .sharpness import artifact_rate, sharpness_ratio
from .structural import qy, ssim_avg

__all__ = [
    "METRICS",
    "as_gray255",
    "ssim",
    "ssim_map",
    "psnr",
    "focus_boundary",
    "boundary_band",
    "boundary_band_ssim",
    "boundary_band_psnr",
    "decision_accuracy",
    "decision_iou",
    "boundary_fscore",
    "qabf",
    "qmi",
    "qy",
    "qcb",
    "ssim_avg",
    "evaluate",
    "CaseMetrics",
    "sharpness_ratio",
    "artifact_rate",
]
