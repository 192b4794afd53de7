"""Evaluation of fraud scores against known labels.

Every function takes ``y_true`` (1 = fraud, 0 = legitimate) and ``scores``
where **higher means riskier** (pass ``-model.score_samples(X)`` for a
scikit-learn-style detector), and answers what a fraud team asks: how well
do the scores rank fraud (ROC-AUC, PR-AUC), what happens at a threshold
(precision, recall, F1, the confusion matrix), how much fraud is caught at
a tolerable false-positive rate, and which threshold reaches a target
recall. A transaction is an alert when its score is >= the threshold.

Values equal scikit-learn's on the same inputs (ties included); the tests
compare them.
"""

import numpy as np
import pandas as pd

__all__ = [
    "average_precision",
    "compare",
    "confusion_matrix",
    "cross_validate",
    "detection_rate_at_fpr",
    "evaluate",
    "precision_recall_f1",
    "roc_auc",
    "threshold_for_recall",
]


def _check(y_true, scores):
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(
            f"y_true and scores must be 1-D of one length, got shapes {y.shape} and {s.shape}"
        )
    if len(y) == 0:
        raise ValueError("y_true and scores are empty")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 (legitimate) and 1 (fraud)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    return y.astype(np.int8), s


def _two_classes(y):
    if y.min() == y.max():
        raise ValueError(
            "y_true holds one class only: ROC-AUC and PR-AUC need fraud and legitimate rows"
        )


def _curve(y, s):
    """Distinct thresholds (descending) with true and false positives at each."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1]
    tp = np.cumsum(y_sorted)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return s_sorted[last_of_tie], tp, fp


def roc_auc(y_true, scores):
    """Area under the ROC curve (tied scores count one half), as sklearn's roc_auc_score."""
    y, s = _check(y_true, scores)
    _two_classes(y)
    _, tp, fp = _curve(y, s)
    tpr = np.r_[0, tp] / tp[-1]
    fpr = np.r_[0, fp] / fp[-1]
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def average_precision(y_true, scores):
    """PR-AUC as the step sum of precision over recall gains (sklearn's average_precision_score)."""
    y, s = _check(y_true, scores)
    _two_classes(y)
    _, tp, fp = _curve(y, s)
    precision = tp / (tp + fp)
    recall_gain = np.diff(np.r_[0, tp]) / tp[-1]
    return float(np.sum(recall_gain * precision))


def confusion_matrix(y_true, scores, threshold):
    """[[TN, FP], [FN, TP]] for alerts at score >= threshold (sklearn's layout)."""
    y, s = _check(y_true, scores)
    alert = s >= threshold
    tp = int(np.sum(alert & (y == 1)))
    fp = int(np.sum(alert & (y == 0)))
    fn = int(np.sum(~alert & (y == 1)))
    return np.array([[len(y) - tp - fp - fn, fp], [fn, tp]])


def precision_recall_f1(y_true, scores, threshold):
    """(precision, recall, F1) of alerts at score >= threshold; 0 where undefined (sklearn's zero_division=0)."""
    (_, fp), (fn, tp) = confusion_matrix(y_true, scores, threshold)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def detection_rate_at_fpr(y_true, scores, max_fpr=0.05):
    """The largest recall any threshold reaches with a false-positive rate <= max_fpr.

    Returns ``(detection_rate, threshold)``; the threshold is the lowest
    score to alert on (every row scoring >= it is an alert).
    """
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr!r}")
    y, s = _check(y_true, scores)
    _two_classes(y)
    thresholds, tp, fp = _curve(y, s)
    allowed = fp <= max_fpr * fp[-1]
    if not allowed.any():
        return 0.0, float(np.nextafter(thresholds[0], np.inf))
    best = np.flatnonzero(allowed)[-1]  # the lowest allowed threshold catches the most
    return float(tp[best] / tp[-1]), float(thresholds[best])


def threshold_for_recall(y_true, scores, target_recall):
    """The highest threshold whose alerts catch at least target_recall of the fraud.

    Returns ``(threshold, precision, recall)`` at that threshold: the
    calibration a fraud team runs on labelled history.
    """
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}")
    y, s = _check(y_true, scores)
    if y.sum() == 0:
        raise ValueError("y_true holds no fraud: a recall target needs labelled fraud")
    thresholds, tp, fp = _curve(y, s)
    first = int(np.argmax(tp / tp[-1] >= target_recall - 1e-12))
    return (
        float(thresholds[first]),
        float(tp[first] / (tp[first] + fp[first])),
        float(tp[first] / tp[-1]),
    )


def evaluate(y_true, scores, threshold, *, max_fpr=0.05):
    """Every figure above at once, as a dict (one row of :func:`compare`)."""
    y, s = _check(y_true, scores)
    precision, recall, f1 = precision_recall_f1(y, s, threshold)
    (tn, fp), (fn, tp) = confusion_matrix(y, s, threshold)
    both = y.min() != y.max()
    return {
        "roc_auc": roc_auc(y, s) if both else float("nan"),
        "pr_auc": average_precision(y, s) if both else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        f"detection_at_fpr_{max_fpr:g}": detection_rate_at_fpr(y, s, max_fpr)[0]
        if both
        else float("nan"),
        "alerts": int(tp + fp),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "tn": int(tn),
    }


def compare(y_true, scores_by_detector, *, thresholds=None, contamination=None, max_fpr=0.05):
    """A table comparing detectors' scores on the same labels.

    ``scores_by_detector`` maps a name to its scores (higher = riskier).
    Each detector's threshold comes from ``thresholds[name]`` or, failing
    that, its (1 - contamination) quantile (contamination defaults to the
    fraud rate of y_true). Rows are sorted by PR-AUC, best first.
    """
    y = np.asarray(y_true)
    rate = float(np.mean(y)) if contamination is None else float(contamination)
    rows = {}
    for name, scores in scores_by_detector.items():
        s = np.asarray(scores, dtype=np.float64)
        threshold = (thresholds or {}).get(name)
        if threshold is None:
            threshold = float(np.quantile(s, 1.0 - rate)) if rate > 0 else float(np.max(s)) + 1.0
        rows[name] = {**evaluate(y, s, threshold, max_fpr=max_fpr), "threshold": threshold}
    return pd.DataFrame.from_dict(rows, orient="index").sort_values("pr_auc", ascending=False)


def cross_validate(detector, data, y, *, n_splits=5, random_state=None, max_fpr=0.05):
    """Stratified K-fold cross-validation of a whole FraudDetector, by entity.

    Folds hold whole entities (each customer's full history stays in one
    fold, so point-in-time features are the same as in production), and
    each fold has about the same share of entities with fraud. Every fold
    refits a clone of ``detector`` on the other folds and scores its own.

    Parameters
    ----------
    detector : FraudDetector (unfitted parameters are used; it is cloned)
    data : DataFrame of transactions
    y : array-like or column name of labels (1 = fraud)
    n_splits : int >= 2

    Returns
    -------
    DataFrame, one row per fold and a final "mean" row, with the columns of
    :func:`evaluate` at each fold's own threshold.
    """
    from sklearn.base import clone

    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits!r}")
    labels = np.asarray(data[y] if isinstance(y, str) else y).astype(np.int8)
    if len(labels) != len(data):
        raise ValueError("y must hold one label per row of data")
    schema = detector.schema
    entity = data[schema.entity].to_numpy() if schema.entity is not None else np.zeros(len(data))
    codes, uniques = pd.factorize(entity)
    has_fraud = np.bincount(codes, weights=labels, minlength=len(uniques)) > 0
    rng = np.random.default_rng(random_state)
    fold_of_entity = np.empty(len(uniques), dtype=np.int64)
    for group in (np.flatnonzero(has_fraud), np.flatnonzero(~has_fraud)):  # stratified by entity
        shuffled = rng.permutation(group)
        fold_of_entity[shuffled] = np.arange(len(shuffled)) % n_splits
    fold = fold_of_entity[codes]
    rows = {}
    for k in range(n_splits):
        test = fold == k
        if labels[test].min() == labels[test].max():
            raise ValueError(f"fold {k} holds one class only; use fewer splits")
        model = clone(detector).fit(data[~test], y=labels[~test])
        risk = model.score(data[test], reasons=None)["risk_score"].to_numpy()
        rows[f"fold {k}"] = {
            **evaluate(labels[test], risk, model.threshold_, max_fpr=max_fpr),
            "threshold": model.threshold_,
        }
    table = pd.DataFrame.from_dict(rows, orient="index").astype(float)
    return pd.concat([table, table.mean().to_frame("mean").T])
