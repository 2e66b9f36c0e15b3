"""mfif: multi-focus image fusion (focus stacking).

The pipeline, one module per stage::

    io -> align -> focus (scores) -> decision -> consistency -> blend

with :mod:`mfif.sff` (the Semantic Focus Fusion CNN), :mod:`mfif.methods` (classic
baselines), :mod:`mfif.metrics`, :mod:`mfif.synth` (synthetic data with ground truth) and the
``mfif`` command line beside it.
"""
__version__ = "0.1.0"  # first: submodules read it while the package is still importing

from .api import fuse  # noqa: E402
from .errors import UsageError
from .io import read_image, read_stack, write_image, to_float, from_float
from .methods import METHODS
from .result import FusionResult


def fuse_dask(array, **options):
    """Fuse a z-stack ``(Z, Y, X[, C])`` lazily with Dask; returns Dask arrays ``(fused, depth)``.

    A thin wrapper that imports Dask only when called (``import mfif`` never does); see
    :func:`mfif.engines.dask.fuse_dask` for the parameters. Needs the ``dask`` extra
    (``pip install 'mfif[dask]'``).
    """
    try:
        from .engines.dask import fuse_dask as _fuse_dask
    except ImportError as exc:
        raise UsageError(f"the Dask engine needs the dask extra: pip install 'mfif[dask]' ({exc})") from None
    return _fuse_dask(array, **options)


__all__ = ["fuse", "fuse_dask", "FusionResult", "UsageError", "read_image", "read_stack", "write_image",
           "to_float", "from_float", "METHODS", "__version__"]
