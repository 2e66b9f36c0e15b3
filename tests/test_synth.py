"""Tests of the synthetic multi-focus data generator (mfif.synth, ``mfif synth``)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from mfif.cli import main
from mfif.errors import UsageError
from mfif.io import read_image
from mfif.synth import (PatchSampler, load_photos, make_case, psf_kernel, split_by_photo)


def _texture(seed: int, h: int = 96, w: int = 128, color: bool = True) -> np.ndarray:
    """A sharp, richly textured synthetic photo in [0, 1]."""
    r = np.random.default_rng(seed)
    ch = 3 if color else 1
    img = np.zeros((h, w, ch), np.float32)
    for s, amp in ((0.0, 0.35), (1.0, 0.3), (4.0, 0.35)):
        n = r.random((h, w, ch)).astype(np.float32)
        if s:
            n = cv2.GaussianBlur(n, (0, 0), s).reshape(h, w, ch)
            n = (n - n.min()) / (np.ptp(n) + 1e-6)
        img += amp * n
    img = np.clip(img, 0, 1)
    return img if color else img[..., 0]


def _var_lap(img: np.ndarray, sel: np.ndarray) -> float:
    lap = cv2.Laplacian(img.astype(np.float32), cv2.CV_32F, ksize=1)
    return float(lap[sel].var())


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for i in range(8):
        img = _texture(i)
        cv2.imwrite(str(d / f"img{i}.png"), cv2.cvtColor(np.rint(img * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return d


# ---------------------------------------------------------------------------------------------
def test_psf_kernels_are_normalised():
    for kind in ("disk", "gaussian"):
        for r in (0.5, 1.0, 2.7, 8.0):
            k = psf_kernel(kind, r)
            assert k.dtype == np.float32 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
            assert abs(float(k.sum()) - 1.0) < 1e-5
            assert np.allclose(k, k.T, atol=1e-7) and np.allclose(k, k[::-1], atol=1e-7)
    # disk of radius r: second moment per axis r^2/4, matched by the Gaussian (sigma = r/2)
    k = psf_kernel("disk", 6.0)
    c = k.shape[0] // 2
    yy = (np.arange(k.shape[0]) - c) ** 2
    assert abs(float((k.sum(1) * yy).sum()) - 9.0) < 0.3


@pytest.mark.parametrize("gray", [True, False])
@pytest.mark.parametrize("n", [2, 3])
def test_case_shapes_and_valid_mask(n, gray):
    img = _texture(1)
    case = make_case(img, n_sources=n, rng=np.random.default_rng(5), gray=gray, size=80)
    shape = (80, 80) if gray else (80, 80, 3)
    assert len(case.sources) == n and case.names == ["A", "B", "C"][:n]
    for s in case.sources + [case.gt]:
        assert s.shape == shape and s.dtype == np.float32
        assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    assert case.mask.shape == (80, 80) and case.mask.dtype == np.int16
    vals = set(np.unique(case.mask).tolist())
    assert vals <= set(range(n))
    assert vals == set(range(n))  # every layer is visible
    json.dumps(case.params)  # JSON-serialisable
    assert len(case.params["radii"]) == n


def test_size_larger_than_photo_upscales_or_reflects():
    img = _texture(2, 48, 64)
    a = make_case(img, rng=np.random.default_rng(0), size=100, gray=True)
    assert a.gt.shape == (100, 100) and a.params["geometry"]["fit"] == "scale"
    b = make_case(img, rng=np.random.default_rng(0), size=100, gray=True, fit="reflect")
    assert b.gt.shape == (100, 100) and b.params["geometry"]["fit"] == "reflect"


@pytest.mark.parametrize("psf", ["disk", "gaussian"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gt_equals_sharp_source_away_from_boundaries(psf, seed):
    img = _texture(10 + seed)
    n = 2 + seed % 2
    case = make_case(img, n_sources=n, rng=np.random.default_rng(seed), psf=psf, mask_kind="mixed")
    mask = case.mask
    rmax = max(max(row) for row in case.params["radii"])
    margin = int(np.ceil(2 * rmax)) + 2  # Gaussian support is 3 sigma = 1.5 r
    for k in range(n):
        nearer = mask < k  # layers that occlude layer k
        dist = ndi.distance_transform_edt(~nearer) if nearer.any() else np.full(mask.shape, np.inf)
        sel = (mask == k) & (dist > margin)
        assert sel.sum() > 50
        assert np.array_equal(case.sources[k][sel], case.gt[sel]), f"source {k} differs from gt"
    # the nearest layer, when in focus, stays crisp up to its edge (no background bleed)
    assert np.array_equal(case.sources[0][mask == 0], case.gt[mask == 0])


def test_defocused_foreground_spreads_over_sharp_background():
    img = _texture(3, color=False)
    case = make_case(img, rng=np.random.default_rng(7), psf="disk", radius=(5, 5), mask_kind="blob")
    fg = case.mask == 0
    ring = ~fg & (ndi.distance_transform_edt(~fg) <= 2)  # background just outside the foreground
    far_bg = ~fg & (ndi.distance_transform_edt(~fg) > 12)
    diff = np.abs(case.sources[1] - case.gt)
    assert float(diff[ring].mean()) > 0.01  # the blurred occluder covers the sharp background
    assert float(diff[far_bg].max()) == 0.0


def test_focus_measure_separates_focused_and_defocused():
    for seed in range(6):
        img = _texture(20 + seed, color=False)
        case = make_case(img, rng=np.random.default_rng(seed), radius=(1.0, 3.0))
        for k in range(2):
            other = 1 - k
            r = case.params["radii"][other][k]
            inner = ndi.distance_transform_edt(case.mask == k) > 2 * r + 3
            sharp = _var_lap(case.sources[k], inner)
            blurred = _var_lap(case.sources[other], inner)
            assert blurred < 0.7 * sharp, (seed, k, r, sharp, blurred)


def test_small_blur_is_still_measurable():
    img = _texture(30, color=False)
    case = make_case(img, rng=np.random.default_rng(0), radius=(1.0, 1.0), psf="gaussian")  # sigma 0.5 px
    inner = ndi.distance_transform_edt(case.mask == 1) > 6
    assert _var_lap(case.sources[0], inner) < 0.9 * _var_lap(case.sources[1], inner)


def test_make_case_is_deterministic_and_degradations_apply():
    img = _texture(4)
    opts = dict(n_sources=3, size=64, noise=0.02, jpeg=60, brightness=0.05)
    a = make_case(img, rng=np.random.default_rng(9), **opts)
    b = make_case(img, rng=np.random.default_rng(9), **opts)
    assert all(np.array_equal(x, y) for x, y in zip(a.sources, b.sources))
    assert np.array_equal(a.mask, b.mask) and a.params == b.params
    assert a.params["jpeg_quality"] is not None and 60 <= a.params["jpeg_quality"] <= 95
    assert a.params["noise_sigma"] > 0 and any(g != 1.0 for g in a.params["gains"])
    with pytest.raises(UsageError):
        make_case(img, rng=np.random.default_rng(0), bogus=1)


def test_split_by_photo_is_disjoint_and_deterministic():
    names = [f"p{i}.jpg" for i in range(50)]
    a = split_by_photo(names, seed=1, fractions=(0.8, 0.1, 0.1))
    b = split_by_photo(list(reversed(names)), seed=1, fractions=(0.8, 0.1, 0.1))
    assert a == b
    assert [len(a[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(sum(a.values(), []), key=lambda s: int(s[1:-4])) == names


# ---------------------------------------------------------------------------------------------
def test_patch_sampler_shapes_labels_balance_and_determinism():
    photos = [_texture(40 + i) for i in range(4)]
    s = PatchSampler(photos, patch=16, seed=3, case_size=64, pool=4, patches_per_case=256)
    labels = []
    for a, b, lab in s.iter_batches(512, 8):
        assert a.shape == b.shape == (512, 1, 16, 16) and a.dtype == b.dtype == np.float32
        assert lab.shape == (512,) and lab.dtype == np.float32
        assert float(lab.min()) >= 0.0 and float(lab.max()) <= 1.0
        labels.append(lab)
    lab = np.concatenate(labels)
    assert abs(float(lab.mean()) - 0.5) < 0.05
    assert 0.02 < float(((lab > 0) & (lab < 1)).mean()) < 0.8  # boundary patches are present
    assert s.cases_made > 4  # the pool is refreshed
    s1 = PatchSampler(photos, patch=16, seed=3, case_size=64, pool=4, patches_per_case=256)
    s2 = PatchSampler(photos, patch=16, seed=3, case_size=64, pool=4, patches_per_case=256)
    for (a1, b1, l1), (a2, b2, l2) in zip(s1.iter_batches(100, 5), s2.iter_batches(100, 5)):
        assert np.array_equal(a1, a2) and np.array_equal(b1, b2) and np.array_equal(l1, l2)
    c = PatchSampler(photos, patch=8, seed=0, gray=False, case_size=48, pool=2)
    a, b, lab = c.sample(10)
    assert a.shape == (10, 3, 8, 8)


def test_patch_sampler_labels_match_sharpness():
    photos = [_texture(50 + i, color=False) for i in range(3)]
    s = PatchSampler(photos, patch=16, seed=1, case_size=96, pool=3, patches_per_case=4000,
                     p_boundary=0.0, p_flat=0.0, p_small_blur=0.0, radius=(2.0, 4.0))
    a, b, lab = s.sample(2000)

    def energy(x):
        d = np.diff(x[:, 0], axis=2)
        return (d * d).mean(axis=(1, 2))

    ea, eb = energy(a), energy(b)
    assert (ea[lab == 1] > eb[lab == 1]).mean() > 0.95
    assert (ea[lab == 0] < eb[lab == 0]).mean() > 0.95


# ---------------------------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_command_is_byte_identical_and_complete(photo_dir, tmp_path):
    args = [str(photo_dir), "--count", "6", "--size", "48", "--seed", "11", "--sources", "3",
            "--noise", "0.01", "--jpeg", "80", "--brightness", "0.03", "-q"]
    assert main(["synth", *args[:1], str(tmp_path / "o1"), *args[1:]]) == 0
    assert main(["synth", *args[:1], str(tmp_path / "o2"), *args[1:], "--jobs", "2"]) == 0
    t1, t2 = _tree(tmp_path / "o1"), _tree(tmp_path / "o2")
    assert t1.keys() == t2.keys() and all(t1[k] == t2[k] for k in t1)
    man = json.loads((tmp_path / "o1" / "manifest.json").read_text())
    assert len(man["cases"]) == 6
    photos = {s: set(man["splits"][s]["photos"]) for s in ("train", "val", "test")}
    assert not (photos["train"] & photos["val"]) and not (photos["train"] & photos["test"])
    for entry in man["cases"]:
        d = tmp_path / "o1" / entry["id"]
        assert entry["photo"] in photos[entry["split"]]
        assert sorted(p.name for p in d.iterdir()) == ["A.png", "B.png", "C.png", "gt.png", "mask.png"]
        mask = read_image(d / "mask.png")
        assert mask.dtype == np.uint8 and mask.shape == (48, 48)
        assert set(np.unique(mask).tolist()) <= {0, 1, 2}
        assert read_image(d / "A.png").shape == (48, 48, 3)
        assert "radii" in entry["params"] and "psf" in entry["params"]
    csv_lines = (tmp_path / "o1" / "manifest.csv").read_text().splitlines()
    assert len(csv_lines) == 7
    # a second run into a non-empty folder needs --force
    assert main(["synth", str(photo_dir), str(tmp_path / "o1"), "--count", "2", "-q"]) == 2
    assert main(["synth", str(photo_dir), str(tmp_path / "o1"), "--count", "2", "-q", "--force"]) == 0
    assert len(list((tmp_path / "o1").rglob("case_*"))) == 2


def test_command_test_images_and_gray(photo_dir, tmp_path):
    test_dir = tmp_path / "test_photos"
    test_dir.mkdir()
    for i in range(3):
        img = np.rint(_texture(90 + i) * 255).astype(np.uint8)
        cv2.imwrite(str(test_dir / f"t{i}.png"), img)
    out = tmp_path / "out"
    assert main(["synth", str(photo_dir), str(out), "--test-images", str(test_dir), "--counts", "4,2,3",
                 "--split", "0.75,0.25,0", "--size", "40", "--gray", "-q"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert [man["splits"][s]["cases"] for s in ("train", "val", "test")] == [4, 2, 3]
    assert all(p.startswith("test_photos/") for p in man["splits"]["test"]["photos"])
    assert not any(p.startswith("test_photos/") for s in ("train", "val") for p in man["splits"][s]["photos"])
    assert len(man["splits"]["train"]["photos"]) == 6 and len(man["splits"]["val"]["photos"]) == 2
    assert read_image(out / "test" / "case_0000" / "A.png").shape == (40, 40)
    assert load_photos(test_dir, gray=True, limit=2)[0].shape == (96, 128)


def test_command_usage_errors(photo_dir, tmp_path):
    assert main(["synth", str(tmp_path / "nope"), str(tmp_path / "o"), "-q"]) == 2
    assert main(["synth", str(photo_dir), str(tmp_path / "o"), "--radius", "5", "-q"]) == 2
    assert main(["synth", str(photo_dir), str(tmp_path / "o"), "--sources", "1", "-q"]) == 2


def test_torch_dataset_wrapper():
    torch = pytest.importorskip("torch")
    from mfif.synth import torch_dataset

    ds = torch_dataset([_texture(60 + i, color=False) for i in range(2)], batch=8, n_batches=2, patch=8,
                       case_size=40, pool=2)
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None))
    assert len(batches) == 2
    a, b, lab = batches[0]
    assert a.shape == (8, 1, 8, 8) and b.dtype == torch.float32 and lab.shape == (8,)


def test_graphic_scenes_are_flat_areas_with_crisp_edges():
    """The procedural scenes that teach sff-fast about printed matter: a pure function of the
    seed, gray in [0, 1], mostly flat (the point of them), with levels at least 0.2 apart meeting
    at edges a pixel or two wide."""
    from mfif.synth.graphics import graphic_images

    a = graphic_images(12, seed=3, size=128)
    b = graphic_images(12, seed=3, size=128)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], graphic_images(1, seed=4, size=128)[0])
    for img in a:
        assert img.shape == (128, 128) and img.dtype == np.float32
        assert 0.0 <= img.min() and img.max() <= 1.0
        # local spread over 5 x 5: flat areas are at grain level, edges jump by >= 0.2 * (1 - AA)
        spread = ndi.maximum_filter(img, 5) - ndi.minimum_filter(img, 5)
        flat = np.mean(spread < 0.1)
        assert flat > 0.4, flat
        assert spread.max() > 0.15
        # an edge crosses from one level to the other within 2 px: a 3-px window already sees
        # most of the jump
        narrow = ndi.maximum_filter(img, 3) - ndi.minimum_filter(img, 3)
        assert narrow.max() > 0.5 * spread.max()
