"""Bad input gets a ValueError that names the problem, never a crash."""

import numpy as np
import pytest

from fraudcore import IsolationForest


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    return IsolationForest(n_estimators=10, random_state=0).fit(rng.normal(size=(100, 4)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(fitted, bad):
    X = np.zeros((10, 4))
    X[3, 2] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        IsolationForest().fit(X)
    with pytest.raises(ValueError, match="NaN|infinity"):
        fitted.score_samples(X)
    with pytest.raises(ValueError, match="NaN|infinity"):
        fitted.score_samples(X.astype(np.float32))


def test_empty_and_single_row(fitted):
    with pytest.raises(ValueError, match="0 sample"):
        IsolationForest().fit(np.empty((0, 4)))
    with pytest.raises(ValueError, match="1 sample"):
        IsolationForest().fit(np.ones((1, 4)))
    with pytest.raises(ValueError, match="0 feature"):
        IsolationForest().fit(np.empty((10, 0)))
    with pytest.raises(ValueError, match="0 sample"):
        fitted.score_samples(np.empty((0, 4)))


def test_column_count_differs_from_fit(fitted):
    with pytest.raises(ValueError, match="X has 5 features, but IsolationForest is expecting 4"):
        fitted.score_samples(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="X has 3 features"):
        fitted.predict(np.zeros((3, 3), dtype=np.float32))


def test_one_dimensional_input(fitted):
    with pytest.raises(ValueError, match="2D array"):
        fitted.score_samples(np.zeros(4))


def test_non_numeric_columns():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"amount": [1.0, 2.0, 3.0], "merchant": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"column\(s\) \['merchant'\] are not numeric"):
        IsolationForest().fit(df)
    with pytest.raises(ValueError, match="could not convert|numeric"):
        IsolationForest().fit(np.array([["1", "x"], ["2", "y"]]))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_estimators": 0}, "n_estimators must be >= 1"),
        ({"n_estimators": 2.5}, "n_estimators must be an integer"),
        ({"contamination": 0.7}, r"contamination must be in \(0.0, 0.5\]"),
        ({"contamination": 0.0}, "contamination must be in"),
        ({"contamination": "most"}, "contamination must be a number"),
        ({"max_samples": 0}, "max_samples must be >= 1"),
        ({"max_samples": 1.5}, r"max_samples must be in \(0.0, 1.0\]"),
        ({"max_samples": "all"}, 'max_samples must be "auto"'),
        ({"max_features": 0}, r"max_features must be \[1, 4\]"),
        ({"max_features": 9}, r"max_features must be \[1, 4\]"),
        ({"max_features": -0.5}, "max_features must be in"),
        ({"extension_level": 4}, r"extension_level must be \[0, 3\]"),
        ({"extension_level": 2, "max_features": 2}, r"extension_level must be \[0, 1\]"),
        ({"bootstrap": "yes"}, "bootstrap must be True or False"),
        ({"n_jobs": 0}, "n_jobs == 0"),
        ({"n_jobs": 1.5}, "n_jobs must be None or a non-zero integer"),
    ],
)
def test_invalid_parameters(params, message):
    X = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(ValueError, match=message):
        IsolationForest(**params).fit(X)


def test_unfitted_use():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        IsolationForest().score_samples(np.zeros((2, 2)))
