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

import glob as _glob
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import UsageError

#: File extensions recognised when a directory or glob is given as a stack.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

__all__ = [
    "IMAGE_EXTENSIONS",
    "read_image",
    "write_image",
    "check_output_path",
    "check_sources",
    "expand_sources",
    "read_stack",
    "to_float",
    "from_float",
    "to_gray",
    "natural_key",
]


def natural_key(path: str | os.PathLike) -> list:
    """Sort key that orders ``img2`` before ``img10`` (natural sort)."""
    parts = re.split(r"(\d+)", str(path))
    return [int(p) if p.isdigit() else p.lower() for p in parts]


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    img = tifffile.imread(str(path))
    img = np.asarray(img)
    # Drop singleton dimensions (e.g. 1xHxW pages) and move a leading channel axis last.
    img = np.squeeze(img)
    if img.ndim == 3 and img.shape[0] in (3, 4) and img.shape[-1] not in (3, 4):
        img = np.moveaxis(img, 0, -1)
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    if img.dtype == np.int16:
        img = img.astype(np.int32).clip(0, None).astype(np.uint16)
    return img


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return 0


def _read_png16(path: Path) -> np.ndarray:
    """16-bit PNG (Pillow truncates 16-bit colour to 8 bits): decode with OpenCV."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("OpenCV could not decode the PNG")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return img


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    if path.suffix.lower() == ".png" and _png_bit_depth(path) == 16:
        return _read_png16(path)

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)  # honour EXIF orientation
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            return np.asarray(im).astype(np.uint16)
        if mode == "I":
            arr = np.asarray(im)
            return arr.clip(0, 65535).astype(np.uint16)
        if mode == "F":
            return np.asarray(im, dtype=np.float32)
        if mode in ("1", "L", "LA", "PA"):
            return np.asarray(im.convert("L"))
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            return np.asarray(im)
        if mode in ("RGBA", "RGBa"):
            return np.asarray(im.convert("RGBA"))
        return np.asarray(im.convert("RGB"))


def read_image(path: str | os.PathLike, *, keep_alpha: bool = False) -> np.ndarray:
    """Read one image file.

    Parameters
    ----------
    path : str or path-like
        PNG, JPEG, BMP or TIFF file. 8- and 16-bit, gray, RGB and RGBA are supported; EXIF
        orientation is applied.
    keep_alpha : bool, keyword-only
        If False (default) an alpha channel is dropped, so RGBA reads as RGB. mfif fuses colour
        only; alpha is never blended.

    Returns
    -------
    ndarray
        ``HxW`` or ``HxWx3`` (``HxWx4`` with ``keep_alpha``) in the file's own dtype
        (``uint8``, ``uint16`` or ``float32``).

    Raises
    ------
    UsageError
        If the file is missing, is not a file, or cannot be decoded.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if not p.is_file():
        raise UsageError(f"{p}: not a file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{p}: permission denied")
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            img = _read_tiff(p)
        else:
            img = _read_pil(p)
    except UsageError:
        raise
    except Exception as exc:  # decoder errors come in many types
        raise UsageError(f"{p}: cannot read image ({type(exc).__name__}: {exc})") from None
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 2:  # gray + alpha
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 4 and not keep_alpha:
        img = img[..., :3]
    if img.ndim not in (2, 3) or img.size == 0:
        raise UsageError(f"{p}: unsupported image layout {img.shape}")
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise UsageError(f"{p}: unsupported pixel type {img.dtype}")
    return np.ascontiguousarray(img)


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
        if p.is_dir():
            files = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS]
            if not files:
                raise UsageError(f"{p}: directory holds no image ({', '.join(IMAGE_EXTENSIONS)})")
            out.extend(sorted(files, key=natural_key))
        elif any(c in s for c in "*?[") and not p.exists():
            matches = [Path(m) for m in _glob.glob(s) if Path(m).is_file()]
            if not matches:
                raise UsageError(f"{s}: pattern matches no file")
            out.extend(sorted(matches, key=natural_key))
        else:
            out.append(p)
    return out


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
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
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


def to_gray(img: np.ndarray) -> np.ndarray:
    """Luminance of an RGB image (ITU-R BT.601 weights, as MATLAB ``rgb2gray``), float32.

    Gray input is returned as float32 unchanged in scale. Works on any numeric dtype; the
    result keeps the input's scale (no rounding, unlike MATLAB on uint8).
    """
    if img.ndim == 2:
        return img.astype(np.float32, copy=False)
    rgb = img[..., :3].astype(np.float32, copy=False)
    return (0.298936021293775 * rgb[..., 0] + 0.587043074451121 * rgb[..., 1]
            + 0.114020904255103 * rgb[..., 2]).astype(np.float32)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output_path(path: str | os.PathLike, *, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Check that an image can be written at ``path`` (creating its directory if needed).

    Called before long computations so that a bad output path fails fast.

    Raises
    ------
    UsageError
        Unknown extension, ``path`` is one of ``protect`` (an input), is a directory, or its
        directory cannot be created or written.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise UsageError(f"{p}: unknown output format {ext or '(no extension)'}; use one of "
                         + ", ".join(IMAGE_EXTENSIONS))
    for q in protect:
        if _same_file(p, Path(q)):
            raise UsageError(f"{p}: refusing to overwrite an input image")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory")
    parent = p.parent
    for anc in [parent, *parent.parents]:
        if anc.exists():
            if not anc.is_dir():
                raise UsageError(f"{p}: {anc} is not a directory")
            break
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{p}: cannot create directory {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{p}: directory {parent} is not writable")
    return p


def write_image(path: str | os.PathLike, img: np.ndarray, *, protect: Iterable[str | os.PathLike] = (),
                quality: int = 95) -> Path:
    """Write an image atomically.

    Parameters
    ----------
    path : str or path-like
        Target file; its extension picks the format (``.png``, ``.jpg``/``.jpeg``, ``.tif``/
        ``.tiff``, ``.bmp``). PNG and TIFF keep 16-bit data; JPEG and BMP are 8-bit only and
        refuse 16-bit input rather than silently dropping precision.
    img : ndarray
        ``HxW`` or ``HxWxC`` array, ``uint8`` or ``uint16`` (TIFF also takes ``float32``).
    protect : iterable of path-like, keyword-only
        Paths that must never be overwritten (the inputs).
    quality : int, keyword-only
        JPEG quality.

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
    ext = p.suffix.lower()
    if img.dtype == np.float32 and ext not in (".tif", ".tiff"):
        raise UsageError(f"{p}: float images can only be written as TIFF")
    if img.dtype == np.uint16 and ext in (".jpg", ".jpeg", ".bmp"):
        raise UsageError(f"{p}: {ext} cannot hold 16-bit data; write .png or .tif")
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise UsageError(f"{p}: cannot write pixel type {img.dtype}")
    check_output_path(p, protect=protect)
    parent = p.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=ext, dir=parent)
    except OSError as exc:
        raise UsageError(f"{p}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        _encode(Path(tmp), img, ext, quality)
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UsageError(f"{p}: cannot write ({exc.strerror or exc})") from None
        raise
    return p


def _encode(tmp: Path, img: np.ndarray, ext: str, quality: int) -> None:
    if ext in (".tif", ".tiff"):
        import tifffile

        photometric = "rgb" if img.ndim == 3 else "minisblack"
        tifffile.imwrite(str(tmp), img, photometric=photometric, compression="zlib")
        return
    from PIL import Image

    if img.dtype == np.uint16:
        # PNG 16-bit: Pillow writes 16-bit gray only; use OpenCV for 16-bit colour.
        import cv2

        arr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
        if not cv2.imwrite(str(tmp), arr):
            raise OSError(f"OpenCV could not encode {ext}")
        return
    im = Image.fromarray(img)
    if ext in (".jpg", ".jpeg"):
        if im.mode == "RGBA":
            im = im.convert("RGB")
        im.save(tmp, format="JPEG", quality=quality)
    elif ext == ".png":
        im.save(tmp, format="PNG")
    else:
        im.save(tmp, format="BMP")
