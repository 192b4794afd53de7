"""GradientBoostingStage: the supervised stage FraudDetector adds when labels exist.

Gradient-boosted trees, grown by scikit-learn's HistGradientBoostingClassifier
(binary log-loss, histogram splits, early stopping on an internal 10% of the
rows when there are more than 10,000), then held natively: the trees are
copied into a ``_core.TreeEnsembleModel``, which scores rows and gives each
feature's exact TreeSHAP contribution to a row's score (the reasons of
supervised alerts) in C++, on all cores. A saved stage needs neither
scikit-learn's pickles nor any code from the file.

Why this engine: measured on fraudcore's features (benchmarks/bench_quality.py),
LightGBM ranks no better, and scikit-learn is already a dependency; the
per-feature contributions LightGBM would bring are computed here natively.

Class imbalance (``imbalance``): "class_weight" (default) weighs each class
by the inverse of its frequency; "smote" adds synthetic fraud rows, each on
the segment between a fraud row and one of its ``smote_neighbors`` nearest
fraud rows (Chawla et al. 2002; distances on standardised columns) until the
classes are even; None does neither.

Probabilities: ``predict_proba`` is Platt-calibrated, a logistic fit of the
label on the raw score, on the calibration rows given to ``fit`` (held-out
labelled rows), else on the training rows. Class weights and SMOTE shift the
raw scores towards fraud; calibration takes the shift out.
"""

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from fraudcore import _core
from fraudcore._parallel import resolve_n_jobs
from fraudcore._persistence import MetadataError, NativeModelMixin, fitted, fitted_int, register
from fraudcore._validation import check_int, validate_fit_input, validate_score_input

__all__ = ["GradientBoostingStage"]

_IMBALANCE = ("class_weight", "smote", None)


@register
class GradientBoostingStage(NativeModelMixin, BaseEstimator):
    """Gradient-boosted trees with native scoring, TreeSHAP and calibration.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf,
    l2_regularization, early_stopping :
        As scikit-learn's HistGradientBoostingClassifier.
    imbalance : {"class_weight", "smote", None}
        How the rare fraud class is given its weight (see the module notes).
    smote_neighbors : int
        Neighbours among the fraud rows that SMOTE interpolates towards.
    random_state : int or None
    n_jobs : int
        Threads for fitting and scoring (-1: all cores).

    Attributes
    ----------
    n_features_in_, n_iter_ (trees grown), calibration_ ((slope,
    intercept) of the Platt fit), n_synthetic_ (rows SMOTE added).
    """

    _native_type = _core.TreeEnsembleModel
    _fitted_attributes = ("n_features_in_", "n_iter_", "calibration_", "n_synthetic_")

    def __init__(
        self,
        *,
        max_iter=300,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        l2_regularization=0.0,
        early_stopping="auto",
        imbalance="class_weight",
        smote_neighbors=5,
        random_state=None,
        n_jobs=-1,
    ):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.early_stopping = early_stopping
        self.imbalance = imbalance
        self.smote_neighbors = smote_neighbors
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _validate_params(self):
        check_int("max_iter", self.max_iter, 1)
        check_int("max_leaf_nodes", self.max_leaf_nodes, 2)
        check_int("min_samples_leaf", self.min_samples_leaf, 1)
        check_int("smote_neighbors", self.smote_neighbors, 1)
        for name in ("learning_rate", "l2_regularization"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not np.isfinite(value)
                or value < 0
                or (name == "learning_rate" and value == 0)
            ):
                raise ValueError(
                    f"{name} must be a finite number {'> 0' if name == 'learning_rate' else '>= 0'}, "
                    f"got {value!r}"
                )
        if self.early_stopping not in ("auto", True, False):
            raise ValueError(
                f"early_stopping must be 'auto', True or False, got {self.early_stopping!r}"
            )
        if self.imbalance not in _IMBALANCE:
            raise ValueError(f"imbalance must be one of {_IMBALANCE}, got {self.imbalance!r}")
        resolve_n_jobs(self.n_jobs)

    def fit(self, X, y, *, X_calibration=None, y_calibration=None):
        """Grow the trees on (X, y) (y: 0 legitimate, 1 fraud, both present);
        Platt-calibrate on (X_calibration, y_calibration) when given."""
        self._validate_params()
        X = validate_fit_input(self, X)
        y = _binary_labels(y, len(X), "y")
        if y.min() == y.max():
            raise ValueError(
                "the supervised stage needs fraud and legitimate rows among the labelled ones"
            )
        rng = np.random.default_rng(self.random_state)
        n_real = len(X)
        if self.imbalance == "smote":
            X, y = _smote(X, y, self.smote_neighbors, rng)
        self.n_synthetic_ = int(len(X) - n_real)
        n_threads = _core.resolve_n_threads(self.n_jobs)
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=self.early_stopping,
            random_state=int(rng.integers(2**31 - 1)),
            class_weight="balanced" if self.imbalance == "class_weight" else None,
        )
        with threadpool_limits(n_threads, user_api="openmp"):
            model.fit(X, y)
        self._native = _from_histogram_gradient_boosting(model, X.shape[1])
        self.n_features_in_ = int(X.shape[1])
        self.n_iter_ = int(model.n_iter_)
        if X_calibration is not None:
            X_calibration = validate_score_input(self, X_calibration)
            y_calibration = _binary_labels(y_calibration, len(X_calibration), "y_calibration")
        if X_calibration is None or y_calibration.min() == y_calibration.max():
            X_calibration, y_calibration = X, y  # no usable held-out rows: the training rows
        self.calibration_ = _platt(self.decision_function(X_calibration), y_calibration)
        return self

    def decision_function(self, X):
        """Raw score (log-odds before calibration), higher = more likely fraud."""
        X = validate_score_input(self, X)
        return self._native.decision_function(X, _core.resolve_n_threads(self.n_jobs))

    def predict_proba(self, X):
        """Calibrated probabilities, columns (legitimate, fraud)."""
        fraud = self._calibrated(self.decision_function(X))
        return np.column_stack([1.0 - fraud, fraud])

    def _calibrated(self, raw):
        slope, intercept = self.calibration_
        return expit(slope * raw + intercept)

    def predict(self, X):
        """1 where the calibrated fraud probability is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def contributions(self, X):
        """TreeSHAP values of the raw score: n x (d + 1), the last column the
        expected score; each row adds up to decision_function."""
        X = validate_score_input(self, X)
        return self._native.contributions(X, _core.resolve_n_threads(self.n_jobs))

    def _check_fitted_attributes(self, params, attributes, native):
        n = fitted_int(attributes, "n_features_in_", 1)
        if native.n_features != n:
            raise MetadataError(
                "attributes.n_features_in_", f"is {n}, the trees use {native.n_features}"
            )
        fitted_int(attributes, "n_iter_", 1)
        fitted_int(attributes, "n_synthetic_", 0)
        calibration = fitted(attributes, "calibration_")
        if not (
            isinstance(calibration, tuple)
            and len(calibration) == 2
            and all(isinstance(v, float) and np.isfinite(v) for v in calibration)
        ):
            raise MetadataError(
                "attributes.calibration_", "must be two finite numbers (slope, intercept)"
            )


def _binary_labels(y, n, name):
    y = np.asarray(y)
    if y.shape != (n,) or not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold 0 (legitimate) or 1 (fraud) for each of the {n} rows")
    return y.astype(np.int8)


def _platt(raw, y):
    """(slope, intercept) of the logistic fit of y on raw (Newton's method,
    with Platt's smoothed targets so separable data stays finite)."""
    positives = int(y.sum())
    negatives = len(y) - positives
    target = np.where(y == 1, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))
    if not float(np.std(raw)) > 1e-12 * max(1.0, float(np.abs(raw).max())):
        # One score for every row: no slope to learn; the smoothed base rate.
        rate = float(np.mean(target))
        return (0.0, float(np.log(rate / (1.0 - rate))))
    scale = float(np.std(raw))
    z = (raw - float(np.mean(raw))) / scale
    a, b = 1.0, float(np.log((positives + 1.0) / (negatives + 1.0)))
    for _ in range(100):
        p = expit(a * z + b)
        w = np.maximum(p * (1.0 - p), 1e-12)
        g = np.array([np.dot(p - target, z), np.sum(p - target)])
        h = np.array([[np.dot(w, z * z), np.dot(w, z)], [np.dot(w, z), np.sum(w)]]) + 1e-9 * np.eye(
            2
        )
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    slope = a / scale
    return (float(slope), float(b - slope * np.mean(raw)))


def _smote(X, y, k, rng):
    """X, y with synthetic fraud rows added until the classes are even."""
    fraud = X[y == 1]
    needed = int((y == 0).sum() - len(fraud))
    if needed <= 0 or len(fraud) < 2:
        return X, y
    from sklearn.neighbors import NearestNeighbors

    scale = fraud.std(axis=0)
    scaled = fraud / np.where(scale > 0, scale, 1.0)
    k = min(k, len(fraud) - 1)
    neighbors = (
        NearestNeighbors(n_neighbors=k + 1)
        .fit(scaled)
        .kneighbors(scaled, return_distance=False)[:, 1:]
    )
    base = rng.integers(len(fraud), size=needed)
    partner = neighbors[base, rng.integers(k, size=needed)]
    step = rng.random((needed, 1))
    synthetic = fraud[base] + step * (fraud[partner] - fraud[base])
    return np.vstack([X, synthetic]), np.concatenate([y, np.ones(needed, dtype=y.dtype)])


def _from_histogram_gradient_boosting(model, n_features):
    """The fitted classifier's trees as a native TreeEnsembleModel."""
    if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
        raise ValueError("categorical splits are not supported by the native trees")
    columns = {
        k: [] for k in ("feature", "threshold", "left", "right", "value", "cover", "missing_left")
    }
    begin, offset = [], 0
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        begin.append(offset)
        columns["feature"].append(np.where(leaf, -1, nodes["feature_idx"]))
        columns["threshold"].append(nodes["num_threshold"])
        columns["left"].append(np.where(leaf, 0, nodes["left"].astype(np.int64) + offset))
        columns["right"].append(np.where(leaf, 0, nodes["right"].astype(np.int64) + offset))
        columns["value"].append(nodes["value"])
        columns["cover"].append(nodes["count"].astype(np.float64))
        columns["missing_left"].append(nodes["missing_go_to_left"])
        offset += len(nodes)
    baseline = float(np.ravel(model._baseline_prediction)[0])
    return _core.TreeEnsembleModel(
        n_features,
        baseline,
        np.asarray(begin, dtype=np.int64),
        **{k: np.concatenate(v) for k, v in columns.items()},
    )
