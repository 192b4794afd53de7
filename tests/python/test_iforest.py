"""fraudcore.IsolationForest: semantics, equality with scikit-learn, invariants."""

import json
import pathlib
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from conftest import python_path_lengths
from sklearn.base import clone
from sklearn.ensemble import IsolationForest as SkIsolationForest
from sklearn.metrics import roc_auc_score

from fraudcore import IsolationForest
from fraudcore.datasets import make_anomalies


def c(n):
    """Average path length of an unsuccessful BST search (scikit-learn's formula)."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n


@pytest.mark.parametrize("bootstrap", [False, True])
def test_scores_match_scikit_learn_in_distribution(blobs, bootstrap):
    # Same algorithm, different random numbers: with many trees the scores of
    # both forests converge to the same expectation.
    X, _ = blobs
    params = {"n_estimators": 2000, "random_state": 0, "n_jobs": -1, "bootstrap": bootstrap}
    ours = IsolationForest(**params).fit(X).score_samples(X)
    ref = SkIsolationForest(**params).fit(X).score_samples(X)
    assert np.corrcoef(ours, ref)[0, 1] > 0.995
    assert abs(ours.mean() - ref.mean()) < 2e-3
    assert np.abs(ours - ref).max() < 0.03


def test_roc_auc_matches_scikit_learn(blobs):
    X, y = blobs
    ours = [
        roc_auc_score(y, -IsolationForest(random_state=s).fit(X).score_samples(X)) for s in range(3)
    ]
    ref = [
        roc_auc_score(y, -SkIsolationForest(random_state=s).fit(X).score_samples(X))
        for s in range(3)
    ]
    assert abs(np.mean(ours) - np.mean(ref)) < 0.01


def narrow_with_ties(rng):
    X = rng.normal(size=(64, 3))
    X[:8, 0] = 5.0  # ties
    return X


def wide_with_duplicates(rng):
    # Sparse binary columns (mostly constant in a node), a few continuous
    # ones and repeated rows: splits draw many constant features, read most
    # columns in place and some from gathered copies.
    X = (rng.random(size=(32, 400)) < 0.03).astype(float)
    X[:, :3] = rng.normal(size=(32, 3))
    X[:, 50:60] = 0.0
    return np.vstack([X, X[:16], X[:16]])


@pytest.mark.parametrize("make_data", [narrow_with_ties, wide_with_duplicates])
def test_trees_follow_the_paper(make_data):
    # With every row in every tree, route the rows through each exported tree
    # and check the forest's structure and leaf values against the definition.
    rng = np.random.default_rng(3)
    X = make_data(rng)
    model = IsolationForest(n_estimators=5, max_samples=64, random_state=1).fit(X)
    native = model._native
    max_depth = int(np.ceil(np.log2(64)))
    for t in range(native.n_estimators):
        tree = native.export_tree(t)
        stack = [(0, np.arange(len(X)), 0)]
        while stack:
            k, rows, depth = stack.pop()
            left = tree["left"][k]
            if left == k:  # leaf
                assert tree["threshold"][k] == np.inf
                assert tree["path"][k] == pytest.approx(depth + c(len(rows)), rel=1e-12)
                could_split = (
                    len(rows) > 1 and depth < max_depth and np.ptp(X[rows], axis=0).max() > 0
                )
                assert not could_split, "a leaf that could still be split"
                continue
            f, thr = tree["split"][k], tree["threshold"][k]
            values = X[rows, f]
            assert values.min() <= thr < values.max()
            go_left = values <= thr
            stack.append((left, rows[go_left], depth + 1))
            stack.append((left + 1, rows[~go_left], depth + 1))
    X_new = rng.normal(size=(20, X.shape[1])) * 3
    expected = -(2.0 ** (-python_path_lengths(native, X_new) / c(64)))
    np.testing.assert_allclose(model.score_samples(X_new), expected, rtol=1e-12)


@pytest.mark.parametrize("extension_level", [0, 2])
def test_results_do_not_depend_on_thread_count(blobs, extension_level):
    X, _ = blobs
    fits = [
        IsolationForest(
            n_estimators=50, random_state=5, n_jobs=n, extension_level=extension_level
        ).fit(X)
        for n in (1, 2, -1)
    ]
    blobs_bytes = {f._native.serialize() for f in fits}
    assert len(blobs_bytes) == 1
    scores = [f.set_params(n_jobs=n).score_samples(X) for f, n in zip(fits, (2, 1, 3))]
    for s in scores[1:]:
        np.testing.assert_array_equal(s, scores[0])


def test_same_seed_same_forest_other_seed_other_forest(blobs):
    X, _ = blobs
    a = IsolationForest(random_state=3).fit(X).score_samples(X)
    b = IsolationForest(random_state=3).fit(X).score_samples(X)
    d = IsolationForest(random_state=4).fit(X).score_samples(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, d)


def test_dtypes_orders_and_dataframes_give_the_same_answer(blobs):
    pd = pytest.importorskip("pandas")
    X, _ = blobs
    X32 = X.astype(np.float32)
    X64 = X32.astype(np.float64)
    ref = IsolationForest(random_state=0).fit(X64)
    expected = ref.score_samples(X64)
    for variant in (X32, np.asfortranarray(X64), np.asfortranarray(X32), X64[:, ::1].copy()):
        model = IsolationForest(random_state=0).fit(variant)
        np.testing.assert_array_equal(model.score_samples(variant), expected)
        np.testing.assert_array_equal(ref.score_samples(variant), expected)
    strided = np.repeat(X64, 2, axis=1)[:, ::2]  # neither C nor F contiguous
    np.testing.assert_array_equal(ref.score_samples(strided), expected)
    np.testing.assert_array_equal(ref.score_samples(X64[::-1]), expected[::-1])
    reversed_fit = IsolationForest(random_state=0).fit(X64[::-1]).score_samples(X64)
    copied_fit = IsolationForest(random_state=0).fit(X64[::-1].copy()).score_samples(X64)
    np.testing.assert_array_equal(reversed_fit, copied_fit)
    df = pd.DataFrame(X64, columns=[f"f{i}" for i in range(X.shape[1])])
    model = IsolationForest(random_state=0).fit(df)
    assert list(model.feature_names_in_) == list(df.columns)
    np.testing.assert_array_equal(model.score_samples(df), expected)
    np.testing.assert_array_equal(model.score_samples(df.iloc[:5]), expected[:5])


def test_dataframe_with_bool_and_int_columns():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"a": rng.normal(size=300), "b": rng.integers(0, 5, 300), "c": rng.random(300) > 0.5}
    )
    model = IsolationForest(random_state=0).fit(df)
    as_float = df.to_numpy(dtype=float)
    reference = IsolationForest(random_state=0).fit(as_float)
    np.testing.assert_array_equal(model.score_samples(df), reference.score_samples(as_float))
    assert model.n_features_in_ == 3


def test_contamination_sets_offset_at_the_training_percentile(blobs):
    X, _ = blobs
    model = IsolationForest(contamination=0.05, random_state=0).fit(X)
    scores = model.score_samples(X)
    assert model.offset_ == pytest.approx(np.percentile(scores, 5.0))
    pred = model.predict(X)
    assert set(np.unique(pred)) == {-1, 1}
    assert abs((pred == -1).mean() - 0.05) < 0.002
    np.testing.assert_array_equal(model.decision_function(X), scores - model.offset_)
    np.testing.assert_array_equal(model.fit_predict(X), pred)
    assert IsolationForest(random_state=0).fit(X).offset_ == -0.5


def test_max_samples_resolution(blobs):
    X, _ = blobs
    assert IsolationForest().fit(X[:100]).max_samples_ == 100
    assert IsolationForest().fit(X).max_samples_ == 256
    assert IsolationForest(max_samples=0.1).fit(X).max_samples_ == 500
    assert IsolationForest(max_samples=1000).fit(X).max_samples_ == 1000
    with pytest.warns(UserWarning, match="max_samples .* greater than the total number"):
        model = IsolationForest(max_samples=10_000).fit(X)
    assert model.max_samples_ == len(X)


def test_max_features_restricts_each_tree(blobs):
    X, _ = blobs
    model = IsolationForest(n_estimators=20, max_features=1, random_state=0).fit(X)
    assert model.max_features_ == 1
    for t in range(20):
        tree = model._native.export_tree(t)
        inner = tree["left"] != np.arange(len(tree["left"]))
        assert len(np.unique(tree["split"][inner])) == 1
    assert IsolationForest(max_features=0.5).fit(X).max_features_ == 3


def test_bootstrap_changes_the_forest(blobs):
    X, y = blobs
    plain = IsolationForest(random_state=0).fit(X).score_samples(X)
    boot = IsolationForest(random_state=0, bootstrap=True).fit(X).score_samples(X)
    assert not np.array_equal(plain, boot)
    assert roc_auc_score(y, -boot) > 0.9


def test_extended_forest_detects_anomalies(blobs):
    X, y = blobs
    model = IsolationForest(extension_level=X.shape[1] - 1, random_state=0).fit(X)
    assert model._native.extension_level == X.shape[1] - 1
    assert roc_auc_score(y, -model.score_samples(X)) > 0.9


# scikit-learn's finiteness check itself warns while summing such values.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_extended_forest_refuses_values_whose_projections_overflow():
    X = np.random.default_rng(0).uniform(-1, 1, size=(300, 3)) * 1.7e308
    with pytest.raises(ValueError, match="too large for hyperplane splits"):
        IsolationForest(extension_level=1, random_state=0).fit(X)
    scores = IsolationForest(random_state=0).fit(X).score_samples(X)  # axis splits cope
    assert np.isfinite(scores).all()


def test_extended_forest_handles_constant_columns():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=500), np.ones(500), np.zeros(500)])
    s = IsolationForest(extension_level=2, random_state=0).fit(X).score_samples(X)
    assert np.isfinite(s).all()


def test_constant_data_gives_equal_scores():
    X = np.ones((50, 4))
    s = IsolationForest(random_state=0).fit(X).score_samples(X)
    assert np.all(s == s[0])
    # every row shares a single root leaf holding all 50 rows: path = c(50)
    assert s[0] == pytest.approx(-(2.0 ** (-c(50) / c(50))))


def test_concurrent_scoring_from_python_threads(blobs):
    X, _ = blobs
    model = IsolationForest(n_jobs=2, random_state=0).fit(X)
    expected = model.score_samples(X)
    results = [None] * 4

    def work(i):
        for _ in range(5):
            results[i] = model.score_samples(X)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_params_and_clone():
    model = IsolationForest(n_estimators=10, contamination=0.1, random_state=3)
    assert model.get_params()["n_estimators"] == 10
    model.set_params(max_features=0.5)
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    assert not hasattr(twin, "offset_")


def test_make_anomalies_is_reproducible():
    X1, y1 = make_anomalies(1000, 5, contamination=0.1, random_state=3)
    X2, y2 = make_anomalies(1000, 5, contamination=0.1, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert X1.shape == (1000, 5) and y1.sum() == 100
    X32, _ = make_anomalies(100, 2, dtype=np.float32, random_state=0)
    assert X32.dtype == np.float32


@pytest.mark.parametrize("max_samples", [2, 3, 700, 3000])
def test_scores_equal_a_plain_traversal_at_every_tree_depth(max_samples):
    # Shallow trees and trees deeper than the walk's heap levels alike.
    rng = np.random.default_rng(max_samples)
    X = rng.normal(size=(3000, 4))
    model = IsolationForest(n_estimators=4, max_samples=max_samples, random_state=0).fit(X)
    rows = X[:: 3000 // 150]
    expected = -(2.0 ** (-python_path_lengths(model._native, rows) / c(model.max_samples_)))
    np.testing.assert_allclose(model.score_samples(rows), expected, rtol=1e-12)


def reference_contributions(native, X):
    """Depth-weighted split shares by walking export_tree in Python."""
    out = np.zeros(X.shape)
    for t in range(native.n_estimators):
        tree = native.export_tree(t)
        for i, x in enumerate(X):
            k, depth = 0, 0
            while tree["left"][k] != k:
                out[i, tree["split"][k]] += 1.0 / (depth + 1)
                k = tree["left"][k] + (x[tree["split"][k]] > tree["threshold"][k])
                depth += 1
    return out / out.sum(axis=1, keepdims=True)


def test_feature_contributions_name_the_feature_that_isolates(blobs):
    X, _ = blobs
    model = IsolationForest(n_estimators=50, random_state=0).fit(X)
    odd = X[:5].copy()
    odd[:, 3] += 40.0  # far out in feature 3 only
    shares = model.feature_contributions(np.vstack([X[:20], odd]))
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_allclose(
        shares, reference_contributions(model._native, np.vstack([X[:20], odd])), rtol=1e-12
    )
    assert (shares[20:].argmax(axis=1) == 3).all()
    with pytest.raises(ValueError, match="axis-parallel"):
        IsolationForest(n_estimators=5, extension_level=1).fit(X).feature_contributions(X[:2])


def test_fit_memory_does_not_grow_with_the_number_of_trees():
    # Fit used to keep every tree's sample (max_samples x n_features doubles)
    # until the end: 100 trees x 256 x 2,000 x 8 bytes = 410 MB here. Only
    # per-thread scratch of at most one sample each may remain; in practice
    # a tree reads a few of its 2,000 columns.
    if not pathlib.Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak RSS")
    trees, psi, rows, cols, threads = 100, 256, 600, 2000, 2
    script = textwrap.dedent(f"""
        import json, numpy as np
        from fraudcore import IsolationForest

        def kb(field):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

        X = np.random.default_rng(0).standard_normal(({rows}, {cols}))
        IsolationForest(n_estimators=2, random_state=0).fit(X[:50, :5])  # imports, warm-up
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current resident set
        base = kb("VmRSS")
        model = IsolationForest(n_estimators={trees}, max_samples={psi}, n_jobs={threads},
                                random_state=0).fit(X)
        print(json.dumps({{"growth_mb": (kb("VmHWM") - base) / 1024}}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    growth_mb = json.loads(proc.stdout.strip().splitlines()[-1])["growth_mb"]
    sample_mb = psi * cols * 8 / 2**20
    assert growth_mb < 2 * threads * sample_mb, (
        f"fit grew the resident set by {growth_mb:.1f} MB; one tree's sample is "
        f"{sample_mb:.1f} MB, all {trees} trees' {trees * sample_mb:.0f} MB"
    )
