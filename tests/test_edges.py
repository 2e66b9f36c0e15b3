"""Inputs and options at the edges, through the command line: one clear line, exit 2, nothing lost.

Each test names the class of problem it guards (numbered as in the reliability issue): side
outputs that would overwrite each other, permissions, float inputs, non-finite options,
orientation, tracebacks on odd paths, killed runs, hidden files, errors blamed on the wrong
stage, late failures and silent choices. A failing run must leave the folder exactly as it was.
"""
from __future__ import annotations

import hashlib
import os
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from mfif.cli import main
from mfif.io import image_info, read_image, write_image


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict:
    """Every file below ``folder`` with its content hash and mode."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(), stat.S_IMODE(p.stat().st_mode))
        elif p.is_dir():
            out[str(p.relative_to(folder)) + "/"] = None
    return out


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mfif: error: "), err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


def fails_cleanly(argv, folder, capsys, *fragments):
    """Run ``argv``; it must fail with one line and change nothing in ``folder``."""
    before = snapshot(folder)
    code, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, *fragments)
    assert snapshot(folder) == before, "a failed run created or changed files"
    return err


def textured(rng, shape):
    import cv2

    base = rng.random(shape).astype(np.float32)
    blurred = cv2.GaussianBlur(base, (0, 0), 3)
    return base, blurred


@pytest.fixture
def pair(tmp_path, rng):
    """Two 8-bit gray sources: A sharp on the left, B sharp on the right."""
    sharp, blur = textured(rng, (40, 64))
    a, b = blur.copy(), blur.copy()
    a[:, :32], b[:, 32:] = sharp[:, :32], sharp[:, 32:]
    pa = write_image(tmp_path / "a.png", (a * 255).astype(np.uint8))
    pb = write_image(tmp_path / "b.png", (b * 255).astype(np.uint8))
    return pa, pb


# ---------------------------------------------------------------------------------------------
# 1. side outputs never overwrite the fused output (or each other, or an input)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["depth_is_output", "depth_preview_is_output", "output_in_maps",
                                  "depth_in_maps", "maps_over_input"])
def test_outputs_never_collide(pair, tmp_path, capsys, case):
    a, b = pair
    o = tmp_path / "o.png"
    argv = {
        "depth_is_output": ["--depth-map", o],
        "depth_preview_is_output": ["--depth-map", tmp_path / "o.png", "-o", tmp_path / "o-preview.png"],
        "output_in_maps": ["--save-maps", tmp_path / "maps", "-o", tmp_path / "maps" / "decision.png"],
        "depth_in_maps": ["--save-maps", tmp_path / "maps", "--depth-map", tmp_path / "maps" / "weight_1.png"],
        "maps_over_input": ["--save-maps", tmp_path],
    }[case]
    if "-o" not in argv:
        argv = ["-o", o, *argv]
    frag = {"depth_is_output": "same file", "depth_preview_is_output": "same file",
            "output_in_maps": "replaced by a stage map", "depth_in_maps": "replaced by a stage map",
            "maps_over_input": "overwrite the input"}[case]
    tmp_path.joinpath("decision.png").unlink(missing_ok=True)
    if case == "maps_over_input":  # an input named like a stage map, in the maps folder
        os.replace(a, tmp_path / "decision.png")
        a = tmp_path / "decision.png"
    fails_cleanly(["fuse", a, b, "-m", "focus-map", *argv], tmp_path, capsys, frag)


def test_tif_depth_map_is_written_as_tif(pair, tmp_path, capsys):
    out, depth = tmp_path / "fused.png", tmp_path / "depth.tif"
    code, err = run_cli(["fuse", *pair, "-o", out, "-m", "focus-map", "--depth-map", depth, "-q"], capsys)
    assert code == 0, err
    assert tifffile.imread(depth).dtype == np.uint16
    assert not (tmp_path / "depth.png").exists()
    assert read_image(out).dtype == np.uint8  # the fused output is still the fused image
    dm = tifffile.imread(depth)
    assert dm[:, :16].mean() < 0.2 and dm[:, -16:].mean() > 0.8  # A left, B right


def test_depth_map_format_must_hold_16_bit(pair, tmp_path, capsys):
    fails_cleanly(["fuse", *pair, "-o", tmp_path / "o.png", "-m", "focus-map", "--depth-map", tmp_path / "d.jpg"],
                  tmp_path, capsys, "--depth-map", "cannot hold 16-bit")


# ---------------------------------------------------------------------------------------------
# 2. permissions: the umask for new files, an existing file keeps its mode
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_outputs_follow_the_umask(pair, tmp_path, capsys, umask):
    old = os.umask(umask)
    try:
        code, err = run_cli(["fuse", *pair, "-o", tmp_path / "o.png", "-m", "focus-map", "-q",
                             "--depth-map", tmp_path / "d.png", "--save-maps", tmp_path / "maps"], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    for p in [tmp_path / "o.png", tmp_path / "d.png", tmp_path / "d-preview.png", tmp_path / "maps" / "decision.png"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p


def test_existing_output_keeps_its_mode(pair, tmp_path, capsys):
    o = tmp_path / "o.png"
    o.write_bytes(b"old")
    os.chmod(o, 0o640)
    code, err = run_cli(["fuse", *pair, "-o", o, "-m", "average", "-q"], capsys)
    assert code == 0, err
    assert stat.S_IMODE(o.stat().st_mode) == 0o640
    assert read_image(o).shape == (40, 64)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


# ---------------------------------------------------------------------------------------------
# 3. float inputs keep their range; NaN and inf pixels are refused with the file and count
# ---------------------------------------------------------------------------------------------
def test_float_tiff_keeps_its_range(tmp_path, rng, capsys):
    sharp, blur = textured(rng, (40, 64))
    a, b = blur.copy(), blur.copy()
    a[:, :32], b[:, 32:] = sharp[:, :32], sharp[:, 32:]
    for name, img in (("a.tif", a), ("b.tif", b)):
        tifffile.imwrite(tmp_path / name, (img * 255.0).astype(np.float32))  # 0..255 floats
    out = tmp_path / "o.tif"
    code, err = run_cli(["fuse", tmp_path / "a.tif", tmp_path / "b.tif", "-o", out, "-m", "focus-map", "-q"], capsys)
    assert code == 0, err
    f = tifffile.imread(out)
    assert f.dtype == np.float32
    # fusion commutes with the scale: the 0..255 stack fuses to 255 x the 0..1 stack's result
    import mfif

    unit = mfif.fuse([a, b], method="focus-map").fused
    assert np.allclose(f, unit * 255.0, atol=1e-2)
    assert f.max() > 100 and np.abs(f - sharp * 255.0).mean() < 10.0  # not clipped to 1, not white


def test_float_sources_from_a_generator_keep_their_range(rng):
    import mfif

    img = rng.random((24, 24)).astype(np.float32) * 300.0
    res = mfif.fuse((x for x in [img, img]), method="average")
    assert np.allclose(res.fused, img, atol=1e-3)


def test_float_tiff_negative_range(tmp_path, rng):
    """Signed data (e.g. a background-subtracted microscope image) is not clipped at 0."""
    import mfif

    img = (rng.random((32, 32)).astype(np.float32) - 0.5) * 1000.0
    res = mfif.fuse([img, img], method="average")
    assert np.allclose(res.fused, img, atol=1e-3)


@pytest.mark.parametrize("bad", ["nan_some", "inf_some", "all_nan"])
def test_non_finite_pixels_are_refused(tmp_path, rng, capsys, bad):
    a = rng.random((24, 24)).astype(np.float32)
    b = a.copy()
    if bad == "nan_some":
        b[:10, :10] = np.nan
    elif bad == "inf_some":
        b[0, :7] = np.inf
    else:
        b[:] = np.nan
    tifffile.imwrite(tmp_path / "a.tif", a)
    tifffile.imwrite(tmp_path / "b.tif", b)
    count = {"nan_some": "100 of 576", "inf_some": "7 of 576", "all_nan": "576 of 576"}[bad]
    for argv in (["fuse", tmp_path / "a.tif", tmp_path / "b.tif", "-o", tmp_path / "o.tif", "-m", "sff"],
                 ["eval", tmp_path / "a.tif", tmp_path / "a.tif", tmp_path / "b.tif"]):
        fails_cleanly(argv, tmp_path, capsys, "b.tif", count, "NaN or infinite")


def test_float_sources_need_a_float_format(tmp_path, rng, capsys):
    a = rng.random((24, 24)).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", a)
    tifffile.imwrite(tmp_path / "b.tif", a)
    fails_cleanly(["fuse", tmp_path / "a.tif", tmp_path / "b.tif", "-o", tmp_path / "o.png", "-m", "average"],
                  tmp_path, capsys, "o.png", "cannot hold float", ".tif")


# ---------------------------------------------------------------------------------------------
# 4. NaN and inf never pass a numeric check
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, fragments", [
    (["fuse", "{a}", "{b}", "-o", "{o}", "-p", "threshold=nan"], ["option threshold", "nan"]),
    (["fuse", "{a}", "{b}", "-o", "{o}", "-p", "gf_eps=nan"], ["option gf_eps", "finite"]),
    (["fuse", "{a}", "{b}", "-o", "{o}", "-p", "min_region=nan"], ["option min_region"]),
    (["fuse", "{a}", "{b}", "-o", "{o}", "-p", "refine_noise=inf"], ["option refine_noise", "inf"]),
    (["fuse", "{a}", "{b}", "-o", "{o}", "-m", "gff", "-p", "eps1=nan"], ["option eps1"]),
    (["fuse", "{a}", "{b}", "-o", "{o}", "-m", "focus-map", "-p", "window=3.5"], ["option window", "integer"]),
    (["fuse", "{a}", "{b}", "-o", "{o}", "--max-memory", "nan"], ["--max-memory", "finite number > 0"]),
    (["fuse", "{a}", "{b}", "-o", "{o}", "--max-memory", "-5"], ["--max-memory"]),
    (["fuse", "{a}", "{b}", "-o", "{o}", "--tile", "inf"], ["--tile", "integer"]),
    (["eval", "{a}", "{a}", "{b}", "--band", "nan"], ["--band", "finite"]),
    (["train", "{d}", "--out", "{d}/run", "--lr", "nan"], ["--lr", "finite number > 0"]),
    (["train", "{d}", "--out", "{d}/run", "--batch", "0"], ["--batch"]),
    (["train", "{d}", "--out", "{d}/run", "--noise", "inf"], ["--noise"]),
    (["synth", "{d}", "{d}/s", "--counts", "inf,0,0"], ["--counts", "integer"]),
    (["synth", "{d}", "{d}/s", "--split", "nan,1,1"], ["--split", "finite"]),
    (["synth", "{d}", "{d}/s", "--radius", "nan,8"], ["--radius"]),
    (["synth", "{d}", "{d}/s", "--radius", "1"], ["--radius", "2 comma-separated"]),
    (["synth", "{d}", "{d}/s", "--fg-fraction", "0.2,inf"], ["--fg-fraction"]),
    (["synth", "{d}", "{d}/s", "--noise", "nan"], ["--noise"]),
    (["synth", "{d}", "{d}/s", "-s", "nan"], ["--size"]),
])
def test_non_finite_options_are_refused(pair, tmp_path, capsys, argv, fragments):
    a, b = pair
    fill = {"a": a, "b": b, "o": tmp_path / "o.png", "d": tmp_path}
    argv = [x.format(**{k: str(v) for k, v in fill.items()}) for x in argv]
    fails_cleanly(argv, tmp_path, capsys, *fragments)


@pytest.mark.parametrize("sources, fragment", [
    (None, "sequence of two or more images"),
    (5, "sequence of two or more images"),
    ("ab", "sequence of two or more images"),
    ([np.zeros((4, 4), np.int64)] * 2, "source 1: unsupported pixel type int64"),
    ([np.zeros((4, 4), np.complex64)] * 2, "unsupported pixel type complex64"),
    ([np.zeros((4, 4, 5), np.float32)] * 2, "channel count 5"),
    ([np.zeros((0, 4), np.float32)] * 2, "empty image"),
])
def test_python_api_refuses_odd_sources(sources, fragment):
    import mfif
    from mfif.errors import UsageError

    with pytest.raises(UsageError, match=fragment):
        mfif.fuse(sources, method="average")


def test_python_api_refuses_non_finite_options(rng):
    import mfif
    from mfif.errors import UsageError

    a = rng.random((32, 32)).astype(np.float32)
    for kw in ({"threshold": float("nan")}, {"gf_eps": float("inf")}, {"min_region": -1.0}, {"stride": 5}):
        with pytest.raises(UsageError, match="method sff: option"):
            mfif.fuse([a, a], method="sff", **kw)
    with pytest.raises(UsageError, match="NaN or infinite"):
        mfif.fuse([a, np.full_like(a, np.nan)], method="average")


# ---------------------------------------------------------------------------------------------
# 5. orientation (tag 274) for every format
# ---------------------------------------------------------------------------------------------
#: What each orientation value asks for, written out independently of mfif.io.orient: the
#: displayed image for the stored ``s`` (TIFF 6.0 / EXIF: row 0 and column 0 sides).
UPRIGHT = {
    1: lambda s: s,
    2: lambda s: np.fliplr(s),
    3: lambda s: np.rot90(s, 2),
    4: lambda s: np.flipud(s),
    5: lambda s: np.transpose(s, (1, 0, 2)) if s.ndim == 3 else s.T,
    6: lambda s: np.rot90(s, -1),
    7: lambda s: np.rot90(np.fliplr(s), -1),
    8: lambda s: np.rot90(s, 1),
}


def _png16_with_exif(path: Path, img: np.ndarray, orientation: int) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", img[..., ::-1] if img.ndim == 3 else img)
    exif = Image.Exif()
    exif[274] = orientation
    payload = exif.tobytes()[6:]  # drop the JPEG-style "Exif\0\0" header: PNG's eXIf holds TIFF data
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    data = buf.tobytes()
    path.write_bytes(data[:33] + chunk + data[33:])  # after the signature (8) and IHDR (25)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["tiff8", "tiff16_rgb", "png16", "png16_rgb", "jpeg", "png8"])
def test_orientation_is_honoured(tmp_path, orientation, kind):
    stored = (np.arange(5 * 7 * 3).reshape(5, 7, 3) * 3 % 256).astype(np.uint8)
    if kind in ("tiff8", "png16", "png8", "jpeg"):
        stored = stored[..., 0].copy()
    if kind in ("tiff16_rgb", "png16", "png16_rgb"):
        stored = stored.astype(np.uint16) * 257
        if kind == "png16_rgb" and stored.ndim == 2:
            stored = np.stack([stored] * 3, -1)
    if kind == "png16_rgb":
        stored = (np.arange(5 * 7 * 3).reshape(5, 7, 3) * 1000).astype(np.uint16)
    p = tmp_path / ("x.tif" if kind.startswith("tiff") else ("x.jpg" if kind == "jpeg" else "x.png"))
    if kind.startswith("tiff"):
        tifffile.imwrite(p, stored, photometric="rgb" if stored.ndim == 3 else "minisblack",
                         extratags=[(274, "H", 1, orientation, True)])
    elif kind.startswith("png16"):
        _png16_with_exif(p, stored, orientation)
    else:
        exif = Image.Exif()
        exif[274] = orientation
        Image.fromarray(stored).save(p, exif=exif, **({"quality": 100} if kind == "jpeg" else {}))
        if kind == "jpeg":
            stored = np.asarray(Image.open(p))  # compare against the decoded pixels
    got = read_image(p)
    want = UPRIGHT[orientation](stored)
    assert got.shape == want.shape and np.array_equal(got, want)
    if kind in ("png8", "jpeg"):  # and as Pillow's own implementation turns it
        from PIL import ImageOps

        with Image.open(p) as im:
            assert np.array_equal(got, np.asarray(ImageOps.exif_transpose(im)))
    assert image_info(p).shape == got.shape and image_info(p).dtype == got.dtype


# ---------------------------------------------------------------------------------------------
# 6. odd paths and sizes give a line, not a traceback
# ---------------------------------------------------------------------------------------------
def test_very_long_file_name(pair, tmp_path, capsys):
    long = tmp_path / ("x" * 300 + ".png")
    fails_cleanly(["fuse", pair[0], long, "-o", tmp_path / "o.png", "-m", "average"], tmp_path, capsys,
                  "file name too long")
    fails_cleanly(["fuse", *pair, "-o", long, "-m", "average"], tmp_path, capsys, "too long")


def test_symlink_loop_source(pair, tmp_path, capsys):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    fails_cleanly(["fuse", pair[0], loop, "-o", tmp_path / "o.png", "-m", "average"], tmp_path, capsys,
                  "loop.png", "loop of symbolic links")


def test_train_out_is_a_file(pair, tmp_path, capsys):
    f = tmp_path / "notadir"
    f.write_text("x")
    fails_cleanly(["train", tmp_path, "--out", f], tmp_path, capsys, "notadir", "not a directory")


def test_synth_size_beyond_memory(pair, tmp_path, capsys):
    fails_cleanly(["synth", tmp_path, tmp_path / "s", "-s", "100000", "-k", "1"], tmp_path, capsys,
                  "--size 100000", "GB of memory")


@pytest.mark.parametrize("out, fragment", [("", "-o is empty"), ("-", "standard output")])
def test_empty_or_dash_output(pair, tmp_path, capsys, out, fragment):
    fails_cleanly(["fuse", *pair, "-o", out, "-m", "average"], tmp_path, capsys, fragment)


def test_directory_as_source_file_and_output(pair, tmp_path, capsys):
    (tmp_path / "sub").mkdir()  # a folder as -o is named from the stack (issue 17)
    assert main(["fuse", *map(str, pair), "-o", str(tmp_path / "sub"), "-m", "average", "-q"]) == 0
    assert (tmp_path / "sub" / (Path(pair[0]).stem + "-fused" + Path(pair[0]).suffix)).is_file()
    fails_cleanly(["fuse", *pair, "-o", tmp_path / "o.png", "--save-maps", pair[0], "-m", "focus-map"],
                  tmp_path, capsys, "--save-maps", "not a directory")


# ---------------------------------------------------------------------------------------------
# 7. killed runs leave nothing behind; Ctrl-C stops the CNN pass promptly
# ---------------------------------------------------------------------------------------------
def _stack(tmp_path, rng, n=6, shape=(700, 900)):
    folder = tmp_path / "stack"
    folder.mkdir()
    for i in range(n):
        write_image(folder / f"f{i}.tif", (rng.random(shape) * 255).astype(np.uint8))  # fast to write
    return folder


def _open_files(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.append(os.readlink(fd))
        except OSError:  # closed meanwhile
            pass
    return out


def _temp_files(tmpdir: Path) -> set:
    return {p.name for p in tmpdir.iterdir()}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_killed_run_leaves_no_cache(tmp_path, rng, sig):
    # 8 frames of 1 MP with a small budget: the frames go to the disk cache, and sff takes well
    # over 10 s (6 frames of 0.63 MP in memory sometimes finished before the signal came)
    folder = _stack(tmp_path, rng, n=8, shape=(900, 1100))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "mfif", "fuse", str(folder), "-o", str(tmp_path / "o.png"),
                             "-m", "sff", "--max-memory", "60"], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)  # well into reading or fusing
    assert proc.poll() is None, proc.stderr.read()
    if Path(f"/proc/{proc.pid}/fd").is_dir():  # Linux: the cache is an unnamed file in TMPDIR
        assert any(str(tmpdir) in target for target in _open_files(proc.pid)), "no disk cache in TMPDIR"
    t0 = time.monotonic()
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    stopped_in = time.monotonic() - t0
    assert "Traceback" not in err, err
    assert not _temp_files(tmpdir), "the frame cache outlived the process"
    assert not (tmp_path / "o.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mfif-")]
    if sig != signal.SIGKILL:
        assert proc.returncode in (130, 128 + sig), (proc.returncode, err)
        assert stopped_in < 5.0, f"took {stopped_in:.1f} s to stop"


# ---------------------------------------------------------------------------------------------
# 8. hidden files in a source folder are not frames
# ---------------------------------------------------------------------------------------------
def test_hidden_files_are_skipped(pair, tmp_path, capsys):
    folder = tmp_path / "stack"
    folder.mkdir()
    for p in pair:
        os.replace(p, folder / p.name)
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    (folder / ".mfif-123.part").write_bytes(b"partial")
    code, err = run_cli(["fuse", folder, "-o", tmp_path / "o.png", "-m", "focus-map"], capsys)
    assert code == 0, err
    assert "fusing 2 sources" in err


# ---------------------------------------------------------------------------------------------
# 9. errors name the stage the user chose
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(40, 1), (1, 40), (2, 3)])
def test_thin_images_with_sff(tmp_path, rng, capsys, shape):
    a = (rng.random(shape) * 255).astype(np.uint8)
    write_image(tmp_path / "a.png", a)
    write_image(tmp_path / "b.png", a[::-1, ::-1].copy())
    code, err = run_cli(["fuse", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "o.png", "-q"], capsys)
    assert code == 0, err
    assert "laplacian" not in err
    assert read_image(tmp_path / "o.png").shape == shape


# ---------------------------------------------------------------------------------------------
# 10. format clashes and bad side outputs fail before the fusion
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["16bit_to_jpg", "16bit_to_bmp", "unknown_ext", "preview_over_input",
                                  "maps_is_file"])
def test_clashes_fail_before_fusing(tmp_path, rng, capsys, case):
    a = (rng.random((30, 30)) * 65535).astype(np.uint16)
    pa, pb = write_image(tmp_path / "a.png", a), write_image(tmp_path / "b.png", a[::-1].copy())
    argv = ["fuse", pa, pb, "-m", "sff"]
    argv += {
        "16bit_to_jpg": ["-o", tmp_path / "o.jpg"],
        "16bit_to_bmp": ["-o", tmp_path / "o.bmp"],
        "unknown_ext": ["-o", tmp_path / "o.webp"],
        "preview_over_input": ["-o", tmp_path / "o.png", "--depth-map", tmp_path / "a"],
        "maps_is_file": ["-o", tmp_path / "o.png", "--save-maps", pa],
    }[case]
    if case == "preview_over_input":
        os.replace(pb, tmp_path / "a-preview.png")
        argv[argv.index(pb)] = tmp_path / "a-preview.png"
    err = fails_cleanly(argv, tmp_path, capsys)
    assert "fusing" not in err  # refused before the work started


# ---------------------------------------------------------------------------------------------
# 11. no silent choices: multi-page TIFF among other files and CMYK TIFF are refused, palette and min-is-white converted
# ---------------------------------------------------------------------------------------------
def test_multipage_tiff_is_a_stack_alone_and_refused_among_files(tmp_path, rng, capsys):
    # A multi-page TIFF given alone is a z-stack: its pages are the focal planes (the Dask
    # engine, tests/test_dask.py). Mixed with other files it is refused: which pages would be
    # which frames is no choice to make silently.
    pytest.importorskip("dask")
    z = (rng.random((3, 20, 20)) * 255).astype(np.uint8)
    with tifffile.TiffWriter(tmp_path / "z.tif") as tw:  # three focal planes, one page each
        for plane in z:
            tw.write(plane, photometric="minisblack")
    write_image(tmp_path / "b.tif", z[0])
    fails_cleanly(["fuse", tmp_path / "z.tif", tmp_path / "b.tif", "-o", tmp_path / "o.tif", "-m", "average"],
                  tmp_path, capsys, "z.tif", "multi-page TIFF", "fuse it on its own")
    code, err = run_cli(["fuse", tmp_path / "z.tif", "-o", tmp_path / "o.tif", "-m", "average", "-q"], capsys)
    assert code == 0, err
    assert np.array_equal(read_image(tmp_path / "o.tif"), np.rint(z.astype(np.float32).mean(0)).astype(np.uint8))


def test_reduced_resolution_pages_are_not_planes(tmp_path, rng):
    img = (rng.random((32, 32)) * 255).astype(np.uint8)
    with tifffile.TiffWriter(tmp_path / "p.tif") as tw:
        tw.write(img)
        tw.write(img[::2, ::2], subfiletype=1)  # a reduced-resolution copy, as pyramids store
    assert np.array_equal(read_image(tmp_path / "p.tif"), img)


def test_cmyk_tiff_is_refused(tmp_path, rng, capsys):
    cmyk = (rng.random((20, 20, 4)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", cmyk, photometric="separated")
    write_image(tmp_path / "b.tif", cmyk[..., :3].copy())
    fails_cleanly(["fuse", tmp_path / "c.tif", tmp_path / "b.tif", "-o", tmp_path / "o.tif", "-m", "average"],
                  tmp_path, capsys, "c.tif", "CMYK")


def test_palette_and_min_is_white_tiff(tmp_path, rng):
    idx = (rng.random((10, 12)) * 4).astype(np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :4] = np.array([[0, 65535, 0, 65535], [0, 0, 65535, 65535], [0, 0, 0, 65535]])
    tifffile.imwrite(tmp_path / "p.tif", idx, photometric="palette", colormap=cmap)
    got = read_image(tmp_path / "p.tif")
    want = np.rint(cmap.T[idx] / 257.0).astype(np.uint8)
    assert got.shape == (10, 12, 3) and np.array_equal(got, want)
    gray = (rng.random((10, 12)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "w.tif", gray, photometric="miniswhite")
    assert np.array_equal(read_image(tmp_path / "w.tif"), 255 - gray)


def test_signed_tiff_is_read_as_float(tmp_path):
    a = np.array([[-300, 0], [5, 32000]], np.int16)
    tifffile.imwrite(tmp_path / "s.tif", a)
    got = read_image(tmp_path / "s.tif")
    assert got.dtype == np.float32 and np.array_equal(got, a.astype(np.float32))
    assert image_info(tmp_path / "s.tif").dtype == np.float32
