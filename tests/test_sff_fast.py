"""sff-fast: the light per-frame focus network, its runtime, its method, the band stages and streaming."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mfif import fuse
from mfif.band import band_boxes, band_refine_blend, select_sources
from mfif.blend import softmax_weights, weighted_blend
from mfif.consistency import decision_weights, noise_sigma, refine_boundaries
from mfif.errors import UsageError
from mfif.io import to_gray
from mfif.sff.fast_runtime import HALO, STRIDE, default_fast_weights, load_scorer
from mfif.stream import StackStream
from mfif.synth import make_case


def _photo(rng, h=160, w=192):
    """A textured test image: smooth shapes plus fine noise texture (focus is visible everywhere)."""
    import cv2

    base = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3)
    fine = rng.random((h, w)).astype(np.float32)
    return np.clip(0.6 * (base - base.min()) / np.ptp(base) + 0.4 * fine, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(7)
    return make_case(_photo(rng, 192, 224), n_sources=2, rng=rng, radius=(3.0, 3.0))


def _shipped_net(torch):
    """The shipped network in PyTorch, built from its model card's architecture."""
    from mfif.sff.fast_model import from_card

    card = json.loads(default_fast_weights().with_suffix(".json").read_text())
    net = from_card(card).eval()
    net.load_state_dict(torch.load(default_fast_weights(), map_location="cpu", weights_only=True))
    return net


# -- the network -------------------------------------------------------------------------------
def test_shipped_card_names_both_files_and_their_hashes():
    from mfif.sff.weights import sha256_file

    pt = default_fast_weights()
    card = json.loads(pt.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_file(pt)
    assert card["onnx"]["sha256"] == sha256_file(pt.with_suffix(".onnx"))
    assert card["architecture"]["name"] == "FastFocusNet"
    assert card["data"]["n_val_photos"] > 0 and card["result"]["val_acc"] > 0.8
    assert "mfif train" in card["retrain"] and "--arch sff-fast" in card["retrain"]


@pytest.mark.slow
def test_dense_pass_equals_the_patch_classifier():
    """A cell's score from a whole-image pass equals the score of a patch around it that
    holds the receptive field: the dense pass is the patch classifier slid over the image."""
    torch = pytest.importorskip("torch")
    net = _shipped_net(torch)
    rng = np.random.default_rng(0)
    img = torch.from_numpy(_photo(rng, 448, 512))[None, None]
    with torch.inference_mode():
        dense = net(img)[0, 0].numpy()
        for cy, cx in [(56, 64), (60, 70), (51, 77)]:
            y0, x0 = cy * STRIDE - HALO, cx * STRIDE - HALO
            patch = img[..., y0:y0 + 2 * HALO + STRIDE, x0:x0 + 2 * HALO + STRIDE]
            own = net(patch)[0, 0].numpy()
            assert own[HALO // STRIDE, HALO // STRIDE] == pytest.approx(float(dense[cy, cx]), abs=1e-5)


@pytest.mark.slow
def test_onnx_runtime_equals_pytorch():
    torch = pytest.importorskip("torch")
    net = _shipped_net(torch)
    rng = np.random.default_rng(1)
    for h, w in [(96, 128), (203, 150)]:
        g = _photo(rng, h, w)
        got = load_scorer(device="cpu").score(g)
        from mfif.sff.fast_runtime import pad_to_grid

        with torch.inference_mode():
            ref = net(torch.from_numpy(pad_to_grid(g))[None, None])[0, 0].numpy()
        assert got.shape == (-(-h // 4), -(-w // 4))
        assert np.abs(got - ref).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("fine_stride", [1, 2])
def test_the_exported_form_is_the_same_network(fine_stride):
    """The graph the ONNX file holds (|a| as relu(a) + relu(-a), the pairs summed by a fixed 1x1
    convolution) computes the network's function."""
    torch = pytest.importorskip("torch")
    from mfif.sff.fast_model import FastFocusNet, _SignSplit

    torch.manual_seed(fine_stride)
    net = FastFocusNet(fine_stride=fine_stride).eval()
    x = torch.from_numpy(_photo(np.random.default_rng(2), 96, 136))[None, None]
    with torch.inference_mode():
        assert (_SignSplit(net)(x) - net(x)).abs().max().item() < 1e-5


@pytest.mark.slow
def test_the_shipped_onnx_is_what_the_export_command_writes(tmp_path):
    """``mfif train --export-onnx`` of the shipped weights reproduces the shipped ONNX file and card."""
    pytest.importorskip("onnx")
    from mfif.cli import main
    from mfif.sff.weights import sha256_file

    src = default_fast_weights()
    for name in ("sff_fast.pt", "sff_fast.json"):
        shutil.copy(src.parent / name, tmp_path / name)
    card = json.loads((tmp_path / "sff_fast.json").read_text())
    card["onnx"]["sha256"] = "0" * 64  # the command must write the export's own hash
    (tmp_path / "sff_fast.json").write_text(json.dumps(card))
    assert main(["train", "--export-onnx", str(tmp_path / "sff_fast.pt")]) == 0
    assert sha256_file(tmp_path / "sff_fast.onnx") == sha256_file(src.with_suffix(".onnx"))
    assert json.loads((tmp_path / "sff_fast.json").read_text()) == json.loads(src.with_suffix(".json").read_text())
    assert main(["train", "--export-onnx", str(tmp_path / "sff_fast.pt"), "photos"]) == 2


@pytest.mark.slow
def test_fine_stride_two_samples_the_stride_one_responses():
    """With ``fine_stride=2`` the full-resolution filters are the stride-1 responses on every
    second row and column, averaged over each cell's 4 remaining positions."""
    torch = pytest.importorskip("torch")
    from mfif.sff.fast_model import FastFocusNet

    torch.manual_seed(0)
    one, two = FastFocusNet(fine_stride=1).eval(), FastFocusNet(fine_stride=2).eval()
    two.load_state_dict(one.state_dict())
    x = torch.rand(1, 1, 64, 48)
    with torch.inference_mode():
        resp = torch.abs(one.fine((x - 0.5) * 4.0))[..., ::2, ::2]
        by_hand = torch.log(torch.nn.functional.avg_pool2d(resp, 2) + 1e-2)
        got = two.energies(x)[:, :one.bands]
        assert torch.allclose(got, by_hand, atol=1e-6)
        assert torch.allclose(two.energies(x)[:, one.bands:], one.energies(x)[:, one.bands:])
    assert two.mac_per_pixel() == pytest.approx(one.mac_per_pixel() - 25 * one.bands * 3 / 4)


def test_strips_equal_one_pass():
    rng = np.random.default_rng(2)
    g = _photo(rng, 700, 160)
    scorer = load_scorer(device="cpu")
    whole = scorer.score(g, tile=10.0)
    strips = scorer.score(g, tile=0.05)  # 0.05 MP: strips of 312 rows for 160 columns
    assert np.abs(whole - strips).max() < 1e-5


def test_weights_are_hash_checked(tmp_path):
    src = default_fast_weights()
    for name in ("sff_fast.pt", "sff_fast.json", "sff_fast.onnx"):
        shutil.copy(src.parent / name, tmp_path / name)
    assert load_scorer(tmp_path / "sff_fast.pt", device="cpu").device == "cpu"
    onnx = tmp_path / "sff_fast.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="sff_fast.onnx: sha256 .* does not match"):
        load_scorer(tmp_path / "sff_fast.pt", device="cpu")
    pt = tmp_path / "sff_fast.pt"
    pt.write_bytes(pt.read_bytes() + b"x")
    with pytest.raises(UsageError, match="sff_fast.pt: sha256 .* does not match"):
        load_scorer(pt, device="cpu")


def test_sff_weights_are_refused_as_sff_fast():
    from mfif.sff.weights import default_weights_path

    with pytest.raises(UsageError, match="not sff-fast weights"):
        load_scorer(default_weights_path(), device="cpu")


def test_devices_named_and_unavailable_ones_refused():
    with pytest.raises(UsageError, match="device 'tpu'"):
        load_scorer(device="tpu")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="device cuda: not available"):
            load_scorer(device="cuda")
    with pytest.raises(UsageError, match="option device='gpu' must be one of auto, cpu, cuda, mps"):
        fuse([np.zeros((8, 8), np.float32)] * 2, method="sff-fast", device="gpu")
    if not torch.cuda.is_available():  # the paper's network takes a device too
        with pytest.raises(UsageError, match="device cuda: not available"):
            fuse([np.zeros((32, 32), np.float32)] * 2, method="sff", device="cuda")
    from mfif.sff.weights import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")


def test_device_flag_of_the_command_line(tmp_path):
    import subprocess
    import sys

    import cv2

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for p in (a, b):
        cv2.imwrite(str(p), np.full((16, 16), 128, np.uint8))
    run = [sys.executable, "-m", "mfif", "fuse", str(a), str(b), "-q", "-o", str(tmp_path / "o.png")]
    r = subprocess.run(run + ["-m", "average", "--device", "cuda"], capture_output=True, text=True)
    assert r.returncode == 2 and "--device: method average runs on the CPU only" in r.stderr
    assert not (tmp_path / "o.png").exists()
    r = subprocess.run(run + ["-m", "sff-fast", "--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.png").is_file()


# -- the method ----------------------------------------------------------------------------------
def test_fusing_an_image_with_itself_returns_it(case):
    img = case.sources[0]
    for blend in ("decision", "soft"):
        r = fuse([img, img], method="sff-fast", blend=blend)
        assert np.abs(r.fused - img).max() < 1e-6


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
@pytest.mark.parametrize("n", [2, 3])
def test_without_maps_the_image_and_decision_are_the_same(case, threshold, n):
    """``keep_maps=False`` (what the CLI runs) skips the full-size scores and weights, and for a
    pair thresholds the logit difference instead of the logistic: same decision, same image."""
    from mfif.api import fuse_frames
    from mfif.frames import ArrayFrames

    srcs = [case.sources[k % 2] * np.float32(1.0 - 0.05 * k) for k in range(n)]
    full = fuse_frames(ArrayFrames(srcs), method="sff-fast", keep_maps=True, threshold=threshold)
    lean = fuse_frames(ArrayFrames(srcs), method="sff-fast", keep_maps=False, threshold=threshold)
    assert lean.weights is None and lean.scores is None
    assert (lean.decision == full.decision).all()
    assert (lean.maps["initial_decision"] == full.maps["initial_decision"]).all()
    assert (lean.fused == full.fused).all()


def test_swapping_sources_flips_the_map(case):
    a, b = case.sources
    ab = fuse([a, b], method="sff-fast")
    ba = fuse([b, a], method="sff-fast")
    p = ab.scores[0]
    assert np.allclose(p, 1.0 - ba.scores[0], atol=1e-6)
    tie = np.abs(p - 0.5) < 1e-6
    assert ((ab.decision == 1 - ba.decision) | tie).all()
    assert np.abs(ab.fused - ba.fused)[~tie].max() < 1e-5


def test_the_noise_option_is_the_estimate_it_replaces(case):
    """``noise=`` set to the sigma the method would estimate gives the same fusion bit for bit (what
    an engine's tiles rely on); a larger sigma makes the fine measure speak less; bad values are
    refused before any work."""
    from mfif.consistency import frames_noise
    from mfif.frames import ArrayFrames

    srcs = [case.sources[0], case.sources[1], case.sources[0] * np.float32(0.97)]
    sigma = frames_noise(ArrayFrames(srcs))
    assert 0 < sigma < 0.05
    own = fuse(srcs, method="sff-fast")
    given = fuse(srcs, method="sff-fast", noise=sigma)
    assert np.array_equal(own.fused, given.fused) and np.array_equal(own.decision, given.decision)
    # with a sigma 10x too large nothing passes the fine measure's thresholds and more of the image
    # counts as flat: another decision (on this case the decision then holds the flat areas it
    # unifies, so the flat rule is made to vote on every area to show it)
    loud = fuse(srcs, method="sff-fast", noise=10 * sigma, flat_keep=2.0)
    assert not np.array_equal(fuse(srcs, method="sff-fast", flat_keep=2.0).decision, loud.decision)
    for bad in (-0.01, float("nan"), 2.0):
        with pytest.raises(UsageError, match="option noise"):
            fuse(srcs, method="sff-fast", noise=bad)


def test_quality_on_a_case_with_ground_truth(case):
    r = fuse(case.sources, method="sff-fast")
    acc = float((r.decision == case.mask).mean())
    mse = float(np.mean((r.fused - case.gt) ** 2))
    psnr = 10 * np.log10(1.0 / mse)
    assert acc > 0.95, acc
    assert psnr > 35.0, psnr
    avg = np.mean(case.sources, axis=0)
    assert mse < 0.1 * float(np.mean((avg - case.gt) ** 2))


def test_three_frames_and_timings(case):
    rng = np.random.default_rng(3)
    c3 = make_case(_photo(rng, 160, 160), n_sources=3, rng=rng)
    r = fuse(c3.sources, method="sff-fast")
    assert r.scores.shape == (3, 160, 160) and np.allclose(r.scores.sum(0), 1.0, atol=1e-5)
    assert float((r.decision == c3.mask).mean()) > 0.85
    assert set(r.info["timings"]) >= {"focus_detection", "segmentation", "consistency_and_blend", "fusion"}
    assert r.info["device"] == "cpu"


def test_cost_is_one_network_pass_per_frame(monkeypatch, case):
    from mfif.sff import fast_runtime

    scorer = load_scorer(device="auto")
    calls = []
    run = scorer._run
    monkeypatch.setattr(scorer, "_run", lambda x: calls.append(x.shape) or run(x))
    monkeypatch.setattr(fast_runtime, "load_scorer", lambda *a, **k: scorer)
    from mfif.sff import fast_fusion

    monkeypatch.setattr(fast_fusion, "load_scorer", lambda *a, **k: scorer)
    for n in (2, 5):
        calls.clear()
        fuse([case.sources[k % 2] for k in range(n)], method="sff-fast")
        assert len(calls) == n


# -- the band stages -----------------------------------------------------------------------------
def test_band_stages_equal_the_whole_image_stages(case):
    """Computed box by box in the band, re-decision + guided weights + blend give what the
    whole-image stages give (the whole-image re-decision without its fragment removal)."""
    from mfif.io import to_gray

    srcs = [np.repeat(s[..., None], 3, axis=2) * np.float32([1.0, 0.8, 0.6]) for s in case.sources]
    grays = [to_gray(s) for s in srcs]
    rng = np.random.default_rng(4)
    decision = case.mask.astype(np.int16).copy()
    decision[rng.random(decision.shape) < 0.002] ^= 1  # a few wrong pixels to re-decide
    sigma = noise_sigma(grays, max_pixels=10**6)
    for band, radius in [(8.0, 2), (4.0, 0), (0.0, 3)]:
        d, w, f = band_refine_blend(decision, srcs, band=band, window=5, noise_k=2.0, gf_radius=radius,
                                    gf_eps=1e-3, box=32)
        ref_d = refine_boundaries(decision, grays, band=band, window=5, min_area=0, noise_k=2.0)
        assert sigma == noise_sigma(grays)
        ref_w = decision_weights(ref_d, grays, radius=radius, eps=1e-3) if radius else \
            (ref_d[None] == np.arange(2)[:, None, None]).astype(np.float32)
        assert (d == ref_d).all()
        assert np.abs(w - ref_w).max() < 5e-5  # float rounding of the guided filter's box sums
        assert np.abs(f - weighted_blend(srcs, ref_w)).max() < 5e-5


def test_band_stages_with_boundaries_almost_everywhere():
    """Boundaries in most of the image switch the band to 512-px boxes, with the chosen source
    selected only in the boxes without a boundary; the result is still the whole-image one."""
    import cv2

    rng = np.random.default_rng(11)
    h, w = 600, 1600
    a, b = _photo(rng, h, w), _photo(rng, h, w)
    srcs = [np.dstack([a, a * 0.9, a * 0.7]), np.dstack([b, b * 0.8, b * 0.9])]
    blobs = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 5) > 0.5
    decision = np.ones((h, w), np.int16)
    decision[:, :1000] = blobs[:, :1000]  # boundaries up to x = 1000, frame 1 alone beyond
    reach = 2 * 2 + 2 + 8  # the guided filter's reach and the band
    assert len(band_boxes(decision, reach=reach, box=128)) * 128 ** 2 > 0.5 * h * w
    grays = [to_gray(s) for s in srcs]
    d, wts, f = band_refine_blend(decision, srcs, band=8.0, window=5, noise_k=2.0, gf_radius=2, gf_eps=1e-3,
                                  noise_pixels=None)  # the noise of whole frames, as refine_boundaries
    ref_d = refine_boundaries(decision, grays, band=8.0, window=5, min_area=0, noise_k=2.0)
    ref_w = decision_weights(ref_d, grays, radius=2, eps=1e-3)
    assert (d == ref_d).all()
    assert np.abs(wts - ref_w).max() < 5e-5
    assert np.abs(f - weighted_blend(srcs, ref_w)).max() < 5e-5
    assert (f[:, 1024:] == srcs[1][:, 1024:]).all()  # the boxes without a boundary: selected


@pytest.mark.parametrize("n_labels", [1, 2, 3, 4])
def test_band_blend_is_the_weighted_sum(n_labels):
    """The box blend (OpenCV's running weighted means) is the weighted sum, to float rounding,
    with weights of exactly 0 and 1 as well as soft ones."""
    from mfif.band import _blend

    rng = np.random.default_rng(n_labels)
    crops = {k: rng.random((40, 30, 3)).astype(np.float32) for k in (0, 2, 5, 7)[:n_labels]}
    w = rng.random((n_labels, 40, 30)).astype(np.float32)
    w[:, :10] = np.eye(n_labels, dtype=np.float32)[rng.integers(0, n_labels, (10, 30))].transpose(2, 0, 1)
    w /= w.sum(axis=0)
    wt = dict(zip(crops, w))
    ref = sum(crops[k] * wt[k][..., None] for k in crops)
    assert np.abs(_blend(crops, wt) - ref).max() < 1e-6
    assert (_blend(crops, wt)[:10] == ref[:10]).mean() > 0.99  # hard weights: the source itself


def test_near_boundary_is_the_distance_threshold():
    import cv2

    from mfif.consistency import boundary_distance, near_boundary

    rng = np.random.default_rng(3)
    d = (cv2.GaussianBlur(rng.random((120, 150)).astype(np.float32), (0, 0), 4) > 0.5).astype(np.int16)
    for r in (0.0, 1.0, 2.5, 8.0, 11.3):
        assert (near_boundary(d, r) == (boundary_distance(d) <= r)).all()
    assert not near_boundary(np.ones((9, 9), np.int16), 5.0).any()


def test_band_boxes_and_selection():
    d = np.zeros((100, 300), np.int16)
    d[:, 150:] = 1
    boxes = band_boxes(d, reach=10, box=50)
    assert sorted({(x0, x1) for _, _, x0, x1 in boxes}) == [(100, 150), (150, 200)]
    assert band_boxes(np.zeros((20, 20), np.int16), reach=5) == []
    a, b = np.zeros((100, 300), np.float32), np.ones((100, 300), np.float32)
    assert (select_sources([a, b], d) == d).all()


def test_softmax_weights_by_hand():
    s = np.array([[[0.0]], [[np.log(3.0)]]], np.float32)
    w = softmax_weights(s)
    assert w[:, 0, 0] == pytest.approx([0.25, 0.75], abs=1e-6)
    w2 = softmax_weights(s, temperature=0.5)  # 3 ** 2 = 9
    assert w2[:, 0, 0] == pytest.approx([0.1, 0.9], abs=1e-6)
    big = softmax_weights(np.array([[[1000.0]], [[1000.0]]], np.float32))
    assert np.allclose(big, 0.5)


def test_noise_sigma_is_scikit_images_estimate():
    import warnings

    from skimage.restoration import estimate_sigma

    rng = np.random.default_rng(5)
    g = np.clip(rng.random((90, 70)) * 0.5 + rng.normal(0, 0.04, (90, 70)), 0, 1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the coefficients agree to float32 rounding, so does their median
        assert noise_sigma([g]) == pytest.approx(estimate_sigma(g), rel=1e-5)
        assert noise_sigma([g], max_pixels=900) == pytest.approx(estimate_sigma(g[30:60, 22:48]), rel=1e-5)


@pytest.mark.parametrize("shape", [(8, 8), (9, 13), (90, 70), (61, 128)])
def test_finest_diagonal_detail_is_pywavelets_dd_band(shape):
    import pywt

    from mfif.consistency import finest_diagonal_detail

    g = np.random.default_rng(9).random(shape).astype(np.float32)
    ref = pywt.dwtn(g, "db2")["dd"]  # symmetric mode, PyWavelets' default
    got = finest_diagonal_detail(g)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-6


# -- streaming -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["sff-fast", "focus-map"])
def test_streaming_equals_batch_fusion(method):
    rng = np.random.default_rng(6)
    c = make_case(np.repeat(_photo(rng, 96, 128)[..., None], 3, axis=2), n_sources=4, rng=rng)
    stream = StackStream(method=method, temperature=0.3)
    for k, frame in enumerate(c.sources):
        stream.push(frame)
        if k >= 1:
            batch = fuse(c.sources[:k + 1], method=method, blend="soft", temperature=0.3)
            got = stream.result()
            assert np.abs(got.fused - batch.fused).max() < 1e-5
            assert (got.decision == batch.decision).all()
    assert stream.count == 4


def test_streaming_refuses_bad_frames():
    s = StackStream(method="focus-map")
    with pytest.raises(UsageError, match="no frame pushed"):
        s.result()
    s.push(np.zeros((8, 8), np.float32))
    with pytest.raises(UsageError, match=r"frame 2: shape \(8, 9\)"):
        s.push(np.zeros((8, 9), np.float32))
    with pytest.raises(UsageError, match="frame 2: dtype uint8"):
        s.push(np.zeros((8, 8), np.uint8))
    bad = np.zeros((8, 8), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(UsageError, match="frame 2: 1 non-finite"):
        s.push(bad)
    with pytest.raises(UsageError, match="cannot stream"):
        StackStream(method="sff")
    with pytest.raises(UsageError, match="unknown option"):
        StackStream(method="focus-map", weights="x")
    assert (s.result().fused == 0).all() and s.count == 1


def test_fill_weak_evidence():
    from mfif.consistency import fill_weak_evidence

    s = np.zeros((2, 40, 80), np.float32)
    s[0, :, :30] = 10.0  # strong evidence for frame 0 on the left
    s[1, :, 50:] = 10.0  # ... for frame 1 on the right; a flat gap in between
    s[1, :, 30:50] = 0.01  # a coin toss: frame 1 by a hair
    out = fill_weak_evidence(s, weak=2.0, sigmas=(4.0, 16.0))
    assert (out[:, :, :30] == s[:, :, :30]).all() and (out[:, :, 50:] == s[:, :, 50:]).all()  # strong: kept
    d = out[0] - out[1]
    assert (d[:, 30:36] > 0).all() and (d[:, 44:50] < 0).all()  # the gap takes its nearer side
    assert np.array_equal(fill_weak_evidence(s, weak=0.0), s)
    # no evidence anywhere: nothing to spread, the scores stay as they are
    flat = np.zeros((3, 10, 10), np.float32)
    assert np.array_equal(fill_weak_evidence(flat, weak=2.0), flat)


def test_fill_weak_evidence_keeps_the_crossing_strip_with_a_reach():
    """At a focus boundary the margin passes through zero between strong evidence on both
    sides; with a reach that strip keeps its own scores (the crossing stays where it is)."""
    from mfif.consistency import fill_weak_evidence

    x = np.arange(64, dtype=np.float32)
    d = np.clip((x - 40.0) * 3.0, -12, 12)  # crosses zero at x = 40, strong 4 px away
    s = np.stack([np.tile(d, (8, 1)), np.zeros((8, 64), np.float32)])
    kept = fill_weak_evidence(s, weak=8.0, reach=4)
    assert np.array_equal(kept, s)
    moved = fill_weak_evidence(s, weak=8.0, reach=0)
    assert not np.array_equal(moved, s)


def test_registry_options_are_unique_and_shared_stage_options_agree():
    from mfif.methods import METHODS, get_method

    for m in METHODS.values():
        names = [p.name for p in m.params]
        assert len(names) == len(set(names)), m.name
    sff, fast = get_method("sff").options(), get_method("sff-fast").options()
    for k in ("threshold", "min_region", "keep_confident", "refine_window", "refine_noise", "gf_radius", "prefer"):
        assert sff[k] == fast[k]
    assert (sff["refine_band"], sff["seam"]) == (16.0, "laplacian") and (fast["refine_band"], fast["seam"]) == (8.0, "none")


# -- the fine measure where the network has no evidence ----------------------------------------
def test_cell_detail_is_the_modified_laplacian_per_cell():
    """By hand: the modified Laplacian (replicated borders) averaged over each 4 x 4 cell, then a
    3 x 3 box mean (reflected borders) over the cells; a partial last cell averages its pixels."""
    import cv2

    from mfif.focus import cell_detail

    rng = np.random.default_rng(3)
    g = rng.random((22, 30)).astype(np.float32)
    p = np.pad(g, 1, mode="edge").astype(np.float64)
    ml = (np.abs(2 * p[1:-1, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:])
          + np.abs(2 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1]))
    cells = np.array([[ml[4 * i:4 * i + 4, 4 * j:4 * j + 4].mean() for j in range(8)] for i in range(6)])
    want = cv2.boxFilter(cells.astype(np.float32), cv2.CV_32F, (3, 3), borderType=cv2.BORDER_REFLECT)
    got = cell_detail(g)
    assert got.shape == (6, 8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_detail_evidence_speaks_only_where_the_network_is_unsure():
    from mfif.consistency import detail_evidence

    scores = np.zeros((3, 4, 4), np.float32)
    scores[0, 0] = 20.0  # row 0: the network is sure of frame 0
    best = np.full((4, 4), 10.0, np.float32)
    second = np.full((4, 4), 4.0, np.float32)
    second[2] = 9.0  # row 2: the fine measure's runner-up is close (not 1.5 times below)
    second[3] = 6.0  # row 3: 1.67 times below, but by 4 < level 5
    index = np.full((4, 4), 2, np.int16)
    out = detail_evidence(scores, best, second, index, weak=8.0, level=5.0)
    assert np.array_equal(out[:, 0], scores[:, 0])  # the network's own evidence is kept
    assert (out[2, 1] == 12.0).all() and (out[:2, 1] == 0.0).all()  # unsure and decisive: frame 2
    assert np.array_equal(out[:, 2:], scores[:, 2:])  # not decisive: unchanged
    assert np.array_equal(detail_evidence(scores, best, second, index, weak=0.0, level=5.0), scores)


def test_unify_flat_regions_gives_a_large_flat_area_to_one_frame():
    from mfif.consistency import unify_flat_regions

    dec = np.zeros((40, 60), np.int16)
    dec[:, 30:] = 1  # a flat area (columns 10-49) split down the middle
    best = np.full((40, 60), 50.0, np.float32)
    best[:, 10:50] = 1.0
    index = np.zeros((40, 60), np.int16)
    index[:, 10:50] = 1
    index[:, 10:20] = 0  # frame 1 has the most detail in most of the flat area
    best[5:8, 52:55] = 1.0  # a small flat spot: kept as it is
    out, mask = unify_flat_regions(dec, best, index, level=2.0, min_area=100, n=2, return_mask=True)
    assert (out[:, 10:50] == 1).all()
    assert mask[:, 10:50].all() and not mask[:, :10].any() and not mask[:, 50:].any()
    assert np.array_equal(out[:, :10], dec[:, :10]) and np.array_equal(out[:, 50:], dec[:, 50:])
    # the vote is weighted by the measure: frame 0 wins where its cells carry more detail
    best2 = best.copy()
    best2[:, 10:20] = 1.9
    best2[:, 20:50] = 0.3
    assert (unify_flat_regions(dec, best2, index, level=2.0, min_area=100, n=2)[:, 10:50] == 0).all()
    assert np.array_equal(unify_flat_regions(dec, best, index, level=2.0, min_area=0, n=2), dec)
    assert np.array_equal(unify_flat_regions(dec, best, index, level=0.5, min_area=100, n=2), dec)


def test_a_flat_area_the_decision_holds_keeps_its_frame():
    """``keep_share``: a flat area that the decision already gives (nearly) whole to one frame
    keeps it, although another frame carries more of the fine measure there (inside a wide bar
    with crisp edges that is the defocused frame's ramp); a split area is still voted on."""
    from mfif.consistency import unify_flat_regions

    dec = np.zeros((40, 60), np.int16)
    dec[:, 10:50] = 1
    dec[0, 10:25] = 0  # 15 of 1,600 flat cells (0.9 %) say frame 0
    best = np.full((40, 60), 50.0, np.float32)
    best[:, 10:50] = 1.0
    index = np.zeros((40, 60), np.int16)  # frame 0 has the most detail everywhere in it
    kept = unify_flat_regions(dec, best, index, level=2.0, min_area=100, n=2, keep_share=0.97)
    assert (kept[:, 10:50] == 1).all()
    voted = unify_flat_regions(dec, best, index, level=2.0, min_area=100, n=2)
    assert (voted[:, 10:50] == 0).all()  # the default (> 1): always the vote
    split = dec.copy()
    split[:, 10:30] = 0
    assert (unify_flat_regions(split, best, index, level=2.0, min_area=100, n=2, keep_share=0.97)[:, 10:50]
            == 0).all()


def test_wide_printed_bars_come_from_the_sharp_frame():
    """A barcode of bars 4-40 px wide, blurred by disks of 20 and 10 px in two frames, each frame
    with its own noise: the shipped network and the steps before the flat rule decide the bars
    right, and the flat rule must keep that. With ``flat_keep`` off it gives the inside of the
    wide bars to a defocused frame, whose ramps are more detail than the sharp frame's flat paint
    (``benchmarks/bench_bars.py``)."""
    import cv2

    from mfif.synth.graphics import barcode
    from mfif.synth.psf import psf_kernel

    rng = np.random.default_rng(0)
    sharp = barcode(rng, shape=(384, 512), widths=(4, 40), levels=(0.1, 0.75))
    frames = [cv2.filter2D(sharp, -1, psf_kernel("disk", r), borderType=cv2.BORDER_REFLECT) for r in (20, 10)]
    frames = [np.clip(f + rng.normal(0, 0.01, f.shape).astype(np.float32), 0, 1) for f in frames + [sharp]]
    r = fuse(frames, method="sff-fast")
    assert np.mean(r.decision == 2) > 0.99
    off = fuse(frames, method="sff-fast", flat_keep=2.0)
    assert np.mean(off.decision == 2) < 0.9


def _barcode(rng, h=192, w=256):
    """Black and white bars of random widths (4-24 px): crisp edges between wide flat areas."""
    widths = rng.integers(4, 25, size=w)
    x = np.repeat(np.arange(widths.size) % 2, widths)[:w].astype(np.float32)
    return np.tile(0.08 + 0.84 * x, (h, 1))


def test_a_barcode_comes_from_its_sharp_frame(monkeypatch):
    """Crisp bars between wide flat areas, far from the network's training photos. With a network
    that has no evidence there (its scores stand in for one that is unsure, as the shipped one is
    on the barcode of the ``pcb`` stack), the fine measure (``fallback``) must pick the sharp frame
    of a 3-frame stack, and its evidence must fill the flat bars; without it the ties go to frame 0."""
    import cv2

    from mfif.sff import fast_fusion

    scorer = load_scorer(device="auto")
    monkeypatch.setattr(scorer, "_run", lambda x: np.zeros((1, 1, x.shape[2] // STRIDE, x.shape[3] // STRIDE),
                                                            np.float32))
    monkeypatch.setattr(fast_fusion, "load_scorer", lambda *a, **k: scorer)
    rng = np.random.default_rng(11)
    sharp = _barcode(rng)
    frames = [cv2.GaussianBlur(sharp, (0, 0), s) for s in (3.0, 1.5)] + [sharp]
    frames = [np.clip(f + rng.normal(0, 0.003, f.shape).astype(np.float32), 0, 1) for f in frames]
    r = fuse(frames, method="sff-fast")
    assert np.mean(r.decision == 2) > 0.9
    assert np.abs(r.fused - sharp).mean() < 0.01
    off = fuse(frames, method="sff-fast", fallback=0.0)
    assert np.mean(off.decision == 2) < 0.1


def test_a_flat_area_is_one_frame_to_the_pixel(monkeypatch):
    """Two featureless frames whose network scores split the image down the middle: the flat
    area goes to one frame, at full resolution too. The bilinearly upsampled scores cross inside
    a grid cell, so a strip of the old boundary would survive if only the changed cells were
    copied to full resolution."""
    from mfif.sff import fast_fusion

    scorer = load_scorer(device="auto")

    def ramp(x):
        gw = x.shape[3] // STRIDE
        row = np.linspace(-3.0, 3.0, gw, dtype=np.float32) * (1 if ramp.k % 2 == 0 else 0)
        ramp.k += 1
        return np.broadcast_to(row, (1, 1, x.shape[2] // STRIDE, gw)).copy()

    ramp.k = 0
    monkeypatch.setattr(scorer, "_run", ramp)
    monkeypatch.setattr(fast_fusion, "load_scorer", lambda *a, **k: scorer)
    rng = np.random.default_rng(5)
    frames = [np.clip(0.5 + rng.normal(0, 0.002, (96, 130)), 0, 1).astype(np.float32) for _ in range(2)]
    r = fuse(frames, method="sff-fast")
    assert np.unique(r.decision).size == 1
    ramp.k = 0
    off = fuse(frames, method="sff-fast", flat=0.0)
    assert np.unique(off.decision).size == 2  # the split the rule removes
