"""Multi-page TIFFs for the tests: one page per plane, as a microscope writes a z-stack."""
from __future__ import annotations

import tifffile


def write_pages(target, planes, **kw):
    """Write ``planes`` (HxW gray or HxWx3 RGB arrays, of one size or not) to ``target`` (a path
    or a binary file), one page each; ``kw`` go to every page (``tile``, ``compression``...).
    Returns ``target``."""
    with tifffile.TiffWriter(target) as tw:
        for p in planes:
            tw.write(p, photometric="rgb" if p.ndim == 3 else "minisblack", **kw)
    return target
