"""mfif.stats.median: the value numpy.median gives, without importing numpy.ma."""
import subprocess
import sys

import numpy as np
import pytest

from mfif.stats import median


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 1001, 4096])
def test_median_equals_numpy(n):
    rng = np.random.default_rng(n)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal(n) * 3).astype(dtype)
        assert median(x) == float(np.median(x))
    assert median(np.arange(n).reshape(-1, 1)) == float(np.median(np.arange(n)))


def test_median_by_hand_and_empty():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert np.isnan(median([]))


def test_median_imports_no_numpy_ma():
    code = "import sys; from mfif.stats import median; median([1.0, 2.0]); print('numpy.ma' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
