"""Local Outlier Factor with scikit-learn's semantics on the native
exact-neighbour engine."""

import warnings

import numpy as np

from fraudcore import _core
from fraudcore._neighbors import NeighborDetectorMixin
from fraudcore._parallel import resolve_n_jobs
from fraudcore._persistence import register
from fraudcore._validation import validate_score_input

__all__ = ["LocalOutlierFactor"]


@register
class LocalOutlierFactor(NeighborDetectorMixin):
    """Local Outlier Factor (Breunig et al., 2000), exact and multithreaded.

    A drop-in replacement for :class:`sklearn.neighbors.LocalOutlierFactor`
    whose neighbour search runs in C++ with OpenMP, the GIL released. A row's
    LOF compares its local density with its neighbours' densities; rows in
    sparser regions than their neighbours score as outliers. Scores equal
    scikit-learn's (to rounding) on float64 data, duplicate rows included.

    Parameters
    ----------
    n_neighbors : int, default=20
        Neighbours per row. Above the number of training rows it is reduced to
        n_samples - 1 with a warning, as scikit-learn does.
    algorithm : {"auto", "brute", "kd_tree"}, default="auto"
        Neighbour search. Both are exact and return the same neighbours;
        "auto" takes the k-d tree up to 15 features and brute force (float32
        screening with exact float64 recomputation) above.
    leaf_size : int, default=30
        Rows per leaf of the k-d tree.
    metric : str, default="minkowski"
        "minkowski" (order ``p``), "euclidean", "manhattan" or "chebyshev".
    p : float, default=2
        Order of the Minkowski metric, p >= 1 (``inf`` = Chebyshev).
    metric_params : dict or None, default=None
        Only ``{"p": order}`` (overriding ``p``, as in scikit-learn).
    contamination : "auto" or float in (0, 0.5], default="auto"
        "auto" puts the threshold at a LOF of 1.5 (``offset_ = -1.5``); a
        float at that percentile of the training scores.
    novelty : bool, default=False
        False: outlier detection on the training set (``fit_predict``,
        ``negative_outlier_factor_``). True: ``score_samples``,
        ``decision_function`` and ``predict`` score new rows.
    n_jobs : int or None, default=None
        Threads: None = 1, -1 = all cores. Results do not depend on it.

    Attributes
    ----------
    negative_outlier_factor_ : ndarray of shape (n_samples,)
        -LOF of each training row against the other rows; about -1 for
        inliers, lower for outliers.
    offset_ : float
        Threshold on the scores: ``decision_function = score_samples - offset_``.
    n_neighbors_ : int
        Neighbours actually used.
    n_samples_fit_ : int
        Training rows.
    fit_algorithm_ : str
        "brute" or "kd_tree", as resolved from ``algorithm``.
    effective_p_ : float
        Minkowski order of the metric used.
    effective_metric_, effective_metric_params_ : str, dict
        The metric used, as scikit-learn names it ("euclidean", "manhattan",
        "chebyshev", or "minkowski" with {"p": p}).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names, when fit on a DataFrame with string column names.

    Notes
    -----
    Ties among equidistant neighbours go to the lower row index, so results
    never depend on the algorithm or thread count; scikit-learn may pick
    another of the tied rows (the LOF values only differ when tied rows have
    different densities). float32 input is indexed and compared in float64.
    The model keeps a float64 copy of the training rows.
    """

    _native_type = _core.LocalOutlierFactorModel
    _training_scores_attribute = "negative_outlier_factor_"
    _contamination_auto_offset = -1.5

    def __init__(
        self,
        n_neighbors=20,
        *,
        algorithm="auto",
        leaf_size=30,
        metric="minkowski",
        p=2,
        metric_params=None,
        contamination="auto",
        novelty=False,
        n_jobs=None,
    ):
        self.n_neighbors = n_neighbors
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.contamination = contamination
        self.novelty = novelty
        self.n_jobs = n_jobs

    def _check_fitted_scores(self):
        if not self.novelty and np.min(self.negative_outlier_factor_) < -1e7:
            warnings.warn(
                "Duplicate values are leading to incorrect results. "
                "Increase the number of neighbors for more accurate results.",
                UserWarning,
                stacklevel=3,
            )

    def _native_fit(self, native, X, n_neighbors, p, algorithm, n_threads):
        native.fit(X, n_neighbors, p, algorithm, self.leaf_size, n_threads)

    def _native_training_scores(self):
        return self._native.negative_outlier_factor

    def _native_scores(self, X, n_threads):
        return self._native.score_samples(X, n_threads)

    def neighbor_deviations(self, X):
        """|x - mean of its n_neighbors_ nearest training rows|, per feature.

        Which features set each row apart from its neighbourhood: the LOF
        side of a fraud alert's reason codes.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        X = validate_score_input(self, X)
        return self._native.neighbor_deviations(X, resolve_n_jobs(self.n_jobs))
