"""The exact k-nearest-neighbour engine against scikit-learn and itself.

Pairs rank by distance, ties by the lower row index. Without ties the
neighbours must equal scikit-learn's exactly; with them, the distances must,
and brute force, the k-d tree and every screening kernel must agree bit for
bit whatever the thread count.
"""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from fraudcore import _core

METRIC_ORDERS = [1.0, 2.0, 3.0, np.inf]


def index(X, p=2.0, algorithm="brute"):
    engine = _core.NeighborIndex()
    engine.fit(X, p, algorithm, 30, 5)
    return engine


def lexsorted(dist, ind):
    """Each row's neighbours ordered by (distance, index)."""
    order = np.lexsort((ind, dist), axis=-1)
    return np.take_along_axis(dist, order, -1), np.take_along_axis(ind, order, -1)


@pytest.fixture(params=["sse2", "avx2", "avx512"])
def kernel(request):
    """Run a test with each screening kernel this CPU supports."""
    if request.param not in _core.NeighborIndex.supported_isas():
        pytest.skip(f"this CPU cannot run the {request.param} kernel")
    default = _core.NeighborIndex.kernel_isa()
    _core.NeighborIndex.use_isa(request.param)
    yield request.param
    _core.NeighborIndex.use_isa(default)


@pytest.mark.parametrize("p", METRIC_ORDERS)
@pytest.mark.parametrize("algorithm", ["brute", "kd_tree"])
@pytest.mark.parametrize("shape", [(1500, 3), (1200, 20)])
def test_equals_scikit_learn_without_ties(p, algorithm, shape):
    rng = np.random.default_rng(3)
    X = rng.normal(size=shape) * rng.uniform(0.1, 10, size=shape[1]) + 50
    Q = rng.normal(size=(200, shape[1])) * 3 + 50
    engine = index(X, p, algorithm)
    reference = NearestNeighbors(n_neighbors=9, algorithm="kd_tree", p=p).fit(X)
    dist, ind = engine.kneighbors(Q, 9, 2)
    ref_dist, ref_ind = reference.kneighbors(Q)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-13)
    dist, ind = engine.kneighbors_fitted(9, 2)
    ref_dist, ref_ind = reference.kneighbors()
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-13)


def tied_data(n_features):
    """Integer grid points (many exact ties) and blocks of duplicates."""
    rng = np.random.default_rng(5)
    X = rng.integers(0, 4, size=(900, n_features)).astype(float)
    X[:40] = X[40]  # 40 copies of one row: more than k + 1
    return X


@pytest.mark.parametrize("n_features", [2, 18])
@pytest.mark.parametrize("p", METRIC_ORDERS)
def test_ties_and_duplicates_keep_distances_and_break_ties_by_index(n_features, p, kernel):
    X = tied_data(n_features)
    k = 12
    brute = index(X, p, "brute").kneighbors_fitted(k, 2)
    tree = index(X, p, "kd_tree").kneighbors_fitted(k, 1)
    np.testing.assert_array_equal(brute[0], tree[0])
    np.testing.assert_array_equal(brute[1], tree[1])
    ref_dist, _ = NearestNeighbors(n_neighbors=k, algorithm="kd_tree", p=p).fit(X).kneighbors()
    np.testing.assert_allclose(brute[0], ref_dist, rtol=1e-13, atol=0)
    # Within each row, (distance, index) ascends: ties go to the lower index.
    np.testing.assert_array_equal(lexsorted(*brute)[1], brute[1])
    # The self-exclusion rule of scikit-learn's kneighbors(X=None): row 39,
    # crowded out of its own k + 1 nearest by 39 copies of lower index,
    # drops its first neighbour instead (row 0); row 0 drops itself.
    assert brute[1][39].tolist() == list(range(1, k + 1))
    assert brute[1][0].tolist() == list(range(1, k + 1))
    assert np.all(brute[0][:40] == 0.0)


def test_brute_force_duplicates_are_exactly_zero_apart():
    # A plain |x|^2 + |y|^2 - 2 x.y in float64 leaves ~1e-5 here; the exact
    # recomputation gives 0.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 30)) * 100 + 1000
    X[1] = X[0]
    dist, ind = index(X, 2.0, "brute").kneighbors(X[:1], 2, 1)
    assert ind[0].tolist() == [0, 1]
    assert dist[0, 1] == 0.0


@pytest.mark.parametrize(
    "scale, offset",
    [(1e-3, 1e8), (1e-30, 0.0), (1e150, 0.0), (1.0, -1e12)],
    ids=["tiny-spread-huge-offset", "underflow", "overflow", "negative-offset"],
)
def test_extreme_magnitudes_stay_exact(scale, offset, kernel):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(700, 17)) * scale + offset
    brute = index(X, 2.0, "brute")
    tree = index(X, 2.0, "kd_tree")
    for a, b in zip(brute.kneighbors_fitted(6, 2), tree.kneighbors_fitted(6, 1)):
        np.testing.assert_array_equal(a, b)
    Q = rng.normal(size=(50, 17)) * scale + offset
    for a, b in zip(brute.kneighbors(Q, 6, 2), tree.kneighbors(Q, 6, 1)):
        np.testing.assert_array_equal(a, b)


def test_every_kernel_and_thread_count_gives_the_same_bits():
    X = np.random.default_rng(2).normal(size=(5000, 24))
    Q = np.random.default_rng(3).normal(size=(300, 24))
    default = _core.NeighborIndex.kernel_isa()
    results = []
    try:
        for isa in _core.NeighborIndex.supported_isas():
            _core.NeighborIndex.use_isa(isa)
            for threads in (1, 2, 3):
                engine = index(X)
                results.append(
                    engine.kneighbors_fitted(15, threads) + engine.kneighbors(Q, 4, threads)
                )
    finally:
        _core.NeighborIndex.use_isa(default)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_float32_input_is_searched_in_float64():
    X = np.random.default_rng(4).normal(size=(800, 20)).astype(np.float32)
    dist, ind = index(X).kneighbors_fitted(5, 2)
    ref_dist, ref_ind = (
        NearestNeighbors(n_neighbors=5, algorithm="kd_tree").fit(X.astype(np.float64)).kneighbors()
    )
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-13)


def test_strided_and_fortran_queries():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 18))
    engine = index(X)
    wide = rng.normal(size=(60, 36))
    expected = engine.kneighbors(np.ascontiguousarray(wide[:, ::2]), 3, 1)
    for Q in (wide[:, ::2], np.asfortranarray(wide[:, ::2])):
        for a, b in zip(engine.kneighbors(Q, 3, 2), expected):
            np.testing.assert_array_equal(a, b)


def test_auto_picks_the_tree_in_low_dimensions():
    assert (
        index(np.zeros((100, 3)) + np.arange(100)[:, None], algorithm="auto").algorithm == "kd_tree"
    )
    assert (
        index(np.random.default_rng(0).normal(size=(100, 16)), algorithm="auto").algorithm
        == "brute"
    )


def test_engine_rejects_bad_requests():
    engine = index(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match=r"n_neighbors must be in \[1, 9\]"):
        engine.kneighbors_fitted(10)
    with pytest.raises(ValueError, match=r"n_neighbors must be in \[1, 10\]"):
        engine.kneighbors(np.zeros((2, 3)), 11)
    with pytest.raises(ValueError, match="X has 2 features"):
        engine.kneighbors(np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match=r"NaN or infinity \(row 1, column 2\)"):
        engine.kneighbors(np.array([[0.0, 0, 0], [0, 0, np.inf]]), 1)
    with pytest.raises(ValueError, match="p must be >= 1"):
        _core.NeighborIndex().fit(np.zeros((3, 2)), 0.5)
    with pytest.raises(ValueError, match="not supported on this CPU"):
        _core.NeighborIndex.use_isa("avx1024")


@pytest.mark.parametrize(
    "X, Q",
    [
        (np.array([[-1e-3], [0.0], [1e-3]]), np.array([[1e39]])),
        (
            np.random.default_rng(0).normal(size=(300, 20)),
            np.where(np.arange(20) % 2, 1e38, -1e38)[None, :],
        ),
        (np.array([[1e308], [1e308], [-1e308], [0.0], [5.0]]), np.array([[4.0], [-1e308]])),
    ],
    ids=["query-beyond-float32", "alternating-1e38", "column-sum-overflows"],
)
def test_values_beyond_float32_range_stay_exact(X, Q, kernel):
    # Rows are centred on their midrange (no overflowing sums) and a query
    # too far out for float32 screening is searched exactly.
    k = min(2, len(X) - 1)
    brute, tree = index(X, 2.0, "brute"), index(X, 2.0, "kd_tree")
    for a, b in zip(brute.kneighbors(Q, k, 2), tree.kneighbors(Q, k, 1)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(brute.kneighbors_fitted(k, 2), tree.kneighbors_fitted(k, 1)):
        np.testing.assert_array_equal(a, b)


def test_an_absurd_k_is_a_value_error_not_an_allocation():
    engine = index(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="n_neighbors must be in"):
        engine.kneighbors(np.zeros((2, 3)), 10**12)
