"""The command line: every usage error exits 2 with one clear line and no traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mfif.cli import main
from mfif.io import read_image, write_image


@pytest.fixture
def pair(tmp_path, rng):
    base = rng.random((48, 64)).astype(np.float32)
    a = (base * 255).astype(np.uint8)
    b = (np.roll(base, 1, axis=1) * 255).astype(np.uint8)
    pa = write_image(tmp_path / "a.png", a)
    pb = write_image(tmp_path / "b.png", b)
    return pa, pb


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_usage_error(code, err, *fragments):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("mfif: error:")]
    assert len(lines) == 1, err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    assert "Traceback" not in err


def test_fuse_writes_output_and_maps(pair, tmp_path, capsys):
    out = tmp_path / "out" / "fused.png"
    code, _, err = run_cli(["fuse", *pair, "-o", out, "-m", "focus-map", "--save-maps", tmp_path / "maps",
                            "--depth-map", tmp_path / "depth.png"], capsys)
    assert code == 0, err
    fused = read_image(out)
    assert fused.shape == (48, 64) and fused.dtype == np.uint8
    assert (tmp_path / "maps" / "decision.png").is_file()
    depth = read_image(tmp_path / "depth.png")
    assert depth.dtype == np.uint16 and set(np.unique(depth)) <= {0, 1}
    assert (tmp_path / "depth-preview.png").is_file()


def test_missing_file(pair, tmp_path, capsys):
    code, _, err = run_cli(["fuse", pair[0], tmp_path / "nope.png", "-o", tmp_path / "o.png", "-m", "average"], capsys)
    assert_usage_error(code, err, "nope.png", "no such file")


def test_corrupt_file(pair, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, _, err = run_cli(["fuse", pair[0], bad, "-o", tmp_path / "o.png", "-m", "average"], capsys)
    assert_usage_error(code, err, "bad.png", "cannot read image")


def test_fewer_than_two_sources(pair, tmp_path, capsys):
    code, _, err = run_cli(["fuse", pair[0], "-o", tmp_path / "o.png", "-m", "average"], capsys)
    assert_usage_error(code, err, "at least 2 sources")


def test_different_sizes(pair, tmp_path, capsys):
    c = write_image(tmp_path / "c.png", np.zeros((48, 62), np.uint8))
    code, _, err = run_cli(["fuse", pair[0], c, "-o", tmp_path / "o.png", "-m", "average"], capsys)
    assert_usage_error(code, err, "a.png is 64x48", "c.png is 62x48")


def test_different_channel_counts(pair, tmp_path, capsys):
    c = write_image(tmp_path / "c.png", np.zeros((48, 64, 3), np.uint8))
    code, _, err = run_cli(["fuse", pair[0], c, "-o", tmp_path / "o.png", "-m", "average"], capsys)
    assert_usage_error(code, err, "channel count", "a.png has 1", "c.png has 3")


def test_unknown_method(pair, tmp_path, capsys):
    code, _, err = run_cli(["fuse", *pair, "-o", tmp_path / "o.png", "-m", "magic"], capsys)
    assert_usage_error(code, err, "unknown method 'magic'", "average")


def test_bad_option_value(pair, tmp_path, capsys):
    code, _, err = run_cli(["fuse", *pair, "-o", tmp_path / "o.png", "-m", "dwt", "-p", "level=-3"], capsys)
    assert_usage_error(code, err, "level")
    code, _, err = run_cli(["fuse", *pair, "-o", tmp_path / "o.png", "-m", "dwt", "-p", "wavelet=nonsense"], capsys)
    assert_usage_error(code, err, "wavelet")
    code, _, err = run_cli(["fuse", *pair, "-o", tmp_path / "o.png", "-m", "dwt", "-p", "nosuch=1"], capsys)
    assert_usage_error(code, err, "unknown option 'nosuch'")


def test_unknown_cli_flag(pair, tmp_path, capsys):
    code, _, err = run_cli(["fuse", *pair, "-o", tmp_path / "o.png", "--bogus"], capsys)
    assert_usage_error(code, err, "unrecognized arguments: --bogus", "--help")
    assert err.count("\n") == 1  # one line, no usage block


def test_refuses_to_overwrite_input(pair, tmp_path, capsys):
    before = pair[0].read_bytes()
    code, _, err = run_cli(["fuse", *pair, "-o", pair[0], "-m", "average"], capsys)
    assert_usage_error(code, err, "refusing to overwrite")
    assert pair[0].read_bytes() == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir(pair, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, _, err = run_cli(["fuse", *pair, "-o", ro / "o.png", "-m", "average"], capsys)
    ro.chmod(0o700)
    assert_usage_error(code, err, "not writable")


def test_unwritable_output_path(pair, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a directory is needed: fails even for root
    code, _, err = run_cli(["fuse", *pair, "-o", blocker / "o.png", "-m", "average"], capsys)
    assert_usage_error(code, err, "o.png")


def test_bad_output_extension(pair, tmp_path, capsys):
    code, _, err = run_cli(["fuse", *pair, "-o", tmp_path / "o.xyz", "-m", "average"], capsys)
    assert_usage_error(code, err, "unknown output format")


def test_methods_lists_every_method(capsys):
    from mfif.methods import METHODS

    code, out, _ = run_cli(["methods"], capsys)
    assert code == 0
    names = [ln.split()[0] for ln in out.strip().splitlines()]
    assert names == list(METHODS)
    for expected in ("sff", "average", "pca", "dwt", "laplacian", "gff", "focus-map"):
        assert expected in names


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mfif", "fuse", str(tmp_path / "x.png"), str(tmp_path / "y.png"),
                           "-o", str(tmp_path / "o.png")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "x.png: no such file" in proc.stderr


def test_one_command_builds_only_its_own_parser(capsys):
    """A call of one command sets up that command's options only; the top level, its help and an
    unknown command still see every command."""
    import sys as _sys

    from mfif.cli import COMMANDS, build_parser

    def commands(parser):
        return set(parser._subparsers._group_actions[0].choices)

    assert commands(build_parser(["fuse", "a.png", "b.png"])) == {"fuse"}
    assert commands(build_parser(["--help"])) == set(COMMANDS)
    assert commands(build_parser(["nosuch"])) == set(COMMANDS)
    assert commands(build_parser([])) == set(COMMANDS)
    assert main(["nosuch"]) == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["methods", "--help"])
    assert "usage: mfif methods" in capsys.readouterr().out
    # in a fresh interpreter: the other commands' modules are not even imported
    code = "import sys; from mfif.cli import build_parser; build_parser(['fuse']); print(sorted(m for m in sys.modules if m.startswith('mfif.commands.')))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([_sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "['mfif.commands.fuse']"
