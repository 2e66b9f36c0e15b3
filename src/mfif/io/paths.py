"""Source paths: the recognised extensions, folders and globs of frames, readable-file checks."""
from __future__ import annotations

import errno
import glob as _glob
import os
import re
import stat
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..raw import RAW_EXTENSIONS

#: File extensions recognised when a directory or glob is given as a stack (camera RAW included).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff") + RAW_EXTENSIONS


def natural_key(path: str | os.PathLike) -> list:
    """Sort key that orders ``img2`` before ``img10`` (natural sort)."""
    parts = re.split(r"(\d+)", str(path))
    return [int(p) if p.isdigit() else p.lower() for p in parts]


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


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False
