"""Threads: n_jobs is capped at the cores, and a forked child's parallel calls work.

GNU OpenMP's worker threads do not survive fork(); before the fix a child
forked after any parallel fraudcore call in its parent hung on its next
parallel call. Every child here runs under a deadline, so a regression
fails the test instead of hanging the suite.
"""

import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fraudcore
from fraudcore import (
    AutoEncoder,
    FraudDetector,
    IsolationForest,
    KNNDetector,
    LocalOutlierFactor,
    Schema,
)
from fraudcore._parallel import resolve_n_jobs
from fraudcore.datasets import make_anomalies, make_transactions

CHILD_DEADLINE_S = 60

# On one core every call runs on one thread, in the parent and in a child,
# so the fork tests could not fail there.
needs_two_cores = pytest.mark.skipif(
    fraudcore._core.available_cores() < 2,
    reason="one core: no parallel loop to hang in a forked child",
)

ESTIMATORS = {
    "isolation_forest": lambda: IsolationForest(n_estimators=20, n_jobs=2, random_state=0),
    "lof": lambda: LocalOutlierFactor(n_neighbors=10, novelty=True, n_jobs=2),
    "knn": lambda: KNNDetector(n_neighbors=5, novelty=True, n_jobs=2),
    "autoencoder": lambda: AutoEncoder(hidden_layers=(4,), epochs=2, n_jobs=2, random_state=0),
}


def test_n_jobs_is_capped_at_the_cores():
    cores = fraudcore._core.available_cores()
    assert resolve_n_jobs(10_000) == cores
    assert resolve_n_jobs(-1) == cores
    assert resolve_n_jobs(-10_000) == 1
    assert resolve_n_jobs(1) == 1


@pytest.mark.parametrize("n_jobs", [2**31, -(2**31), 10**40])
def test_absurd_n_jobs_is_a_value_error(n_jobs, blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="n_jobs=.* is out of range"):
        IsolationForest(n_estimators=5, n_jobs=n_jobs).fit(X)


def test_a_thousand_jobs_under_a_memory_limit_do_not_end_the_process():
    # Before the cap, 1000 OpenMP threads of brute-force scratch exhausted
    # the address space and libgomp ended the process ("Thread creation failed").
    code = textwrap.dedent("""
        import resource
        import numpy as np
        from fraudcore import KNNDetector, LocalOutlierFactor
        X = np.random.default_rng(0).normal(size=(3000, 8))
        limit = 1_500 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        for cls in (LocalOutlierFactor, KNNDetector):
            model = cls(n_neighbors=10, algorithm="brute", novelty=True, n_jobs=1000).fit(X)
            assert np.isfinite(model.score_samples(X)).all()
        print("ok")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def _in_forked_child(function, *args):
    """function(*args) in a forked child; its result, or a failure if it hangs or dies."""
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        pending = pool.apply_async(function, args)
        try:
            return pending.get(timeout=CHILD_DEADLINE_S)
        except multiprocessing.TimeoutError:
            pytest.fail(f"a forked child's parallel call did not finish in {CHILD_DEADLINE_S} s")


def _scores(model, X):
    return model.score_samples(X)


@needs_two_cores
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_forked_child_scores_after_the_parent_ran_in_parallel(name, blobs):
    X, _ = blobs
    model = ESTIMATORS[name]().fit(X)
    expected = model.score_samples(X)  # the parent's OpenMP threads now exist
    got = _in_forked_child(_scores, model, X)
    np.testing.assert_array_equal(got, expected)


def _fit_and_score(name, X):
    return ESTIMATORS[name]().fit(X).score_samples(X)


@needs_two_cores
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_forked_child_fits_in_parallel(name, blobs):
    X, _ = blobs
    ESTIMATORS[name]().fit(X).score_samples(X)
    got = _in_forked_child(_fit_and_score, name, X)
    if name != "autoencoder":  # the autoencoder's fit is not bit-reproducible across processes
        np.testing.assert_array_equal(got, _fit_and_score(name, X))
    assert np.isfinite(got).all()


def _risk_scores(detector, data):
    return detector.score(data, reasons=None)["risk_score"].to_numpy()


@needs_two_cores
def test_multiprocessing_pool_scores_a_detector_fitted_in_the_parent():
    data = make_transactions(n_customers=300, n_transactions=6_000, fraud_rate=0.02, seed=1)
    detector = FraudDetector(Schema.transactions(), random_state=0, n_jobs=2).fit(data.iloc[:4_000])
    new = data.iloc[4_000:]
    expected = _risk_scores(detector, new)
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        pending = pool.starmap_async(_risk_scores, [(detector, new)] * 2)
        try:
            parts = pending.get(timeout=CHILD_DEADLINE_S)
        except multiprocessing.TimeoutError:
            pytest.fail(f"the pool's workers did not finish in {CHILD_DEADLINE_S} s")
    for got in parts:
        np.testing.assert_array_equal(got, expected)


@needs_two_cores
def test_forked_child_runs_on_more_than_one_thread():
    """The child is not quietly single-threaded: its loops run on plain threads."""
    X, _ = make_anomalies(20_000, 8, random_state=0)
    model = IsolationForest(n_estimators=300, n_jobs=2, random_state=0).fit(X)
    model.score_samples(X)
    before, during = _in_forked_child(_threads_while_scoring, model, X)
    assert during > before, (before, during)


def _threads_while_scoring(model, X):
    """(threads of this process before scoring, the most seen while scoring)."""
    import threading

    def count():
        return len(os.listdir("/proc/self/task"))

    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            seen.append(count())

    watcher = threading.Thread(target=watch)
    before = count() + 1  # + the watcher
    watcher.start()
    for _ in range(20):
        model.score_samples(X)
    done.set()
    watcher.join()
    return before, max(seen)
