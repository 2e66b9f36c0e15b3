"""Image input/output: reading sources and stacks, atomic writing, dtype conversion.

Conventions used throughout mfif
--------------------------------
* Images read from disk keep their **native dtype** (``uint8`` or ``uint16``; float TIFFs
  stay float32) and shape ``HxW`` (gray) or ``HxWxC`` with C = 3 (RGB) or 4 (RGBA). Channel
  order is always RGB(A), never OpenCV's BGR.
* Processing happens on ``float32`` arrays scaled to [0, 1] (:func:`to_float`); results are
  converted back to the input's dtype on output (:func:`from_float`), so 16-bit in gives
  16-bit out with no 8-bit step in between.
* Writing is atomic (a temporary file in the target directory, then :func:`os.replace`) and
  refuses to overwrite any path given in ``protect``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob as _glob
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import tifffile

from .errors import UsageError
from .raw import RAW_EXTENSIONS, RawSettings, is_raw

#: File extensions recognised when a directory or glob is given as a stack (camera RAW included).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff") + RAW_EXTENSIONS

__all__ = [
    "IMAGE_EXTENSIONS",
    "read_image",
    "write_image",
    "check_output_path",
    "check_target",
    "check_output_dir",
    "check_format",
    "check_finite",
    "atomic_output",
    "write_text",
    "image_info",
    "ImageInfo",
    "orient",
    "display_path",
    "check_sources",
    "expand_sources",
    "image_files",
    "read_stack",
    "to_float",
    "from_float",
    "to_gray",
    "GRAY_WEIGHTS",
    "natural_key",
]


def natural_key(path: str | os.PathLike) -> list:
    """Sort key that orders ``img2`` before ``img10`` (natural sort)."""
    parts = re.split(r"(\d+)", str(path))
    return [int(p) if p.isdigit() else p.lower() for p in parts]


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


def _tiff_plan(path: Path, tf) -> tuple:
    """Check a TIFF's layout and return (page, native dtype, output dtype, orientation)."""
    pages = tf.pages
    first = pages.first if hasattr(pages, "first") else pages[0]
    full = 0
    for pg in pages:
        if not (int(getattr(pg, "subfiletype", 0) or 0) & 1):  # bit 0: a reduced-resolution copy
            full += 1
        if full > 1:
            raise UsageError(f"{path}: a multi-page TIFF (more than one full-resolution image); "
                             "mfif reads one image per file: save each focal plane as its own file")
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
        return np.asarray(im.convert("RGB")), orientation


def _drop_alpha_shape(shape: tuple) -> tuple:
    if len(shape) == 3 and shape[-1] in (1, 2):
        return shape[:2]
    if len(shape) == 3 and shape[-1] == 4:
        return shape[:2] + (3,)
    return shape


def _upright(shape: tuple, orientation: int) -> tuple:
    return (shape[1], shape[0]) + tuple(shape[2:]) if orientation in (5, 6, 7, 8) else tuple(shape)


def _check_readable(p: Path) -> None:
    """A clear message for a path that cannot be opened: missing, a loop, too long, a folder..."""

    try:
        st = os.stat(p)
    except OSError as exc:
        why = {errno.ENOENT: "no such file", errno.ELOOP: "a loop of symbolic links",
               errno.ENAMETOOLONG: "file name too long", errno.EACCES: "permission denied",
               errno.ENOTDIR: "a part of the path is not a directory"}.get(exc.errno, exc.strerror or str(exc))
        if exc.errno == errno.ENOENT and os.path.islink(p):
            why = "a broken symbolic link"
        raise UsageError(f"{display_path(p)}: {why}") from None

    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{display_path(p)}: is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{display_path(p)}: not a regular file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{display_path(p)}: permission denied")
    if st.st_size == 0:
        raise UsageError(f"{display_path(p)}: empty file")


def display_path(p: str | os.PathLike, limit: int = 120) -> str:
    """A path as messages print it: very long names shortened in the middle."""
    s = str(p)
    return s if len(s) <= limit else s[: limit // 2 - 2] + "..." + s[-(limit // 2 - 1):]


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
    p = Path(path)
    _check_readable(p)
    try:
        if is_raw(p):
            from .raw import raw_shape

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
        PNG, JPEG, BMP or TIFF file. 8- and 16-bit, gray, RGB and RGBA are supported; the
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
    p = Path(path)
    _check_readable(p)
    try:
        if is_raw(p):
            from .raw import decode_raw

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


def expand_sources(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """Turn a list of files, globs and directories into a list of image paths.

    A directory contributes every image file directly inside it; a glob contributes its
    matches; each group is naturally sorted (``f2`` before ``f10``), groups keep their order.

    Raises
    ------
    UsageError
        If a glob matches nothing or a directory holds no image.
    """
    out: list[Path] = []
    for spec in specs:
        s = str(spec)
        p = Path(s)
        if _is(p, "dir"):
            files = image_files(p)
            if not files:
                raise UsageError(f"{display_path(p)}: directory holds no image ({', '.join(IMAGE_EXTENSIONS)})")
            out.extend(files)
        elif any(c in s for c in "*?[") and not _is(p, "exists"):
            matches = [Path(m) for m in _glob.glob(s) if _is(Path(m), "file")]
            if not matches:
                raise UsageError(f"{display_path(s)}: pattern matches no file")
            out.extend(sorted(matches, key=natural_key))
        else:
            out.append(p)
    return out


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder``, naturally sorted; hidden files skipped.

    Hidden files (macOS ``._a.png`` resource forks, editors' and tools' leftovers, mfif's own
    ``.mfif-*.part`` temporaries) are no frames.

    Raises
    ------
    UsageError
        The folder cannot be listed.
    """
    p = Path(folder)
    try:
        entries = list(p.iterdir())
    except OSError as exc:
        raise UsageError(f"{display_path(p)}: cannot list the directory ({exc.strerror or exc})") from None
    files = [q for q in entries if not q.name.startswith(".") and q.suffix.lower() in IMAGE_EXTENSIONS
             and _is(q, "file")]
    return sorted(files, key=natural_key)


def _is(p: Path, what: str) -> bool:
    """``p.is_dir()`` / ``is_file()`` / ``exists()`` that answer False for names the OS refuses."""
    try:
        return bool(getattr(p, "is_" + what if what != "exists" else "exists")())
    except OSError:  # a name too long, a loop: not a usable file; read_image says why
        return False


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


def to_float(img: np.ndarray) -> np.ndarray:
    """Convert an image to float32 in [0, 1] (``uint8``/255, ``uint16``/65535, float unchanged)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float32, copy=False)
    if np.issubdtype(img.dtype, np.bool_):
        return img.astype(np.float32)
    raise UsageError(f"unsupported pixel type {img.dtype}")


def from_float(img: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """Convert a float image in [0, 1] to ``dtype`` with clipping and rounding."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(np.rint(img * 65535.0), 0, 65535).astype(np.uint16)
    if np.issubdtype(dtype, np.floating):
        return img.astype(dtype)
    raise UsageError(f"unsupported output type {dtype}")


#: ITU-R BT.601 luma weights as MATLAB ``rgb2gray`` uses them (the first row of the inverse
#: NTSC matrix, printed 0.2989, 0.5870, 0.1140): the one gray conversion of the package.
GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def to_gray(img: np.ndarray) -> np.ndarray:
    """Luminance of an RGB image (ITU-R BT.601 weights, as MATLAB ``rgb2gray``), float32.

    Gray input is returned as float32 unchanged in scale. Works on any numeric dtype; the
    result keeps the input's scale (no rounding, unlike MATLAB on uint8).
    """
    if img.ndim == 2:
        return img.astype(np.float32, copy=False)
    rgb = img[..., :3].astype(np.float32, copy=False)
    r, g, b = GRAY_WEIGHTS
    return (r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]).astype(np.float32)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


#: Pixel types each output format holds without loss.
FORMAT_DTYPES = {".png": ("uint8", "uint16"), ".tif": ("uint8", "uint16", "float32"),
                 ".tiff": ("uint8", "uint16", "float32"), ".jpg": ("uint8",), ".jpeg": ("uint8",),
                 ".bmp": ("uint8",)}


def check_format(path: str | os.PathLike, dtype) -> None:
    """Raise :class:`UsageError` unless ``path``'s extension can hold ``dtype`` pixels unchanged."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in FORMAT_DTYPES:
        raise UsageError(f"{display_path(p)}: unknown output format {ext or '(no extension)'}; use one of "
                         + ", ".join(FORMAT_DTYPES))
    if dtype is None:
        return
    name = np.dtype(dtype).name
    if name not in FORMAT_DTYPES[ext]:
        fits = [e for e in (".png", ".tif") if name in FORMAT_DTYPES[e]]
        what = {"uint16": "16-bit", "float32": "float", "uint8": "8-bit"}.get(name, name)
        raise UsageError(f"{display_path(p)}: {ext} cannot hold {what} pixels; write "
                         + (" or ".join(fits) if fits else "another format"))


def check_target(path: str | os.PathLike, *, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Check that a file can be written at ``path`` without touching anything yet.

    The path must not be one of ``protect`` (the inputs), not a directory, and its nearest
    existing ancestor must be a writable directory (missing folders are created when writing).

    Raises
    ------
    UsageError
        Naming the path and what is wrong.
    """
    p = Path(path)
    for q in protect:
        if _same_file(p, Path(q)):
            raise UsageError(f"{display_path(p)}: refusing to overwrite an input image")
    try:
        if p.is_dir():
            raise UsageError(f"{display_path(p)}: is a directory")
        if p.exists() and not p.is_file():
            raise UsageError(f"{display_path(p)}: exists and is not a regular file")
        anc = p.parent
        while not anc.exists():
            anc = anc.parent
    except OSError as exc:
        raise UsageError(f"{display_path(p)}: cannot write here ({exc.strerror or exc})") from None
    if not anc.is_dir():
        raise UsageError(f"{display_path(p)}: {display_path(anc)} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UsageError(f"{display_path(p)}: directory {display_path(anc)} is not writable")
    if len(p.name.encode()) > 240:  # leaves room for the temporary name beside it
        raise UsageError(f"{display_path(p)}: file name too long")
    return p


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check that ``path`` is, or can become, a writable folder; creates nothing.

    Raises
    ------
    UsageError
        ``path`` is an existing file, or neither it nor its nearest existing ancestor is a
        writable directory.
    """
    p = Path(path)
    try:
        if p.exists() and not p.is_dir():
            raise UsageError(f"{display_path(p)}: exists and is not a directory")
    except OSError as exc:
        raise UsageError(f"{display_path(p)}: {exc.strerror or exc}") from None
    check_target(p / "x")
    return p


def check_output_path(path: str | os.PathLike, *, protect: Iterable[str | os.PathLike] = (),
                      dtype=None) -> Path:
    """Check that an image of ``dtype`` can be written at ``path``; creates nothing.

    Called before long computations so that a bad output fails fast.

    Raises
    ------
    UsageError
        Unknown extension, a format that cannot hold ``dtype``, ``path`` is one of ``protect``
        (an input), is a directory, or its directory cannot be written.
    """
    check_format(path, dtype)
    return check_target(path, protect=protect)


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def _final_mode(p: Path) -> int:
    """Mode for the file at ``p``: an existing file's own mode, else 0666 less the umask."""

    try:
        return stat.S_IMODE(os.stat(p).st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, protect: Iterable[str | os.PathLike] = ()):
    """Write a file all at once: ``with atomic_output(p) as f: f.write(...)``.

    The data goes to a hidden temporary file beside the target (``.mfif-XXXX.part``), is
    flushed to disk, gets the mode an ordinary new file would have (0666 less the umask; an
    existing file keeps its own mode) and only then replaces ``path`` in one rename. If the body
    raises, or the command line is stopped by Ctrl-C, SIGTERM or SIGHUP (which it turns into
    exceptions), ``path`` is untouched and the temporary file is removed. Only SIGKILL, which
    no process can catch, leaves the hidden file behind (never read as a frame: source folders
    skip hidden files).

    Raises
    ------
    UsageError
        Bad target (see :func:`check_target`) or an OS error while writing, naming ``path``.
    """
    p = check_target(path, protect=protect)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".mfif-", suffix=".part", dir=p.parent)
        os.close(fd)
        with open(tmp, "w+b") as f:  # opened by name: some encoders (tifffile) need f.name
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), _final_mode(p))
        os.replace(tmp, p)
        tmp = None
    except OSError as exc:
        raise UsageError(f"{display_path(p)}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as f:
        f.write(text.encode("utf-8"))
    return Path(path)


def write_image(path: str | os.PathLike, img: np.ndarray, *, protect: Iterable[str | os.PathLike] = (),
                quality: int = 95, metadata=None) -> Path:
    """Write an image atomically (see :func:`atomic_output`).

    Parameters
    ----------
    path : str or path-like
        Target file; its extension picks the format (``.png``, ``.jpg``/``.jpeg``, ``.tif``/
        ``.tiff``, ``.bmp``). PNG and TIFF keep 16-bit data, TIFF float32; JPEG and BMP are
        8-bit only and refuse other data rather than silently dropping precision.
    img : ndarray
        ``HxW`` or ``HxWxC`` array, ``uint8`` or ``uint16`` (TIFF also takes ``float32``).
    protect : iterable of path-like, keyword-only
        Paths that must never be overwritten (the inputs).
    quality : int, keyword-only
        JPEG quality (1-100).
    metadata : mfif.metadata.Metadata, keyword-only
        EXIF, XMP and ICC profile to write into the file (JPEG, PNG, TIFF; BMP holds none),
        e.g. :func:`mfif.metadata.for_output` of a frame's :func:`mfif.metadata.read_metadata`.
        Written as given, through exiv2; a PNG's profile by Pillow, and none into 16-bit PNG.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    UsageError
        Unknown extension, unsupported dtype for the format, target is a protected input,
        or the directory is not writable.
    """
    p = Path(path)
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise UsageError(f"{display_path(p)}: cannot write pixel type {img.dtype}")
    check_output_path(p, protect=protect, dtype=img.dtype)
    ext = p.suffix.lower()
    with atomic_output(p, protect=protect) as f:
        if metadata is None or ext == ".bmp":
            _encode(f, img, ext, quality)
        else:

            from .metadata import embed_metadata

            buf = io.BytesIO()
            icc = None
            if ext == ".png" and metadata.icc:
                # exiv2 names a PNG's new iCCP chunk with an empty keyword, which PNG forbids and
                # libpng and browsers ignore (exiv2 issue 2354): Pillow writes 8-bit PNG's profile
                # itself; 16-bit PNG (encoded by OpenCV, which writes none) gets no profile
                icc = metadata.icc if img.dtype == np.uint8 else None
                metadata = dataclasses.replace(metadata, icc=None)
            _encode(buf, img, ext, quality, icc=icc)
            f.write(embed_metadata(buf.getvalue(), metadata))
    return p


def _encode(f, img: np.ndarray, ext: str, quality: int, *, icc: bytes | None = None) -> None:
    """Encode ``img`` into the open binary file ``f`` in the format of ``ext`` (``icc``: an ICC
    profile for Pillow's 8-bit PNG)."""
    if ext in (".tif", ".tiff"):

        photometric = "rgb" if img.ndim == 3 else "minisblack"
        tifffile.imwrite(f, img, photometric=photometric, planarconfig="contig" if img.ndim == 3 else None,
                         compression="zlib")
        return
    from PIL import Image

    if img.dtype == np.uint16:
        # PNG 16-bit: Pillow writes 16-bit gray only; use OpenCV for 16-bit colour.

        arr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
        ok, buf = cv2.imencode(".png", arr)
        if not ok:
            raise OSError(f"OpenCV could not encode {ext}")
        f.write(buf.tobytes())
        return
    im = Image.fromarray(img)
    if ext in (".jpg", ".jpeg"):
        if im.mode == "RGBA":
            im = im.convert("RGB")
        im.save(f, format="JPEG", quality=quality)
    elif ext == ".png":
        im.save(f, format="PNG", **({"icc_profile": icc} if icc else {}))
    else:
        im.save(f, format="BMP")
