"""Tests of mfif.align: registration of (hand-held) focus stacks.

Synthetic frames are cut from one larger canvas, so that the reference and every moved frame
show real image content everywhere (no padding that would contradict the known transform):
the reference is the canvas shifted by ``MARGIN``, and frame pixel ``x`` shows the reference
point ``T x`` for the known frame -> reference transform ``T``.
"""
from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from mfif.align import AlignResult, align_stack, transform_parameters
from mfif.align import largest_rectangle as _largest_rectangle, row_intervals as _row_intervals
from mfif.errors import AlignmentError, UsageError

H, W = 360, 480
MARGIN = 48


@pytest.fixture(scope="module")
def canvas() -> np.ndarray:
    from skimage import data

    img = data.astronaut()
    return cv2.resize(img, (W + 2 * MARGIN, H + 2 * MARGIN), interpolation=cv2.INTER_AREA)


def sim(scale=1.0, rot_deg=0.0, tx=0.0, ty=0.0, center=((W - 1) / 2, (H - 1) / 2)) -> np.ndarray:
    """Similarity about ``center``: scale and rotate, then shift by (tx, ty)."""
    a = math.radians(rot_deg)
    lin = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.asarray(center, float)
    t = np.eye(3)
    t[:2, :2] = lin
    t[:2, 2] = c - lin @ c + [tx, ty]
    return t


def make_frame(canvas: np.ndarray, t: np.ndarray, blur: float = 0.0) -> np.ndarray:
    """Frame whose pixel x shows reference point ``t @ x`` (optionally defocused)."""
    m = np.array([[1.0, 0, MARGIN], [0, 1.0, MARGIN], [0, 0, 1.0]]) @ t
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    if abs(t[2, 0]) + abs(t[2, 1]) > 0:
        f = cv2.warpPerspective(canvas, m, (W, H), flags=flags)
    else:
        f = cv2.warpAffine(canvas, m[:2], (W, H), flags=flags)
    if blur:
        f = cv2.GaussianBlur(f, (0, 0), blur)
    return f


def corner_error(t_est: np.ndarray, t_true: np.ndarray) -> float:
    """Largest displacement between the two transforms at the frame corners (px)."""
    c = np.array([[0, 0, 1], [W - 1, 0, 1], [W - 1, H - 1, 1], [0, H - 1, 1]], float).T
    a, b = t_est @ c, t_true @ c
    return float(np.abs(a[:2] / a[2] - b[:2] / b[2]).max())


@pytest.fixture(scope="module")
def reference(canvas) -> np.ndarray:
    return make_frame(canvas, np.eye(3))


# --------------------------------------------------------------------------------------------
# recovering known transforms


def test_recovers_shift_rotation_scale(canvas, reference):
    t = sim(1.02, 1.0, 5.3, -3.7)
    res = align_stack([reference, make_frame(canvas, t)], reference=0)
    assert isinstance(res, AlignResult)
    assert res.transforms[0].shape == (3, 3) and res.transforms[0].dtype == np.float64
    np.testing.assert_allclose(res.transforms[0], np.eye(3))
    assert corner_error(res.transforms[1], t) < 0.1
    scale, rot, _, _ = transform_parameters(res.transforms[1])
    assert scale == pytest.approx(1.02, abs=1e-3)
    assert rot == pytest.approx(1.0, abs=0.02)
    assert res.correlations[1] > 0.99
    assert 0 <= res.residuals[1] < 0.5


def test_aligned_frame_matches_reference(canvas, reference):
    t = sim(1.015, 0.8, 4.3, -2.6)
    frame = make_frame(canvas, t)
    res = align_stack([reference, frame], reference=0)
    x0, y0, x1, y1 = res.valid_box
    ref_crop = reference[y0:y1, x0:x1].astype(np.float64)
    aligned = np.abs(res.images[1].astype(np.float64) - ref_crop).mean()
    unaligned = np.abs(frame[y0:y1, x0:x1].astype(np.float64) - ref_crop).mean()
    assert aligned < 2.5, aligned            # gray levels: interpolation noise only
    assert unaligned > 10 * aligned


@pytest.mark.parametrize("blur", [2.5, 4.0])
def test_recovers_transform_of_defocused_frame(canvas, reference, blur):
    # Focus stack frames differ in focus: the moved frame is also strongly blurred.
    t = sim(0.985, -0.6, -6.2, 4.1)
    frame = make_frame(canvas, t, blur=blur)
    res = align_stack([reference, frame], reference=0)
    assert corner_error(res.transforms[1], t) < 0.5
    x0, y0, x1, y1 = res.valid_box
    target = cv2.GaussianBlur(reference, (0, 0), blur)[y0:y1, x0:x1].astype(np.float64)
    assert np.abs(res.images[1].astype(np.float64) - target).mean() < 2.5


def test_chained_stack_with_middle_reference(canvas):
    # 5 frames, each moved and focused differently; the middle one is the reference.
    truths = [sim(0.97, 0.5, 9.0, -6.0), sim(0.985, 0.3, 4.0, -2.5), np.eye(3),
              sim(1.012, -0.4, -3.5, 5.0), sim(1.025, -0.7, -8.0, 7.5)]
    blurs = [3.0, 1.5, 0.0, 2.0, 3.5]
    frames = [make_frame(canvas, t, b) for t, b in zip(truths, blurs)]
    res = align_stack(frames, reference="middle")
    assert res.reference == 2
    assert res.partners == [1, 2, -1, 2, 3]
    for i, t in enumerate(truths):
        assert corner_error(res.transforms[i], t) < 0.5, i
    assert all(c > 0.9 for c in res.correlations)
    shapes = {im.shape for im in res.images}
    assert len(shapes) == 1


def test_direct_registration_option(canvas, reference):
    truths = [sim(1.01, 0.3, 2.0, 1.0), np.eye(3), sim(0.99, -0.3, -2.0, 3.0)]
    frames = [make_frame(canvas, t) for t in truths]
    frames[1] = reference
    res = align_stack(frames, chain=False, reference=1)
    assert res.partners == [1, -1, 1]
    for i, t in enumerate(truths):
        assert corner_error(res.transforms[i], t) < 0.1


@pytest.mark.parametrize("model, t", [
    ("translation", sim(1.0, 0.0, -7.4, 2.2)),
    ("affine", np.array([[1.01, 0.012, 3.0], [-0.006, 0.994, -2.0], [0, 0, 1.0]])),
    ("homography", np.array([[1.0, 0.01, 3.0], [-0.005, 1.01, -2.0], [2e-5, -1e-5, 1.0]])),
])
def test_other_models(canvas, reference, model, t):
    res = align_stack([reference, make_frame(canvas, t, blur=1.5)], reference=0, model=model)
    assert res.model == model
    assert corner_error(res.transforms[1], t) < 0.5
    if model == "translation":
        np.testing.assert_allclose(res.transforms[1][:2, :2], np.eye(2))
    if model != "homography":
        np.testing.assert_allclose(res.transforms[1][2], [0, 0, 1])


def test_similarity_model_has_no_shear(canvas, reference):
    # An affine motion fitted with the similarity model stays a similarity.
    t = np.array([[1.01, 0.004, 3.0], [-0.002, 1.005, -2.0], [0, 0, 1.0]])
    res = align_stack([reference, make_frame(canvas, t)], reference=0, max_residual=None)
    a = res.transforms[1][:2, :2]
    assert a[0, 0] == pytest.approx(a[1, 1], abs=1e-9)
    assert a[0, 1] == pytest.approx(-a[1, 0], abs=1e-9)


# --------------------------------------------------------------------------------------------
# dtypes, cropping, padding


def test_uint16_stays_uint16(canvas):
    rng = np.random.default_rng(5)
    big = canvas.astype(np.uint16) * 257 + rng.integers(0, 200, canvas.shape, dtype=np.uint16)
    t = sim(1.01, 0.5, 3.3, -1.7)
    ref16 = make_frame(big, np.eye(3))
    frame16 = make_frame(big, t)
    res = align_stack([ref16, frame16], reference=0)
    assert all(im.dtype == np.uint16 for im in res.images)
    x0, y0, x1, y1 = res.valid_box
    np.testing.assert_array_equal(res.images[0], ref16[y0:y1, x0:x1])  # reference: sliced, not resampled
    assert np.any(res.images[1] % 257 != 0)  # no 8-bit step anywhere
    assert corner_error(res.transforms[1], t) < 0.1
    diff = np.abs(res.images[1].astype(np.float64) - ref16[y0:y1, x0:x1]).mean()
    assert diff < 2.5 * 257


def test_float_and_gray_inputs(canvas):
    gray = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    t = sim(0.99, -0.5, -2.5, 3.0)
    frames = [np.clip(make_frame(gray, m), 0, 1) for m in (np.eye(3), t)]  # cubic overshoot
    res = align_stack(frames, reference=0)
    assert res.images[1].dtype == np.float32 and res.images[1].ndim == 2
    assert 0.0 <= float(res.images[1].min()) and float(res.images[1].max()) <= 1.0
    assert corner_error(res.transforms[1], t) < 0.1


def test_crop_box_consistent(canvas, reference):
    truths = [sim(1.02, 0.7, 6.0, -4.0), np.eye(3), sim(0.98, -0.5, -5.0, 3.0)]
    frames = [make_frame(canvas, t) for t in truths]
    frames[1] = reference
    res = align_stack(frames)
    x0, y0, x1, y1 = res.valid_box
    assert res.cropped
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    assert (x1 - x0) * (y1 - y0) > 0.8 * W * H
    for im in res.images:
        assert im.shape == (y1 - y0, x1 - x0, 3)
    np.testing.assert_array_equal(res.images[1], reference[y0:y1, x0:x1])
    # every corner pixel of the box is covered by every frame
    box = np.array([[x0, y0, 1], [x1 - 1, y0, 1], [x1 - 1, y1 - 1, 1], [x0, y1 - 1, 1]], float).T
    for t in res.transforms:
        p = np.linalg.inv(t) @ box
        p = p[:2] / p[2]
        assert np.all(p >= -1e-6) and np.all(p[0] <= W - 1 + 1e-6) and np.all(p[1] <= H - 1 + 1e-6)
    # the box is maximal: growing it by one pixel on any side leaves some frame
    for grow in ([-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]):
        gx0, gy0, gx1, gy1 = np.add(res.valid_box, grow)
        g = np.array([[gx0, gy0, 1], [gx1 - 1, gy0, 1], [gx1 - 1, gy1 - 1, 1], [gx0, gy1 - 1, 1]], float).T
        outside = False
        for t in res.transforms:
            p = np.linalg.inv(t) @ g
            p = p[:2] / p[2]
            outside |= bool(np.any(p < -1e-6) or np.any(p[0] > W - 1 + 1e-6) or np.any(p[1] > H - 1 + 1e-6))
        assert outside, grow


def test_no_crop_keeps_reference_size(canvas, reference):
    t = sim(1.02, 0.7, 6.0, -4.0)
    frames = [reference, make_frame(canvas, t)]
    full = align_stack(frames, reference=0, crop=False)
    cropped = align_stack(frames, reference=0, crop=True)
    assert not full.cropped
    assert all(im.shape == reference.shape for im in full.images)
    np.testing.assert_array_equal(full.images[0], reference)
    assert full.valid_box == cropped.valid_box
    x0, y0, x1, y1 = full.valid_box
    inner = full.images[1][y0:y1, x0:x1].astype(np.int16)
    assert np.abs(inner - cropped.images[1]).max() <= 1  # same warp inside the box


def test_largest_rectangle_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(60):
        w, h = (int(v) for v in rng.integers(8, 30, 2))
        quads = []
        for _ in range(int(rng.integers(1, 4))):
            t = sim(rng.uniform(0.85, 1.15), rng.normal(0, 15), rng.normal(0, 3), rng.normal(0, 3),
                    center=((w - 1) / 2, (h - 1) / 2))
            c = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float).T
            quads.append((t @ c)[:2].T)
        box = _largest_rectangle(*_row_intervals(quads, w, h))
        # brute force on the pixel grid
        ys, xs = np.mgrid[0:h, 0:w]
        inside = np.ones((h, w), bool)
        for q in quads:
            sgn = np.sign(sum(q[i, 0] * q[(i + 1) % 4, 1] - q[(i + 1) % 4, 0] * q[i, 1] for i in range(4)))
            for i in range(4):
                p0, p1 = q[i], q[(i + 1) % 4]
                cross = (p1[0] - p0[0]) * (ys - p0[1]) - (p1[1] - p0[1]) * (xs - p0[0])
                inside &= sgn * cross >= -1e-9
        best = 0
        for y0 in range(h):
            for y1 in range(y0 + 1, h + 1):
                run = 0
                for v in inside[y0:y1].all(axis=0):
                    run = run + 1 if v else 0
                    best = max(best, run * (y1 - y0))
        area = 0 if box is None else (box[2] - box[0]) * (box[3] - box[1])
        assert area == best
        if box is not None:
            assert inside[box[1]:box[3], box[0]:box[2]].all()


# --------------------------------------------------------------------------------------------
# failures and options


def test_flat_frame_raises_with_name(reference):
    flat = np.full_like(reference, 128)
    with pytest.raises(AlignmentError) as exc:
        align_stack([reference, reference.copy(), flat], names=["a.png", "b.png", "c.png"])
    msg = str(exc.value)
    assert msg.startswith("frame 2 (c.png) could not be aligned to frame 1 (b.png): ")
    assert "\n" not in msg


def test_noise_frame_raises(reference):
    noise = np.random.default_rng(3).integers(0, 256, reference.shape, dtype=np.uint8)
    with pytest.raises(AlignmentError, match=r"^frame 0 could not be aligned to frame 1: "):
        align_stack([noise, reference])


def test_unrelated_image_raises(reference):
    from skimage import data

    other = cv2.resize(data.chelsea(), (W, H), interpolation=cv2.INTER_AREA)
    with pytest.raises(AlignmentError, match=r"frame 1 \(cat\.png\) could not be aligned"):
        align_stack([reference, other], reference=0, names=["astronaut.png", "cat.png"])


def test_implausible_scale_raises(canvas, reference):
    frame = make_frame(canvas, sim(1 / 1.6))
    with pytest.raises(AlignmentError, match=r"implausible scale 1\.6"):
        align_stack([reference, frame], reference=0)


def test_residual_threshold(canvas, reference):
    frame = make_frame(canvas, sim(1.0, 0.0, 2.0, 1.0), blur=3.0)
    res = align_stack([reference, frame], reference=0, max_residual=None)
    assert res.residuals[1] > 0.05
    with pytest.raises(AlignmentError, match=r"residual .* exceeds max_residual 0\.01 px"):
        align_stack([reference, frame], reference=0, max_residual=0.01)


def test_alignment_error_is_usage_error():
    assert issubclass(AlignmentError, UsageError)


def test_progress_reports_every_frame(canvas, reference):
    frames = [make_frame(canvas, sim(1.0, 0.0, d, -d)) for d in (-3.0, 0.0, 3.0, 6.0)]
    calls = []
    align_stack(frames, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_single_frame(reference):
    res = align_stack([reference])
    np.testing.assert_array_equal(res.images[0], reference)
    np.testing.assert_allclose(res.transforms[0], np.eye(3))
    assert res.valid_box == (0, 0, W, H)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"model": "projective"}, "unknown alignment model"),
    ({"reference": 7}, "out of range"),
    ({"reference": "centre"}, "reference must be"),
    ({"interpolation": "nearest"}, "unknown interpolation"),
    ({"max_residual": -1}, "max_residual"),
    ({"names": ["only-one.png"]}, "names"),
])
def test_bad_options(reference, kwargs, pattern):
    with pytest.raises(UsageError, match=pattern):
        align_stack([reference, reference], **kwargs)


def test_mismatched_frames(reference):
    with pytest.raises(UsageError, match="share a shape"):
        align_stack([reference, reference[:-2]])
    with pytest.raises(UsageError, match="share a dtype"):
        align_stack([reference, reference.astype(np.uint16)])
    with pytest.raises(UsageError) as exc:
        align_stack([reference, reference[:-2]])
    assert not isinstance(exc.value, AlignmentError)


# --------------------------------------------------------------------------------------------
# real data


@pytest.mark.data
def test_pcb_handheld_stack(shared_data):
    from mfif.io import read_image

    paths = sorted((shared_data / "stacks" / "pcb").glob("pcb_*.jpg"))  # expected.jpg is not a frame
    assert len(paths) == 7
    frames = [read_image(p) for p in paths]
    t0 = time.perf_counter()
    res = align_stack(frames, names=[p.name for p in paths])
    seconds = time.perf_counter() - t0
    print("\n".join(res.describe()), f"\nvalid box {res.valid_box}, {seconds:.2f} s")
    assert res.reference == 3
    for i, t in enumerate(res.transforms):
        scale, rot, tx, ty = transform_parameters(t)
        assert 0.95 < scale < 1.05 and abs(rot) < 0.5 and abs(tx) < 60 and abs(ty) < 60, i
    assert all(c > 0.95 for c in res.correlations)
    assert all(r < 6.0 for r in res.residuals)
    # focus breathing: magnification grows monotonically through the stack
    scales = [transform_parameters(t)[0] for t in res.transforms]
    assert all(a < b for a, b in zip(scales, scales[1:]))
    x0, y0, x1, y1 = res.valid_box
    assert (x1 - x0) * (y1 - y0) > 0.9 * 2048 * 1536
    assert all(im.shape == (y1 - y0, x1 - x0, 3) and im.dtype == np.uint8 for im in res.images)
    assert seconds < 30  # about 1-2 s on 2 idle cores; generous for busy CI machines
