"""Tests of the classic fusion methods: average, pca, dwt, laplacian, gff, focus-map."""
from __future__ import annotations

import glob
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import mfif
from mfif.errors import UsageError
from mfif.io import read_image
from mfif.methods import METHODS

CLASSIC = ["average", "pca", "dwt", "laplacian", "gff", "focus-map"]
#: Methods whose output does not depend on the order of the sources (up to exact ties).
SYMMETRIC = ["average", "pca", "dwt", "laplacian"]
#: Methods that return a decision map.
WITH_DECISION = ["gff", "focus-map"]


# --------------------------------------------------------------------------- helpers


def texture(rng: np.random.Generator, h: int = 96, w: int = 128, colour: bool = False) -> np.ndarray:
    """Random texture with a natural-ish spectrum, float32 in [0, 1]."""
    shape = (h, w, 3) if colour else (h, w)
    t = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), 0.7)
    return ((t - t.min()) / (t.max() - t.min())).astype(np.float32)


def half_blurred_pair(img: np.ndarray, sigma: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """A has its left half blurred, B its right half (so A is sharp on the right)."""
    blur = cv2.GaussianBlur(img, (0, 0), sigma)
    half = img.shape[1] // 2
    a, b = img.copy(), img.copy()
    a[:, :half] = blur[:, :half]
    b[:, half:] = blur[:, half:]
    return a, b


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = np.mean((x.astype(np.float64) - ref.astype(np.float64)) ** 2)
    return float(10 * np.log10(1.0 / mse))


def check_result(res, sources, method: str) -> None:
    """Shape, dtype, range and the maps that each method promises."""
    ref = sources[0]
    n = len(sources)
    h, w = ref.shape[:2]
    assert res.method == method
    assert res.fused.shape == ref.shape
    assert res.fused.dtype == np.float32
    assert np.all(np.isfinite(res.fused))
    assert res.fused.min() >= 0.0 and res.fused.max() <= 1.0
    if method in WITH_DECISION:
        assert res.decision is not None and res.decision.shape == (h, w)
        assert res.decision.dtype == np.int16
        assert res.decision.min() >= 0 and res.decision.max() < n
        assert res.weights.shape == (n, h, w) and res.weights.dtype == np.float32
        np.testing.assert_allclose(res.weights.sum(axis=0), 1.0, atol=1e-4)
        assert res.weights.min() >= 0.0
        assert res.scores.shape == (n, h, w)
    else:
        assert res.decision is None


# --------------------------------------------------------------------------- registry


def test_all_classic_methods_registered_after_sff():
    names = list(METHODS)
    assert names[0] == "sff"
    for m in CLASSIC:
        assert m in METHODS
        assert METHODS[m].needs_torch is False
        assert METHODS[m].has_decision == (m in WITH_DECISION)
        func = METHODS[m].load()
        assert "References" in (func.__doc__ or ""), f"{m}: docstring lacks References"


def test_focus_measure_choices_match_focus_module():
    from mfif.focus import FOCUS_MEASURES

    param = {p.name: p for p in METHODS["focus-map"].params}["measure"]
    assert set(param.allowed) == set(FOCUS_MEASURES)


def test_wavelet_choices_are_pywt_discrete():
    import pywt

    param = {p.name: p for p in METHODS["dwt"].params}["wavelet"]
    assert set(param.allowed) == set(pywt.wavelist(kind="discrete"))
    assert param.default in param.allowed


def test_every_param_is_validated():
    for m in CLASSIC:
        for p in METHODS[m].params:
            assert p.choices is not None or p.min is not None or p.max is not None, (m, p.name)


def test_catalogue_defaults_are_the_functions_defaults():
    """Each option's default is written twice, in the catalogue (what the CLI lists and engines
    pass) and in the function's signature (what a Python caller gets); they must agree, for the
    array form and the frame-source form alike."""
    import inspect

    checked = 0
    for m in METHODS.values():
        forms = [m.load()] + ([m.load_frames()] if m.frames_target else [])
        for fn in forms:
            sig = inspect.signature(fn).parameters
            for p in m.params:
                assert p.name in sig, f"{m.name}: option {p.name} is not a parameter of {fn.__name__}"
                assert sig[p.name].default == p.default, (
                    f"{m.name}: option {p.name} defaults to {p.default!r} in the catalogue and to "
                    f"{sig[p.name].default!r} in {fn.__name__}")
                checked += 1
    assert checked > 50


def test_listing_methods_does_not_import_method_modules():
    import subprocess
    import sys

    code = ("import sys, mfif; from mfif.methods import METHODS; list(METHODS); "
            "bad = [m for m in sys.modules if m.startswith('mfif.methods.') and m != 'mfif.methods.catalogue' "
            "or m.split('.')[0] in ('pywt', 'torch', 'onnxruntime', 'scipy', 'skimage')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("method", CLASSIC)
@pytest.mark.parametrize("colour", [False, True], ids=["gray", "colour"])
def test_fusing_an_image_with_itself_returns_it(method, colour, rng):
    img = texture(rng, colour=colour)
    for n in (2, 3):
        res = mfif.fuse([img] * n, method=method)
        check_result(res, [img] * n, method)
        np.testing.assert_allclose(res.fused, img, atol=1e-5)


# --------------------------------------------------------------------------- symmetry


@pytest.mark.parametrize("method", SYMMETRIC)
@pytest.mark.parametrize("colour", [False, True], ids=["gray", "colour"])
def test_source_order_does_not_matter(method, colour, rng):
    srcs = [texture(rng, colour=colour) for _ in range(3)]
    ref = mfif.fuse(srcs, method=method).fused
    for perm in itertools.permutations(range(3)):
        out = mfif.fuse([srcs[i] for i in perm], method=method).fused
        np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("method", WITH_DECISION)
@pytest.mark.parametrize("colour", [False, True], ids=["gray", "colour"])
def test_decision_map_flips_when_sources_are_swapped(method, colour, rng):
    img = texture(rng, 128, 160, colour=colour)
    a, b = half_blurred_pair(img, sigma=2.0)
    half = img.shape[1] // 2
    ab = mfif.fuse([a, b], method=method)
    ba = mfif.fuse([b, a], method=method)
    # A is sharp on the right half, B on the left.
    assert np.mean(ab.decision[:, :half] == 1) > 0.97
    assert np.mean(ab.decision[:, half:] == 0) > 0.97
    assert np.mean(ab.decision == 1 - ba.decision) > 0.98
    np.testing.assert_allclose(ab.weights[0], ba.weights[1], atol=0.05)


# --------------------------------------------------------------------------- shapes and N


@pytest.mark.parametrize("method", CLASSIC)
@pytest.mark.parametrize("colour", [False, True], ids=["gray", "colour"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_gray_colour_and_n_sources(method, colour, n, rng):
    # Odd sizes exercise cropping (dwt) and odd pyramid levels (laplacian).
    srcs = [texture(rng, 101, 77, colour=colour) for _ in range(n)]
    res = mfif.fuse(srcs, method=method)
    check_result(res, srcs, method)


@pytest.mark.parametrize("method", CLASSIC)
def test_uint8_and_uint16_inputs(method, rng):
    img = texture(rng, colour=True)
    a, b = half_blurred_pair(img)
    r8 = mfif.fuse([np.rint(a * 255).astype(np.uint8), np.rint(b * 255).astype(np.uint8)], method=method)
    r16 = mfif.fuse([np.rint(a * 65535).astype(np.uint16), np.rint(b * 65535).astype(np.uint16)],
                    method=method)
    assert r8.fused.dtype == r16.fused.dtype == np.float32
    assert np.abs(r8.fused - r16.fused).mean() < 0.01


@pytest.mark.parametrize("method", CLASSIC)
def test_pure_function_call_matches_api(method, rng):
    srcs = [texture(rng) for _ in range(2)]
    func = METHODS[method].load()
    direct = func(srcs)
    via_api = mfif.fuse(srcs, method=method)
    np.testing.assert_array_equal(direct.fused, via_api.fused)


def test_stage_maps_of_focus_map(rng):
    img = texture(rng, 128, 160)
    res = mfif.fuse(list(half_blurred_pair(img)), method="focus-map")
    maps = res.stage_maps()
    for key in ("score_0", "score_1", "initial_decision", "decision", "weight_0", "weight_1"):
        assert key in maps and maps[key].shape == img.shape


def test_gff_maps(rng):
    img = texture(rng, 128, 160, colour=True)
    res = mfif.fuse(list(half_blurred_pair(img)), method="gff")
    for k in range(2):
        assert res.maps[f"detail_weight_{k}"].shape == img.shape[:2]
    np.testing.assert_allclose(res.maps["detail_weight_0"] + res.maps["detail_weight_1"], 1.0, atol=1e-4)


# --------------------------------------------------------------------------- method specifics


def test_pca_gives_all_weight_to_the_only_varying_source(rng):
    a = texture(rng)
    flat = np.full_like(a, 0.5)
    res = mfif.fuse([a, flat], method="pca")
    np.testing.assert_allclose(res.info["pca_weights"], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(res.fused, a, atol=1e-6)
    # Constant sources only: uniform weights, no NaN.
    res = mfif.fuse([flat, np.full_like(a, 0.25)], method="pca")
    np.testing.assert_allclose(res.fused, 0.375, atol=1e-6)


def test_pca_weights_favour_the_higher_variance_source(rng):
    a = texture(rng)
    b = cv2.GaussianBlur(a, (0, 0), 3)
    w = mfif.fuse([a, b], method="pca").info["pca_weights"]
    assert w[0] > w[1] and abs(sum(w) - 1.0) < 1e-9


def test_dwt_and_laplacian_take_detail_from_the_sharp_source(rng):
    a = texture(rng, 128, 128)
    b = cv2.GaussianBlur(a, (0, 0), 3)
    for method in ("dwt", "laplacian"):
        fused = mfif.fuse([a, b], method=method).fused
        assert psnr(fused, a) > psnr(0.5 * (a + b), a) + 10, method


@pytest.mark.parametrize("measure", ["sml", "tenengrad", "variance"])
def test_focus_map_measures(measure, rng):
    img = texture(rng, 128, 160)
    a, b = half_blurred_pair(img)
    res = mfif.fuse([a, b], method="focus-map", measure=measure, window=9)
    assert np.mean(res.decision[:, 80:] == 0) > 0.95


def test_focus_map_without_consistency_keeps_the_initial_decision(rng):
    img = texture(rng, 128, 160)
    res = mfif.fuse(list(half_blurred_pair(img)), method="focus-map", min_region=0, gf_radius=0)
    np.testing.assert_array_equal(res.decision, res.maps["initial_decision"])
    assert set(np.unique(res.weights)) <= {0.0, 1.0}


def test_focus_map_removes_small_regions(rng):
    img = texture(rng, 128, 160)
    a, b = half_blurred_pair(img)
    blur = cv2.GaussianBlur(img, (0, 0), 2.5)
    blob = (slice(56, 68), slice(100, 112))  # 144 px, on the side where A is sharp
    a[blob], b[blob] = blur[blob], img[blob]
    res = mfif.fuse([a, b], method="focus-map", min_region=0.01)  # 204 px
    assert res.maps["initial_decision"][blob].mean() > 0.8  # the blob is detected...
    assert np.all(res.decision[:, 84:] == 0)  # ...and removed as too small
    kept = mfif.fuse([a, b], method="focus-map", min_region=0.001)
    assert kept.decision[blob].mean() > 0.8


# --------------------------------------------------------------------------- bad options


@pytest.mark.parametrize("method, params", [
    ("dwt", {"level": -1}),
    ("dwt", {"level": 0}),
    ("dwt", {"level": 9}),          # within the Param range, too deep for a 96x128 image
    ("dwt", {"wavelet": "nope"}),
    ("dwt", {"wavelet": "morl"}),   # continuous wavelet
    ("dwt", {"level": "three"}),
    ("laplacian", {"levels": 0}),
    ("laplacian", {"levels": 7}),   # too deep for a 96x128 image
    ("laplacian", {"levels": 2.5}),
    ("gff", {"r1": 0}),
    ("gff", {"eps1": -0.1}),
    ("gff", {"r2": -3}),
    ("gff", {"eps2": 0}),
    ("gff", {"avg_size": 1}),
    ("focus-map", {"measure": "brenner"}),
    ("focus-map", {"window": 0}),
    ("focus-map", {"min_region": 0.9}),
    ("focus-map", {"min_region": -0.1}),
    ("focus-map", {"gf_radius": -1}),
    ("focus-map", {"gf_eps": 0}),
    ("average", {"level": 3}),      # average has no options
    ("pca", {"wavelet": "db2"}),
])
def test_bad_options_raise_usage_error(method, params, rng):
    srcs = [texture(rng) for _ in range(2)]
    with pytest.raises(UsageError, match=method):
        mfif.fuse(srcs, method=method, **params)


def test_cli_style_string_options_are_converted(rng):
    srcs = [texture(rng) for _ in range(2)]
    res = mfif.fuse(srcs, method="dwt", wavelet="db1", level="2")
    assert res.info["params"] == {"wavelet": "db1", "level": 2}


# --------------------------------------------------------------------------- quality


@pytest.fixture(scope="module")
def camera_pair():
    from skimage import data

    img = data.camera().astype(np.float32) / 255.0
    return img, half_blurred_pair(img, sigma=2.5)


@pytest.fixture(scope="module")
def astronaut_pair():
    from skimage import data

    img = data.astronaut().astype(np.float32) / 255.0
    return img, half_blurred_pair(img, sigma=2.5)


# Measured on the synthetic pairs (sigma 2.5): camera average 30.9 dB, dwt 44.2, laplacian 46.0,
# gff 47.4, focus-map 46.4; astronaut average 29.7, dwt 40.3, laplacian 42.5, gff 44.4,
# focus-map 38.9. Thresholds leave 2-4 dB of slack.
QUALITY = {
    "camera": {"dwt": 40, "laplacian": 42, "gff": 43, "focus-map": 42},
    "astronaut": {"dwt": 37, "laplacian": 39, "gff": 40, "focus-map": 36},
}


@pytest.mark.parametrize("which", ["camera", "astronaut"])
def test_quality_against_ground_truth(which, camera_pair, astronaut_pair):
    sharp, (a, b) = camera_pair if which == "camera" else astronaut_pair
    base = psnr(mfif.fuse([a, b], method="average").fused, sharp)
    assert 27 < base < 33
    assert abs(psnr(mfif.fuse([a, b], method="pca").fused, sharp) - base) < 1.0
    for method, threshold in QUALITY[which].items():
        res = mfif.fuse([a, b], method=method)
        value = psnr(res.fused, sharp)
        assert value > threshold, f"{which} {method}: PSNR {value:.2f} dB <= {threshold}"
        assert value > base + 5, f"{which} {method}: PSNR {value:.2f} dB, average {base:.2f}"
        if res.decision is not None:
            half = sharp.shape[1] // 2
            # Flat areas (sky, background) carry no focus information, so allow some slack.
            acc = 0.5 * (np.mean(res.decision[:, :half] == 1) + np.mean(res.decision[:, half:] == 0))
            assert acc > 0.9, f"{which} {method}: decision accuracy {acc:.3f}"


# --------------------------------------------------------------------------- real data


def _real_pairs(root: Path) -> list[tuple[str, list[Path]]]:
    pairs = []
    for first in sorted((root / "real_pairs" / "classic").glob("*_1.png")):
        second = first.with_name(first.name[:-len("_1.png")] + "_2.png")
        pairs.append((first.name[:-len("_1.png")], [first, second]))
    for d in sorted((root / "real_pairs" / "mffw2").iterdir(), key=lambda p: p.name):
        if d.is_dir():
            pairs.append((f"mffw2/{d.name}", [d / "image1.tif", d / "image2.tif"]))
    return pairs


@pytest.fixture(scope="module")
def real_data(shared_data):
    pairs = [(name, [read_image(p) for p in paths]) for name, paths in _real_pairs(shared_data)]
    stack_files = sorted(glob.glob(str(shared_data / "stacks" / "pcb" / "pcb_*.jpg")))
    stack = [read_image(p) for p in stack_files]
    return pairs, stack


@pytest.mark.data
@pytest.mark.parametrize("method", CLASSIC)
@pytest.mark.slow
def test_every_method_fuses_the_real_data(method, real_data):
    pairs, stack = real_data
    assert len(pairs) == 31 and len(stack) == 7
    t0 = time.perf_counter()
    for name, srcs in pairs:
        res = mfif.fuse(srcs, method=method)
        assert res.fused.shape == srcs[0].shape, name
        assert np.all(np.isfinite(res.fused)), name
        if res.decision is not None:
            assert res.decision.max() < 2, name
    t_pairs = time.perf_counter() - t0
    # The 7-frame 2048x1536 PCB stack, full size, unaligned.
    res = mfif.fuse(stack, method=method)
    assert res.fused.shape == stack[0].shape
    assert np.all(np.isfinite(res.fused))
    assert 0.0 <= res.fused.min() and res.fused.max() <= 1.0
    if res.decision is not None:
        assert res.decision.max() < 7
    print(f"{method}: 31 pairs {t_pairs:.1f} s, pcb stack {time.perf_counter() - t0 - t_pairs:.1f} s")



def test_default_depth_adapts_to_small_images_but_explicit_depth_is_checked(rng):
    small = [texture(rng, 40, 50) for _ in range(2)]
    for method in ("dwt", "laplacian"):
        check_result(mfif.fuse(small, method=method), small, method)
    with pytest.raises(UsageError, match="level=4"):
        mfif.fuse(small, method="dwt", level=4)
    tiny = [texture(rng, 3, 3) for _ in range(2)]
    for method in ("dwt", "laplacian"):
        with pytest.raises(UsageError, match="too small"):
            mfif.fuse(tiny, method=method)
    # Every other method copes with a tiny image.
    for method in ("average", "pca", "gff", "focus-map"):
        check_result(mfif.fuse(tiny, method=method), tiny, method)
