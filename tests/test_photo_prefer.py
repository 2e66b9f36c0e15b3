"""--prefer near|far (issue 17): weak focus evidence settled toward the front or back frames."""
from __future__ import annotations

import numpy as np
import pytest

from mfif.api import fuse
from mfif.cli import main
from mfif.decision import prefer_decision
from mfif.io import read_image, write_image
from mfif.methods import METHODS, get_method, parse_params


def thin_structure_stack(h=96, w=128, seed=1):
    """Frame 0 (near focus): a 1-px dark line, sharp, over a textureless grey area; the left
    half a textured background, blurred. Frame 1 (far focus): the background sharp, the line
    blurred. Returns the frames (float32) and the line's mask."""
    import cv2

    rng = np.random.default_rng(seed)
    sharp = np.full((h, w), 0.5, np.float32)
    sharp[:, : w // 2] = rng.random((h, w // 2))
    line = np.zeros((h, w), bool)
    line[10:h - 10, 96] = True
    sharp[line] = 0.05
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    near, far = sharp.copy(), blurred.copy()
    near[:, : w // 2] = blurred[:, : w // 2]
    far[:, : w // 2] = sharp[:, : w // 2]
    return near, far, line


@pytest.mark.parametrize("method", ["focus-map", "gff", "pcanet"])
def test_prefer_near_keeps_thin_structure(method):
    near, far, line = thin_structure_stack()
    plain = fuse([near, far], method=method)
    kept = fuse([near, far], method=method, prefer="near")
    assert np.abs(kept.fused[line] - 0.05).max() < 0.02  # the line as sharp as in frame 0
    assert np.abs(kept.fused[:, :60] - far[:, :60]).mean() < 0.02  # clear evidence is still obeyed
    # the order swapped and "far": the same frame is preferred, the same image comes out
    swapped = fuse([far, near], method=method, prefer="far")
    assert np.abs(swapped.fused - kept.fused).max() < 1e-4
    if method == "focus-map":  # the default loses the line to the far frame's blur
        assert np.abs(plain.fused[line] - 0.05).mean() > 0.05


def test_prefer_cli_and_order(tmp_path, capsys):
    near, far, line = thin_structure_stack()
    to8 = lambda a: np.rint(a * 255).astype(np.uint8)  # noqa: E731
    write_image(tmp_path / "0.png", to8(near))
    write_image(tmp_path / "1.png", to8(far))
    run = lambda srcs, out, *extra: main(["fuse", *[str(tmp_path / s) for s in srcs], "-o",  # noqa: E731
                                          str(tmp_path / out), "-m", "focus-map", "-q", *extra])
    assert run(["0.png", "1.png"], "plain.png") == 0
    assert run(["0.png", "1.png"], "near.png", "--prefer", "near") == 0
    assert run(["1.png", "0.png"], "far.png", "--prefer", "far") == 0
    plain, kept, swapped = (read_image(tmp_path / f).astype(int) for f in ("plain.png", "near.png", "far.png"))
    assert np.abs(kept[line] - 13).max() <= 5 < np.abs(plain[line] - 13).mean()
    assert np.abs(kept - swapped).max() <= 1
    assert run(["0.png", "1.png"], "x.png", "--prefer", "nearest") == 2
    assert run(["0.png", "1.png"], "x.png", "--prefer", "near", "-m", "average") == 2
    assert "no decision map" in capsys.readouterr().err


def test_every_decision_method_takes_prefer():
    for m in METHODS.values():
        names = {p.name for p in m.params}
        assert ("prefer" in names) == m.has_decision, m.name
    assert parse_params(get_method("sff"), {"prefer": "far", "prefer_margin": "0.1"}) == {"prefer": "far",
                                                                                        "prefer_margin": 0.1}
    with pytest.raises(Exception, match="prefer_margin"):
        parse_params(get_method("gff"), {"prefer_margin": "nan"})


def test_prefer_decision_rules():
    scores = np.array([[[1.0, 0.0, 0.50]], [[0.0, 1.0, 0.52]], [[0.0, 0.0, 0.51]]], np.float32)
    argmax = np.argmax(scores, axis=0).astype(np.int16)
    assert np.array_equal(prefer_decision(scores, argmax), argmax)  # default: unchanged
    assert prefer_decision(scores, argmax, prefer="near").tolist() == [[0, 1, 0]]
    assert prefer_decision(scores, argmax, prefer="far").tolist() == [[0, 1, 2]]
    assert prefer_decision(scores, argmax, prefer="near", margin=0.0).tolist() == [[0, 1, 1]]
    # two-source SFF scores: the probability that source 0 is the sharper
    p = np.array([[[0.9, 0.49, 0.1]]], np.float32)
    d = np.array([[0, 1, 1]], np.int16)
    assert prefer_decision(p, d, prefer="near").tolist() == [[0, 0, 1]]
    assert prefer_decision(p, d, prefer="far").tolist() == [[0, 1, 1]]
