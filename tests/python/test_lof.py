"""LocalOutlierFactor equals scikit-learn's, in both of its modes."""

import warnings

import numpy as np
import pytest
from sklearn.neighbors import LocalOutlierFactor as SkLOF

from fraudcore import LocalOutlierFactor
from fraudcore.datasets import make_anomalies

RTOL = 1e-9


@pytest.fixture(scope="module", params=[(3000, 4), (2500, 20)], ids=["kd_tree", "brute"])
def data(request):
    n, d = request.param
    X, _ = make_anomalies(n + 300, d, random_state=d)
    return X[:n], X[n:]


def assert_same_scores(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("n_neighbors", [1, 5, 20])
def test_outlier_mode_equals_scikit_learn(data, n_neighbors):
    X, _ = data
    ours = LocalOutlierFactor(n_neighbors=n_neighbors, n_jobs=2)
    theirs = SkLOF(n_neighbors=n_neighbors)
    labels = ours.fit_predict(X)
    np.testing.assert_array_equal(labels, theirs.fit_predict(X))
    assert_same_scores(ours.negative_outlier_factor_, theirs.negative_outlier_factor_)
    assert ours.offset_ == theirs.offset_ == -1.5
    assert ours.n_neighbors_ == theirs.n_neighbors_


@pytest.mark.parametrize("contamination", ["auto", 0.05])
def test_novelty_mode_equals_scikit_learn(data, contamination):
    X, new = data
    ours = LocalOutlierFactor(novelty=True, contamination=contamination, n_jobs=2).fit(X)
    theirs = SkLOF(novelty=True, contamination=contamination).fit(X)
    assert_same_scores(ours.score_samples(new), theirs.score_samples(new))
    assert_same_scores(ours.decision_function(new), theirs.decision_function(new))
    np.testing.assert_array_equal(ours.predict(new), theirs.predict(new))
    assert ours.offset_ == pytest.approx(theirs.offset_, rel=RTOL)


@pytest.mark.parametrize("n_features", [3, 20])
def test_duplicates_beyond_n_neighbors(n_features):
    # 30 copies of one row with n_neighbors=10: their lrd is 1e10 and their
    # neighbours' ratios explode, scikit-learn's documented behaviour. Compare
    # with its exact tree search (its brute force leaves ~1e-8 between copies).
    rng = np.random.default_rng(8)
    X = rng.normal(size=(800, n_features))
    X[:30] = X[100]
    X[200:205] = X[300]
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        ours = LocalOutlierFactor(n_neighbors=10).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkLOF(n_neighbors=10, algorithm="kd_tree").fit(X)
    assert_same_scores(ours.negative_outlier_factor_, theirs.negative_outlier_factor_)
    assert any("Duplicate values" in str(w.message) for w in ours_warned)


def test_minkowski_orders_and_named_metrics(data):
    X, _ = data
    for kwargs in (
        {"p": 1},
        {"p": 3},
        {"metric": "manhattan"},
        {"metric": "chebyshev"},
        {"metric_params": {"p": 1.5}},
    ):
        ours = LocalOutlierFactor(n_neighbors=8, **kwargs).fit(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn notes metric_params' p
            theirs = SkLOF(n_neighbors=8, algorithm="ball_tree", **kwargs).fit(X)
        assert_same_scores(ours.negative_outlier_factor_, theirs.negative_outlier_factor_)
        assert ours.effective_metric_ == theirs.effective_metric_
        assert ours.effective_metric_params_.get("p") == theirs.effective_metric_params_.get("p")


def test_distances_that_overflow_float64_are_refused():
    X = np.array([[1e200, 0.0], [-1e200, 0.0], [0.0, 1e200], [5.0, 5.0]])
    with pytest.raises(ValueError, match="overflow float64"):
        LocalOutlierFactor(n_neighbors=2).fit(X)


def test_algorithms_and_thread_counts_agree(data):
    X, new = data
    runs = [
        LocalOutlierFactor(algorithm=a, novelty=True, n_jobs=j).fit(X)
        for a in ("brute", "kd_tree")
        for j in (1, 2, -1)
    ]
    for other in runs[1:]:
        np.testing.assert_array_equal(
            other.negative_outlier_factor_, runs[0].negative_outlier_factor_
        )
        np.testing.assert_array_equal(other.score_samples(new), runs[0].score_samples(new))


def test_methods_of_the_other_mode_are_hidden():
    outlier, novelty = LocalOutlierFactor(), LocalOutlierFactor(novelty=True)
    for name in ("predict", "decision_function", "score_samples"):
        assert not hasattr(outlier, name)
        assert hasattr(novelty, name)
    assert hasattr(outlier, "fit_predict") and not hasattr(novelty, "fit_predict")
    with pytest.raises(AttributeError, match="has no attribute 'score_samples'") as info:
        _ = outlier.score_samples
    assert "novelty=True" in str(info.value.__cause__)


def test_more_neighbors_than_rows_warns_and_reduces():
    X = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.warns(
        UserWarning, match=r"n_neighbors \(20\) is greater than the total number of samples \(6\)"
    ):
        ours = LocalOutlierFactor().fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkLOF().fit(X)
    assert ours.n_neighbors_ == theirs.n_neighbors_ == 5
    assert_same_scores(ours.negative_outlier_factor_, theirs.negative_outlier_factor_)


def test_dataframe_input_keeps_feature_names(data):
    pd = pytest.importorskip("pandas")
    X, new = data
    columns = [f"f{i}" for i in range(X.shape[1])]
    model = LocalOutlierFactor(novelty=True).fit(pd.DataFrame(X, columns=columns))
    assert list(model.feature_names_in_) == columns
    np.testing.assert_array_equal(
        model.score_samples(pd.DataFrame(new, columns=columns)),
        LocalOutlierFactor(novelty=True).fit(X).score_samples(new),
    )


def test_finds_the_injected_anomalies(blobs):
    from sklearn.metrics import roc_auc_score

    X, y = blobs
    scores = LocalOutlierFactor(n_neighbors=30).fit(X).negative_outlier_factor_
    assert roc_auc_score(y, -scores) > 0.9


def test_neighbor_deviations_equal_a_numpy_reference(blobs):
    from sklearn.neighbors import NearestNeighbors

    X, _ = blobs
    model = LocalOutlierFactor(n_neighbors=10, novelty=True).fit(X[:2_000])
    queries = X[2_000:2_050]
    _, ind = NearestNeighbors(n_neighbors=10).fit(X[:2_000]).kneighbors(queries)
    expected = np.abs(queries - X[:2_000][ind].mean(axis=1))
    np.testing.assert_allclose(model.neighbor_deviations(queries), expected, rtol=1e-12, atol=1e-12)
