"""Saturated pixels in registration (mfif.align.pyramid.saturation_masks, mfif.align.ecc.match_clipping).

Exposure flicker makes one frame of a pair saturate where the other does not; the outlines of the
clipped areas then differ and bias ECC. The pair is clipped at one common scene level first, with
the gain fitted where neither frame is clipped; nothing changes when the gain is 1 within the
saturation tolerance or when the frame's quadrants disagree on it.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mfif.align.ecc import match_clipping
from mfif.align.pyramid import CLIP_MARGIN, SATURATED, make_work, prefiltered, pyramid_levels

H, W = 240, 320


def scene(seed: int = 0) -> np.ndarray:
    """A smooth textured float scene in [0.05, 0.9] with one bright disc (0.9) in each quadrant."""
    rng = np.random.default_rng(seed)
    s = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 3.0)
    s = 0.1 + 0.5 * (s - s.min()) / (s.max() - s.min())
    for cy, cx in ((60, 80), (60, 240), (180, 80), (180, 240)):
        cv2.circle(s, (cx, cy), 22, 0.9, -1)
    return cv2.GaussianBlur(s, (0, 0), 1.5)


def as8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def test_saturation_masks_mark_clipped_pixels_and_a_margin():
    img = np.full((H, W, 3), 100, np.uint8)
    img[100:110, 150:160, 2] = 255  # one channel saturated is enough
    work = make_work(img, (W, H))
    m = work.clipped[0]
    assert m[100:110, 150:160].all()
    assert m[105, 150 - CLIP_MARGIN] and not m[105, 150 - CLIP_MARGIN - 1]
    assert not m[:90].any() and not m[:, :140].any()
    assert all(k.shape == a.shape and k.any() for k, a in zip(work.clipped, work.levels))
    assert make_work(np.full((H, W, 3), 250, np.uint8), (W, H)).clipped is None  # below 0.99 of 255
    assert make_work(img.astype(np.float32) / 255, (W, H)).clipped is None  # floats: no known level
    assert SATURATED * 255 <= 253 <= 255


def test_the_unclipped_frame_is_clipped_where_the_other_saturates():
    s = scene()
    tmpl = make_work(as8(s), (W, H))             # darker: nothing clipped
    inp = make_work(as8(1.2 * s), (W, H))        # brighter: the discs saturate
    assert tmpl.clipped is None and inp.clipped is not None
    t_smooth, i_smooth = match_clipping(tmpl, inp, np.eye(3))
    assert i_smooth is inp.smooth  # the saturated frame is left as it is
    expect = prefiltered(pyramid_levels(np.minimum(tmpl.levels[0], np.float32(1 / 1.2))))
    # the gain is fitted (8-bit rounding): the clip level agrees to a few thousandths
    assert np.abs(t_smooth[0] - expect[0]).max() < 5e-3
    # after matching, both frames are flat at their saturation over the same area
    flat_t = t_smooth[0] >= t_smooth[0].max() - 2e-3
    flat_i = i_smooth[0] >= i_smooth[0].max() - 2e-3
    assert np.mean(flat_t != flat_i) < 0.002


def test_nothing_changes_without_an_exposure_difference_or_with_an_untrusted_gain():
    s = scene()
    bright = make_work(as8(1.2 * s), (W, H))
    assert match_clipping(make_work(as8(s), (W, H)), make_work(as8(s), (W, H)), np.eye(3)) is None  # no clipping
    assert match_clipping(bright, make_work(as8(1.2 * s), (W, H)), np.eye(3)) is None  # same exposure
    uneven = s.copy()
    uneven[:, : W // 2] *= 1.1  # one half 10 % brighter: the quadrants disagree on the gain
    assert match_clipping(make_work(as8(uneven), (W, H)), bright, np.eye(3)) is None


@pytest.mark.data
def test_flickering_stack_with_clipped_sky_registers_within_a_quarter_pixel(shared_data, monkeypatch):
    """The benchmark stack that missed 0.5 px (docs/align.md: 0.689 px without clip matching)."""
    import mfif.align.ecc as ecc_module
    from mfif.align import apply_transform, estimate_transforms
    from mfif.io import read_image
    from mfif.synth import handheld_stack

    photo = read_image(shared_data / "train_images" / "253055.jpg")
    st = handheld_stack(photo, rng=np.random.default_rng(0), n=7, size=(1200, 800))

    def worst(reg):
        x0, y0, x1, y1 = reg.valid_box
        xs, ys = np.meshgrid(np.linspace(x0, x1 - 1, 9), np.linspace(y0, y1 - 1, 9))
        p = np.c_[xs.ravel(), ys.ravel()]
        return max(float(np.hypot(*(apply_transform(reg.transforms[i], apply_transform(np.linalg.inv(t), p)) - p).T).max())
                   for i, t in enumerate(st.transforms) if i != st.reference)

    assert worst(estimate_transforms(st.frames, reference=st.reference)) < 0.25
    monkeypatch.setattr(ecc_module, "match_clipping", lambda *a: None)  # without: the saturating frame pulls
    assert worst(estimate_transforms(st.frames, reference=st.reference)) > 0.5
