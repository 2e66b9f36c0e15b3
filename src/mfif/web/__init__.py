"""A local web page for focus stacking: upload frames, fuse, compare, retouch, download.

:func:`create_app` builds the Starlette application (``mfif serve`` runs it with uvicorn).
The fusion itself knows nothing of the web: :mod:`mfif.web.jobs` runs
:func:`mfif.stack.fuse_stack` in a worker thread and :mod:`mfif.web.retouch` recomposes the
result from the painted strokes. Importing this package needs the ``web`` extra (Starlette,
uvicorn, python-multipart); the rest of mfif never imports it.
"""
from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
