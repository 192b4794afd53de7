"""Isolation Forest with scikit-learn's semantics and a native kernel."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state

from fraudcore import _core
from fraudcore._parallel import resolve_n_jobs
from fraudcore._persistence import (
    MetadataError,
    NativeModelMixin,
    fitted_equal,
    fitted_feature_names,
    fitted_float,
    fitted_int,
    register,
)
from fraudcore._thresholds import ThresholdMixin
from fraudcore._validation import (
    check_contamination,
    check_fraction,
    check_int,
    validate_fit_input,
    validate_score_input,
)

__all__ = ["IsolationForest"]


@register
class IsolationForest(ThresholdMixin, NativeModelMixin, OutlierMixin, BaseEstimator):
    """Isolation Forest anomaly detector (Liu, Ting & Zhou, 2008).

    A drop-in replacement for :class:`sklearn.ensemble.IsolationForest` whose
    trees are grown and walked in C++ with OpenMP, with the GIL released.
    Each tree isolates a random subsample by random axis-parallel splits (or
    random hyperplanes, with ``extension_level > 0``); anomalies are isolated
    in fewer splits.

    Parameters
    ----------
    n_estimators : int, default=100
        Number of trees.
    max_samples : "auto", int or float, default="auto"
        Rows drawn to grow each tree: "auto" = min(256, n_samples); an int is
        a count (clipped to n_samples with a warning, as scikit-learn does);
        a float in (0, 1] is a fraction of n_samples.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Expected share of anomalies. "auto" puts the threshold at the score
        -0.5 of the original paper; a float puts it at that percentile of the
        training scores.
    max_features : int or float, default=1.0
        Columns drawn (without replacement) for each tree: an int is a count,
        a float a fraction of n_features.
    bootstrap : bool, default=False
        Draw each tree's rows with replacement.
    extension_level : int, default=0
        0 gives the standard forest (axis-parallel splits). k >= 1 gives the
        extended isolation forest (Hariri et al. 2021): each split is a random
        hyperplane through k + 1 of the tree's features; k must be below the
        number of features each tree sees.
    n_jobs : int or None, default=None
        Threads for fit and scoring: None = 1, -1 = all cores.
    random_state : int, RandomState instance or None, default=None
        Seeds the forest. Tree t draws only from (seed, t), so results are
        identical for every ``n_jobs``.

    Attributes
    ----------
    offset_ : float
        ``decision_function = score_samples - offset_``.
    max_samples_ : int
        Rows each tree was grown on.
    max_features_ : int
        Columns each tree was grown on.
    n_features_in_ : int
        Columns seen during fit.
    feature_names_in_ : ndarray of str
        Column names, when fit on a DataFrame with string column names.

    Notes
    -----
    ``score_samples(x) = -2 ** (-E[h(x)] / c(max_samples_))`` where ``h`` is
    the path length to the leaf x lands in, plus ``c(n)`` for the ``n``
    training rows in that leaf, as in scikit-learn. Higher is more normal.
    """

    _native_type = _core.IsolationForestModel
    _fitted_attributes = (
        "offset_",
        "max_samples_",
        "max_features_",
        "n_features_in_",
        "feature_names_in_",
    )

    def __init__(
        self,
        *,
        n_estimators=100,
        max_samples="auto",
        contamination="auto",
        max_features=1.0,
        bootstrap=False,
        extension_level=0,
        n_jobs=None,
        random_state=None,
    ):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.extension_level = extension_level
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y=None):
        """Grow the forest on X.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Numeric, finite training data, n_samples >= 2.
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        n_estimators = int(self.n_estimators)
        n_threads = resolve_n_jobs(self.n_jobs)
        X = validate_fit_input(self, X)
        n_samples, n_features = X.shape
        max_samples = self._resolve_max_samples(n_samples)
        max_features = self._resolve_max_features(n_features)
        extension_level = check_int("extension_level", self.extension_level, 0, max_features - 1)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        native = _core.IsolationForestModel()
        native.fit(
            X,
            n_estimators,
            max_samples,
            max_features,
            bool(self.bootstrap),
            extension_level,
            int(seed),
            n_threads,
        )
        self._native = native
        self.max_samples_ = max_samples
        self.max_features_ = max_features
        if self.contamination == "auto":
            self.offset_ = -0.5
        else:
            scores = native.score_samples(X, n_threads)
            self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    def _check_params(self):
        """fit's checks of the parameters that need no data."""
        check_int("n_estimators", self.n_estimators, 1)
        check_contamination(self.contamination)
        if not isinstance(self.bootstrap, (bool, np.bool_)):
            raise ValueError(f"bootstrap must be True or False, got {self.bootstrap!r}")
        resolve_n_jobs(self.n_jobs)
        check_random_state(self.random_state)
        check_int("extension_level", self.extension_level, 0)

    def _validate_params(self):
        """Every parameter check load can make: fit's, without the bounds the data sets."""
        self._check_params()
        for name, resolve in (
            ("max_samples", self._resolve_max_samples),
            ("max_features", self._resolve_max_features),
        ):
            value = getattr(self, name)
            if isinstance(value, Integral) and not isinstance(value, bool):
                check_int(name, value, 1)
            else:
                resolve(1)  # "auto" or a fraction: checked whatever the size

    def _check_fitted_attributes(self, params, attributes, native):
        n_features = fitted_equal(attributes, "n_features_in_", native.n_features, "the forest")
        fitted_feature_names(attributes, n_features)
        fitted_equal(attributes, "max_samples_", native.max_samples, "the forest")
        max_features = fitted_int(attributes, "max_features_", 1, n_features)
        if not params["extension_level"] == native.extension_level < max_features:
            raise MetadataError(
                "params.extension_level",
                f"{params['extension_level']} disagrees with the forest "
                f"({native.extension_level}) or max_features_ ({max_features})",
            )
        if native.n_estimators != params["n_estimators"]:
            raise MetadataError(
                "params.n_estimators",
                f"{params['n_estimators']} disagrees with the forest's {native.n_estimators} trees",
            )
        if params["contamination"] == "auto":
            fitted_equal(attributes, "offset_", -0.5, 'contamination="auto"')
        fitted_float(attributes, "offset_", -1.0, 0.0)

    def _resolve_max_samples(self, n_samples):
        value = self.max_samples
        if isinstance(value, str):
            if value != "auto":
                raise ValueError(f'max_samples must be "auto", an int or a float, got {value!r}')
            return min(256, n_samples)
        if isinstance(value, Integral) and not isinstance(value, bool):
            value = check_int("max_samples", value, 1)
            if value > n_samples:
                warnings.warn(
                    f"max_samples ({value}) is greater than the total number of samples "
                    f"({n_samples}). max_samples will be set to n_samples for estimation.",
                    UserWarning,
                    stacklevel=3,
                )
                return n_samples
            return value
        if isinstance(value, Real) and not isinstance(value, bool):
            return max(1, int(check_fraction("max_samples", value) * n_samples))
        raise ValueError(f'max_samples must be "auto", an int or a float, got {value!r}')

    def _resolve_max_features(self, n_features):
        value = self.max_features
        if isinstance(value, Integral) and not isinstance(value, bool):
            return check_int("max_features", value, 1, n_features)
        if isinstance(value, Real) and not isinstance(value, bool):
            return max(1, int(check_fraction("max_features", value) * n_features))
        raise ValueError(f"max_features must be an int or a float, got {value!r}")

    def score_samples(self, X):
        """Anomaly score of each row: -2^(-E[h(x)]/c(max_samples_)).

        The lower, the more abnormal; values lie in [-1, 0).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = validate_score_input(self, X)
        return self._native.score_samples(X, resolve_n_jobs(self.n_jobs))

    def feature_contributions(self, X):
        """Each feature's share in isolating each row (rows sum to 1).

        Walking every tree, a split at depth k (the root is 0) on feature f
        adds 1 / (k + 1) to f; a row's shares are then divided by their sum.
        Features that cut a row off near the root, in many trees, get most of
        the share: which features make the row an outlier. Axis-parallel
        forests only (``extension_level=0``).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        X = validate_score_input(self, X)
        return self._native.feature_contributions(X, resolve_n_jobs(self.n_jobs))
