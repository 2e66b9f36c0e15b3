"""Unit tests of the shared pipeline stages, each against values worked out by hand.

decision -> consistency (small regions, boundary refinement, weights) -> blend (weighted,
pyramid, seam). Every decision-map method runs these same functions.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mfif.blend import max_pyramid_levels, pyramid_blend, seam_blend, weighted_blend
from mfif.consistency import (
    best_margin,
    boundary_distance,
    decision_confidence,
    decision_weights,
    refine_boundaries,
    remove_small_regions,
    verify_decision,
)
from mfif.decision import argmax_decision, label_boundary, labels_present, one_hot, threshold_decision


# ---------------------------------------------------------------------------------------------
# decision
# ---------------------------------------------------------------------------------------------
def test_argmax_and_threshold_by_hand():
    s = np.array([[[0.1, 0.9], [0.5, 0.5]], [[0.2, 0.1], [0.5, 0.4]]], np.float32)
    np.testing.assert_array_equal(argmax_decision(s), [[1, 0], [0, 0]])  # ties: lowest index
    np.testing.assert_array_equal(threshold_decision(s[0], threshold=0.5), [[1, 0], [0, 0]])


def test_labels_present_are_the_unique_values():
    rng = np.random.default_rng(0)
    for values in ([3], [2, 3], [0, 5], [-4, -3, 7], [0, 1, 2, 6], [-32000, 32000]):
        d = rng.choice(np.array(values, np.int16), size=(9, 11))
        d.flat[: len(values)] = values  # every value present
        np.testing.assert_array_equal(labels_present(d), np.unique(d))
    d = np.array([[0, 2], [2, 0]], np.int16)  # a gap between two labels
    np.testing.assert_array_equal(labels_present(d), [0, 2])


def test_label_boundary_two_pixels_wide():
    d = np.zeros((3, 6), np.int16)
    d[:, 3:] = 1
    b = label_boundary(d)
    np.testing.assert_array_equal(b, np.tile([False, False, True, True, False, False], (3, 1)))
    assert not label_boundary(np.ones((4, 4))).any()


def test_boundary_distance_by_hand():
    d = np.zeros((1, 9), np.int16)
    d[0, 4:] = 1  # boundary pixels at columns 3 and 4
    np.testing.assert_allclose(boundary_distance(d)[0], [3, 2, 1, 0, 0, 1, 2, 3, 4], atol=1e-5)
    assert np.isinf(boundary_distance(np.zeros((3, 3), np.int16))).all()


def test_margins_and_confidence():
    two = np.array([[[0.9, 0.5]], [[0.2, 0.5]]], np.float32)
    np.testing.assert_allclose(best_margin(two), [[0.7, 0.0]])
    three = np.array([[[0.1]], [[0.7]], [[0.4]]], np.float32)
    np.testing.assert_allclose(best_margin(three), [[0.3]], atol=1e-6)
    p = np.array([[[1.0, 0.5, 0.25]]], np.float32)  # P(A focused), two sources
    np.testing.assert_allclose(decision_confidence(p), [[1.0, 0.0, 0.5]])


# ---------------------------------------------------------------------------------------------
# consistency: small regions
# ---------------------------------------------------------------------------------------------
def test_small_island_and_hole_are_absorbed():
    d = np.zeros((20, 20), np.int16)
    d[:, 10:] = 1
    d[3:5, 3:5] = 1    # 4-px island of 1 inside the 0 half
    d[12:15, 14:17] = 0  # 9-px hole of 0 inside the 1 half
    out = remove_small_regions(d, min_area=10)
    expected = np.zeros((20, 20), np.int16)
    expected[:, 10:] = 1
    np.testing.assert_array_equal(out, expected)
    # a large enough region stays
    np.testing.assert_array_equal(remove_small_regions(d, min_area=4)[3:5, 3:5], 1)
    assert remove_small_regions(d, min_area=0) is not d  # always a new array


def test_confident_small_regions_are_kept():
    d = np.zeros((20, 20), np.int16)
    d[5:8, 5:8] = 1  # 9 px
    conf = np.full((20, 20), 0.1, np.float32)
    conf[5:8, 5:8] = 0.9
    kept = remove_small_regions(d, min_area=50, confidence=conf, keep_above=0.5)
    np.testing.assert_array_equal(kept, d)
    gone = remove_small_regions(d, min_area=50, confidence=conf, keep_above=0.5, keep_min_area=10)
    assert not gone.any()  # confident but below the floor
    unsure = remove_small_regions(d, min_area=50, confidence=np.full((20, 20), 0.2), keep_above=0.5)
    assert not unsure.any()


# ---------------------------------------------------------------------------------------------
# consistency: boundary refinement
# ---------------------------------------------------------------------------------------------
def _texture(seed, shape=(40, 60)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_refine_boundaries_moves_a_misplaced_boundary():
    # source 0 sharp left of column 30, source 1 sharp right of it; the coarse decision says 24
    sharp = _texture(0)
    blur = ndimage.gaussian_filter(sharp, 3).astype(np.float32)
    a, b = blur.copy(), blur.copy()
    a[:, :30], b[:, 30:] = sharp[:, :30], sharp[:, 30:]
    coarse = np.zeros((40, 60), np.int16)
    coarse[:, 24:] = 1
    fine = refine_boundaries(coarse, [a, b], band=10, window=5)
    truth = np.zeros((40, 60), np.int16)
    truth[:, 30:] = 1
    assert np.mean(fine[:, 20:40] == truth[:, 20:40]) > 0.9
    assert np.mean(coarse[:, 20:40] == truth[:, 20:40]) < 0.75
    # outside the band nothing moves
    np.testing.assert_array_equal(fine[:, :12], coarse[:, :12])
    # band 0 (off) returns the map itself
    assert refine_boundaries(coarse, [a, b], band=0) is coarse


def test_refine_boundaries_leaves_noise_alone():
    # two noisy copies of one flat image: the fine measure sees only noise, which a noise
    # threshold of 8 sigma rejects, so the decision stays put
    rng = np.random.default_rng(1)
    a = (0.5 + rng.normal(0, 0.02, (40, 60))).astype(np.float32)
    b = (0.5 + rng.normal(0, 0.02, (40, 60))).astype(np.float32)
    coarse = np.zeros((40, 60), np.int16)
    coarse[:, 30:] = 1
    np.testing.assert_array_equal(refine_boundaries(coarse, [a, b], band=10, noise_k=8.0), coarse)
    assert (refine_boundaries(coarse, [a, b], band=10, noise_k=0.0) != coarse).any()


def test_verify_decision_is_regions_then_refinement():
    sharp = _texture(2)
    blur = ndimage.gaussian_filter(sharp, 3).astype(np.float32)
    a, b = blur.copy(), blur.copy()
    a[:, :30], b[:, 30:] = sharp[:, :30], sharp[:, 30:]
    d = np.zeros((40, 60), np.int16)
    d[:, 26:] = 1
    d[5:7, 5:7] = 1
    both = verify_decision(d, [a, b], min_area=20, refine_band=8, refine_window=5)
    by_hand = refine_boundaries(remove_small_regions(d, min_area=20), [a, b], band=8, window=5)
    np.testing.assert_array_equal(both, by_hand)
    assert not both[5:7, 5:7].any()


# ---------------------------------------------------------------------------------------------
# consistency: weights
# ---------------------------------------------------------------------------------------------
def test_decision_weights_sum_to_one_and_follow_the_decision():
    g0, g1 = _texture(3), _texture(4)
    d = np.zeros((40, 60), np.int16)
    d[:, 30:] = 1
    w = decision_weights(d, [g0, g1], radius=4, eps=1e-3)
    assert w.shape == (2, 40, 60) and w.dtype == np.float32
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-5)
    assert w[0, :, :20].min() > 0.99 and w[1, :, 40:].min() > 0.99  # far from the boundary: hard
    np.testing.assert_array_equal(decision_weights(d, [g0, g1], radius=0, eps=1e-3), one_hot(d, 2))


# ---------------------------------------------------------------------------------------------
# blend
# ---------------------------------------------------------------------------------------------
def test_weighted_blend_by_hand():
    a = np.full((2, 2, 3), 0.2, np.float32)
    b = np.full((2, 2, 3), 0.6, np.float32)
    w = np.array([np.full((2, 2), 0.25), np.full((2, 2), 0.75)], np.float32)
    np.testing.assert_allclose(weighted_blend([a, b], w), 0.5)


def test_pyramid_blend_of_identical_sources_is_the_source():
    a = _texture(5, (64, 48))
    np.testing.assert_allclose(pyramid_blend([a, a], 3), a, atol=1e-5)
    assert max_pyramid_levels((64, 48)) == 4 and max_pyramid_levels((3, 100)) == 0


def test_seam_blend_touches_only_the_band():
    sharp = _texture(6, (48, 64))
    blur = ndimage.gaussian_filter(sharp, 2).astype(np.float32)
    a, b = blur.copy(), blur.copy()
    a[:, :32], b[:, 32:] = sharp[:, :32], sharp[:, 32:]
    d = np.zeros((48, 64), np.int16)
    d[:, 32:] = 1
    hard = weighted_blend([a, b], one_hot(d, 2))
    out = seam_blend(hard, [a, b], d, width=6.0)
    far = boundary_distance(d) >= 6.0
    np.testing.assert_array_equal(out[far], hard[far])  # beta = 0 from 6 px on
    assert np.abs(out - hard)[~far].max() > 0
    assert seam_blend(hard, [a, b], d, width=0) is hard
    thin = np.zeros((3, 64), np.float32)  # too small for a pyramid: returned as it is
    assert seam_blend(thin, [thin, thin], np.zeros((3, 64), np.int16), width=6) is thin


@pytest.mark.parametrize("n", [2, 3])
def test_swapping_sources_swaps_every_stage(n):
    """Stages are symmetric in the sources: permuting them permutes decision and weights."""
    grays = [_texture(10 + k) for k in range(n)]
    scores = np.stack([ndimage.uniform_filter(g, 5) for g in grays])
    d = verify_decision(argmax_decision(scores), grays, min_area=30)
    w = decision_weights(d, grays, radius=3, eps=1e-3)
    perm = list(range(n))[::-1]
    d2 = verify_decision(argmax_decision(scores[perm]), [grays[k] for k in perm], min_area=30)
    w2 = decision_weights(d2, [grays[k] for k in perm], radius=3, eps=1e-3)
    np.testing.assert_array_equal(np.array(perm)[d2], d)
    np.testing.assert_allclose(w2[perm], w, atol=1e-6)
