"""``mfif align`` and ``mfif fuse --align``: known synthetic motion, failure paths, skipping.

Synthetic stacks come from :func:`mfif.synth.handheld_stack` on scikit-image's astronaut, so
that these tests need no shared data; the ``pcb`` tests read ``../shared/data``.
"""
from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
from skimage import data

from mfif.align import apply_transform, estimate_transforms, transform_parameters
from mfif.cli import main
from mfif.io import read_image, write_image
from mfif.synth import handheld_stack
from test_cli import assert_usage_error

W, H = 480, 320


@pytest.fixture(scope="module")
def stack():
    return handheld_stack(data.astronaut(), rng=np.random.default_rng(3), n=5, size=(W, H), max_shift=30.0,
                          max_blur=10.0)


def write_stack(folder, frames, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"f{i}.png" for i in range(len(frames))]
    return [write_image(folder / n, f) for n, f in zip(names, frames)]


def point_error(est, truth, box):
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.linspace(x0, x1 - 1, 7), np.linspace(y0, y1 - 1, 7))
    p = np.c_[xs.ravel(), ys.ravel()]
    q = apply_transform(np.linalg.inv(truth), p)
    return float(np.hypot(*(apply_transform(np.asarray(est), q) - p).T).max())


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.err


# --------------------------------------------------------------------------------------------
# known motion


def test_align_report_matches_known_motion(tmp_path, stack, capsys):
    paths = write_stack(tmp_path / "in", stack.frames)
    out, rep = tmp_path / "out", tmp_path / "r.json"
    code, err = run_cli(["align", *paths, "-o", out, "--report", rep, "-q"], capsys)
    assert code == 0, err
    r = json.loads(rep.read_text())
    assert r["reference"] == stack.reference == 2
    x0, y0, x1, y1 = r["valid_box"]
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    for f, truth, p in zip(r["frames"], stack.transforms, paths):
        assert f["status"] == "ok" and f["source"] == str(p)
        assert np.asarray(f["matrix"]).shape == (3, 3)
        assert point_error(f["matrix"], truth, r["valid_box"]) < 0.5
        assert 0 <= f["residual_px"] < 1.0
    written = sorted(q.name for q in out.iterdir())
    assert written == [p.name for p in paths]
    for p in paths:
        a = read_image(out / p.name)
        assert a.shape == (y1 - y0, x1 - x0, 3) and a.dtype == np.uint8
    ref = read_image(paths[2])[y0:y1, x0:x1]
    np.testing.assert_array_equal(read_image(out / paths[2].name), ref)  # the reference is only cropped


def test_align_no_crop_and_16_bit(tmp_path, stack, capsys):
    frames16 = [f.astype(np.uint16) * 257 + 100 for f in stack.frames[:3]]
    paths = write_stack(tmp_path / "in", frames16, [f"f{i}.tif" for i in range(3)])
    code, err = run_cli(["align", *paths, "-o", tmp_path / "out", "--no-crop", "--reference", "first", "-q"], capsys)
    assert code == 0, err
    a = read_image(tmp_path / "out" / "f1.tif")
    assert a.dtype == np.uint16 and a.shape == (H, W, 3)
    assert np.any(a % 257 != 100 % 257)  # no 8-bit step
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "f0.tif"), frames16[0])


def test_aligned_frames_are_what_fuse_fuses(tmp_path, stack, capsys):
    paths = write_stack(tmp_path / "in", stack.frames)
    code, err = run_cli(["align", *paths, "-o", tmp_path / "out", "-q"], capsys)
    assert code == 0, err
    code, err = run_cli(["fuse", *paths, "-o", tmp_path / "avg.png", "-m", "average", "--align", "-q"], capsys)
    assert code == 0, err
    aligned = np.stack([read_image(tmp_path / "out" / p.name).astype(np.float64) for p in paths])
    fused = read_image(tmp_path / "avg.png").astype(np.float64)
    assert fused.shape == aligned.shape[1:]
    assert np.abs(fused - aligned.mean(axis=0)).max() <= 1.0  # rounding only


def test_align_multipage_tiff_writes_each_plane(tmp_path, stack, capsys):
    """One multi-page TIFF: its planes are aligned like the same frames as files and written as
    STEM-planeK.tif; the report names the planes."""
    from tiff_support import write_pages

    write_pages(tmp_path / "z.tif", stack.frames)
    paths = write_stack(tmp_path / "in", stack.frames)
    code, err = run_cli(["align", tmp_path / "z.tif", "-o", tmp_path / "zout", "--report", tmp_path / "r.json",
                         "-q"], capsys)
    assert code == 0, err
    code, err = run_cli(["align", *paths, "-o", tmp_path / "out", "-q"], capsys)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "zout").iterdir())
    assert names == [f"z-plane{k:03d}.tif" for k in range(1, len(paths) + 1)]
    for k, p in enumerate(paths):
        assert np.array_equal(read_image(tmp_path / "zout" / names[k]), read_image(tmp_path / "out" / p.name))
    frames = json.loads((tmp_path / "r.json").read_text())["frames"]
    assert frames[1]["output"].endswith("z-plane002.tif") and "z.tif plane 2" in json.dumps(frames[1])


def test_strong_focus_difference_is_not_a_misregistration():
    # a sharp reference and a frame of the same scene blurred by a 12 px disk (20 px at about
    # 800 px frame width): the residual is measured on blur-matched copies and stays small
    from mfif.io import from_float, to_float
    from mfif.synth import defocus

    big = cv2.resize(data.astronaut(), (W + 160, H + 160), interpolation=cv2.INTER_AREA)
    d = (7.3, -4.6)
    blurred = from_float(np.clip(defocus(to_float(big), "disk", 12.0), 0, 1))
    ref = big[80:80 + H, 80:80 + W]
    m = np.float64([[1, 0, 80 + d[0]], [0, 1, 80 + d[1]]])
    moved = cv2.warpAffine(blurred, m, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    reg = estimate_transforms([ref, moved], reference=0)
    assert reg.status == ["ok", "ok"]
    assert reg.residuals[1] < 1.0
    t = np.array([[1.0, 0.0, d[0]], [0.0, 1.0, d[1]], [0.0, 0.0, 1.0]])
    assert point_error(reg.transforms[1], t, reg.valid_box) < 0.5


# --------------------------------------------------------------------------------------------
# failure paths through the CLI


def _bad_frames(kind, base):
    if kind == "noise":
        return np.random.default_rng(0).integers(0, 256, base.shape, dtype=np.uint8)
    if kind == "other scene":
        return cv2.resize(data.chelsea(), (base.shape[1], base.shape[0]), interpolation=cv2.INTER_AREA)
    if kind == "flat":
        return np.full_like(base, 128)
    raise AssertionError(kind)


@pytest.mark.parametrize("command", ["fuse", "align"])
@pytest.mark.parametrize("kind", ["noise", "other scene", "flat"])
def test_unalignable_frame_is_one_line_naming_it(tmp_path, stack, capsys, kind, command):
    frames = list(stack.frames[:3])
    frames[2] = _bad_frames(kind, frames[0])
    paths = write_stack(tmp_path / "in", frames, ["a.png", "b.png", "bad.png"])
    out = tmp_path / ("o.png" if command == "fuse" else "out")
    args = [command, *paths, "-o", out] + (["-m", "average", "--align"] if command == "fuse" else [])
    code, err = run_cli(args, capsys)
    assert_usage_error(code, err, "frame 2 (bad.png) could not be aligned")
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("command", ["fuse", "align"])
def test_frames_too_small(tmp_path, capsys, command):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (24, 20), dtype=np.uint8) for _ in range(2)]
    paths = write_stack(tmp_path / "in", frames, ["tiny0.png", "tiny1.png"])
    out = tmp_path / ("o.png" if command == "fuse" else "out")
    args = [command, *paths, "-o", out] + (["-m", "average", "--align"] if command == "fuse" else [])
    code, err = run_cli(args, capsys)
    assert_usage_error(code, err, "tiny0.png", "too small to align")


def test_skip_unaligned_fuses_the_rest(tmp_path, stack, capsys):
    frames = list(stack.frames)
    frames[4] = _bad_frames("noise", frames[0])
    paths = write_stack(tmp_path / "in", frames)
    code, err = run_cli(["fuse", *paths, "-o", tmp_path / "o.png", "-m", "focus-map", "--align", "--skip-unaligned",
                         "--depth-map", tmp_path / "d.png"], capsys)
    assert code == 0, err
    warn = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "f4.png" in warn[0] and "skipped" in warn[0]
    depth = read_image(tmp_path / "d.png")
    assert set(np.unique(depth)) <= {0, 1, 2, 3}  # input indices; the skipped frame 4 never wins
    code, err = run_cli(["align", *paths, "-o", tmp_path / "out", "--skip-unaligned", "--report",
                         tmp_path / "r.json", "-q"], capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert [f["status"] for f in r["frames"]] == ["ok"] * 4 + ["skipped"]
    assert r["frames"][4]["matrix"] is None and "could not be aligned" in r["frames"][4]["reason"]
    assert sorted(q.name for q in (tmp_path / "out").iterdir()) == [f"f{i}.png" for i in range(4)]


def test_skip_unaligned_needs_two_frames(tmp_path, stack, capsys):
    frames = [stack.frames[0], _bad_frames("noise", stack.frames[0])]
    paths = write_stack(tmp_path / "in", frames)
    code, err = run_cli(["fuse", *paths, "-o", tmp_path / "o.png", "-m", "average", "--align", "--skip-unaligned"],
                        capsys)
    assert_usage_error(code, err, "only 1 of 2 frames could be aligned", "f1.png")


@pytest.mark.parametrize("value, fragment", [("7", "--reference 7 is out of range for 3 frames"),
                                             ("-1", "--reference -1 is out of range"),
                                             ("centre", "--reference must be first, middle, last or a frame index 0..2")])
def test_reference_option_is_validated(tmp_path, stack, capsys, value, fragment):
    paths = write_stack(tmp_path / "in", stack.frames[:3])
    for command in ("fuse", "align"):
        out = tmp_path / ("o.png" if command == "fuse" else "out")
        args = [command, *paths, "-o", out, f"--reference={value}"] + (["-m", "average", "--align"] if command == "fuse" else [])
        code, err = run_cli(args, capsys)
        assert_usage_error(code, err, fragment, "0..2")


def test_reference_index_and_max_residual(tmp_path, stack, capsys):
    paths = write_stack(tmp_path / "in", stack.frames[:3])
    code, err = run_cli(["align", *paths, "-o", tmp_path / "out", "--reference", "0", "--report", tmp_path / "r.json",
                         "-q"], capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["reference"] == 0
    np.testing.assert_allclose(r["frames"][0]["matrix"], np.eye(3))
    code, err = run_cli(["align", *paths, "-o", tmp_path / "out2", "--max-residual", "0.0001"], capsys)
    assert_usage_error(code, err, "could not be aligned", "exceeds max_residual 0.0001 px")


def test_align_refuses_the_input_folder(tmp_path, stack, capsys):
    paths = write_stack(tmp_path / "in", stack.frames[:2])
    code, err = run_cli(["align", *paths, "-o", tmp_path / "in"], capsys)
    assert_usage_error(code, err, "is the folder of the input")


# --------------------------------------------------------------------------------------------
# the real pcb stack and strong-focus subsets of it


def _pcb(shared_data):
    paths = sorted((shared_data / "stacks" / "pcb").glob("pcb_*.jpg"))
    assert len(paths) == 7
    return paths


@pytest.mark.data
def test_pcb_subsets_align_consistently(shared_data):
    paths = _pcb(shared_data)
    t0 = time.perf_counter()
    full = estimate_transforms(paths)
    seconds = time.perf_counter() - t0
    assert full.status == ["ok"] * 7 and full.reference == 3
    scales = [transform_parameters(t)[0] for t in full.transforms]
    assert all(a < b for a, b in zip(scales, scales[1:]))  # focus breathing
    assert all(r < 2.0 for r in full.residuals)
    # strong focus change between neighbours: every third frame, and the first and last only
    for subset in ([0, 3, 6], [0, 6]):
        reg = estimate_transforms([paths[i] for i in subset], reference=0)
        assert reg.status == ["ok"] * len(subset)
        for k, i in enumerate(subset):
            # same geometry as the full stack's, both expressed relative to frame subset[0]
            expect = np.linalg.inv(full.transforms[subset[0]]) @ full.transforms[i]
            assert point_error(reg.transforms[k], np.linalg.inv(np.linalg.inv(expect)), reg.valid_box) < 2.0, subset
    assert seconds < 30


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("subset", [[0, 6], [0, 3, 6]])
def test_pcb_subsets_fuse(shared_data, tmp_path, capsys, subset):
    paths = [_pcb(shared_data)[i] for i in subset]
    code, err = run_cli(["fuse", *paths, "-o", tmp_path / "f.jpg", "-m", "focus-map", "--align", "-q"], capsys)
    assert code == 0, err
    f = read_image(tmp_path / "f.jpg")
    assert f.shape[0] > 0.9 * 1536 and f.shape[1] > 0.9 * 2048
