"""Engines: how a fusion is carried out over an image too large for one call of :func:`mfif.fuse`.

========================  ==========================================================================
:mod:`mfif.stack`         the local engine: files -> frame cache on disk -> feathered tiles, one process
:mod:`mfif.engines.dask`  the Dask engine: a lazy ``(Z, Y, X[, C])`` array -> chunks (each reads its window) on
                          threads, a ``distributed.LocalCluster`` or a remote scheduler
========================  ==========================================================================

Both know a method only through its registry entry (:class:`mfif.methods.Method`: ``halo``,
``area_options``, ``load_resources()``), never through its code. Importing this package imports
no Dask; :mod:`mfif.engines.dask` does.
"""
