"""Synthetic multi-focus data with ground truth, made from sharp natural photos.

A *case* is one all-in-focus photo (the ground truth), a label map saying which depth layer
each pixel belongs to, and ``N`` sources, each focused on one layer with the others defocused
by a layered thin-lens model:

* **Layers.** Layer ``0`` is the *nearest* (the foreground), layer ``N-1`` the background,
  which covers the whole frame. Layers ``0..N-2`` are drawn as natural shapes (smooth random
  blobs, or unions of adjacent graph-based segments of the photo itself, so that depth edges follow
  image edges) and painted far to near, so nearer layers occlude farther ones.
* **Sources.** Source ``k`` is focused on layer ``k``, so ``mask == k`` exactly where source
  ``k`` is sharp. For ``N = 2``: source A (index 0) has the foreground sharp and the background
  blurred, source B (index 1) the reverse, as in the paper's data.
* **Defocus.** Each layer sits at an inverse-depth position ``p_j`` in [0, 1] (``p_0 = 0``,
  ``p_{N-1} = 1``). In source ``k`` layer ``j`` is blurred with radius
  ``r_kj = r * |p_j - p_k| * g_k`` (thin-lens blur circle, proportional to the difference of
  inverse depths), where ``r`` is drawn log-uniform over a wide range (default 0.6 to 8 px)
  and ``g_k`` is a small per-source jitter; out-of-focus radii are clipped into the range.
  The point-spread function is a pillbox (anti-aliased disk of radius ``r``) or a Gaussian of
  the same second moment (``sigma = r / 2``).
* **Occlusion.** Layers are composited back to front with the blurred layer mask as alpha
  (``I = blur(L_j * D_j) + (1 - blur(D_j)) * I``). When the foreground is defocused its blur
  spreads over the sharp background; when the background is defocused the sharp foreground
  edge stays crisp and no foreground colour bleeds into the blurred background, because every
  layer's hidden part (behind nearer layers) is filled from that layer's own visible pixels
  (push-pull pyramid inpainting) before it is blurred.
* **Degradations** (sources only; ``gt`` stays clean): optional signal-dependent Gaussian
  sensor noise, JPEG compression and small per-source brightness gains.

Every random choice is drawn from the ``rng`` given to :func:`make_case` and recorded in
:attr:`SynthCase.params`, so a case is reproducible from its seed and its parameters.

Sizes. ``size=S`` (or ``(h, w)``) crops a random ``S x S`` window from the photo. When the
photo is smaller than that (BSDS500 photos are 481x321, the paper's pairs are 512x512) the
photo is first **upscaled** with bicubic interpolation so that its short side equals ``S``
(default ``fit="scale"``), or, with ``fit="reflect"``, padded by mirror reflection. Upscaling
by 1.6 softens the photo slightly; the ground truth is the upscaled photo, so pairs and truth
stay consistent.

References
----------
.. [1] S. W. Hasinoff and K. N. Kutulakos, "A layer-based restoration framework for
   variable-aperture photography", ICCV 2007 (layered defocus with occlusion).
.. [2] T. Porter and T. Duff, "Compositing digital images", SIGGRAPH 1984 (alpha compositing).
.. [3] N. Asada, H. Fujiwara and T. Matsuyama, "Seeing behind the scene: analysis of
   photometric properties of occluding edges by the reversed projection blurring model",
   IEEE TPAMI 20(2), 1998 (a defocused occluder's blur spreads over the sharp background).
.. [4] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient graph-based image
   segmentation", IJCV 59(2), 2004 (object-like foreground shapes).
.. [5] P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour detection and hierarchical
   image segmentation", IEEE TPAMI 33(5), 2011 (the BSDS500 photos).
.. [6] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
   convolutional network", Information Fusion 36, 2017 (patch pairs from synthetic blur).
"""
from __future__ import annotations

from .cases import SynthCase, make_case, DEFAULT_OPTIONS, SOURCE_NAMES, _check_options, _pair_range  # noqa: F401  (private helpers the commands use)
from .psf import psf_kernel, defocus
from .shapes import blob_mask, segment_mask
from .photos import load_photos, list_photos, split_by_photo, _largest_remainder  # noqa: F401
from .patches import PatchSampler, torch_dataset
from .preview import contact_sheet
from .handheld import HandheldStack, handheld_stack

__all__ = [
    "SynthCase",
    "HandheldStack",
    "handheld_stack",
    "make_case",
    "PatchSampler",
    "load_photos",
    "list_photos",
    "split_by_photo",
    "psf_kernel",
    "defocus",
    "blob_mask",
    "segment_mask",
    "DEFAULT_OPTIONS",
    "SOURCE_NAMES",
    "torch_dataset",
    "contact_sheet",
]
