"""Detection quality on real benchmark data (ADBench), against scikit-learn.

Runs only where the project's shared data folder sits beside the repository
(a user's clone has none): it skips with the reason otherwise.
"""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SkIsolationForest
from sklearn.metrics import roc_auc_score

from fraudcore import IsolationForest

MAX_ROWS = 50_000  # the larger files are left to benchmarks/bench_iforest.py
SEEDS = range(3)


def test_mean_roc_auc_within_0_01_of_scikit_learn(adbench_dir):
    ours, ref = [], []
    for path in sorted(adbench_dir.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            if len(data["y"]) > MAX_ROWS:
                continue
            X = np.asarray(data["X"], dtype=np.float64)
            y = data["y"].astype(int)
        for seed in SEEDS:
            fc = IsolationForest(random_state=seed, n_jobs=-1).fit(X)
            sk = SkIsolationForest(random_state=seed, n_jobs=-1).fit(X)
            ours.append(roc_auc_score(y, -fc.score_samples(X)))
            ref.append(roc_auc_score(y, -sk.score_samples(X)))
    assert len(ours) >= 3 * 20, "expected the ADBench folder to hold at least 20 small files"
    assert abs(np.mean(ours) - np.mean(ref)) < 0.01, (np.mean(ours), np.mean(ref))


def test_lof_scores_equal_scikit_learn(adbench_dir):
    # Identical to 1e-9 relative on every file; this suite keeps to the
    # smaller ones, benchmarks/bench_neighbors.py checks them all.
    import warnings

    from sklearn.neighbors import LocalOutlierFactor as SkLOF

    from fraudcore import LocalOutlierFactor

    checked = 0
    for path in sorted(adbench_dir.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            if len(data["y"]) > MAX_ROWS:
                continue
            X = np.asarray(data["X"], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicates in some files
            ours = LocalOutlierFactor(n_jobs=-1).fit(X).negative_outlier_factor_
            ref = SkLOF(n_jobs=-1).fit(X).negative_outlier_factor_
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=0, err_msg=path.name)
        checked += 1
    assert checked >= 20
