"""Input checks shared by the estimators.

Fitting goes through scikit-learn's ``validate_data`` (feature names,
``n_features_in_``, the exact errors scikit-learn's estimator checks expect).
Scoring a plain float ndarray takes a fast path that checks only what the
native kernel does not (shape and column count); NaN and infinity are
rejected by the kernel while it copies each block of rows.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

FLOAT_DTYPES = (np.float64, np.float32)


def reject_non_numeric_columns(X, estimator):
    """Name the offending columns of a DataFrame instead of a numpy error."""
    if not (hasattr(X, "dtypes") and hasattr(X, "columns")):
        return
    from pandas.api.types import is_numeric_dtype

    bad = [str(col) for col, dtype in X.dtypes.items() if not is_numeric_dtype(dtype)]
    if bad:
        raise ValueError(
            f"{type(estimator).__name__} needs numeric input, but column(s) {bad} "
            "are not numeric; encode or drop them first"
        )


def _native_layout(X):
    """The kernels read any non-negative strides; only reversed views are copied."""
    return np.ascontiguousarray(X) if any(s < 0 for s in X.strides) else X


def validate_fit_input(estimator, X, min_samples=2):
    """Validate X for fit: 2-D, numeric, finite, float32/float64."""
    reject_non_numeric_columns(X, estimator)
    X = validate_data(
        estimator,
        X,
        dtype=list(FLOAT_DTYPES),
        ensure_min_samples=min_samples,
        ensure_all_finite=True,
        reset=True,
    )
    return _native_layout(X)


def validate_score_input(estimator, X):
    """Validate X for scoring against the fitted estimator.

    A C- or F-ordered float32/float64 ndarray passes through without a copy.
    Anything else (lists, DataFrames, other dtypes) goes through scikit-learn's
    ``validate_data`` with the checks of fit.
    """
    if not estimator.__sklearn_is_fitted__():
        check_is_fitted(estimator)
    if (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.dtype in FLOAT_DTYPES
        and (X.flags.c_contiguous or X.flags.f_contiguous)
        and not hasattr(estimator, "feature_names_in_")
    ):
        if X.shape[1] != estimator.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(estimator).__name__} "
                f"is expecting {estimator.n_features_in_} features as input."
            )
        if X.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum "
                f"of 1 is required by {type(estimator).__name__}."
            )
        return X
    reject_non_numeric_columns(X, estimator)
    X = validate_data(estimator, X, dtype=list(FLOAT_DTYPES), ensure_all_finite=True, reset=False)
    return _native_layout(X)


def check_int(name, value, low, high=None):
    """An integer in [low, high] (high=None: unbounded), bools rejected."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def check_fraction(name, value, low_open=0.0, high=1.0):
    """A real number in (low_open, high]."""
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a number in ({low_open}, {high}], got {value!r}")
    if not (low_open < value <= high):
        raise ValueError(f"{name} must be in ({low_open}, {high}], got {value!r}")
    return float(value)


def check_contamination(value):
    """'auto' or a float in (0, 0.5]."""
    if isinstance(value, str) and value == "auto":
        return value
    return check_fraction("contamination", value, 0.0, 0.5)
