"""Image I/O: round trips at 8/16 bit, gray/colour, PNG/TIFF, EXIF, atomic writes, stacks."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from mfif.errors import UsageError
from mfif.io import (check_sources, expand_sources, from_float, read_image, read_stack, to_float, to_gray,
                     write_image)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [0, 3])
def test_lossless_round_trip(tmp_path, rng, ext, dtype, channels):
    shape = (17, 23) if channels == 0 else (17, 23, channels)
    hi = np.iinfo(dtype).max
    img = rng.integers(0, hi + 1, size=shape, dtype=np.int64).astype(dtype)
    p = write_image(tmp_path / f"x{ext}", img)
    back = read_image(p)
    assert back.dtype == dtype
    assert back.shape == img.shape
    np.testing.assert_array_equal(back, img)


def test_jpeg_round_trip_is_close(tmp_path, rng):
    img = (np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3)).astype(np.uint8)
    back = read_image(write_image(tmp_path / "x.jpg", img, quality=98))
    assert back.shape == img.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - img.astype(int)).mean() < 2.0


def test_rgba_alpha_dropped_by_default(tmp_path, rng):
    img = rng.integers(0, 256, (8, 9, 4), dtype=np.uint8)
    Image.fromarray(img, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), img[..., :3])
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", keep_alpha=True), img)


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :5] = 255  # white band on the left
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape[:2] == (20, 10)
    assert out[:5].mean() > 200 and out[-5:].mean() < 50  # band now on top


def test_write_is_atomic_and_refuses_inputs(tmp_path, rng):
    img = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    src = write_image(tmp_path / "src.png", img)
    before = src.read_bytes()
    with pytest.raises(UsageError, match="refusing to overwrite"):
        write_image(tmp_path / "." / "src.png", np.zeros_like(img), protect=[src])
    assert src.read_bytes() == before
    # a failed encode leaves neither a partial file nor a temporary one behind
    with pytest.raises(UsageError):
        write_image(tmp_path / "bad.jpg", img.astype(np.uint16))
    assert sorted(os.listdir(tmp_path)) == ["src.png"]


def test_16bit_jpeg_refused(tmp_path):
    with pytest.raises(UsageError, match="16-bit"):
        write_image(tmp_path / "x.jpg", np.zeros((4, 4), np.uint16))


def test_unknown_extension(tmp_path):
    with pytest.raises(UsageError, match="unknown output format"):
        write_image(tmp_path / "x.gif", np.zeros((4, 4), np.uint8))


def test_read_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(UsageError, match="cannot read image"):
        read_image(bad)
    with pytest.raises(UsageError, match="is a directory"):
        read_image(tmp_path)


def test_float_conversions():
    x = np.array([0, 1, 128, 255], np.uint8)
    np.testing.assert_allclose(to_float(x), x / 255.0, rtol=1e-6)
    y = np.array([0, 1, 32768, 65535], np.uint16)
    np.testing.assert_array_equal(from_float(to_float(y), np.uint16), y)
    np.testing.assert_array_equal(from_float(to_float(x), np.uint8), x)
    assert from_float(np.array([-0.5, 1.5]), np.uint8).tolist() == [0, 255]


@pytest.mark.parametrize("shape", [(7, 5), (6, 4, 3), (6, 4, 4), (6, 4, 2), (6, 4, 1), (3, 6, 9), (0, 4), (9,)])
def test_uint8_to_float_is_the_division_for_every_shape_and_layout(shape):
    """The 8-bit conversion (a table lookup for images) gives exactly float32(k) / 255 for every
    value, keeps the shape (a single channel too), and reads views with any strides."""
    table = to_float(np.arange(256, dtype=np.uint8).reshape(16, 16))
    assert table[0, 0] == 0.0 and table[15, 15] == 1.0 and table[3, 3] == np.float32(51.0) / np.float32(255.0)
    x = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    for v in (x, x[::2], x[:, ::2] if x.ndim > 1 else x[::3], np.swapaxes(x, 0, 1) if x.ndim > 1 else x):
        f = to_float(v)
        assert f.dtype == np.float32 and f.shape == v.shape
        assert np.array_equal(f, v.astype(np.float32) / np.float32(255.0))


def test_to_gray_weights():
    rgb = np.zeros((1, 3, 3), np.float32)
    rgb[0, 0, 0] = rgb[0, 1, 1] = rgb[0, 2, 2] = 1.0
    np.testing.assert_allclose(to_gray(rgb)[0], [0.2989, 0.5870, 0.1140], atol=1e-4)


def test_stack_natural_sort_and_glob(tmp_path, rng):
    for i in (1, 2, 10):
        write_image(tmp_path / f"f{i}.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    names = [p.name for p in expand_sources([tmp_path])]
    assert names == ["f1.png", "f2.png", "f10.png"]
    assert [p.name for p in expand_sources([str(tmp_path / "f1*.png")])] == ["f1.png", "f10.png"]
    images, paths = read_stack([tmp_path])
    assert len(images) == 3
    with pytest.raises(UsageError, match="matches no file"):
        expand_sources([str(tmp_path / "*.tif")])


def test_check_sources_names_both_sides():
    a = np.zeros((512, 512), np.uint8)
    b = np.zeros((510, 512), np.uint8)
    with pytest.raises(UsageError, match=r"a.png is 512x512, b.png is 512x510"):
        check_sources([a, b], ["a.png", "b.png"])
    with pytest.raises(UsageError, match="channel count: a.png has 1, c.png has 3"):
        check_sources([a, np.zeros((512, 512, 3), np.uint8)], ["a.png", "c.png"])
    with pytest.raises(UsageError, match="bit depth"):
        check_sources([a, a.astype(np.uint16)], ["a.png", "d.png"])
    with pytest.raises(UsageError, match="at least 2"):
        check_sources([a])


def test_from_float_clips_and_rounds_half_to_even():
    x = np.array([-0.1, 0.0, 0.5 / 255, 1.5 / 255, 100.5 / 255, 0.999, 1.0, 1.2], np.float32)
    assert from_float(x).tolist() == [0, 0, 0, 2, 100, 255, 255, 255]
    assert from_float(np.float32([0.5 / 65535, 2.5 / 65535, 1.5]), np.uint16).tolist() == [0, 2, 65535]
    out = np.full((2, 4), 7, np.uint8)
    assert from_float(x.reshape(2, 4), out=out) is out and out.ravel().tolist() == [0, 0, 0, 2, 100, 255, 255, 255]


@pytest.mark.parametrize("compression", ["lzw", "deflate", "packbits", "zstd"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compressed_tiff_reads_as_stored(tmp_path, rng, compression, dtype):
    """LZW, Deflate, PackBits and Zstandard TIFFs (Photoshop, scanners, microscopes) decode to
    the stored pixels, as single images and as the pages of a z-stack."""
    import tifffile

    from mfif.io import tiff_stack_planes
    from tiff_support import write_pages

    z = rng.integers(0, np.iinfo(dtype).max + 1, size=(3, 40, 56, 3), dtype=np.int64).astype(dtype)
    tifffile.imwrite(tmp_path / "one.tif", z[0], photometric="rgb", compression=compression)
    np.testing.assert_array_equal(read_image(tmp_path / "one.tif"), z[0])
    write_pages(tmp_path / "z.tif", z, compression=compression, tile=(16, 16))
    np.testing.assert_array_equal(np.stack([read_image(p) for p in tiff_stack_planes(tmp_path / "z.tif")]), z)


def test_jpeg_and_lzw_tiff_from_pillow(tmp_path):
    """TIFFs as Pillow (and the programs built on libtiff) write them: LZW exactly, JPEG closely."""
    from skimage.data import astronaut

    img = astronaut()[:128, :160]
    Image.fromarray(img).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    Image.fromarray(img).save(tmp_path / "jpeg.tif", compression="jpeg", quality=95)
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif"), img)
    back = read_image(tmp_path / "jpeg.tif").astype(np.float64)
    assert back.shape == img.shape and np.sqrt(np.mean((back - img) ** 2)) < 6.0


def test_tiff_without_images_is_one_line(tmp_path):
    """A TIFF header with no image (a write cut short) is named in one line; tifffile's own
    warnings about the file stay off stderr."""
    import subprocess
    import sys

    with open(tmp_path / "cut.tif", "wb") as f:  # little-endian header, first IFD beyond the end
        f.write(b"II*\x00" + (4096).to_bytes(4, "little") + bytes(64))
    write_image(tmp_path / "b.png", np.zeros((8, 8), np.uint8))
    # a process of its own: pytest's log capture would hide what a user's terminal shows
    proc = subprocess.run([sys.executable, "-m", "mfif", "fuse", tmp_path / "cut.tif", tmp_path / "b.png", "-o",
                           tmp_path / "o.png"], capture_output=True, text=True)
    code, err = proc.returncode, proc.stderr.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("mfif: error: ") and "cut.tif" in err[0], err
    assert not (tmp_path / "o.png").exists()
