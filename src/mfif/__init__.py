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

__all__ = ["fuse", "FusionResult", "UsageError", "read_image", "read_stack", "write_image",
           "to_float", "from_float", "METHODS", "__version__"]
