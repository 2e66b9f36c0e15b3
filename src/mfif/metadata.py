"""Camera metadata (EXIF, XMP, ICC profile) carried from a frame to the fused image.

Reading and writing go through pyexiv2 (the exiv2 library), which knows JPEG, PNG, TIFF and the
camera RAW formats (CR2, CR3, NEF, ARW, RAF, ORF, RW2, DNG) alike, so that mfif parses and
writes no EXIF itself. Only descriptive tags are carried (camera, lens, exposure, date, GPS,
author): the image-structure tags of the source (size, strips, compression, the DNG and CFA
tags of a RAW file), its thumbnail, its maker notes and an ImageDescription that holds a file
layout (OME-XML, an ImageJ header, tifffile's shape) describe the source's pixels, not the
fused ones, and are left out. The output's Orientation is 1 (mfif writes upright pixels) and
its Software is ``mfif <version>``.

References
----------
.. [1] CIPA DC-008-2023, "Exchangeable image file format for digital still cameras: Exif
   Version 3.0" (IFD0, Exif IFD and GPS IFD tags).
.. [2] exiv2 and its Python binding pyexiv2 (``Image.read_exif``, ``ImageData.modify_exif``,
   ``modify_xmp``, ``modify_icc``), https://exiv2.org, https://github.com/LeoHsiao1/pyexiv2
"""
from __future__ import annotations

import calendar
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__

__all__ = ["Metadata", "read_metadata", "software_only", "for_output", "embed_metadata", "capture_time"]

#: IFD0 tags that describe the photo rather than the stored pixels.
_IFD0_KEEP = {"Make", "Model", "DateTime", "Artist", "Copyright", "ImageDescription", "XResolution",
              "YResolution", "ResolutionUnit", "HostComputer", "Rating", "RatingPercent", "CameraSerialNumber",
              "LensInfo", "XPTitle", "XPComment", "XPAuthor", "XPKeywords", "XPSubject"}
#: Exif IFD tags that describe another image's pixels or hold the camera's private data.
_PHOTO_DROP = {"MakerNote", "PixelXDimension", "PixelYDimension", "ComponentsConfiguration",
               "CompressedBitsPerPixel", "InteroperabilityTag", "SubjectArea"}
#: XMP properties that describe the stored pixels of the source.
_XMP_DROP = re.compile(r"^Xmp\.(?:tiff\.(?:ImageWidth|ImageLength|BitsPerSample|Compression|"
                       r"PhotometricInterpretation|SamplesPerPixel|PlanarConfiguration)|exif\.Pixel[XY]Dimension|"
                       r"crs\.)")


@dataclass(frozen=True)
class Metadata:
    """Metadata to write into an image: pyexiv2 EXIF and XMP keys with their values, ICC bytes."""

    exif: dict = field(default_factory=dict)
    xmp: dict = field(default_factory=dict)
    icc: bytes | None = None


def _pyexiv2():
    import pyexiv2

    pyexiv2.set_log_level(4)  # exiv2's own warnings (odd maker notes) are not the user's business
    return pyexiv2


def _keep_exif(key: str) -> bool:
    group, _, name = key.rpartition(".")
    if group == "Exif.Image":
        return name in _IFD0_KEEP
    if group == "Exif.Photo":
        return name not in _PHOTO_DROP
    return group == "Exif.GPSInfo"


def _describes_layout(text: str) -> bool:
    """Whether a TIFF ImageDescription describes the file's layout rather than the picture.

    OME-TIFF keeps its OME-XML there (the planes, their order, the file's UUID), ImageJ its
    hyperstack header (``ImageJ=...``, ``images=``, ``slices=``) and tifffile the array's shape
    (``{"shape": [5, 512, 640]}``). Copied into the fused image, one page, they would make
    Bio-Formats, ImageJ and tifffile read it as the stack it came from.
    """
    head = text.lstrip()[:200]
    if head.startswith("ImageJ="):
        return True
    if head.startswith(("<?xml", "<OME")):  # XML: only OME's describes the layout
        return "<OME" in text[:2000] or "openmicroscopy" in text[:2000]
    if head.startswith("{"):
        import json

        try:
            doc = json.loads(text)
        except ValueError:
            return False
        return isinstance(doc, dict) and "shape" in doc
    return False


def _read(path: str | os.PathLike, *parts: str) -> tuple | None:
    """exiv2's ``read_exif`` / ``read_xmp`` / ``read_icc`` of ``path`` (``parts`` in order), or
    None when exiv2 cannot read the file."""
    pyexiv2 = _pyexiv2()
    try:
        with pyexiv2.Image(str(Path(path))) as im:
            return tuple(getattr(im, "read_" + part)() for part in parts)
    except (RuntimeError, OSError, UnicodeDecodeError):
        return None


def read_metadata(path: str | os.PathLike) -> Metadata:
    """The carried EXIF, XMP and ICC profile of one image or RAW file.

    Parameters
    ----------
    path : path-like
        JPEG, PNG, TIFF or a camera RAW file.

    Returns
    -------
    Metadata
        Descriptive EXIF and XMP only (see the module notes); empty when the file has none or
        exiv2 cannot read it.
    """
    got = _read(path, "exif", "xmp", "icc")
    if got is None:  # exiv2 cannot read it: nothing to carry
        return Metadata()
    exif, xmp, icc = got
    exif = {k: v for k, v in exif.items() if _keep_exif(k) and isinstance(v, str)}
    if _describes_layout(exif.get("Exif.Image.ImageDescription", "")):
        del exif["Exif.Image.ImageDescription"]
    return Metadata(exif=exif,
                    xmp={k: v for k, v in xmp.items() if not _XMP_DROP.match(k)}, icc=icc or None)


def _software() -> str:
    return f"mfif {__version__}"


def software_only() -> Metadata:
    """Metadata of an image that is not a photo (depth and stage maps): Software only."""
    return Metadata(exif={"Exif.Image.Software": _software()})


def for_output(meta: Metadata) -> Metadata:
    """``meta`` as a fused image carries it: Orientation 1 and Software ``mfif <version>``."""
    exif = {**meta.exif, "Exif.Image.Orientation": "1", "Exif.Image.Software": _software()}
    xmp = dict(meta.xmp)
    if "Xmp.tiff.Orientation" in xmp:
        xmp["Xmp.tiff.Orientation"] = "1"
    xmp["Xmp.xmp.CreatorTool"] = _software()
    return Metadata(exif=exif, xmp=xmp, icc=meta.icc)


def embed_metadata(data: bytes, meta: Metadata) -> bytes:
    """Encoded image bytes (JPEG, PNG or TIFF) with ``meta`` written into them.

    Tags exiv2 refuses one by one (a value it cannot parse back) are left out; the rest are
    written.
    """
    pyexiv2 = _pyexiv2()
    with pyexiv2.ImageData(data) as im:
        for modify, items in ((im.modify_exif, meta.exif), (im.modify_xmp, meta.xmp)):
            if not items:
                continue
            try:
                modify(items)
            except RuntimeError:
                for k, v in items.items():
                    try:
                        modify({k: v})
                    except RuntimeError:
                        pass
        if meta.icc:
            im.modify_icc(meta.icc)
        return im.get_bytes()


def capture_time(path: str | os.PathLike) -> float | None:
    """EXIF DateTimeOriginal (with SubSecTimeOriginal) of ``path`` as seconds, or None.

    The value has no time zone; it is read as UTC, which is right for differences between the
    frames of one camera.
    """

    got = _read(path, "exif")
    if got is None:
        return None
    exif = got[0]
    stamp = exif.get("Exif.Photo.DateTimeOriginal") or exif.get("Exif.Image.DateTimeOriginal")
    if not stamp:
        return None
    try:
        t = calendar.timegm(time.strptime(stamp.strip()[:19], "%Y:%m:%d %H:%M:%S"))
    except ValueError:
        return None
    sub = (exif.get("Exif.Photo.SubSecTimeOriginal") or "").strip()
    return t + (float("0." + sub) if sub.isdigit() else 0.0)
