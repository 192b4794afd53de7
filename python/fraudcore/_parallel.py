"""The ``n_jobs`` convention shared by every fraudcore estimator."""

from numbers import Integral

from fraudcore import _core

_INT32 = 2**31


def resolve_n_jobs(n_jobs):
    """Thread count for ``n_jobs``: None = 1, k >= 1 = k, -1 = all cores,
    -2 = all but one, ... (scikit-learn / joblib convention), capped at the
    cores this process may use."""
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral):
        raise ValueError(f"n_jobs must be None or a non-zero integer, got {n_jobs!r}")
    if not -_INT32 < n_jobs < _INT32:
        raise ValueError(f"n_jobs={n_jobs} is out of range; use -1 for all cores")
    return _core.resolve_n_threads(int(n_jobs))
