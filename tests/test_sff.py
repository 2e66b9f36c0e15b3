"""SFF: network shapes, dense = patch-wise equivalence, training, weights, swap symmetry, quality."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mfif.errors import UsageError  # noqa: E402
from mfif.sff.inference import grid_to_map, score_grid  # noqa: E402
from mfif.sff.model import PATCH, SFFNet  # noqa: E402
from mfif.sff.weights import default_weights_path, load_model, sha256_file, verify  # noqa: E402


def test_architecture_matches_paper():
    net = SFFNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    # three 3x3 conv blocks 64/128/256 (shared by both streams), FC 256 on the concatenation, one output
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs[:3]] == [
        (1, 64, (3, 3)), (64, 128, (3, 3)), (128, 256, (3, 3))]
    assert (convs[3].in_channels, convs[3].out_channels) == (512, 256)
    assert (convs[4].in_channels, convs[4].out_channels) == (256, 1)
    a = torch.rand(5, 1, PATCH, PATCH)
    assert net(a, a).shape == (5,)
    feat = net.features(torch.rand(1, 1, PATCH, PATCH))
    assert feat.shape == (1, 256, 1, 1)


def test_output_is_swap_consistent():
    torch.manual_seed(0)
    net = SFFNet().eval()
    a, b = torch.rand(7, 1, PATCH, PATCH), torch.rand(7, 1, PATCH, PATCH)
    with torch.no_grad():
        torch.testing.assert_close(net(a, b), -net(b, a))



@pytest.mark.parametrize("shape", [(1, 1, 22, 22), (3, 1, 22, 22), (1, 1, 61, 83), (2, 1, 64, 70)])
def test_fast_stream_equals_the_plain_layer_sequence(shape):
    # the stream is arranged for speed (conv1+pool as four stride-2 convs, pools as maxima of
    # views, channels-last); it must equal the paper's conv -> ReLU -> max-pool sequence
    F = torch.nn.functional
    torch.manual_seed(2)
    net = SFFNet().eval()
    x = torch.rand(shape)
    with torch.no_grad():
        t = net.normalize(x)
        for block in (net.block1, net.block2):
            t = F.max_pool2d(F.relu(block[0](t)), 2)
        ref = F.relu(net.block3[0](t))
        torch.testing.assert_close(net.trunk(x), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(net.features(x, dense_stride=8), F.max_pool2d(ref, 2), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(net.features(x, dense_stride=4), F.max_pool2d(ref, 2, stride=1), atol=1e-5, rtol=1e-5)

@pytest.mark.parametrize("stride", [4, 8])
def test_dense_pass_equals_patchwise_and_tiling(stride, rng):
    torch.manual_seed(1)
    net = SFFNet().eval()
    a = rng.random((61, 83)).astype(np.float32)
    b = rng.random((61, 83)).astype(np.float32)
    grid = score_grid(net, [a, b], stride=stride, tile=4096)
    tiled = score_grid(net, [a, b], stride=stride, tile=64)
    np.testing.assert_allclose(tiled, grid, atol=1e-6)
    ap, bp = np.pad(a, PATCH // 2, mode="reflect"), np.pad(b, PATCH // 2, mode="reflect")
    for k, l in [(0, 0), (2, 5), (4, 9)]:
        y, x = stride * k, stride * l
        pa = torch.from_numpy(np.ascontiguousarray(ap[y:y + PATCH, x:x + PATCH]))[None, None]
        pb = torch.from_numpy(np.ascontiguousarray(bp[y:y + PATCH, x:x + PATCH]))[None, None]
        with torch.no_grad():
            p = torch.sigmoid(net(pa, pb)).item()
        assert abs(p - grid[0, k, l]) < 1e-5
        assert abs(grid[0, k, l] + grid[1, k, l] - 1) < 1e-6



def test_many_sources_score_is_mean_pairwise_win_probability(rng):
    # N = 4 sources through the projected, row-banded head must equal the plain two-input
    # network run on every ordered pair, averaged
    torch.manual_seed(3)
    net = SFFNet().eval()
    imgs = [rng.random((45, 70)).astype(np.float32) for _ in range(4)]
    grid = score_grid(net, imgs, stride=4, tile=64)
    padded = [torch.from_numpy(np.pad(g, PATCH // 2, mode="reflect"))[None, None] for g in imgs]
    kh, kw = grid.shape[1:]
    with torch.no_grad():
        for i in range(4):
            wins = [torch.sigmoid(net(padded[i], padded[j], dense_stride=4))[0, :kh, :kw]
                    for j in range(4) if j != i]
            np.testing.assert_allclose(grid[i], torch.stack(wins).mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(grid.sum(0), 2.0, atol=1e-5)  # N/2: each pair's two probabilities sum to 1

def test_grid_to_map_constant_and_step():
    g = np.full((2, 6, 7), 0.25, np.float32)
    m = grid_to_map(g, (20, 24), stride=4)
    assert m.shape == (2, 20, 24)
    np.testing.assert_allclose(m, 0.25, atol=1e-6)
    step = np.zeros((1, 9, 9), np.float32)
    step[:, :, 5:] = 1.0  # windows centred at x >= 20 say "1"
    m = grid_to_map(step, (32, 32), stride=4)[0]
    assert m[:, :8].max() < 1e-6 and m[:, -1].min() > 1 - 1e-6
    assert np.all(np.diff(m[10]) >= -1e-6)  # monotone transition across the step


def test_cosine_learning_rate_schedule():
    from mfif.sff.train import TrainConfig, step_lr

    cfg = TrainConfig(photos="", out_dir="", lr=1e-4, lr_final=1e-6)
    # by hand: lr_final + (lr - lr_final) * (1 + cos(pi t)) / 2 at t = step / (total - 1)
    assert step_lr(cfg, 0, 101) == pytest.approx(1e-4, rel=1e-12)
    assert step_lr(cfg, 50, 101) == pytest.approx(5.05e-5, rel=1e-12)
    assert step_lr(cfg, 25, 101) == pytest.approx(1e-6 + 99e-6 * (1 + 2 ** -0.5) / 2, rel=1e-12)
    assert step_lr(cfg, 100, 101) == pytest.approx(1e-6, rel=1e-12)
    lrs = [step_lr(cfg, i, 101) for i in range(101)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))  # strictly decreasing
    cfg.lr_final = 0.0  # the paper's constant rate
    assert {step_lr(cfg, i, 101) for i in range(101)} == {1e-4}


@pytest.mark.slow
def test_tiny_training_run_lowers_loss(tmp_path, rng):
    from mfif.sff.train import TrainConfig, train

    photos = tmp_path / "photos"
    photos.mkdir()
    from skimage import data

    from mfif.io import write_image
    write_image(photos / "1.png", data.camera()[:200, :200])
    write_image(photos / "2.png", data.camera()[200:400, 200:400])
    write_image(photos / "3.png", (data.astronaut()[:200, :200, 1]))
    cfg = TrainConfig(photos=str(photos), out_dir=str(tmp_path / "run"), lr=1e-3, batch=32, max_epochs=3,
                      patience=0, epoch_pairs=640, val_pairs=256, val_fraction=0.34, seed=0, threads=1,
                      sampler_options={"case_size": 96, "pool": 4})
    card = train(cfg, progress=False, log=lambda *a: None)
    rows = (tmp_path / "run" / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 4  # patience 0: no early stopping, every epoch runs
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert losses[-1] < losses[0]
    assert card["result"]["val_loss"] < 0.69  # better than chance (ln 2)
    # the run's weights load through the hash-checked loader
    net, meta = load_model(tmp_path / "run" / "best.pt")
    assert meta["sha256"] == sha256_file(tmp_path / "run" / "best.pt")
    # resuming continues from the checkpoint instead of starting over
    cfg.max_epochs, cfg.resume = 4, True
    train(cfg, progress=False, log=lambda *a: None)
    assert len((tmp_path / "run" / "log.csv").read_text().strip().splitlines()) == 5


@pytest.mark.slow
def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    from mfif.sff.train import TrainConfig, train

    photos = tmp_path / "photos"
    photos.mkdir()
    from skimage import data

    from mfif.io import write_image
    write_image(photos / "1.png", data.camera()[:160, :160])
    write_image(photos / "2.png", data.camera()[200:360, 200:360])
    base = dict(photos=str(photos), batch=16, max_epochs=1, epoch_pairs=64, val_pairs=64, val_fraction=0.5,
                threads=1, sampler_options={"case_size": 64, "pool": 2})
    train(TrainConfig(out_dir=str(tmp_path / "a"), seed=0, **base), progress=False, log=lambda *a: None)
    init = tmp_path / "a" / "best.pt"
    # lr 0: a fine-tuning run keeps the initial weights exactly, so they must have been loaded
    card = train(TrainConfig(out_dir=str(tmp_path / "b"), seed=5, lr=0.0, init=str(init),
                             **{**base, "sampler_options": {**base["sampler_options"], "noise": 0.02}}),
                 progress=False, log=lambda *a: None)
    a = torch.load(init, weights_only=True)
    b = torch.load(tmp_path / "b" / "best.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert card["init"]["sha256"] == sha256_file(init)
    assert "--init" in card["retrain"] and "--noise 0.02" in card["retrain"]
    # a corrupted starting point is refused
    data_ = bytearray(init.read_bytes())
    data_[-10] ^= 0xFF
    init.write_bytes(bytes(data_))
    with pytest.raises(UsageError, match="does not match"):
        train(TrainConfig(out_dir=str(tmp_path / "c"), init=str(init), **base), progress=False, log=lambda *a: None)


def test_weights_hash_is_checked(tmp_path):
    src = default_weights_path()
    if not src.is_file():
        pytest.skip("no shipped weights")
    w = tmp_path / "w.pt"
    shutil.copy(src, w)
    shutil.copy(src.with_suffix(".json"), w.with_suffix(".json"))
    assert verify(w)["sha256"] == sha256_file(w)
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="does not match"):
        verify(w)
    w.with_suffix(".json").unlink()
    with pytest.raises(UsageError, match="no model card"):
        verify(w)


def test_shipped_model_card_is_complete():
    src = default_weights_path()
    card = json.loads(src.with_suffix(".json").read_text())
    for key in ("architecture", "data", "recipe", "result", "sha256", "retrain"):
        assert key in card
    assert card["recipe"]["optimizer"] == "Adam" and card["recipe"]["lr"] == 1e-4
    assert card["sha256"] == sha256_file(src)


def test_projected_head_equals_concatenated_head():
    torch.manual_seed(2)
    net = SFFNet().eval()
    fa, fb = torch.randn(1, 256, 5, 6), torch.randn(1, 256, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(net.pair_logit(net.project(fa), net.project(fb)), net.logit(fa, fb),
                                   rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def synthetic_pair():
    from skimage import data

    from mfif.io import to_float
    from mfif.synth import make_case

    return make_case(to_float(data.astronaut()), n_sources=2, rng=np.random.default_rng(11), size=256,
                     radius=(2.0, 5.0))


def test_swapping_sources_flips_scores_and_decision(synthetic_pair):
    from mfif import fuse

    a, b = synthetic_pair.sources
    ab = fuse([a, b], method="sff")
    ba = fuse([b, a], method="sff")
    np.testing.assert_allclose(ab.scores[0], 1.0 - ba.scores[0], atol=1e-5)
    assert np.mean(ab.maps["initial_decision"] == 1 - ba.maps["initial_decision"]) > 0.999
    assert np.mean(ab.decision == 1 - ba.decision) > 0.995
    np.testing.assert_allclose(ab.fused, ba.fused, atol=2e-3)


def test_fusing_an_image_with_itself_returns_it(synthetic_pair):
    from mfif import fuse

    a = synthetic_pair.sources[0]
    res = fuse([a, a], method="sff")
    np.testing.assert_allclose(res.fused, a, atol=1e-5)


def test_end_to_end_quality_against_ground_truth(synthetic_pair):
    from mfif import fuse
    from mfif.io import from_float
    from mfif.metrics import decision_accuracy, psnr, ssim

    gt = from_float(synthetic_pair.gt)
    res = fuse(synthetic_pair.sources, method="sff")
    fused = from_float(res.fused)
    avg = from_float(np.mean(synthetic_pair.sources, axis=0))
    assert ssim(fused, gt) > 0.98
    assert psnr(fused, gt) > 38.0
    assert psnr(fused, gt) > psnr(avg, gt) + 5.0
    assert decision_accuracy(res.decision, synthetic_pair.mask) > 0.95
    # the paper's exact steps (no boundary refinement, no seam treatment) also work
    paper = fuse(synthetic_pair.sources, method="sff", keep_confident=2.0, refine_band=0, seam="none", gf_radius=8,
                 gf_eps=0.01)
    assert ssim(from_float(paper.fused), gt) > 0.95


@pytest.mark.parametrize("photo", ["camera", "moon"])
def test_decisions_survive_sensor_noise(photo):
    """Sensor noise (the same level in both sources) must not flip decisions where they matter.

    Gray photos with large smooth areas are the hard case: there noise is the only high
    frequency. Accuracy is counted where the noise-free sources differ (elsewhere either
    source is right).
    """
    import cv2
    from skimage import data

    from mfif import fuse
    from mfif.io import to_float
    from mfif.synth import make_case

    case = make_case(to_float(getattr(data, photo)()), n_sources=2, rng=np.random.default_rng(11), size=256,
                     radius=(1.0, 4.0))
    matters = cv2.GaussianBlur(np.abs(case.sources[0] - case.sources[1]), (0, 0), 2) > 0.02
    rng = np.random.default_rng(3)
    noisy = [np.clip(s + rng.normal(0.0, 0.01, s.shape), 0, 1).astype(np.float32) for s in case.sources]
    decision = fuse(noisy, method="sff").decision
    assert np.mean(decision[matters] == case.mask[matters]) > 0.9


@pytest.mark.parametrize("name", ["gray_mwg_pepsi", "gray_tid_testna_slika1"])
def test_real_noisy_pairs_are_not_inverted(name, shared_data):
    """Two real gray pairs with mild defocus and sensor noise, where a CNN trained on noise-free
    data reads noise as sharpness and inverts large parts of the map (the first shipped weights
    agreed with a classic focus measure on 49 % and 62 % of the pixels). No ground truth: the
    check is agreement with the sum-modified-Laplacian focus map on most of the image."""
    from mfif import fuse
    from mfif.io import read_image, to_float

    folder = shared_data / "real_pairs" / "classic"
    sources = [to_float(read_image(folder / f"{name}_{k}.png")) for k in (1, 2)]
    ours = fuse(sources, method="sff").decision
    classic = fuse(sources, method="focus-map").decision
    assert np.mean(ours == classic) > 0.8


def test_stage_maps_are_exposed(synthetic_pair):
    from mfif import fuse

    res = fuse(synthetic_pair.sources, method="sff", stride=8)
    maps = res.stage_maps()
    assert {"score", "initial_decision", "decision"} <= set(maps)
    assert maps["score"].shape == synthetic_pair.mask.shape
    assert 0.0 <= maps["score"].min() and maps["score"].max() <= 1.0
    np.testing.assert_allclose(res.weights.sum(axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize("arch", ["sff", "sff-fast"])
def test_the_cards_retrain_command_parses_back_to_the_run(arch):
    """The ``retrain`` line of a model card, read by ``mfif train``'s own parser, gives back every
    option of the run (the shipped sff-fast card's line, written before this test, left out
    ``--patience 6`` and ``--threads 1``)."""
    import argparse
    import shlex
    from pathlib import Path

    from mfif.commands import train as train_cmd
    from mfif.sff.train import TrainConfig, _retrain_command

    cfg = TrainConfig(photos="photos", out_dir="runs/x", lr=2e-4, lr_final=1e-6, batch=16, max_epochs=30,
                      patience=0, epoch_pairs=4096, val_pairs=1024, val_fraction=0.2, seed=3, max_minutes=12.5,
                      threads=1, limit_photos=50, sampler_options={"noise": 0.02, "jpeg": 60, "brightness": 0.05,
                                                                     "radius": (0.6, 24.0)},
                      init="runs/y/best.pt", arch=arch, fine_stride=1 if arch == "sff-fast" else 2, graphics=0.25)
    line = _retrain_command(cfg, Path("photos"), Path("runs/x"))
    parser = argparse.ArgumentParser()
    train_cmd.register(parser.add_subparsers(dest="cmd"))
    words = shlex.split(line)
    assert words[:2] == ["mfif", "train"]
    a = parser.parse_args(words[1:])
    got = dict(photos=a.photos, out_dir=a.out, lr=a.lr, lr_final=a.lr_final, batch=a.batch, max_epochs=a.epochs,
               patience=a.patience, epoch_pairs=a.epoch_pairs, val_pairs=a.val_pairs, val_fraction=a.val_fraction,
               seed=a.seed, max_minutes=a.max_minutes, threads=a.threads, limit_photos=a.limit_photos,
               sampler_options={**{k: getattr(a, k) for k in ("noise", "jpeg", "brightness")},
                                "radius": train_cmd.radius_option(a.radius)}, init=a.init,
               arch=a.arch, fine_stride=a.fine_stride, graphics=a.graphics)
    for key, value in got.items():
        assert value == getattr(cfg, key), key
    # defaults are left out, and still parse back to themselves
    d = TrainConfig(photos="photos", out_dir="runs/x")
    a = parser.parse_args(shlex.split(_retrain_command(d, Path("photos"), Path("runs/x")))[1:])
    assert (a.patience, a.epochs, a.lr_final, a.threads, a.arch) == (d.patience, d.max_epochs, 0.0, 0, "sff")


def test_the_noise_option_is_the_estimate_it_replaces():
    """``sff``'s ``noise=`` set to the sigma it would estimate (each source's central box, as the
    engines estimate the whole image's) gives the same fusion bit for bit, which is what tiles fused
    with the whole image's sigma rely on; a sigma 10x too large lets the boundary refinement move
    fewer pixels; the method declares the option to the engines; bad values are refused."""
    from skimage import data

    from mfif import fuse
    from mfif.consistency import frames_noise
    from mfif.frames import ArrayFrames
    from mfif.io import to_float
    from mfif.methods import get_method
    from mfif.synth import make_case

    # 600 x 600 is larger than the central box: the estimate is the box's, not the whole frame's
    case = make_case(to_float(data.astronaut()), n_sources=2, rng=np.random.default_rng(5), size=600,
                     radius=(2.0, 5.0), noise=0.02)
    srcs = case.sources
    sigma = frames_noise(ArrayFrames(srcs))
    assert 0.003 < sigma < 0.03
    opts = {"threads": 2}
    own = fuse(srcs, method="sff", **opts)
    given = fuse(srcs, method="sff", noise=sigma, **opts)
    assert np.array_equal(own.decision, given.decision) and np.array_equal(own.fused, given.fused)
    loud = fuse(srcs, method="sff", noise=10 * sigma, **opts)
    assert not np.array_equal(own.decision, loud.decision)
    assert get_method("sff").stack_options({}, lambda: 0.0123) == {"noise": 0.0123}
    assert get_method("sff").stack_options({"noise": 0.5}, lambda: 0.0123) == {"noise": 0.5}
    for bad in (-0.01, float("nan"), 2.0):
        with pytest.raises(UsageError, match="option noise"):
            fuse(srcs, method="sff", noise=bad)
