"""Writing outputs: formats against bit depths, target checks, atomic writes with the usual mode."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from ..errors import UsageError
from .paths import _same_file, display_path

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


def write_text(path: str | os.PathLike, text: str, *, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Write a UTF-8 text file atomically (see :func:`atomic_output`), never over ``protect``."""
    with atomic_output(path, protect=protect) as f:
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

            from ..metadata import embed_metadata

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
        import tifffile  # imported where used: most calls write no TIFF
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
        # zlib level 1, as OpenCV writes 16-bit PNG: much faster than Pillow's default, for
        # slightly larger files (docs/speed.md)
        im.save(f, format="PNG", compress_level=1, **({"icc_profile": icc} if icc else {}))
    else:
        im.save(f, format="BMP")
