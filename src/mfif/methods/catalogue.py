"""Declarations of every fusion method (name, function, options)."""
from __future__ import annotations

from ..tiling import MemoryModel, Resources
from . import Method, Param, _wavelets, register

#: The options every decision-map method takes (:func:`mfif.decision.prefer_decision`).
PREFER_PARAMS = (
    # Keep in step with mfif.decision.PREFER (not imported here, to keep listing light).
    Param("prefer", str, "none", "where focus evidence is weak, take the near (frame 0) or far (last) frame",
          choices=("none", "near", "far")),
    Param("prefer_margin", float, 0.05, "weak: the winner beats a frame by less than this fraction of the "
          "image's clear-evidence level", min=0.0, max=1.0),
)

def sff_stage_params(*, refine_band: float, seam: str) -> tuple:
    """The options of SFF's steps 2-4 (decision, consistency, blend), which ``sff`` and
    ``sff-fast`` share; they differ only in these defaults."""
    return (
        Param("threshold", float, 0.5, "score threshold for the initial segmentation", min=0.0, max=1.0),
        Param("min_region", float, 0.01, "remove regions smaller than this fraction of the image", min=0.0, max=0.5),
        Param("keep_confident", float, 0.3, "keep a small region if the network's mean confidence in it is at "
              "least this (> 1: never, as in the paper)", min=0.0, max=2.0),
        Param("min_region_floor", float, 0.001, "remove even confident regions smaller than this fraction",
              min=0.0, max=0.5),
        Param("refine_band", float, refine_band, "re-decide pixels this close (px) to a boundary with a fine "
              "focus measure (0: off, as in the paper)", min=0.0, max=256.0),
        Param("refine_window", int, 5, "window (px) of that fine focus measure", min=3, max=31),
        Param("refine_noise", float, 8.0, "re-decide only where the fine measure beats the runner-up by this "
              "many noise sigmas (0: everywhere in the band)", min=0.0),
        Param("gf_radius", int, 2, "guided-filter radius of the consistency step (px)", min=0, max=256),
        Param("gf_eps", float, 0.001, "guided-filter regularisation", min=0.0),
        Param("seam", str, seam, "boundary treatment in step 4: laplacian cross-fade or none (paper)",
              choices=("laplacian", "none")),
        Param("seam_width", float, 6.0, "width (px) of the seam cross-fade", min=0.0, max=256.0),
    ) + PREFER_PARAMS


register(Method(
    "sff", "mfif.sff.fusion:fuse_sff",
    "Semantic Focus Fusion: dual-stream CNN focus classifier + guided-filter consistency (Ismail & Ghazali 2025)",
    params=(
        Param("weights", str, "", "path of a .pt weights file (default: the shipped model)"),
        Param("stride", int, 4, "score-map stride in px (4 or 8)", choices=(4, 8)),
        Param("tile", int, 384, "tile size for the CNN pass (px, bounds memory)", min=64),
        Param("threads", int, 0, "CPU worker threads of the CNN pass (0: all cores)", min=0),
        Param("scale", float, 1.0, "run the CNN on copies downscaled by this factor (0.5: 4x faster)",
              min=0.1, max=1.0),
        Param("device", str, "cpu", "where the CNN runs: cpu, auto (CUDA or MPS if PyTorch sees one), cuda or mps",
              choices=("cpu", "auto", "cuda", "mps")),
        Param("noise", float, 0.0, "noise sigma of the sources on [0, 1] intensities that refine_noise= counts in "
              "(0: estimated; tiles get the whole image's)", min=0.0, max=1.0),
    ) + sff_stage_params(refine_band=16.0, seam="laplacian"),
    needs_torch=True, has_decision=True, noise_option="noise",
    area_options=("min_region", "min_region_floor"), resources="mfif.sff.resources:RESOURCES",
))

register(Method(
    "sff-fast", "mfif.sff.fast_fusion:fuse_sff_fast",
    "light SFF: a per-frame focus network (ONNX Runtime) + SFF's consistency and blend steps near boundaries",
    params=(
        Param("weights", str, "", "path of a .pt weights file with its card and ONNX export (default: shipped)"),
        Param("device", str, "auto", "where the network runs: auto, cpu, cuda or mps",
              choices=("auto", "cpu", "cuda", "mps")),
        Param("threads", int, 0, "CPU threads of the network (0: all cores)", min=0),
        Param("tile", float, 2.0, "largest network pass in megapixels (bigger frames run in exact strips)",
              min=0.05, max=1000.0),
        Param("blend", str, "decision", "decision: SFF's steps 2-4; soft: softmax blend of the frames (the "
              "streaming API's)", choices=("decision", "soft")),
        Param("weak", float, 6.0, "score margin (logits) below which an area takes the evidence around it "
              "(0: off)", min=0.0, max=100.0),
        Param("weak_reach", int, 0, "grid cells (4 px) within which evidence counts as an area's own (0: the "
              "cell's own)", min=0, max=64),
        Param("fallback", float, 4.0, "where the network is unsure (margin below weak=), a fine focus measure "
              "decides if it beats the runner-up by this many noise sigmas and by 1.5 times (0: off)",
              min=0.0, max=1000.0),
        Param("flat", float, 6.0, "noise sigmas of fine detail below which no frame has any: each large such area "
              "comes from the frame with the most detail (0: off)", min=0.0, max=1000.0),
        Param("flat_area", float, 0.01, "smallest area (fraction of the image) that flat= gives to one frame",
              min=0.0, max=1.0),
        Param("flat_keep", float, 0.97, "a flat area whose decision already gives this share of it to one frame "
              "keeps that frame (> 1: never)", min=0.0, max=2.0),
        Param("stack_gf_radius", int, 8, "guided-filter radius with 3 or more frames (gf_radius= is for pairs)",
              min=0, max=64),
        Param("temperature", float, 0.25, "softmax temperature of blend=soft", min=0.01, max=100.0),
        Param("noise", float, 0.0, "noise sigma of the frames on [0, 1] intensities that fallback=, flat= and "
              "refine_noise= count in (0: estimated; tiles get the whole image's)", min=0.0, max=1.0),
    ) + sff_stage_params(refine_band=8.0, seam="none"),
    has_decision=True, halo=160, frames_target="mfif.sff.fast_fusion:fuse_sff_fast_frames", noise_option="noise",
    area_options=("min_region", "min_region_floor", "flat_area"),
    # measured (docs/speed.md): frames in memory (the API, Dask chunks) and read from the local
    # engine's cache, where the working set does not grow with the number of frames
    resources=Resources(MemoryModel(per_frame=20.0, fixed=150.0, const=150e6)),
    frames_resources=Resources(MemoryModel(per_frame=2.0, fixed=80.0, const=250e6)),
))

register(Method(
    "average", "mfif.methods.average:fuse_average",
    "pixel-wise mean of the sources (baseline)",
))

register(Method(
    "pca", "mfif.methods.pca:fuse_pca",
    "weighted mean, weights from the principal eigenvector of the sources' covariance (Naidu & Raol 2008)",
))

register(Method(
    "dwt", "mfif.methods.dwt:fuse_dwt",
    "wavelet fusion: mean approximation, max-abs detail coefficients (Li, Manjunath & Mitra 1995)",
    params=(
        Param("wavelet", str, "sym4", "PyWavelets discrete wavelet", choices=_wavelets),
        Param("level", int, None, "decomposition levels, at most pywt.dwt_max_level for the image (unset: 4, or fewer on small images)",
              min=1, max=20),
    ),
))

register(Method(
    "laplacian", "mfif.methods.laplacian:fuse_laplacian",
    "Laplacian pyramid: max-abs band-pass levels, mean residual (Burt & Adelson 1983; Burt & Kolczynski 1993)",
    params=(
        Param("levels", int, None, "band-pass pyramid levels, at most log2(min side) - 1 (unset: 4, or fewer on small images)", min=1, max=20),
    ),
))

register(Method(
    "gff", "mfif.methods.gff:fuse_gff",
    "Guided Filtering Fusion: two-scale decomposition, saliency arg-max, guided-filter weights (Li, Kang & Hu 2013)",
    params=(
        Param("r1", int, 45, "guided-filter radius of the base-layer weights (px)", min=1, max=512),
        Param("eps1", float, 0.3, "guided-filter regularisation of the base-layer weights", min=1e-10, max=10.0),
        Param("r2", int, 7, "guided-filter radius of the detail-layer weights (px)", min=1, max=512),
        Param("eps2", float, 1e-6, "guided-filter regularisation of the detail-layer weights", min=1e-10, max=10.0),
        Param("avg_size", int, 31, "average-filter size of the two-scale decomposition (px)", min=3, max=1023),
    ) + PREFER_PARAMS,
    has_decision=True,
))

register(Method(
    "focus-map", "mfif.methods.focus_map:fuse_focus_map",
    "classic focus measure, arg-max decision map, small-region removal + guided filter, weighted blend",
    params=(
        # Keep in step with mfif.focus.FOCUS_MEASURES (not imported here, to keep listing light).
        Param("measure", str, "sml", "focus measure", choices=("sml", "tenengrad", "variance")),
        Param("window", int, 7, "focus-measure window side (px)", min=1, max=255),
        Param("min_region", float, 0.01, "remove regions smaller than this fraction of the image", min=0.0, max=0.5),
        Param("gf_radius", int, 8, "guided-filter radius of the consistency step (px; 0: hard weights)", min=0, max=256),
        Param("gf_eps", float, 0.01, "guided-filter regularisation", min=1e-10, max=10.0),
        Param("blend", str, "decision", "decision: arg-max map + consistency + guided weights; soft: softmax "
              "blend of log focus measures (the streaming API's)", choices=("decision", "soft")),
        Param("temperature", float, 0.25, "softmax temperature of blend=soft (on log focus measures)",
              min=0.01, max=100.0),
    ) + PREFER_PARAMS,
    has_decision=True,
    area_options=("min_region",),
    resources=Resources(MemoryModel(per_frame=50.0, fixed=24.0, const=8e6)),  # measured: docs/stacks.md
))

register(Method(
    "pcanet", "mfif.methods.pcanet:fuse_pcanet",
    "PCANet focus measure: energy of two cascaded stages of PCA-learned 7x7 filters (Chan et al. 2015), "
    "arg-max decision, small-region removal + guided filter, weighted blend",
    params=(
        Param("stage", str, "2", "filter responses in the focus measure: 1, 2 (the 64 cascaded ones) or both",
              choices=("1", "2", "both")),
        Param("window", int, 5, "focus-measure averaging window side (px)", min=1, max=255),
        Param("min_region", float, 0.01, "remove regions smaller than this fraction of the image", min=0.0, max=0.5),
        Param("gf_radius", int, 8, "guided-filter radius of the consistency step (px; 0: hard weights)", min=0, max=256),
        Param("gf_eps", float, 0.01, "guided-filter regularisation", min=1e-10, max=10.0),
        Param("filters", str, "", "PCANet filters .npz from python -m mfif.pcanet_fit (default: the shipped filters)"),
    ) + PREFER_PARAMS,
    has_decision=True,
    area_options=("min_region",),
))
