"""Data: generated (for the demo, tests and notebooks) and loaded from files.

- :func:`make_anomalies`: labelled tabular data with global and local anomalies;
- :func:`make_transactions`: labelled e-commerce transactions with fraud patterns;
- :func:`load_online_retail`, :func:`load_fraud_data`, :func:`load_creditcard`,
  :func:`load_adbench`: the formats users bring, cleaned by documented,
  switchable rules, each returning ``(data, CleaningReport)``; ``data`` is
  indexed by ``source_row`` (SOURCE_ROW), each row's 0-based position among
  the file's data rows.
"""

import numpy as np
from sklearn.utils import check_random_state

from fraudcore._loaders import (
    SOURCE_ROW,
    CleaningReport,
    load_adbench,
    load_creditcard,
    load_fraud_data,
    load_online_retail,
)
from fraudcore._synthetic_transactions import make_transactions

__all__ = [
    "SOURCE_ROW",
    "CleaningReport",
    "load_adbench",
    "load_creditcard",
    "load_fraud_data",
    "load_online_retail",
    "make_anomalies",
    "make_transactions",
]


def make_anomalies(
    n_samples=100_000,
    n_features=18,
    *,
    contamination=0.02,
    n_clusters=4,
    dtype=np.float64,
    random_state=None,
):
    """Labelled tabular data with global and local anomalies.

    Inliers come from ``n_clusters`` Gaussian clusters, each with its own
    centre, scale and correlation (a random linear map of standard normal
    noise). Half the anomalies are global (uniform over a box 1.5 times
    the inliers' range); the other half are local (drawn around a cluster
    centre with five times that cluster's spread). Rows are shuffled.

    Parameters
    ----------
    n_samples : int
        Total rows, n_samples >= 2.
    n_features : int
        Columns, >= 1.
    contamination : float in [0, 0.5]
        Share of anomalies.
    n_clusters : int
        Inlier clusters.
    dtype : float32 or float64
    random_state : int, RandomState or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int8, 1 = anomaly, 0 = normal
    """
    if n_samples < 2 or n_features < 1 or n_clusters < 1:
        raise ValueError("make_anomalies needs n_samples >= 2, n_features >= 1, n_clusters >= 1")
    if not 0.0 <= contamination <= 0.5:
        raise ValueError(f"contamination must be in [0, 0.5], got {contamination!r}")
    rng = check_random_state(random_state)
    n_out = int(round(contamination * n_samples))
    n_in = n_samples - n_out

    centres = rng.uniform(-10, 10, size=(n_clusters, n_features))
    maps = rng.normal(size=(n_clusters, n_features, n_features)) / np.sqrt(n_features)
    scales = rng.uniform(0.5, 2.0, size=n_clusters)
    sizes = rng.multinomial(n_in, np.full(n_clusters, 1.0 / n_clusters))

    parts = []
    for c, size in enumerate(sizes):
        noise = rng.normal(size=(size, n_features))
        parts.append(centres[c] + scales[c] * noise @ maps[c])
    inliers = np.concatenate(parts) if parts else np.empty((0, n_features))

    n_global = n_out // 2
    low, high = inliers.min(axis=0), inliers.max(axis=0)
    centre, half = (low + high) / 2, (high - low) * 0.75
    global_out = rng.uniform(centre - half, centre + half, size=(n_global, n_features))
    which = rng.randint(n_clusters, size=n_out - n_global)
    local_noise = rng.normal(size=(n_out - n_global, n_features))
    local_out = centres[which] + 5.0 * scales[which, None] * np.einsum(
        "ij,ijk->ik", local_noise, maps[which]
    )

    X = np.concatenate([inliers, global_out, local_out]).astype(dtype, copy=False)
    y = np.concatenate([np.zeros(n_in, np.int8), np.ones(n_out, np.int8)])
    order = rng.permutation(n_samples)
    return np.ascontiguousarray(X[order]), y[order]
