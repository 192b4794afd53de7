"""What the neighbour-based detectors share: parameters, the novelty switch,
and the scoring methods built on a native model's training and query scores.

Both detectors follow scikit-learn's LocalOutlierFactor: with
``novelty=False`` (outlier detection on the training set) only ``fit_predict``
and the training scores exist; with ``novelty=True`` ``score_samples``,
``decision_function`` and ``predict`` score new rows. Accessing a method of
the other mode raises AttributeError, so ``hasattr`` tells which are there.
"""

import math
import warnings
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.metaestimators import available_if

from fraudcore._parallel import resolve_n_jobs
from fraudcore._persistence import (
    MetadataError,
    NativeModelMixin,
    _blank,
    fitted_equal,
    fitted_feature_names,
    fitted_float,
)
from fraudcore._thresholds import ThresholdMixin
from fraudcore._validation import check_int, validate_fit_input, validate_score_input

_METRIC_ORDERS = {
    "euclidean": 2.0,
    "l2": 2.0,
    "manhattan": 1.0,
    "l1": 1.0,
    "cityblock": 1.0,
    "chebyshev": math.inf,
    "infinity": math.inf,
}
_ALGORITHMS = ("auto", "brute", "kd_tree")


def _outlier_mode_only(method):
    def check(self):
        if self.novelty:
            raise AttributeError(
                f"{method} is not available when novelty=True. Use novelty=False "
                "if you want to predict on the training set."
            )
        return True

    return check


def _novelty_only(method):
    def check(self):
        if not self.novelty:
            raise AttributeError(
                f"{method} is not available when novelty=False; use fit_predict and the "
                "training scores to find outliers in the training set, or novelty=True "
                "to score new data."
            )
        return True

    return check


class NeighborDetectorMixin(NativeModelMixin, OutlierMixin, BaseEstimator):
    """Base of LocalOutlierFactor and KNNDetector (not public).

    A subclass defines ``_native_type``, ``_training_scores_attribute`` (the
    name of its training-score array, higher = more normal),
    ``_native_fit(native, X, n_neighbors, p, algorithm, n_threads)``,
    ``_native_training_scores()`` and ``_native_scores(X, n_threads)``.
    """

    _fitted_attributes = (
        "offset_",
        "n_neighbors_",
        "n_samples_fit_",
        "fit_algorithm_",
        "effective_p_",
        "effective_metric_",
        "effective_metric_params_",
        "n_features_in_",
        "feature_names_in_",
    )
    _contamination_auto_offset = None  # the offset for contamination="auto", if any

    def _resolve_p(self):
        """The Minkowski order of metric / p / metric_params (as scikit-learn
        reads them: metric_params["p"] overrides p)."""
        metric, params = self.metric, self.metric_params
        if not isinstance(metric, str):
            raise ValueError(f"metric must be a string, got {metric!r}")
        if params is not None and (not isinstance(params, dict) or set(params) - {"p"}):
            raise ValueError(
                f"metric_params may only hold 'p' (the Minkowski order), got {params!r}"
            )
        if metric == "minkowski":
            p = params["p"] if params and "p" in params else self.p
            if isinstance(p, bool) or not isinstance(p, Real) or not (p >= 1):
                raise ValueError(
                    f"p must be a number >= 1 (1 = Manhattan, 2 = Euclidean, inf = Chebyshev), "
                    f"got {p!r}"
                )
            return float(p)
        if metric not in _METRIC_ORDERS:
            raise ValueError(
                f"metric {metric!r} is not supported; use 'minkowski' (with p >= 1) or one of "
                f"{sorted(_METRIC_ORDERS)}"
            )
        return _METRIC_ORDERS[metric]

    @staticmethod
    def _effective_metric(p):
        """scikit-learn's effective_metric_ and effective_metric_params_."""
        named = {1.0: "manhattan", 2.0: "euclidean", math.inf: "chebyshev"}
        return (named[p], {}) if p in named else ("minkowski", {"p": p})

    def _check_algorithm(self):
        if self.algorithm == "ball_tree":
            raise ValueError(
                "algorithm='ball_tree' is not available in fraudcore; use 'kd_tree' or 'brute' "
                "(every algorithm is exact and returns the same neighbours) or 'auto'"
            )
        if not isinstance(self.algorithm, str) or self.algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {self.algorithm!r}")
        return self.algorithm

    def _check_contamination(self):
        value = self.contamination
        if (
            isinstance(value, str)
            and value == "auto"
            and self._contamination_auto_offset is not None
        ):
            return value
        if isinstance(value, bool) or not isinstance(value, Real) or not (0 < value <= 0.5):
            allowed = '"auto" or ' if self._contamination_auto_offset is not None else ""
            raise ValueError(f"contamination must be {allowed}a float in (0, 0.5], got {value!r}")
        return float(value)

    def fit(self, X, y=None):
        """Index X and score every training row against the other rows.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Numeric, finite training data with at least 2 rows.
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        p = self._resolve_p()
        algorithm = self._check_algorithm()
        contamination = self._check_contamination()
        n_threads = resolve_n_jobs(self.n_jobs)
        X = validate_fit_input(self, X)
        n_samples = X.shape[0]
        if self.n_neighbors > n_samples:
            warnings.warn(
                f"n_neighbors ({self.n_neighbors}) is greater than the total number of samples "
                f"({n_samples}). n_neighbors will be set to (n_samples - 1) for estimation.",
                UserWarning,
                stacklevel=2,
            )
        n_neighbors = max(1, min(self.n_neighbors, n_samples - 1))

        native = self._native_type()
        self._native_fit(native, X, n_neighbors, p, algorithm, n_threads)
        self._native = native
        self.n_neighbors_ = n_neighbors
        self.n_samples_fit_ = n_samples
        self.fit_algorithm_ = native.algorithm
        self.effective_p_ = p
        self.effective_metric_, self.effective_metric_params_ = self._effective_metric(p)
        self._set_training_scores()
        scores = getattr(self, self._training_scores_attribute)
        if contamination == "auto":
            self.offset_ = self._contamination_auto_offset
        else:
            self.offset_ = float(np.percentile(scores, 100.0 * contamination))
        self._check_fitted_scores()
        return self

    def _validate_params(self):
        """The checks that need no data (fit and load run them)."""
        check_int("n_neighbors", self.n_neighbors, 1)
        check_int("leaf_size", self.leaf_size, 1)
        if not isinstance(self.novelty, (bool, np.bool_)):
            raise ValueError(f"novelty must be True or False, got {self.novelty!r}")
        self._resolve_p()
        self._check_algorithm()
        self._check_contamination()
        resolve_n_jobs(self.n_jobs)

    def _check_fitted_attributes(self, params, attributes, native):
        n_samples = fitted_equal(
            attributes, "n_samples_fit_", native.n_rows, "the model's training rows"
        )
        fitted_equal(attributes, "n_features_in_", native.n_features, "the model's training rows")
        fitted_feature_names(attributes, native.n_features)
        fitted_equal(attributes, "n_neighbors_", native.n_neighbors, "the model")
        fitted_equal(
            attributes,
            "n_neighbors_",
            max(1, min(params["n_neighbors"], n_samples - 1)),
            "n_neighbors",
        )
        fitted_equal(attributes, "fit_algorithm_", native.algorithm, "the model")
        if native.leaf_size != params["leaf_size"]:
            raise MetadataError(
                "params.leaf_size",
                f"{params['leaf_size']} disagrees with the model's {native.leaf_size}",
            )
        if params["algorithm"] != "auto":
            fitted_equal(attributes, "fit_algorithm_", params["algorithm"], "algorithm")
        p = _blank(type(self), params)._resolve_p()
        fitted_equal(attributes, "effective_p_", p, "metric, p and metric_params")
        if native.p != p:
            raise MetadataError(
                "params.p", f"Minkowski order {p} disagrees with the model's {native.p}"
            )
        metric, metric_params = self._effective_metric(p)
        fitted_equal(attributes, "effective_metric_", metric, "effective_p_")
        fitted_equal(attributes, "effective_metric_params_", metric_params, "effective_p_")
        if params["contamination"] == "auto":
            fitted_equal(
                attributes,
                "offset_",
                float(self._contamination_auto_offset),
                'contamination="auto"',
            )
        fitted_float(attributes, "offset_")

    def _check_fitted_scores(self):
        """Hook after fit: warn about scores that cannot be trusted."""

    def _set_training_scores(self):
        setattr(self, self._training_scores_attribute, self._native_training_scores())

    def _restore_native_attributes(self):
        self._set_training_scores()

    @available_if(_outlier_mode_only("fit_predict"))
    def fit_predict(self, X, y=None):
        """Fit on X and label its rows: -1 for outliers, 1 for inliers.

        Only with ``novelty=False``; each row is judged against the others.
        """
        self.fit(X)
        scores = getattr(self, self._training_scores_attribute)
        return np.where(scores < self.offset_, -1, 1)

    @available_if(_novelty_only("score_samples"))
    def score_samples(self, X):
        """Score new rows against the training set; lower is more abnormal.

        Only with ``novelty=True``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = validate_score_input(self, X)
        return self._native_scores(X, resolve_n_jobs(self.n_jobs))

    @available_if(_novelty_only("decision_function"))
    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers (novelty=True only)."""
        return ThresholdMixin.decision_function(self, X)

    @available_if(_novelty_only("predict"))
    def predict(self, X):
        """-1 for outliers, 1 for inliers among new rows (novelty=True only)."""
        return ThresholdMixin.predict(self, X)
