"""Decoding images: every format, orientation, TIFF layouts, the header-only probe, checks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..errors import UsageError
from ..raw import RawSettings, is_raw
from .paths import _check_readable, _is, display_path, expand_sources

# --------------------------------------------------------------------------------------------
# Orientation (EXIF / TIFF tag 274)
# --------------------------------------------------------------------------------------------
#: Tag 274 values and what they ask of the stored pixels to show them upright (TIFF 6.0 and
#: EXIF 2.3): 1 as stored, 2 mirrored left-right, 3 turned 180 degrees, 4 mirrored top-bottom,
#: 5 transposed, 6 turned 90 degrees clockwise, 7 transversed, 8 turned 90 degrees anticlockwise.
ORIENTATIONS = range(1, 9)


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright according to an EXIF/TIFF orientation value (1-8).

    Parameters
    ----------
    img : ndarray
        ``HxW`` or ``HxWxC`` as stored in the file.
    orientation : int
        Tag 274; values outside 1-8 (missing or corrupt tags) leave the image as stored.

    Returns
    -------
    ndarray
        A view of ``img``; ``WxH[xC]`` for orientations 5-8.
    """
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return img.swapaxes(0, 1)
    if orientation == 6:
        return img.swapaxes(0, 1)[:, ::-1]
    if orientation == 7:
        return img.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return img.swapaxes(0, 1)[::-1]
    return img


# --------------------------------------------------------------------------------------------
# Decoders. Each returns the stored pixels plus the orientation tag; read_image does the rest.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageInfo:
    """What :func:`read_image` will return for a file, known from its header alone.

    ``shape`` is the upright ``(H, W)`` or ``(H, W, C)`` after alpha is dropped; ``dtype`` is
    ``uint8``, ``uint16`` or ``float32``.
    """

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> str:
        """``"WxH"`` as messages print it."""
        return f"{self.shape[1]}x{self.shape[0]}"


_TIFF_PHOTOMETRIC = {0: "min-is-white", 1: "min-is-black", 2: "RGB", 3: "palette", 4: "mask",
                     5: "CMYK (separated)", 6: "YCbCr", 8: "CIELAB", 9: "ICCLAB", 10: "ITULAB",
                     32844: "LogL", 32845: "LogLuv", 34892: "linear raw", 32803: "colour filter array"}


def tiff_planes(tf) -> list[int]:
    """Indices of a TIFF's full-resolution top-level pages (its focal planes when several).

    Reduced-resolution copies (NewSubfileType bit 0, as pyramids store them) are no planes;
    sub-IFDs are not top-level pages.
    """
    return [i for i, pg in enumerate(tf.pages) if not (int(getattr(pg, "subfiletype", 0) or 0) & 1)]


def is_multipage_tiff(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TIFF with more than one full-resolution page (a z-stack); False
    for anything unreadable (:func:`read_image` then says why)."""
    p = Path(path)
    if p.suffix.lower() not in (".tif", ".tiff") or not _is(p, "file"):
        return False
    try:
        import tifffile  # imported where used: most calls read no TIFF
        with tifffile.TiffFile(str(p)) as tf:
            return len(tiff_planes(tf)) > 1
    except Exception:  # not a TIFF after all: the ordinary reader reports it
        return False


def _tiff_plan(path: Path, tf) -> tuple:
    """Check a TIFF's layout; return (first page, native dtype, output dtype, photometric, orientation)."""
    pages = tf.pages
    if len(pages) == 0:
        raise UsageError(f"{display_path(path)}: a TIFF without images (damaged, or written incompletely)")
    first = pages.first if hasattr(pages, "first") else pages[0]
    planes = len(tiff_planes(tf))
    if planes > 1:
        raise UsageError(f"{path}: a multi-page TIFF ({planes} full-resolution pages, a z-stack); "
                         "fuse it on its own (`mfif fuse FILE -o OUT`: its pages are the focal planes) "
                         "or save each focal plane as its own file")
    photometric = int(first.photometric)
    if photometric not in (0, 1, 2, 3) and not (photometric == 6 and first.shape[-1] == 3):
        name = _TIFF_PHOTOMETRIC.get(photometric, f"photometric {photometric}")
        raise UsageError(f"{path}: {name} TIFF is not supported; mfif reads gray, RGB and palette "
                         "TIFF (convert it to RGB first)")
    native = np.dtype(first.dtype)
    if native in (np.uint8, np.uint16):
        out = native
    elif native == np.bool_:
        out = np.dtype(np.uint8)
    elif native in (np.int8, np.int16, np.float16, np.float32, np.float64):
        out = np.dtype(np.float32)  # signed or float data: kept in its own range, never clipped
    else:
        raise UsageError(f"{path}: {native} TIFF is not supported; mfif reads 8/16-bit unsigned, "
                         "8/16-bit signed and float TIFF")
    if photometric == 3:
        out = np.dtype(np.uint8) if native == np.uint8 else np.dtype(np.uint16)
    tag = first.tags.get(274)
    orientation = int(tag.value) if tag is not None else 1
    return first, native, out, photometric, orientation


def _tiff_info(path: Path) -> ImageInfo:
    import tifffile  # imported where used: most calls read no TIFF
    with tifffile.TiffFile(str(path)) as tf:
        first, _, out, photometric, orientation = _tiff_plan(path, tf)
        shape = _tiff_shape(path, first)
        if photometric == 3:
            shape = shape[:2] + (3,)
    return ImageInfo(_upright(_drop_alpha_shape(shape), orientation), out)


def _tiff_shape(path: Path, page) -> tuple:
    """``(H, W)`` or ``(H, W, S)`` of a page from its tags (1-px-thin images stay 2-D)."""
    if int(getattr(page, "imagedepth", 1) or 1) > 1:
        raise UsageError(f"{display_path(path)}: a volumetric TIFF page; mfif reads 2-D images")
    h, w, spp = int(page.imagelength), int(page.imagewidth), int(page.samplesperpixel)
    return (h, w) if spp == 1 else (h, w, spp)


def _read_tiff(path: Path) -> tuple[np.ndarray, int]:
    import tifffile  # imported where used: most calls read no TIFF
    with tifffile.TiffFile(str(path)) as tf:
        first, native, out, photometric, orientation = _tiff_plan(path, tf)
        shape = _tiff_shape(path, first)
        img = np.asarray(first.asarray())
        colormap = first.colormap if photometric == 3 else None
        planar = int(getattr(first, "planarconfig", 1) or 1) == 2
    if len(shape) == 3 and planar:  # separate planes: samples first
        img = np.moveaxis(img.reshape((shape[2],) + shape[:2]), 0, -1)
    else:
        img = img.reshape(shape)
    if photometric == 3:  # palette: look the indices up (16-bit entries; 8-bit when stored so)
        cmap = np.asarray(colormap).T  # N x 3
        if out == np.uint8:
            cmap = np.rint(cmap / 257.0).astype(np.uint8)
        img = cmap.astype(out)[img]
    elif photometric == 0:  # min-is-white: 0 is white
        img = _invert(img)
    if native == np.bool_:
        img = img.astype(np.uint8) * np.uint8(255)
    elif out == np.float32 and img.dtype != np.float32:
        img = img.astype(np.float32)
    return img, orientation


def _invert(img: np.ndarray) -> np.ndarray:
    if img.dtype.kind == "u":
        return np.iinfo(img.dtype).max - img
    if img.dtype == np.bool_:
        return ~img
    return -img.astype(np.float32)


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return 0


def _pil_orientation(im) -> int:
    try:
        return int(im.getexif().get(274, 1))
    except Exception:  # a corrupt EXIF block must not stop the read: treat as upright
        return 1


#: Pillow modes and the (channels, dtype) read_image makes of them.
_PIL_MODES = {
    "1": (1, np.uint8), "L": (1, np.uint8), "LA": (1, np.uint8), "PA": (3, np.uint8), "La": (1, np.uint8),
    "I;16": (1, np.uint16), "I;16B": (1, np.uint16), "I;16L": (1, np.uint16), "I;16N": (1, np.uint16),
    "I": (1, np.uint16), "F": (1, np.float32), "RGB": (3, np.uint8), "RGBA": (3, np.uint8),
    "RGBa": (3, np.uint8), "RGBX": (3, np.uint8), "CMYK": (3, np.uint8), "YCbCr": (3, np.uint8),
    "LAB": (3, np.uint8), "HSV": (3, np.uint8), "P": (3, np.uint8),
}


def _pil_open(path: Path):
    from PIL import Image

    im = Image.open(path)
    if getattr(im, "n_frames", 1) > 1:
        im.close()
        raise UsageError(f"{path}: an animated or multi-frame image; mfif reads one image per file")
    if im.mode not in _PIL_MODES:
        im.close()
        raise UsageError(f"{path}: pixel mode {im.mode} is not supported (use gray, RGB or 16-bit)")
    return im


def _pil_info(path: Path) -> ImageInfo:
    if path.suffix.lower() == ".png" and _png_bit_depth(path) == 16:
        from PIL import Image

        with Image.open(path) as im:
            channels = {"I;16": 1, "I;16B": 1, "I": 1, "LA": 1, "RGB": 3, "RGBA": 3}.get(im.mode, 3)
            orientation = _pil_orientation(im)
            w, h = im.size
        return ImageInfo(_upright((h, w) if channels == 1 else (h, w, 3), orientation), np.dtype(np.uint16))
    with _pil_open(path) as im:
        channels, dtype = _PIL_MODES[im.mode]
        w, h = im.size
        orientation = _pil_orientation(im)
    return ImageInfo(_upright((h, w) if channels == 1 else (h, w, channels), orientation), np.dtype(dtype))


def _read_png16(path: Path) -> np.ndarray:
    """16-bit PNG (Pillow truncates 16-bit colour to 8 bits): decode with OpenCV."""

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("OpenCV could not decode the PNG")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return img


def _read_pil(path: Path) -> tuple[np.ndarray, int]:
    if path.suffix.lower() == ".png" and _png_bit_depth(path) == 16:
        from PIL import Image

        with Image.open(path) as im:
            orientation = _pil_orientation(im)
        return _read_png16(path), orientation

    with _pil_open(path) as im:
        orientation = _pil_orientation(im)
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            return np.asarray(im).astype(np.uint16), orientation
        if mode == "I":
            arr = np.asarray(im)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise UsageError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
            return arr.astype(np.uint16), orientation
        if mode == "F":
            return np.asarray(im, dtype=np.float32), orientation
        if mode in ("1", "L", "LA", "La"):
            return np.asarray(im.convert("L")), orientation
        if mode in ("P", "PA"):
            return np.asarray(im.convert("RGB")), orientation
        if mode in ("RGBA", "RGBa"):
            return np.asarray(im.convert("RGBA")), orientation
        if mode == "RGB":  # as decoded: converting RGB to RGB would copy every pixel once more
            im.load()
            return np.asarray(im), orientation
        return np.asarray(im.convert("RGB")), orientation


def _drop_alpha_shape(shape: tuple) -> tuple:
    if len(shape) == 3 and shape[-1] in (1, 2):
        return shape[:2]
    if len(shape) == 3 and shape[-1] == 4:
        return shape[:2] + (3,)
    return shape


def _upright(shape: tuple, orientation: int) -> tuple:
    return (shape[1], shape[0]) + tuple(shape[2:]) if orientation in (5, 6, 7, 8) else tuple(shape)


def image_info(path: str | os.PathLike) -> ImageInfo:
    """Shape and dtype that :func:`read_image` will return, from the file's header only.

    Used to check a whole stack and plan the outputs before any pixel is decoded. A camera RAW
    file (:data:`mfif.raw.RAW_EXTENSIONS`) is ``HxWx3`` ``uint16`` of LibRaw's output size,
    its flip applied (:func:`mfif.raw.raw_shape`).

    Raises
    ------
    UsageError
        The file is missing, unreadable, not an image, or of a layout mfif does not read.
    """
    from .planes import TiffPlane

    if isinstance(path, TiffPlane):  # a plane of a multi-page TIFF: its stack's headers were read
        return path.info()
    p = Path(path)
    _check_readable(p)
    try:
        if is_raw(p):
            from ..raw import raw_shape

            info = ImageInfo(raw_shape(p), np.dtype(np.uint16))
        else:
            info = _tiff_info(p) if p.suffix.lower() in (".tif", ".tiff") else _pil_info(p)
    except UsageError:
        raise
    except Exception as exc:  # decoder errors come in many types
        raise UsageError(f"{display_path(p)}: cannot read image ({type(exc).__name__}: {exc})") from None
    if len(info.shape) == 3 and info.shape[-1] not in (1, 3):
        raise UsageError(f"{display_path(p)}: unsupported image layout {info.shape}")
    if min(info.shape[:2]) < 1:
        raise UsageError(f"{display_path(p)}: empty image")
    return info


def read_image(path: str | os.PathLike, *, keep_alpha: bool = False, raw: RawSettings | None = None) -> np.ndarray:
    """Read one image file.

    Parameters
    ----------
    path : str or path-like
        PNG, JPEG, BMP or TIFF file, or a :class:`mfif.io.TiffPlane` (one focal plane of a
        multi-page TIFF, read as stored). 8- and 16-bit, gray, RGB and RGBA are supported; the
        EXIF / TIFF orientation (tag 274) is applied for every format. Signed-integer and
        float TIFFs are read as float32 in their own range (never clipped). Camera RAW files
        (:data:`mfif.raw.RAW_EXTENSIONS`) are demosaicked by rawpy to 16-bit RGB.
    keep_alpha : bool, keyword-only
        If False (default) an alpha channel is dropped, so RGBA reads as RGB. mfif fuses colour
        only; alpha is never blended.
    raw : RawSettings, keyword-only
        How a RAW file is decoded (:class:`mfif.raw.RawSettings`; a stack passes the same
        settings for every frame). Ignored for other formats.

    Returns
    -------
    ndarray
        ``HxW`` or ``HxWx3`` (``HxWx4`` with ``keep_alpha``), upright, in ``uint8``, ``uint16``
        or ``float32``.

    Raises
    ------
    UsageError
        If the file is missing, is not a file, cannot be decoded, holds several images (a
        multi-page TIFF), uses a colour model mfif cannot convert faithfully (CMYK or Lab TIFF),
        or has NaN or infinite pixels.
    """
    from .planes import TiffPlane

    if isinstance(path, TiffPlane):  # one page of a multi-page TIFF (mfif.io.tiff_stack_planes)
        return path.read()
    p = Path(path)
    _check_readable(p)
    try:
        if is_raw(p):
            from ..raw import decode_raw

            img, orientation = decode_raw(p, raw), 1  # LibRaw applies the file's flip
        elif p.suffix.lower() in (".tif", ".tiff"):
            img, orientation = _read_tiff(p)
        else:
            img, orientation = _read_pil(p)
    except UsageError:
        raise
    except MemoryError:
        raise UsageError(f"{display_path(p)}: not enough memory to decode this image") from None
    except Exception as exc:  # decoder errors come in many types
        raise UsageError(f"{display_path(p)}: cannot read image ({type(exc).__name__}: {exc})") from None
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 2:  # gray + alpha
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 4 and not keep_alpha:
        img = img[..., :3]
    if img.ndim not in (2, 3) or img.size == 0:
        raise UsageError(f"{display_path(p)}: unsupported image layout {img.shape}")
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise UsageError(f"{display_path(p)}: unsupported pixel type {img.dtype}")
    if img.dtype == np.float32:
        check_finite(img, display_path(p))
    return np.ascontiguousarray(orient(img, orientation))


def check_finite(img: np.ndarray, name: str) -> None:
    """Raise :class:`UsageError` naming ``name`` and the count if ``img`` has NaN or infinite values."""
    if img.dtype.kind != "f":
        return
    bad = img.size - int(np.count_nonzero(np.isfinite(img)))
    if bad:
        raise UsageError(f"{name}: {bad} of {img.size} values are NaN or infinite; "
                         "mfif needs finite pixel values")


def read_stack(specs: Sequence[str | os.PathLike], *, min_count: int = 2) -> tuple[list[np.ndarray], list[Path]]:
    """Read and validate a stack of sources.

    Returns the images (native dtype) and their paths. All must share width, height, channel
    count and dtype; the error names both files that differ.

    Raises
    ------
    UsageError
        Fewer than ``min_count`` sources, unreadable files, or mismatched sources.
    """
    paths = expand_sources(specs)
    if len(paths) < min_count:
        raise UsageError(f"need at least {min_count} sources, got {len(paths)}"
                         + (f" ({paths[0]})" if paths else ""))
    images = [read_image(p) for p in paths]
    check_sources(images, [str(p) for p in paths])
    return images, paths


def check_sources(images: Sequence[np.ndarray], names: Sequence[str] | None = None, *, min_count: int = 2) -> None:
    """Check that sources can be fused together; raise :class:`UsageError` naming both sides.

    Parameters
    ----------
    images : sequence of ndarray
        Candidate sources.
    names : sequence of str, optional
        Names used in messages (file names); defaults to ``source 1``, ``source 2``...
    min_count : int, keyword-only
        Minimum number of sources.
    """
    if names is None:
        names = [f"source {i + 1}" for i in range(len(images))]
    if len(images) < min_count:
        raise UsageError(f"need at least {min_count} sources, got {len(images)}")
    ref, rname = images[0], names[0]
    for img, name in zip(images, names):
        if not isinstance(img, (np.ndarray, ImageInfo)) or img.ndim not in (2, 3):
            raise UsageError(f"{name}: expected an HxW or HxWxC array, got {getattr(img, 'shape', type(img))}")
        if img.shape[:2] != ref.shape[:2]:
            rh, rw = ref.shape[:2]
            h, w = img.shape[:2]
            raise UsageError(f"sources must share a shape: {rname} is {rw}x{rh}, {name} is {w}x{h}")
        rc = 1 if ref.ndim == 2 else ref.shape[2]
        c = 1 if img.ndim == 2 else img.shape[2]
        if rc != c:
            raise UsageError(f"sources must share a channel count: {rname} has {rc}, {name} has {c}")
        if img.dtype != ref.dtype:
            raise UsageError(f"sources must share a bit depth: {rname} is {ref.dtype}, {name} is {img.dtype}")
