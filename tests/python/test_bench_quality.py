"""benchmarks/bench_quality.py: its quick mode runs end to end on generated data,
and the pieces its figures rest on do what its docstring says."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fraudcore import FraudDetector, Schema, build_features
from fraudcore.datasets import make_transactions

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
FIGURES = {"roc_auc", "pr_auc", "detection_at_5pct_fpr", "recall", "precision"}


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_quality

        yield bench_quality
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_quick_mode_reports_every_method_on_both_splits(tmp_path, bench):
    out = tmp_path / "quality.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_quality.py"), "--quick", "--json", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    methods = {
        "sklearn_iforest_raw",
        "hgb_raw",
        "hgb_features",
        "fraudcore_default",
        *(f"fraudcore_{name}" for name in bench.DETECTORS),
    }
    if report["supervised_stage"]:
        methods |= {f"fraudcore_supervised_{share:.0%}" for share in bench.LABEL_SHARES}
    runs = report["transactions"]["make_transactions"]
    assert set(runs) == {"random", "time"}
    for by_seed in runs.values():
        assert list(by_seed) == ["0"]
        for figures in by_seed.values():
            assert set(figures) == methods
            for name, values in figures.items():
                if "error" in values:  # the stage may refuse a handful of labelled fraud rows
                    assert name in ("fraudcore_supervised_10%", "fraudcore_supervised_1%"), (
                        name,
                        values,
                    )
                    continue
                assert set(values) == FIGURES and all(0.0 <= v <= 1.0 for v in values.values()), (
                    values
                )
    means = report["means"]["make_transactions"]["random"]
    assert (
        means["hgb_raw"] == runs["random"]["0"]["hgb_raw"]
    )  # one seed: the mean is that seed's figures
    assert any(
        t["target"].startswith("make_transactions random: default ROC-AUC")
        for t in report["targets"]
    )
    assert "make_transactions, random 70/30 split" in proc.stdout


def test_raw_columns_are_numbers_seconds_and_ordinal_codes(bench):
    data = pd.DataFrame(
        {
            "value": [3.5, 1.0, 2.0],
            "when": pd.to_datetime(
                ["1970-01-01 00:00:10", "1970-01-01 00:01:00", "1970-01-02 00:00:00"]
            ),
            "browser": ["Safari", "Chrome", "Safari"],
        }
    )
    expected = [[3.5, 10.0, 1.0], [1.0, 60.0, 0.0], [2.0, 86_400.0, 1.0]]
    np.testing.assert_array_equal(bench.raw_matrix(data, ["value", "when", "browser"]), expected)


def test_partial_labels_keep_a_stratified_share(bench):
    y = np.r_[np.zeros(900, np.int8), np.ones(100, np.int8)]
    train = np.ones(1000, dtype=bool)
    train[::10] = False  # 90 fraud, 810 legitimate training rows
    labels = bench.partial_labels(y, train, 0.1, seed=0)
    kept = ~np.isnan(labels)
    assert len(labels) == 900 and kept.sum() == 90
    np.testing.assert_array_equal(labels[kept], y[train][kept])
    assert labels[kept].sum() == 9
    assert np.array_equal(
        np.isnan(bench.partial_labels(y, train, 1.0, seed=0)), np.zeros(900, bool)
    )


def test_matrix_detector_runs_fraud_detectors_own_pipeline(bench):
    # Fed the features FraudDetector builds, the matrix subclass must give the
    # same risk scores as FraudDetector on the transactions themselves.
    data = make_transactions(n_customers=40, n_transactions=1500, fraud_rate=0.02, seed=3).drop(
        columns=["is_fraud", "fraud_pattern"]
    )
    schema = Schema.transactions()
    ours = FraudDetector(schema, random_state=0).fit(data).score(data, reasons=None)
    features = build_features(data, schema)
    theirs = (
        bench.MatrixFraudDetector(Schema(timestamp="unused", amount="unused"), random_state=0)
        .fit(features)
        .score(features, reasons=None)
    )
    np.testing.assert_array_equal(ours["risk_score"].to_numpy(), theirs["risk_score"].to_numpy())
