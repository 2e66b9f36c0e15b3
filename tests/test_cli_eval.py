"""Tests of ``mfif eval``."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from mfif.cli import main
from mfif.commands.eval import read_labels
from mfif.io import write_image

NOREF = {"qabf", "qmi", "qy", "qcb", "ssim_avg"}


@pytest.fixture
def pair(tmp_path, rng):
    """A synthetic pair with ground truth: left half sharp in a.png, right half in b.png."""
    h, w = 40, 48
    gt = np.round(ndimage.gaussian_filter(rng.random((h, w)), 1.0) * 400).clip(0, 255).astype(np.uint8)
    blur = ndimage.uniform_filter(gt, 5)
    mask = np.zeros((h, w), np.uint8)
    mask[:, w // 2:] = 255  # 0 -> source 1 in focus, 255 -> source 2
    a = np.where(mask == 0, gt, blur).astype(np.uint8)
    b = np.where(mask == 255, gt, blur).astype(np.uint8)
    paths = {}
    for name, img in dict(gt=gt, a=a, b=b, mask=mask).items():
        paths[name] = str(write_image(tmp_path / f"{name}.png", img))
    return paths


def _json(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_json_keys_follow_options(pair, capsys):
    p = pair
    assert set(_json(capsys, ["eval", p["a"], p["a"], p["b"], "--json"])) == NOREF
    res = _json(capsys, ["eval", p["a"], p["a"], p["b"], "--reference", p["gt"], "--json"])
    assert set(res) == NOREF | {"ssim", "psnr"}
    res = _json(capsys, ["eval", p["gt"], p["a"], p["b"], "--reference", p["gt"], "--mask", p["mask"],
                         "--decision", p["mask"], "--json"])
    assert set(res) == NOREF | {"ssim", "psnr", "ssim_band", "psnr_band", "accuracy", "iou", "boundary_f"}
    # fused == reference: SSIM 1, infinite PSNR written as null; decision == mask: perfect scores
    assert res["ssim"] == pytest.approx(1.0) and res["psnr"] is None and res["psnr_band"] is None
    assert res["accuracy"] == 1.0 and res["iou"] == 1.0 and res["boundary_f"] == 1.0


def test_table_lists_every_metric(pair, capsys):
    p = pair
    assert main(["eval", p["a"], p["a"], p["b"], "-r", p["gt"], "--mask", p["mask"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["metric", "value"]
    names = [ln.split()[0] for ln in lines[1:]]
    assert names == ["ssim", "psnr", "ssim_band", "psnr_band", "qabf", "qmi", "qy", "qcb", "ssim_avg"]
    # values line up in one column
    assert len({ln.index(ln.split()[1]) + len(ln.split()[1]) for ln in lines[1:]}) == 1


@pytest.mark.parametrize("case", ["size", "one_source", "missing", "bad_mask", "decision_alone", "bad_band"])
def test_bad_input_exits_2_with_one_line(pair, tmp_path, capsys, case):
    p = pair
    small = str(write_image(tmp_path / "small.png", np.zeros((10, 12), np.uint8)))
    labels = np.array([[0, 7, 255]] * 40, np.uint8).repeat(16, axis=1)  # 40x48, 7 is no label
    bad_mask = str(write_image(tmp_path / "bad.png", labels))
    argv = {
        "size": ["eval", small, p["a"], p["b"]],
        "one_source": ["eval", p["a"], p["b"]],
        "missing": ["eval", p["a"], p["b"], str(tmp_path / "nope.png")],
        "bad_mask": ["eval", p["a"], p["a"], p["b"], "--mask", bad_mask],
        "decision_alone": ["eval", p["a"], p["a"], p["b"], "--decision", p["mask"]],
        "bad_band": ["eval", p["a"], p["a"], p["b"], "--band", "-1"],
    }[case]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mfif: error:")
    if case == "size":
        assert "12x10" in err[0] and "48x40" in err[0]


def test_read_labels_encodings(tmp_path):
    three = np.array([[0, 128, 255]], np.uint8)  # decision.png of `fuse --save-maps`, 3 sources
    path = write_image(tmp_path / "d3.png", three)
    assert read_labels(path, 3, "mask").tolist() == [[0, 1, 2]]
    binary = write_image(tmp_path / "m2.png", np.array([[0, 255, 255]], np.uint8))
    assert read_labels(binary, 2, "mask").tolist() == [[0, 1, 1]]
    depth = write_image(tmp_path / "depth.png", np.array([[0, 3, 1]], np.uint16))  # raw indices
    assert read_labels(depth, 4, "mask").tolist() == [[0, 3, 1]]
    b16 = write_image(tmp_path / "m16.png", np.array([[0, 65535]], np.uint16))
    assert read_labels(b16, 2, "mask").tolist() == [[0, 1]]


def test_sources_as_one_multipage_tiff(pair, tmp_path, capsys):
    """The sources may be one multi-page TIFF: the same scores as its planes as files."""
    from mfif.io import read_image
    from tiff_support import write_pages

    write_pages(tmp_path / "z.tif", [read_image(pair[k]) for k in ("a", "b")])
    scores = []
    for sources in ([str(tmp_path / "z.tif")], [pair["a"], pair["b"]]):
        assert main(["eval", pair["gt"], *sources, "--json"]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0] == scores[1] and set(scores[0]) >= NOREF
