"""KNNDetector: the k-NN distance score, checked against a plain
scikit-learn NearestNeighbors computation (PyOD's definition)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from fraudcore import KNNDetector

AGGREGATE = {
    "largest": lambda d: d[:, -1],
    "mean": lambda d: d.mean(axis=1),
    "median": lambda d: np.median(d, axis=1),
}


@pytest.fixture(scope="module", params=[(2000, 3), (1500, 24)], ids=["kd_tree", "brute"])
def data(request):
    rng = np.random.default_rng(request.param[1])
    X = rng.normal(size=(request.param[0] + 200, request.param[1]))
    return X[:-200], X[-200:]


@pytest.mark.parametrize("method", sorted(AGGREGATE))
@pytest.mark.parametrize("n_neighbors", [1, 4, 10])
def test_scores_equal_the_reference(data, method, n_neighbors):
    X, new = data
    reference = NearestNeighbors(n_neighbors=n_neighbors, algorithm="kd_tree").fit(X)
    train_ref = AGGREGATE[method](reference.kneighbors()[0])
    new_ref = AGGREGATE[method](reference.kneighbors(new)[0])

    outlier = KNNDetector(n_neighbors=n_neighbors, method=method, n_jobs=2)
    labels = outlier.fit_predict(X)
    np.testing.assert_allclose(-outlier.negative_knn_distance_, train_ref, rtol=1e-12)
    assert outlier.offset_ == pytest.approx(np.percentile(-train_ref, 10.0), rel=1e-12)
    np.testing.assert_array_equal(labels, np.where(-train_ref < outlier.offset_, -1, 1))

    novelty = KNNDetector(n_neighbors=n_neighbors, method=method, novelty=True, n_jobs=2).fit(X)
    np.testing.assert_allclose(-novelty.score_samples(new), new_ref, rtol=1e-12)
    np.testing.assert_allclose(
        novelty.decision_function(new), -new_ref - novelty.offset_, rtol=1e-12
    )
    np.testing.assert_array_equal(novelty.predict(new), np.where(-new_ref < novelty.offset_, -1, 1))


def test_contamination_sets_the_share_of_flagged_rows(data):
    X, _ = data
    labels = KNNDetector(contamination=0.05).fit_predict(X)
    assert abs(np.mean(labels == -1) - 0.05) < 0.002


def test_finds_the_injected_anomalies(blobs):
    X, y = blobs
    scores = KNNDetector(n_neighbors=10).fit(X).negative_knn_distance_
    assert roc_auc_score(y, -scores) > 0.9


def test_contamination_auto_is_rejected():
    with pytest.raises(ValueError, match=r"contamination must be a float in \(0, 0.5\]"):
        KNNDetector(contamination="auto").fit(np.zeros((5, 2)) + np.arange(5)[:, None])
