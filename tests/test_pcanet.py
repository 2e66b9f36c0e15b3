"""Tests of the PCANet filters (mfif.pcanet_fit) and the ``pcanet`` fusion method."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import mfif
from mfif.errors import UsageError
from mfif.methods import METHODS
from mfif.methods.pcanet import load_filters, pcanet_energy
from mfif.pcanet_fit import fit_filters, main as fit_main, orient


def _photo(rng: np.random.Generator, h: int = 96, w: int = 128) -> np.ndarray:
    """A texture with a roughly natural (1/f-like) spectrum, float32 in [0, 1]."""
    img = np.zeros((h, w), np.float32)
    for sigma in (0.7, 2.0, 5.0):
        img += cv2.GaussianBlur(rng.random((h, w), dtype=np.float32), (0, 0), sigma) * sigma
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)


@pytest.fixture(scope="module")
def sharp_pair():
    """A sharp 192x192 photo and a pair: A sharp inside a disk, B sharp outside, with the mask."""
    from skimage import data

    img = data.camera()[160:352, 160:352].astype(np.float32) / 255.0
    yy, xx = np.mgrid[:192, :192]
    inside = (yy - 96) ** 2 + (xx - 90) ** 2 < 60 ** 2
    blur = cv2.GaussianBlur(img, (0, 0), 2.5)
    a = np.where(inside, img, blur).astype(np.float32)
    b = np.where(inside, blur, img).astype(np.float32)
    return img, a, b, np.where(inside, 0, 1)


def test_registered_with_decision_and_references():
    m = METHODS["pcanet"]
    assert m.has_decision and not m.needs_torch
    assert "References" in (m.load().__doc__ or "")
    assert "Chan" in m.load().__doc__
    for p in m.params:
        assert p.choices is not None or p.min is not None or p.max is not None or p.type is str


def test_shipped_filters_are_orthonormal_zero_sum_pca_banks():
    f = load_filters()
    assert f.stage1.shape == (8, 7, 7) and f.stage2.shape == (8, 7, 7)
    for bank in (f.stage1, f.stage2):
        w = bank.reshape(len(bank), -1).astype(np.float64)
        np.testing.assert_allclose(w @ w.T, np.eye(len(w)), atol=1e-5)
        np.testing.assert_allclose(w.sum(axis=1), 0.0, atol=1e-5)
    assert f.meta["format"] == "mfif-pcanet/1"
    assert f.meta["photo_dir"] == "train_images"  # never the test photos
    assert f.meta["size"] == 7 and f.meta["n1"] == 8 and f.meta["n2"] == 8


def test_fit_command_is_reproducible_and_seeded(tmp_path, rng):
    from mfif.io import from_float, write_image

    photos = tmp_path / "photos"
    for i in range(3):
        write_image(photos / f"p{i}.png", from_float(_photo(rng)))
    outs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / f"{name}.npz"
        assert fit_main([str(photos), str(out), "--seed", str(seed), "--patches", "300"]) == 0
        outs.append(np.load(out))
    a, b, c = outs
    for key in ("stage1", "stage2", "eig1", "eig2"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["stage2"], c["stage2"])
    meta = json.loads(str(a["meta"]))
    assert meta["seed"] == 5 and meta["photos"] == 3 and meta["patches_per_photo"] == 300
    # the fitted banks are orthonormal, and their eigenvalues come in decreasing order
    w = a["stage1"].reshape(8, -1).astype(np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-5)
    assert np.all(np.diff(a["eig1"]) <= 0) and np.all(np.diff(a["eig2"]) <= 0)
    # the method accepts a fitted file
    src = _photo(rng, 64, 64)
    res = mfif.fuse([src, cv2.GaussianBlur(src, (0, 0), 2)], method="pcanet", filters=str(tmp_path / "a.npz"))
    assert res.decision.mean() < 0.5


def test_fit_errors(tmp_path, rng):
    with pytest.raises(UsageError):
        fit_filters([], seed=0)
    with pytest.raises(UsageError):
        fit_filters([_photo(rng, 10, 10)])
    with pytest.raises(UsageError):
        fit_filters([_photo(rng)], size=6)
    assert fit_main([str(tmp_path / "missing"), str(tmp_path / "x.npz")]) == 2


def test_orient_fixes_the_sign_deterministically():
    v = np.array([[0.0, -0.6, 0.59, 0.1], [0.2, 0.5, -0.8, 0.0]])
    o = orient(v)
    np.testing.assert_array_equal(orient(-v), o)
    assert o[0, 1] > 0 and o[1, 1] > 0


@pytest.mark.slow
@pytest.mark.data
def test_shipped_filters_are_reproduced_by_the_fit_command(shared_data):
    from mfif.pcanet_fit import fit_from_directory

    shipped = load_filters()
    m = shipped.meta
    fitted = fit_from_directory(shared_data / "train_images", size=m["size"], n1=m["n1"], n2=m["n2"],
                                patches=m["patches_per_photo"], seed=m["seed"])
    assert fitted["meta"]["photos_sha256"] == m["photos_sha256"]
    np.testing.assert_allclose(fitted["stage1"], shipped.stage1, atol=1e-5)
    np.testing.assert_allclose(fitted["stage2"], shipped.stage2, atol=1e-5)


def test_energy_drops_with_defocus(rng):
    f = load_filters()
    img = _photo(rng, 64, 64)
    for stage in ("1", "2", "both"):
        e_sharp = pcanet_energy(img, f, stage=stage).mean()
        e_blur = pcanet_energy(cv2.GaussianBlur(img, (0, 0), 2.0), f, stage=stage).mean()
        assert e_blur < 0.7 * e_sharp
    # zero-sum filters: a brightness offset does not change the measure
    np.testing.assert_allclose(pcanet_energy(img + 0.1, f), pcanet_energy(img, f), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("colour", [False, True], ids=["gray", "colour"])
def test_self_fusion_returns_the_input(colour, rng):
    img = _photo(rng, 64, 80)
    if colour:
        img = np.stack([img, img[::-1], img[:, ::-1]], axis=-1)
    res = mfif.fuse([img, img], method="pcanet")
    np.testing.assert_allclose(res.fused, img, atol=1e-6)
    assert res.decision.shape == img.shape[:2] and np.all(res.decision == 0)


def test_decision_flips_when_sources_are_swapped(sharp_pair):
    _, a, b, mask = sharp_pair
    d1 = mfif.fuse([a, b], method="pcanet").decision
    d2 = mfif.fuse([b, a], method="pcanet").decision
    assert np.mean(d1 != 1 - d2) < 0.01
    assert np.mean(d1 == mask) > 0.9


def test_quality_beats_average_against_ground_truth(sharp_pair):
    from mfif.metrics import decision_accuracy, ssim

    sharp, a, b, mask = sharp_pair
    res = mfif.fuse([a, b], method="pcanet")
    avg = mfif.fuse([a, b], method="average")
    s_p, s_a = ssim(res.fused, sharp), ssim(avg.fused, sharp)
    assert s_p > s_a + 0.03, (s_p, s_a)
    assert decision_accuracy(res.decision, mask) > 0.95
    assert set(res.stage_maps()) >= {"score_0", "score_1", "decision", "initial_decision"}


def test_three_sources_and_options(rng):
    img = _photo(rng, 72, 72)
    srcs = [img.copy() for _ in range(3)]
    for k, (y0, y1) in enumerate(((0, 24), (24, 48), (48, 72))):
        for j in range(3):
            if j != k:
                srcs[j][y0:y1] = cv2.GaussianBlur(img, (0, 0), 2.5)[y0:y1]
    for opts in ({}, {"stage": "1"}, {"stage": "both", "window": 3, "gf_radius": 0, "min_region": 0}):
        res = mfif.fuse(srcs, method="pcanet", **opts)
        assert res.fused.shape == img.shape and res.scores.shape == (3, 72, 72)
        assert set(np.unique(res.decision)) <= {0, 1, 2}
        assert np.mean(res.decision[30:42] == 1) > 0.8


def test_bad_options_and_filters(tmp_path, rng):
    img = _photo(rng, 32, 32)
    with pytest.raises(UsageError):
        mfif.fuse([img, img], method="pcanet", stage="3")
    with pytest.raises(UsageError):
        mfif.fuse([img, img], method="pcanet", filters=str(tmp_path / "missing.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, stage1=np.zeros((8, 6, 6)), stage2=np.zeros((8, 7, 7)))
    with pytest.raises(UsageError):
        mfif.fuse([img, img], method="pcanet", filters=str(bad))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(UsageError):
        mfif.fuse([img, img], method="pcanet", filters=str(junk))
