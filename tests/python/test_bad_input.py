"""The bad-input family: every estimator, every method, every kind of bad matrix.

Each call must either raise a ValueError (naming the problem) or return
scores of the right shape; never another exception, a crash, or a NaN
passed off as a score. A score of -inf is allowed: it is what scikit-learn's
LocalOutlierFactor gives a row so far away that its distances overflow, and
it ranks the row as the most anomalous (predict says -1). Where scikit-learn
itself raises a TypeError (a dict is not an array), so may fraudcore. Run
across the four detectors and the scoring methods, this is a few hundred
calls in a few seconds.
"""

import numpy as np
import pytest

from fraudcore import AutoEncoder, IsolationForest, KNNDetector, LocalOutlierFactor

WIDTH = 4

ESTIMATORS = {
    "isolation_forest": lambda: IsolationForest(n_estimators=10, random_state=0),
    "lof": lambda: LocalOutlierFactor(n_neighbors=5, novelty=True),
    "knn": lambda: KNNDetector(n_neighbors=3, novelty=True),
    "autoencoder": lambda: AutoEncoder(hidden_layers=(3,), epochs=2, random_state=0),
}

SCORING_METHODS = ("score_samples", "decision_function", "predict")


def _good(n=60, width=WIDTH):
    return np.random.default_rng(0).normal(size=(n, width))


def _with(value, dtype=np.float64):
    X = _good().astype(dtype)
    X[7, 2] = value
    return X


BAD_INPUTS = {
    "nan": lambda: _with(np.nan),
    "inf": lambda: _with(np.inf),
    "-inf": lambda: _with(-np.inf),
    "nan_float32": lambda: _with(np.nan, np.float32),
    "max_float64": lambda: _with(np.finfo(np.float64).max),
    "-max_float64": lambda: _with(-np.finfo(np.float64).max),
    "1e300_column": lambda: np.column_stack([_good()[:, :3], np.full(60, 1e300)]),
    "max_float32": lambda: _with(np.finfo(np.float32).max, np.float32),
    "subnormal": lambda: _with(5e-324),
    "huge_int64": lambda: np.full((60, WIDTH), np.iinfo(np.int64).max, dtype=np.int64),
    "uint64": lambda: np.arange(60 * WIDTH, dtype=np.uint64).reshape(60, WIDTH),
    "float16": lambda: _good().astype(np.float16),
    "bool": lambda: _good() > 0,
    "complex": lambda: _good().astype(np.complex128),
    "strings": lambda: _good().astype(str),
    "words": lambda: np.array([["a"] * WIDTH] * 60),
    "objects_with_none": lambda: np.where(_good() > 1.5, None, _good()).astype(object),
    "empty": lambda: np.empty((0, WIDTH)),
    "no_columns": lambda: np.empty((60, 0)),
    "one_dimensional": lambda: np.zeros(WIDTH),
    "three_dimensional": lambda: np.zeros((5, 6, WIDTH)),
    "scalar": lambda: np.float64(3.0),
    "ragged_list": lambda: [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]],
    "wrong_width": lambda: _good(width=WIDTH + 1),
    "narrow": lambda: _good(width=1),
    "fortran_order": lambda: np.asfortranarray(_good()),
    "strided_view": lambda: _good(120, 2 * WIDTH)[::2, ::2],
    "read_only": lambda: _read_only(_good()),
    "none": lambda: None,
    "dict": lambda: {"a": [1.0]},
}


def _read_only(X):
    X.setflags(write=False)
    return X


def _check_result(result, n_rows, method):
    result = np.asarray(result, dtype=np.float64)
    assert result.shape == (n_rows,), result.shape
    assert not np.isnan(result).any(), f"{method} passed off NaN as a result"
    assert not (result == np.inf).any(), f"{method} called a row infinitely normal"
    if method == "predict":
        assert set(np.unique(result)) <= {-1.0, 1.0}


def _errors_allowed(kind):
    """ValueError, and TypeError where scikit-learn's own estimator raises one."""
    from sklearn.ensemble import IsolationForest as Reference

    try:
        Reference(n_estimators=2).fit(BAD_INPUTS[kind]())
    except TypeError:
        return (ValueError, TypeError)
    except ValueError:
        pass
    return (ValueError,)


@pytest.fixture(scope="module")
def fitted():
    return {name: make().fit(_good()) for name, make in ESTIMATORS.items()}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_fit_on_bad_input_raises_value_error_or_scores_finitely(name, kind):
    X = BAD_INPUTS[kind]()
    try:
        model = ESTIMATORS[name]().fit(X)
    except _errors_allowed(kind) as exc:
        assert str(exc), "an empty error message"
        return
    X = np.asarray(X, dtype=np.float64)
    for method in SCORING_METHODS:
        _check_result(getattr(model, method)(X), len(X), method)


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_scoring_bad_input_raises_value_error_or_scores_finitely(fitted, name, kind):
    model = fitted[name]
    for method in SCORING_METHODS:
        X = BAD_INPUTS[kind]()
        try:
            result = getattr(model, method)(X)
        except _errors_allowed(kind) as exc:
            assert str(exc), "an empty error message"
            continue
        _check_result(result, len(X), method)
