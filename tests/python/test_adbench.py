"""Detection quality on real benchmark data (ADBench), against scikit-learn.

Runs only where the project's shared data folder sits beside the repository
(a user's clone has none): it skips with the reason otherwise.
"""

import numpy as np
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


def reference_lof(X, k):
    """LOF from exhaustive float64 distances, ties to the lower index.

    Squared distances add (x_j - y_j)^2 feature by feature, as scikit-learn's
    and fraudcore's exact distances do, so ties come out exactly tied.
    """
    n = len(X)
    order = np.empty((n, k + 1), dtype=np.int64)
    dist = np.empty((n, k + 1))
    for i in range(n):
        sq = np.zeros(n)
        for j in range(X.shape[1]):
            t = X[i, j] - X[:, j]
            sq += t * t
        nearest = np.lexsort((np.arange(n), sq))[: k + 1]
        order[i], dist[i] = nearest, np.sqrt(sq[nearest])
    # scikit-learn's kneighbors(X=None): drop the row itself, else the first.
    keep = order != np.arange(n)[:, None]
    keep[keep.all(axis=1), 0] = False
    ind, dist = order[keep].reshape(n, k), dist[keep].reshape(n, k)
    reach = np.maximum(dist, dist[ind, -1])
    lrd = 1.0 / (reach.mean(axis=1) + 1e-10)
    return -(lrd[ind] / lrd[:, None]).mean(axis=1)


def has_tied_kth_neighbour(X, k):
    """Whether some row's k-th and (k + 1)-th other rows are equally far."""
    from fraudcore import _core

    index = _core.NeighborIndex()
    index.fit(X, 2.0, "auto", 30, k + 1)
    dist, _ = index.kneighbors_fitted(k + 1, 2)
    return bool(np.any(dist[:, k - 1] == dist[:, k]))


def test_lof_scores_equal_scikit_learn_wherever_neighbours_are_untied(adbench_dir):
    # Where some row's k-th neighbour is tied with the next one, LOF depends
    # on which tied row is taken. scikit-learn's answer then depends on its
    # algorithm (brute, kd_tree and ball_tree disagree with each other by up
    # to 1.6e9 relative on breastw); fraudcore takes the lower index, and is
    # compared there with an independent reference using that rule.
    import warnings

    from sklearn.neighbors import LocalOutlierFactor as SkLOF

    from fraudcore import LocalOutlierFactor

    untied = tied = 0
    for path in sorted(adbench_dir.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            if len(data["y"]) > MAX_ROWS:
                continue
            X = np.asarray(data["X"], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicates in some files
            ours = LocalOutlierFactor(n_jobs=-1).fit(X).negative_outlier_factor_
            if not has_tied_kth_neighbour(X, 20):
                ref = SkLOF(n_jobs=-1).fit(X).negative_outlier_factor_
                untied += 1
            elif X.shape[0] ** 2 * X.shape[1] <= 3e9:
                ref = reference_lof(X, 20)
                tied += 1
            else:
                continue
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=0, err_msg=path.name)
    assert untied >= 15 and tied >= 8, (untied, tied)
