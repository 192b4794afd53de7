"""Plots of fraud scores against labels (matplotlib, the ``plot`` extra).

Each function draws on ``ax`` (a new figure's axes when None) and returns
the axes. Scores are higher = riskier, as in :mod:`fraudcore.metrics`,
whose numbers the plots show.
"""

import numpy as np

from fraudcore import metrics

__all__ = ["confusion_matrix", "pr_curve", "roc_curve", "score_distribution"]


def _axes(ax):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "fraudcore.plots needs matplotlib: pip install 'fraudcore[plot]'"
        ) from None
    return plt.subplots()[1]


def _curve(y_true, scores):
    y, s = metrics._check(y_true, scores)
    metrics._two_classes(y)
    _, tp, fp = metrics._curve(y, s)
    return tp, fp


def roc_curve(y_true, scores, *, ax=None, label=None):
    """ROC curve with its AUC in the legend."""
    tp, fp = _curve(y_true, scores)
    ax = _axes(ax)
    auc = metrics.roc_auc(y_true, scores)
    ax.plot(
        np.r_[0, fp] / fp[-1], np.r_[0, tp] / tp[-1], label=f"{label or 'scores'} (AUC {auc:.3f})"
    )
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false-positive rate", ylabel="detection rate (recall)", title="ROC")
    ax.legend(loc="lower right")
    return ax


def pr_curve(y_true, scores, *, ax=None, label=None):
    """Precision-recall curve with its average precision in the legend."""
    tp, fp = _curve(y_true, scores)
    ax = _axes(ax)
    ap = metrics.average_precision(y_true, scores)
    ax.step(
        np.r_[0, tp / tp[-1]],
        np.r_[1, tp / (tp + fp)],
        where="post",
        label=f"{label or 'scores'} (AP {ap:.3f})",
    )
    ax.axhline(np.mean(np.asarray(y_true)), linestyle=":", color="grey")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return ax


def confusion_matrix(y_true, scores, threshold, *, ax=None):
    """The 2 x 2 counts at score >= threshold, annotated."""
    counts = metrics.confusion_matrix(y_true, scores, threshold)
    ax = _axes(ax)
    ax.imshow(counts, cmap="Blues")
    for (i, j), value in np.ndenumerate(counts):
        ax.text(
            j,
            i,
            f"{value:,}",
            ha="center",
            va="center",
            color="white" if value > counts.max() / 2 else "black",
        )
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["no alert", "alert"],
        yticklabels=["legitimate", "fraud"],
        title=f"Confusion at threshold {threshold:.4g}",
    )
    return ax


def score_distribution(scores, y_true=None, *, threshold=None, ax=None, bins=50):
    """Histograms of the scores (by class when labels are given) and the threshold."""
    s = np.asarray(scores, dtype=np.float64)
    ax = _axes(ax)
    edges = np.histogram_bin_edges(s, bins=bins)
    if y_true is None:
        ax.hist(s, bins=edges, alpha=0.7, label="all")
    else:
        y = np.asarray(y_true)
        ax.hist(s[y == 0], bins=edges, alpha=0.6, density=True, label="legitimate")
        ax.hist(s[y == 1], bins=edges, alpha=0.6, density=True, label="fraud")
    if threshold is not None:
        ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set(
        xlabel="score",
        ylabel="density" if y_true is not None else "rows",
        title="Score distribution",
    )
    ax.legend()
    return ax
