"""fraudcore.plots draws what fraudcore.metrics computes."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from fraudcore import metrics, plots


@pytest.fixture
def labelled():
    rng = np.random.default_rng(0)
    y = (rng.random(3_000) < 0.05).astype(int)
    return y, rng.normal(size=3_000) + 2 * y


def test_curves_end_where_the_metrics_say(labelled):
    y, s = labelled
    ax = plots.roc_curve(y, s, label="model")
    fpr, tpr = ax.lines[0].get_data()
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.roc_auc(y, s))
    assert f"{metrics.roc_auc(y, s):.3f}" in ax.get_legend().get_texts()[0].get_text()
    ax = plots.pr_curve(y, s)
    recall, precision = ax.lines[0].get_data()
    assert recall[-1] == 1.0 and precision[-1] == pytest.approx(y.mean())


def test_confusion_matrix_and_distribution(labelled):
    y, s = labelled
    ax = plots.confusion_matrix(y, s, threshold=1.5)
    shown = [int(t.get_text().replace(",", "")) for t in ax.texts]
    assert shown == metrics.confusion_matrix(y, s, 1.5).ravel().tolist()
    ax = plots.score_distribution(s, y, threshold=1.5)
    assert len(ax.patches) == 100 and ax.lines[0].get_xdata()[0] == 1.5
