"""fraudcore.metrics equals scikit-learn's metrics, ties included."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from fraudcore import metrics


def labelled_scores(seed, n=2_000, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(int)
    y[:2] = [0, 1]
    scores = rng.normal(size=n) + 1.5 * y
    return y, np.round(scores, 1) if ties else scores


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 300), ties=st.booleans())
def test_ranking_metrics_equal_sklearn(seed, n, ties):
    y, s = labelled_scores(seed, n, ties)
    assert metrics.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert metrics.average_precision(y, s) == pytest.approx(
        skm.average_precision_score(y, s), abs=1e-12
    )


@pytest.mark.parametrize("ties", [False, True])
def test_threshold_metrics_equal_sklearn(ties):
    y, s = labelled_scores(1, ties=ties)
    for threshold in np.quantile(s, [0.0, 0.5, 0.9, 0.99, 1.0]):
        alert = (s >= threshold).astype(int)
        np.testing.assert_array_equal(
            metrics.confusion_matrix(y, s, threshold), skm.confusion_matrix(y, alert)
        )
        p, r, f1 = metrics.precision_recall_f1(y, s, threshold)
        assert p == pytest.approx(skm.precision_score(y, alert, zero_division=0))
        assert r == pytest.approx(skm.recall_score(y, alert, zero_division=0))
        assert f1 == pytest.approx(skm.f1_score(y, alert, zero_division=0))


@pytest.mark.parametrize("ties", [False, True])
def test_detection_rate_at_fpr_is_the_best_reachable_recall(ties):
    y, s = labelled_scores(2, ties=ties)
    fpr, tpr, _thresholds = skm.roc_curve(y, s, drop_intermediate=False)
    for max_fpr in (0.0, 0.01, 0.05, 0.2, 1.0):
        rate, threshold = metrics.detection_rate_at_fpr(y, s, max_fpr)
        assert rate == pytest.approx(tpr[fpr <= max_fpr + 1e-15].max())
        alert = s >= threshold  # the returned threshold achieves it
        assert np.mean(alert[y == 0]) <= max_fpr + 1e-15
        assert np.mean(alert[y == 1]) == pytest.approx(rate)


def test_threshold_for_recall_is_the_highest_that_reaches_it():
    y, s = labelled_scores(3, ties=True)
    for target in (0.1, 0.5, 0.9, 1.0):
        threshold, precision, recall = metrics.threshold_for_recall(y, s, target)
        assert recall >= target and np.mean(s[y == 1] >= threshold) == pytest.approx(recall)
        higher = s[s > threshold]
        if higher.size:  # the next score up misses the target
            assert np.mean(s[y == 1] >= higher.min()) < target
        assert precision == pytest.approx(skm.precision_score(y, s >= threshold))


def test_compare_and_evaluate():
    y, s = labelled_scores(4)
    noise = np.random.default_rng(0).normal(size=len(y))
    table = metrics.compare(y, {"noise": noise, "signal": s})
    assert table.index.tolist() == ["signal", "noise"]
    assert table.loc["signal", "roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert table.loc["signal", "alerts"] == pytest.approx(y.mean() * len(y), abs=2)
    row = metrics.evaluate(y, s, threshold=1.0)
    assert row["tp"] + row["fn"] == y.sum() and row["alerts"] == (s >= 1.0).sum()


def test_bad_input():
    with pytest.raises(ValueError, match="one length"):
        metrics.roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="only 0"):
        metrics.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        metrics.average_precision([0, 1], [np.nan, 0.2])
    with pytest.raises(ValueError, match="one class"):
        metrics.roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="target_recall"):
        metrics.threshold_for_recall([0, 1], [0.1, 0.2], 1.5)
    with pytest.raises(ValueError, match="empty"):
        metrics.confusion_matrix([], [], 0.5)
