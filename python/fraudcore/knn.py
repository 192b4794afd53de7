"""The k-nearest-neighbour outlier detector on the native exact-neighbour
engine."""

from fraudcore import _core
from fraudcore._neighbors import NeighborDetectorMixin
from fraudcore._persistence import MetadataError, register

__all__ = ["KNNDetector"]

_METHODS = {"largest": 0, "mean": 1, "median": 2}


@register
class KNNDetector(NeighborDetectorMixin):
    """k-nearest-neighbour outlier detector (Ramaswamy et al., 2000).

    A row is as abnormal as it is far from its k nearest training rows:
    the distance to the k-th ("largest"), their mean or their median, as in
    PyOD's ``KNN``. A strong baseline: it ranks near the top of the ADBench
    benchmark. Exact neighbours, searched in C++ with OpenMP, the GIL released.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours per row; above n_samples - 1 it is reduced with a warning.
    method : {"largest", "mean", "median"}, default="largest"
        How the k distances become one score.
    algorithm : {"auto", "brute", "kd_tree"}, default="auto"
        Neighbour search; both are exact (see LocalOutlierFactor).
    leaf_size : int, default=30
        Rows per leaf of the k-d tree.
    metric : str, default="minkowski"
        "minkowski" (order ``p``), "euclidean", "manhattan" or "chebyshev".
    p : float, default=2
        Order of the Minkowski metric, p >= 1.
    metric_params : dict or None, default=None
        Only ``{"p": order}`` (overriding ``p``).
    contamination : float in (0, 0.5], default=0.1
        Share of outliers: the threshold is that percentile of the training
        scores.
    novelty : bool, default=False
        As in LocalOutlierFactor: False gives ``fit_predict`` and the
        training scores, True gives ``score_samples``,
        ``decision_function`` and ``predict`` for new rows.
    n_jobs : int or None, default=None
        Threads: None = 1, -1 = all cores. Results do not depend on it.

    Attributes
    ----------
    negative_knn_distance_ : ndarray of shape (n_samples,)
        Minus each training row's neighbour distance, the row itself
        excluded (PyOD's ``decision_scores_`` negated); higher is more normal.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_neighbors_, n_samples_fit_, fit_algorithm_, effective_p_,
    effective_metric_, effective_metric_params_, n_features_in_, feature_names_in_
        As in LocalOutlierFactor.

    Notes
    -----
    ``score_samples(X) = -distance`` of each new row to its k nearest
    training rows, every training row included (as PyOD's
    ``decision_function``).
    """

    _native_type = _core.KNNDetectorModel
    _training_scores_attribute = "negative_knn_distance_"

    def __init__(
        self,
        n_neighbors=5,
        *,
        method="largest",
        algorithm="auto",
        leaf_size=30,
        metric="minkowski",
        p=2,
        metric_params=None,
        contamination=0.1,
        novelty=False,
        n_jobs=None,
    ):
        self.n_neighbors = n_neighbors
        self.method = method
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.contamination = contamination
        self.novelty = novelty
        self.n_jobs = n_jobs

    def _validate_params(self):
        super()._validate_params()
        if not isinstance(self.method, str) or self.method not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)}, got {self.method!r}")

    def _check_fitted_attributes(self, params, attributes, native):
        super()._check_fitted_attributes(params, attributes, native)
        if native.method != _METHODS[params["method"]]:
            raise MetadataError(
                "params.method", f"{params['method']!r} disagrees with the model's method"
            )

    def _native_fit(self, native, X, n_neighbors, p, algorithm, n_threads):
        native.fit(X, n_neighbors, _METHODS[self.method], p, algorithm, self.leaf_size, n_threads)

    def _native_training_scores(self):
        return -self._native.fitted_distances

    def _native_scores(self, X, n_threads):
        return -self._native.distances(X, n_threads)
