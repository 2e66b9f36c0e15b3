"""Photographers' workflow (issue 17): RAW frames, camera metadata kept, -o folders, --depth,
--jpeg-quality. Every file is written by the tests themselves: EXIF with Pillow, ICC with
Pillow's ImageCms, DNGs with tifffile; read back with Pillow and tifffile, not with mfif."""
from __future__ import annotations

import functools
import json

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from mfif import __version__
from mfif.cli import main
from mfif.io import image_info, read_image

SOFTWARE = f"mfif {__version__}"
EXIF_IFD = 0x8769


@functools.lru_cache(maxsize=1)
def icc_srgb() -> bytes:
    """One sRGB profile for the whole session: a profile's header holds its creation time, so two
    made a second apart differ."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(*, stamp="2024:05:01 10:20:30", orientation=6, model="EOS R5") -> Image.Exif:
    ex = Image.Exif()
    ex[271] = "Canon"
    ex[272] = model
    ex[274] = orientation
    ex.get_ifd(EXIF_IFD)[36867] = stamp
    return ex


def focus_pair(h=48, w=64, seed=0):
    """Two 8-bit RGB frames, left half sharp in one, right half in the other."""
    import cv2

    rng = np.random.default_rng(seed)
    sharp = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    blur = cv2.GaussianBlur(sharp, (0, 0), 2.5)
    a, b = sharp.copy(), sharp.copy()
    a[:, w // 2:] = blur[:, w // 2:]
    b[:, :w // 2] = blur[:, :w // 2]
    return a, b


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4" '
       b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')


def write_tagged_jpegs(folder: Path, n=2, **kw) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(focus_pair()[:n]):
        p = folder / f"f{i}.jpg"
        Image.fromarray(img).save(p, exif=camera_exif(**kw).tobytes(), icc_profile=icc_srgb(), quality=95, xmp=XMP)
        paths.append(p)
    return paths


def pil_tags(path: Path) -> dict:
    with Image.open(path) as im:
        ex = im.getexif()
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b""
        return {"make": ex.get(271), "model": ex.get(272), "orientation": ex.get(274), "software": ex.get(305),
                "original": ex.get_ifd(EXIF_IFD).get(36867), "icc": im.info.get("icc_profile"), "size": im.size,
                "xmp": xmp.encode() if isinstance(xmp, str) else bytes(xmp)}


def tiff_tags(path: Path) -> dict:
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        t = page.tags
        exif = t["ExifTag"].value if "ExifTag" in t else {}
        return {"make": t["Make"].value if "Make" in t else None, "model": t["Model"].value if "Model" in t else None,
                "orientation": t["Orientation"].value if "Orientation" in t else None,
                "software": t["Software"].value if "Software" in t else None,
                "original": exif.get("DateTimeOriginal"),
                "icc": bytes(t["InterColorProfile"].value) if "InterColorProfile" in t else None,
                "xmp": bytes(t["XMP"].value) if "XMP" in t else b"",
                "dtype": page.dtype, "size": (page.imagewidth, page.imagelength)}


# ---------------------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("out, extra", [("f.jpg", []), ("f.png", []), ("f.tif", ["--depth", "16"])])
def test_exif_and_icc_survive(tmp_path, out, extra):
    src = write_tagged_jpegs(tmp_path / "in")
    target = tmp_path / out
    assert main(["fuse", *map(str, src), "-o", str(target), "-m", "average", "-q", *extra]) == 0
    tags = tiff_tags(target) if out.endswith(".tif") else pil_tags(target)
    assert tags["make"] == "Canon" and tags["model"] == "EOS R5"
    assert tags["original"] == "2024:05:01 10:20:30"
    assert tags["orientation"] == 1 and tags["software"] == SOFTWARE
    assert tags["icc"] == icc_srgb()
    xmp = tags["xmp"].replace(b"'", b'"')
    assert b'xmp:Rating="4"' in xmp or b"<xmp:Rating>4</xmp:Rating>" in xmp, xmp
    assert b'tiff:Orientation="1"' in xmp or b"<tiff:Orientation>1</tiff:Orientation>" in xmp, xmp
    assert tags["size"] == (48, 64)  # orientation 6 applied: stored 64x48 shows as 48 wide, 64 high
    if out.endswith(".tif"):
        assert tags["dtype"] == np.uint16


def test_png_profile_is_valid_and_16bit_png_keeps_exif(tmp_path):
    src = write_tagged_jpegs(tmp_path / "in")
    assert main(["fuse", *map(str, src), "-o", str(tmp_path / "f8.png"), "-m", "average", "-q"]) == 0
    data = (tmp_path / "f8.png").read_bytes()
    at = data.index(b"iCCP") + 4
    assert data[at] != 0  # a profile name of 1-79 bytes, as PNG requires (libpng drops an empty one)
    assert main(["fuse", *map(str, src), "-o", str(tmp_path / "f16.png"), "-m", "average", "-q", "--depth", "16"]) == 0
    tags = pil_tags(tmp_path / "f16.png")
    assert tags["make"] == "Canon" and tags["original"] == "2024:05:01 10:20:30" and tags["icc"] is None


def test_metadata_from_and_none(tmp_path):
    a = tmp_path / "a.jpg"
    b = tmp_path / "b.jpg"
    x, y = focus_pair()
    Image.fromarray(x).save(a, exif=camera_exif(model="first").tobytes())
    Image.fromarray(y).save(b, exif=camera_exif(model="second").tobytes())
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "d.jpg"), "-m", "average", "-q"]) == 0
    assert pil_tags(tmp_path / "d.jpg")["model"] == "second"  # default: the reference frame, middle of 2 = 1
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "f.jpg"), "-m", "average", "-q",
                 "--metadata-from", "first"]) == 0
    assert pil_tags(tmp_path / "f.jpg")["model"] == "first"
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "n.jpg"), "-m", "average", "-q",
                 "--metadata-from", "none"]) == 0
    tags = pil_tags(tmp_path / "n.jpg")
    assert tags["model"] is None and tags["software"] == SOFTWARE
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "e.jpg"), "--metadata-from", "7"]) == 2


@pytest.mark.parametrize("kind", ["ome", "imagej", "shaped"])
def test_layout_descriptions_stay_behind(tmp_path, kind):
    """A z-stack's ImageDescription (OME-XML, an ImageJ header, tifffile's shape) describes its
    planes; the fused single image must not claim them, so readers see one image. A plain
    description is carried."""
    x, y = focus_pair()
    z = np.stack([x, y, x])
    src = tmp_path / "z.tif"
    kw = {"ome": {"ome": True, "metadata": {"axes": "ZYXS"}}, "imagej": {"imagej": True, "metadata": {"axes": "ZYXS"}},
          "shaped": {}}[kind]
    tifffile.imwrite(src, z, photometric="rgb", **kw)
    with tifffile.TiffFile(src) as tf:  # the input really holds such a description
        assert {"ome": tf.is_ome, "imagej": tf.is_imagej, "shaped": tf.is_shaped}[kind]
    out = tmp_path / "f.tif"
    assert main(["fuse", str(src), "-o", str(out), "-m", "average", "-q"]) == 0
    with tifffile.TiffFile(out) as tf:
        assert not tf.is_ome and not tf.is_imagej and len(tf.pages) == 1
        desc = tf.pages[0].description or ""
        assert tf.series[0].shape == x.shape and "<OME" not in desc and "images=" not in desc
        if desc.startswith("{"):  # tifffile's own description of what it wrote, not the stack's
            assert json.loads(desc)["shape"] == list(x.shape), desc
    plain = tmp_path / "plain"
    plain.mkdir()
    for k, img in enumerate((x, y)):
        tifffile.imwrite(plain / f"p{k}.tif", img, photometric="rgb", description="bee on a daisy, f/8",
                         metadata=None)
    assert main(["fuse", str(plain), "-o", str(tmp_path / "p.tif"), "-m", "average", "-q"]) == 0
    with tifffile.TiffFile(tmp_path / "p.tif") as tf:
        assert "bee on a daisy, f/8" in [t.value for t in tf.pages[0].tags.values() if t.code == 270]


def test_depth_map_has_software_only(tmp_path):
    src = write_tagged_jpegs(tmp_path / "in")
    assert main(["fuse", *map(str, src), "-o", str(tmp_path / "f.png"), "-m", "focus-map", "-q",
                 "--depth-map", str(tmp_path / "d.png"), "--save-maps", str(tmp_path / "maps")]) == 0
    for p in [tmp_path / "d.png", tmp_path / "d-preview.png", *sorted((tmp_path / "maps").glob("*.png"))]:
        tags = pil_tags(p)
        assert tags["software"] == SOFTWARE and tags["make"] is None and tags["icc"] is None, p


def test_jpeg_quality(tmp_path, capsys):
    src = write_tagged_jpegs(tmp_path / "in")
    sizes = {}
    for q in (20, 95):
        out = tmp_path / f"q{q}.jpg"
        assert main(["fuse", *map(str, src), "-o", str(out), "-m", "average", "-q", "--jpeg-quality", str(q)]) == 0
        sizes[q] = out.stat().st_size
    assert sizes[20] < sizes[95]
    for bad in ("0", "101", "nan", "50.5"):
        assert main(["fuse", *map(str, src), "-o", str(tmp_path / "x.jpg"), "--jpeg-quality", bad]) == 2
        assert "--jpeg-quality" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# -o as a folder, --format, --depth
# ---------------------------------------------------------------------------------------------
def test_output_folder_names(tmp_path):
    src = write_tagged_jpegs(tmp_path / "shoot")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["fuse", str(tmp_path / "shoot"), "-o", str(out), "-m", "average", "-q"]) == 0
    assert (out / "shoot.jpg").is_file()  # a folder source: its name, the frames' format
    assert main(["fuse", *map(str, src), "-o", str(tmp_path / "new") + "/", "-m", "average", "-q",
                 "--format", "png"]) == 0
    assert (tmp_path / "new" / "f0-fused.png").is_file()
    assert main(["fuse", *map(str, src), "-o", str(tmp_path / "noext"), "-m", "average", "-q"]) == 0
    assert (tmp_path / "noext.jpg").is_file()
    assert main(["fuse", *map(str, src), "-o", str(tmp_path / "x.png"), "--format", "tif"]) == 2


def test_16bit_to_jpeg_needs_depth_8(tmp_path, capsys):
    a, b = focus_pair()
    pa, pb = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(pa, a.astype(np.uint16) * 257)
    tifffile.imwrite(pb, b.astype(np.uint16) * 257)
    assert main(["fuse", str(pa), str(pb), "-o", str(tmp_path / "f.jpg"), "-m", "average"]) == 2
    err = capsys.readouterr().err
    assert "--depth 8" in err and "f.jpg" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f.jpg").exists()
    assert main(["fuse", str(pa), str(pb), "-o", str(tmp_path / "f.jpg"), "-m", "average", "-q", "--depth", "8"]) == 0
    assert np.asarray(Image.open(tmp_path / "f.jpg")).dtype == np.uint8


# ---------------------------------------------------------------------------------------------
# RAW: DNGs written here (the tags LibRaw needs for a Bayer RGGB DNG)
# ---------------------------------------------------------------------------------------------
def _rational(values):
    return tuple(v for x in values for v in (int(round(x * 10000)), 10000))


def write_dng(path: Path, cfa: np.ndarray, *, neutral=(0.5, 1.0, 0.7), exif: Image.Exif | None = None) -> Path:
    """A minimal DNG: 16-bit Bayer RGGB CFA, identity colour matrix, white level 4095."""
    tags = [
        (271, "s", 0, "Testcam", True), (272, "s", 0, "T1", True),
        (50706, "B", 4, (1, 4, 0, 0), True),          # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),          # DNGBackwardVersion
        (50708, "s", 0, "Testcam T1", True),          # UniqueCameraModel
        (33421, "H", 2, (2, 2), True),                # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),          # CFAPattern: R G / G B
        (50714, "H", 1, 0, True),                     # BlackLevel
        (50717, "H", 1, 4095, True),                  # WhiteLevel
        (50721, "2i", 9, _rational(np.eye(3).ravel()), True),  # ColorMatrix1
        (50728, "2I", 3, _rational(neutral), True),   # AsShotNeutral
        (50778, "H", 1, 21, True),                    # CalibrationIlluminant1: D65
    ]
    tifffile.imwrite(path, cfa, photometric=32803, subfiletype=0, extratags=tags)
    return path


def grey_cfa(level=2000, neutral=(0.5, 1.0, 0.7), shape=(64, 64)) -> np.ndarray:
    """A grey card under the light ``neutral`` describes: raw R, G, B = level * neutral."""
    cfa = np.empty(shape, np.uint16)
    r, g, b = (int(round(level * k)) for k in neutral)
    cfa[0::2, 0::2], cfa[0::2, 1::2], cfa[1::2, 0::2], cfa[1::2, 1::2] = r, g, g, b
    return cfa


def test_dng_decodes_to_expected_grey(tmp_path):
    rawpy = pytest.importorskip("rawpy")
    from mfif.raw import RawSettings, stack_settings

    p = write_dng(tmp_path / "g.dng", grey_cfa())
    with rawpy.imread(str(p)) as r:  # LibRaw reads the DNG the test wrote
        assert r.raw_image.shape == (64, 64) and r.color_desc == b"RGBG"
        assert np.allclose(r.camera_whitebalance[:3], (2.0, 1.0, 1 / 0.7), rtol=1e-3)
    info = image_info(p)
    for gamma, expected in (("linear", 2000 / 4095), ("srgb", 1.055 * (2000 / 4095) ** (1 / 2.4) - 0.055)):
        img = read_image(p, raw=stack_settings([p], 0, RawSettings(gamma=gamma)))
        assert img.dtype == np.uint16 and img.shape == info.shape == (64, 64, 3)
        # white-balanced grey stays grey; LibRaw scales green's multiplier to 1: level / white level
        assert np.abs(img.astype(float) - expected * 65535).max() <= 2, (gamma, img[0, 0])


def test_raw_stack_white_balance_from_reference(tmp_path, capsys):
    pytest.importorskip("rawpy")
    # the same grey card in both frames, but the second frame's camera recorded another balance
    a = write_dng(tmp_path / "a.dng", grey_cfa(), neutral=(0.5, 1.0, 0.7))
    b = write_dng(tmp_path / "b.dng", grey_cfa(), neutral=(1.0, 1.0, 1.0))
    own = [read_image(p) for p in (a, b)]
    assert not np.array_equal(own[0], own[1])  # decoded with their own balance they differ
    for ref, grey in (("first", True), ("last", False)):
        out = tmp_path / f"{ref}.tif"
        assert main(["fuse", str(a), str(b), "-o", str(out), "-m", "average", "-q", "--reference", ref,
                     "--raw-gamma", "linear"]) == 0
        img = tifffile.imread(out)
        assert img.dtype == np.uint16 and img.shape == (64, 64, 3)
        # one balance for both frames: the fused average is one frame decoded with it, flat
        assert img.reshape(-1, 3).std(axis=0).max() < 1.0
        rgb = img.reshape(-1, 3).mean(axis=0)
        assert (np.ptp(rgb) < 3) == grey, rgb  # a's balance makes the card grey, b's (1, 1, 1) does not
    # a folder of RAW frames and -o a folder: 16-bit TIFF named after the folder
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for p in (a, b):
        (shoot / p.name.upper()).write_bytes(p.read_bytes())  # .DNG: extensions are case-insensitive
    assert main(["fuse", str(shoot), "-o", str(tmp_path / "o") + "/", "-m", "average", "-q"]) == 0
    assert tifffile.imread(tmp_path / "o" / "shoot.tif").dtype == np.uint16
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "x.jpg"), "-m", "average"]) == 2
    assert "--depth 8" in capsys.readouterr().err
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "x.jpg"), "-m", "average", "-q", "--depth", "8"]) == 0


def test_raw_fuse_keeps_focus_and_16_bits(tmp_path):
    pytest.importorskip("rawpy")
    import cv2

    rng = np.random.default_rng(3)
    sharp = (rng.random((32, 32)) * 3000 + 500).astype(np.float32)
    sharp = np.kron(sharp, np.ones((2, 2), np.float32))  # 64x64, constant over each 2x2 Bayer cell
    blur = cv2.GaussianBlur(sharp, (0, 0), 3)
    f0, f1 = sharp.copy(), sharp.copy()
    f0[:, 32:], f1[:, :32] = blur[:, 32:], blur[:, :32]
    paths = [write_dng(tmp_path / f"f{i}.dng", f.astype(np.uint16)) for i, f in enumerate((f0, f1))]
    out = tmp_path / "fused.tif"
    assert main(["fuse", *map(str, paths), "-o", str(out), "-m", "focus-map", "-q", "--depth-map",
                 str(tmp_path / "d.png")]) == 0
    fused = tifffile.imread(out)
    assert fused.dtype == np.uint16 and len(np.unique(fused)) > 256  # 16 bits of data, not 8
    d = np.asarray(Image.open(tmp_path / "d.png"))
    assert (d[:, 4:24] == 0).mean() > 0.9 and (d[:, 40:60] == 1).mean() > 0.9
    tags = tiff_tags(out)  # DNG tags carried by exiv2: Make and Model from IFD0
    assert tags["make"] == "Testcam" and tags["model"] == "T1" and tags["software"] == SOFTWARE


def test_raw_options_checked(tmp_path, capsys):
    pytest.importorskip("rawpy")
    a = write_dng(tmp_path / "a.dng", grey_cfa())
    b = write_dng(tmp_path / "b.dng", grey_cfa())
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "f.tif"), "--raw-gamma", "2.2"]) == 2
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "f.tif"), "--raw-space", "p3"]) == 2
    (tmp_path / "c.dng").write_bytes(b"not a raw file at all" * 10)
    assert main(["fuse", str(a), str(tmp_path / "c.dng"), "-o", str(tmp_path / "f.tif")]) == 2
    assert "c.dng" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((64, 64, 3), np.uint16))
    assert main(["fuse", str(a), str(tmp_path / "t.tif"), "-o", str(tmp_path / "f.tif")]) == 2
    assert "all RAW or no RAW" in capsys.readouterr().err
    assert not (tmp_path / "f.tif").exists()
