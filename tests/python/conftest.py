import os

# scikit-learn's check_array_api_input (numpy namespace) skips itself unless
# SciPy's array-API mode is on, which must be set before SciPy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pathlib

import numpy as np
import pytest

from fraudcore.datasets import make_anomalies

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def blobs():
    """5,000 x 6 labelled rows made by the package itself."""
    return make_anomalies(5000, 6, contamination=0.03, random_state=7)


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data (real public data; absent from a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (only in the project's shared/ folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def adbench_dir():
    folder = SHARED_DATA / "adbench"
    if not folder.is_dir():
        pytest.skip(f"ADBench data not found at {folder} (only in the project's shared/ folder)")
    return folder


def python_path_lengths(native, X):
    """Reference traversal of every tree in pure Python: E[h(x)] per row."""
    total = np.zeros(len(X))
    for t in range(native.n_estimators):
        tree = native.export_tree(t)
        for i, x in enumerate(X):
            k = 0
            while tree["left"][k] != k:
                k = tree["left"][k] + (x[tree["split"][k]] > tree["threshold"][k])
            total[i] += tree["path"][k]
    return total / native.n_estimators
