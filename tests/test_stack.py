"""Real-stack pipeline: N sources, tiles, 16-bit end to end, alignment through the CLI."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from mfif.cli import main
from mfif.io import from_float, read_image, to_float, write_image
from mfif.metrics import decision_accuracy, psnr
from mfif.stack import _scale_transform, choose_tile, fuse_stack
from mfif.synth import make_case


def _write_case(tmp_path, case, dtype=np.uint8, ext=".png"):
    paths = []
    for k, s in enumerate(case.sources):
        paths.append(write_image(tmp_path / f"frame{k + 1}{ext}", from_float(s, dtype)))
    return paths


@pytest.fixture(scope="module")
def photo():
    return to_float(data.astronaut())


@pytest.mark.parametrize("n", [3, 4, 5])
def test_n_source_stack_with_ground_truth(tmp_path, photo, n):
    case = make_case(photo, n_sources=n, rng=np.random.default_rng(n), size=256, radius=(2.5, 5.0))
    paths = _write_case(tmp_path, case)
    gt8 = from_float(case.gt)
    avg = from_float(np.mean(case.sources, axis=0))
    for method in ("focus-map", "sff"):
        res = fuse_stack(paths, method=method)
        assert res.fused.shape == gt8.shape and res.fused.dtype == np.uint8
        assert set(np.unique(res.decision)) <= set(range(n))
        # clearly better than averaging, and the depth map mostly right
        assert psnr(res.fused, gt8) > psnr(avg, gt8) + 4.0, method
        assert decision_accuracy(res.decision, case.mask) > 0.75, method


@pytest.mark.parametrize("method", ["focus-map", "sff"])
def test_tiled_equals_untiled(tmp_path, photo, method):
    big = cv2.resize(photo, (640, 560), interpolation=cv2.INTER_CUBIC)
    case = make_case(big, n_sources=2, rng=np.random.default_rng(3), radius=(3.0, 5.0))
    paths = _write_case(tmp_path, case)
    whole = fuse_stack(paths, method=method, tile=0)
    tiled = fuse_stack(paths, method=method, tile=256, overlap=64)
    assert whole.tiles == 1 and tiled.tiles == 9
    # stated tolerance: fused images within 40 dB of each other, decisions agree on 99 % of pixels
    assert psnr(tiled.fused, whole.fused) > 40.0
    assert np.mean(tiled.decision == whole.decision) > 0.99


def test_16bit_tiff_stack_stays_16bit(tmp_path, photo):
    # give the photo detail below 1/255 so that an 8-bit step anywhere would be visible
    fine = np.clip(photo + np.random.default_rng(1).uniform(0, 1 / 255, photo.shape), 0, 1).astype(np.float32)
    case = make_case(fine, n_sources=2, rng=np.random.default_rng(5), size=128, radius=(2.0, 4.0))
    paths = _write_case(tmp_path, case, dtype=np.uint16, ext=".tif")
    out = tmp_path / "fused.tif"
    assert main(["fuse", *map(str, paths), "-o", str(out), "-m", "focus-map", "-q"]) == 0
    fused = read_image(out)
    assert fused.dtype == np.uint16 and fused.shape == case.gt.shape
    # no 8-bit step inside: values use the 16-bit range finely (not multiples of 257)
    assert np.mean(fused % 257 != 0) > 0.9
    # away from decision boundaries the fused value is the chosen source's 16-bit value (to within
    # 2 LSB of float rounding; an 8-bit step would cost up to 128 LSB)
    res = fuse_stack(paths, method="focus-map")
    np.testing.assert_array_equal(res.fused, fused)
    srcs = [read_image(p) for p in paths]
    checked = 0
    for k, src in enumerate(srcs):
        # the guided filter (radius 8) reaches 2 x 8 px: look further inside than that
        inner = cv2.erode((res.decision == k).astype(np.uint8), np.ones((37, 37), np.uint8)).astype(bool)
        checked += inner.sum()
        assert np.mean(np.abs(fused[inner].astype(int) - src[inner]) <= 2) > 0.99
    assert checked > 0.1 * fused.shape[0] * fused.shape[1]
    gt16 = from_float(case.gt, np.uint16)
    assert psnr(fused, gt16) > 30.0


def test_choose_tile_bounds_memory():
    assert choose_tile(1000, 1000, 2, max_memory_mb=4096, overlap=64) == 0  # fits in one tile
    t_small = choose_tile(7000, 7000, 20, max_memory_mb=2048, overlap=64)
    t_more = choose_tile(7000, 7000, 100, max_memory_mb=2048, overlap=64)
    assert 256 <= t_more < t_small < 7000
    # working set of one padded tile stays within the budget
    assert (t_small + 128) ** 2 * (96 * 20 + 160) <= 2048e6


def test_scale_transform_round_trip():
    t_small = np.array([[1.01, -0.02, 3.0], [0.02, 1.01, -2.0], [0, 0, 1]])
    s = 0.25
    t_full = _scale_transform(t_small, s)
    p_full = np.array([800.0, 600.0, 1.0])
    a = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1]])
    np.testing.assert_allclose(a @ (t_full @ p_full), t_small @ (a @ p_full), atol=1e-9)


def test_cli_aligns_a_shifted_stack(tmp_path, photo):
    case = make_case(photo, n_sources=2, rng=np.random.default_rng(9), size=384, radius=(2.0, 4.0))
    a, b = (from_float(s) for s in case.sources)
    m = np.float32([[1.0, 0.0, 6.5], [0.0, 1.0, -4.0]])
    b_shift = cv2.warpAffine(b, m, (b.shape[1], b.shape[0]), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    pa, pb = write_image(tmp_path / "a.png", a), write_image(tmp_path / "b.png", b_shift)
    out = tmp_path / "o.png"
    assert main(["fuse", str(pa), str(pb), "-o", str(out), "-m", "focus-map", "--align", "-q"]) == 0
    fused = read_image(out)
    assert fused.shape[0] <= 384 - 4 and fused.shape[1] <= 384 - 6  # cropped to the common area
    assert fused.shape[0] >= 384 - 12 and fused.shape[1] >= 384 - 14


def test_cli_unalignable_frame_is_a_clear_error(tmp_path, photo, capsys):
    a = from_float(photo[:256, :256])
    noise = np.random.default_rng(0).integers(0, 256, a.shape, dtype=np.uint8)
    pa, pb = write_image(tmp_path / "a.png", a), write_image(tmp_path / "noise.png", noise)
    code = main(["fuse", str(pa), str(pb), "-o", str(tmp_path / "o.png"), "-m", "average", "--align"])
    err = capsys.readouterr().err
    assert code == 2
    assert "could not be aligned" in err and "noise.png" in err
    assert "Traceback" not in err
