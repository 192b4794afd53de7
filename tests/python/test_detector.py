"""FraudDetector: ensemble, thresholds, levels, reasons and the model file."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fraudcore
from fraudcore import Schema, metrics
from fraudcore.datasets import make_transactions
from fraudcore.detector import RISK_LEVELS, FraudDetector

SCHEMA = Schema.transactions()


@pytest.fixture(scope="module")
def transactions():
    return make_transactions(n_customers=1_500, n_transactions=40_000, fraud_rate=0.02, seed=3)


@pytest.fixture(scope="module")
def fitted(transactions):
    # The table holds the schema's label column; these tests are of the unsupervised ensemble.
    return FraudDetector(SCHEMA, supervised=False, random_state=0).fit(transactions.iloc[:30_000])


def test_scores_rank_fraud_and_follow_the_documented_scale(fitted, transactions):
    new = transactions.iloc[30_000:]
    out = fitted.score(new)
    y = new["is_fraud"].to_numpy()
    assert metrics.roc_auc(y, out["risk_score"]) > 0.9
    assert out["risk_score"].between(0, 1).all()
    assert out.index.equals(new.index)
    assert (out["is_alert"] == (out["risk_score"] >= fitted.threshold_)).all()
    for level, cut in RISK_LEVELS[:-1]:
        assert (out.loc[out["risk_level"] == level, "risk_score"] >= cut).all()
    assert set(out.loc[~out["is_alert"], "priority"]) == {5}
    assert out.loc[out["is_alert"], "priority"].between(1, 4).all()
    assert out["confidence"].between(0, 1 + 1e-12).all()
    alerts = out.loc[out["is_alert"], "reasons"]
    assert (
        alerts.map(len).between(1, 3).all()
        and (out.loc[~out["is_alert"], "reasons"].map(len) == 0).all()
    )


def test_results_start_with_the_rows_identifying_columns(fitted, transactions):
    new = transactions.iloc[30_000:30_500].set_axis(
        pd.RangeIndex(70_000, 70_500, name="source_row")
    )
    out = fitted.score(new)
    assert list(out.columns[:3]) == ["transaction_id", "customer_id", "risk_score"]
    assert out.index.equals(new.index)
    ids = ["transaction_id", "customer_id"]
    pd.testing.assert_frame_equal(out[ids], new[ids])
    clashing = Schema(**{**SCHEMA.to_dict(), "transaction_id": "reasons"})
    with pytest.raises(ValueError, match=r"\['reasons'\] of the schema have the names of score's"):
        FraudDetector(clashing).fit(
            transactions.iloc[:3_000].rename(columns={"transaction_id": "reasons"})
        )


def test_risk_score_is_the_training_percentile_of_the_ensemble(fitted, transactions):
    train = fitted.score(transactions.iloc[:30_000], reasons=None)
    # Without labels the threshold is 1 - contamination: about that share alerts.
    assert train["is_alert"].mean() == pytest.approx(fitted.contamination, abs=0.002)
    weights = fitted.weights_
    assert weights == {"isolation_forest": 0.8, "knn": 0.2}
    ensemble = sum(weights[d] * train[f"score_{d}"] for d in weights)
    order = np.argsort(ensemble.to_numpy(), kind="stable")
    assert np.all(np.diff(train["risk_score"].to_numpy()[order]) >= 0)  # monotone


def test_neighbour_detectors_index_a_sample(transactions):
    train = transactions.iloc[:30_000]
    sampled = FraudDetector(
        SCHEMA,
        detectors=("isolation_forest", "lof"),
        neighbor_samples=5_000,
        supervised=False,
        random_state=0,
    ).fit(train)
    assert sampled.models_["lof"].n_samples_fit_ == 5_000
    # Every training row has a LOF score for the normaliser and the risk
    # reference, not only the indexed ones.
    assert len(sampled._training_sorted["lof"]) == len(sampled._reference) == 30_000
    for samples in (None, 30_000, 100_000):
        every = FraudDetector(
            SCHEMA,
            detectors=("isolation_forest", "lof"),
            neighbor_samples=samples,
            supervised=False,
            random_state=0,
        ).fit(train)
        assert every.models_["lof"].n_samples_fit_ == 30_000


def test_knn_on_a_sample_with_calibration(transactions):
    train = transactions.iloc[:30_000]
    detector = FraudDetector(
        SCHEMA,
        detectors=("isolation_forest", "knn"),
        neighbor_samples=3_000,
        target_recall=0.8,
        supervised=False,
        validation="random",
        random_state=0,
    ).fit(train, y="is_fraud")
    assert detector.models_["knn"].n_samples_fit_ == 3_000
    assert len(detector._training_sorted["knn"]) == detector.n_training_rows_ == 21_000
    assert detector.training_metrics_["recall"] >= 0.8
    y = transactions["is_fraud"].to_numpy()[30_000:]
    assert metrics.roc_auc(y, detector.score(transactions.iloc[30_000:])["risk_score"]) > 0.9


def test_normal_scores_are_standard_normal_on_training_and_keep_the_rank_order(transactions):
    train = transactions.iloc[:30_000]
    normal = FraudDetector(SCHEMA, detectors=("isolation_forest",), random_state=0).fit(train)
    scores = normal.score(train, reasons=None)["score_isolation_forest"]
    assert abs(scores.mean()) < 0.02 and abs(scores.std() - 1.0) < 0.05
    ranked = FraudDetector(
        SCHEMA, detectors=("isolation_forest",), normalization="rank", random_state=0
    )
    ranks = ranked.fit(train).score(train, reasons=None)["score_isolation_forest"]
    assert ranks.between(0, 1).all()
    order = np.argsort(ranks.to_numpy(), kind="stable")
    assert np.all(np.diff(scores.to_numpy()[order]) >= 0)
    assert scores.max() < 4.5  # a new extreme row stands at most at the top of the training scores


def test_a_model_file_without_newer_parameters_loads_with_their_defaults(fitted, tmp_path):
    import json

    from fraudcore import _core

    data = fitted._to_bytes()
    _, kind, meta, body = _core.unpack_envelope(data)
    meta = json.loads(meta)
    for name in ("neighbor_samples", "verbose"):
        del meta["params"][name]
    (tmp_path / "old.fc").write_bytes(_core.pack_envelope(kind, json.dumps(meta).encode(), body))
    old = fraudcore.load(tmp_path / "old.fc")
    assert old.neighbor_samples == 16_384 and old.verbose is False
    # verbose is a display choice, not model state: it is saved as its default.
    fitted.set_params(verbose=True).save(tmp_path / "new.fc")
    fitted.set_params(verbose=False)
    assert fraudcore.load(tmp_path / "new.fc").verbose is False


def test_progress_bars_name_each_step(capsys):
    data = make_transactions(n_customers=100, n_transactions=3_000, seed=1)
    detector = FraudDetector(SCHEMA, verbose=True, random_state=0).fit(data)
    fit_bar = capsys.readouterr().err
    # The table holds labels: the supervised stage is a step of its own.
    assert "FraudDetector.fit" in fit_bar and "5/5" in fit_bar and "supervised" in fit_bar
    detector.score(data)
    score_bar = capsys.readouterr().err
    assert "FraudDetector.score" in score_bar and "4/4" in score_bar and "knn" in score_bar
    detector.set_params(verbose=False).score(data)
    assert capsys.readouterr().err == ""


def test_reasons_name_what_is_unusual(transactions):
    detector = FraudDetector(SCHEMA, random_state=0).fit(transactions.iloc[:30_000])
    customer = transactions.iloc[:30_000]["customer_id"].value_counts().index[0]
    history = transactions[transactions["customer_id"] == customer].iloc[:20]
    spike = history.iloc[[-1]].copy()
    spike["timestamp"] += pd.Timedelta(days=1)
    spike["amount"] = history["amount"].mean() * 40
    out = detector.score(pd.concat([history, spike]), reasons="all")
    last = out["reasons"].iloc[-1]
    assert any(
        "this customer's average" in r or "standard deviations" in r or "is unusual" in r
        for r in last
    ), last


def test_target_recall_calibrates_on_held_out_labels(transactions):
    fit_rows, new = transactions.iloc[:30_000], transactions.iloc[30_000:]
    # The ensemble's calibration (the supervised stage's is tested on real data in test_supervised.py).
    detector = FraudDetector(
        SCHEMA, target_recall=0.8, supervised=False, validation="random", random_state=0
    ).fit(fit_rows, y="is_fraud")
    assert detector.training_metrics_["on"] == "validation"
    assert detector.training_metrics_["recall"] >= 0.8
    # Score with the history (features see each customer's earlier rows), judge the new rows.
    # Fraud comes in bursts (~50 incidents here), so the held-out recall is noisy.
    risk = detector.score(transactions, reasons=None)["risk_score"].iloc[30_000:]
    recall = metrics.precision_recall_f1(new["is_fraud"], risk, detector.threshold_)[1]
    assert recall == pytest.approx(0.8, abs=0.15)


def test_fitted_weights_are_never_worse_than_the_best_single_detector(transactions):
    detector = FraudDetector(SCHEMA, weights="fit", supervised=False, random_state=0).fit(
        transactions.iloc[:30_000], y="is_fraud"
    )
    assert sum(detector.weights_.values()) == pytest.approx(1.0)
    # On the validation part the chosen weights beat or tie each detector alone.
    single = {}
    for name in ("isolation_forest", "knn"):
        alone = FraudDetector(
            SCHEMA,
            weights={
                "isolation_forest": float(name == "isolation_forest"),
                "knn": float(name == "knn"),
            },
            target_recall=0.5,
            supervised=False,
            random_state=0,
        ).fit(transactions.iloc[:30_000], y="is_fraud")
        single[name] = alone.training_metrics_["pr_auc"]
    assert detector.training_metrics_["pr_auc"] >= max(single.values()) - 1e-12


def test_model_file_round_trip_and_damage(fitted, transactions, tmp_path):
    path = fitted.save(tmp_path / "model.fc")
    new = transactions.iloc[30_000:31_000]
    expected = fitted.score(new)
    loaded = fraudcore.load(path)
    pd.testing.assert_frame_equal(loaded.score(new), expected)
    # A fresh process scores bit-identically.
    new.to_pickle(tmp_path / "new.pkl")
    script = (
        "import sys, numpy as np, pandas as pd, fraudcore; d = fraudcore.load(sys.argv[1]); "
        "np.save(sys.argv[3], d.score(pd.read_pickle(sys.argv[2]), reasons=None)['risk_score'].to_numpy())"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(path),
            str(tmp_path / "new.pkl"),
            str(tmp_path / "out.npy"),
        ],
        check=True,
    )
    fresh = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(fresh, expected["risk_score"].to_numpy())
    with open(path, "rb") as f:
        data = f.read()
    for cut in (10, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.fc").write_bytes(data[:cut])
        with pytest.raises(fraudcore.ModelFormatError):
            fraudcore.load(tmp_path / "cut.fc")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    (tmp_path / "flip.fc").write_bytes(bytes(flipped))
    with pytest.raises(fraudcore.ModelFormatError):
        fraudcore.load(tmp_path / "flip.fc")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"detectors": ("isolation_forest", "svm")}, "detectors must be distinct names"),
        ({"normalization": "softmax"}, "normalization must be one of"),
        ({"contamination": 0.9}, "contamination must be in"),
        ({"target_recall": 0.9}, "need labels"),
        ({"weights": {"isolation_forest": 1.0}}, "weights must give every detector"),
        ({"neighbor_samples": 10}, "neighbor_samples must be an integer >= 30"),
        ({"neighbor_samples": 2_000.0}, "neighbor_samples must be an integer >= 30"),
        ({"neighbor_samples": True}, "neighbor_samples must be an integer >= 30"),
    ],
)
def test_bad_parameters(params, message, transactions):
    data = transactions.iloc[:2_000].drop(columns="is_fraud")
    with pytest.raises(ValueError, match=message):
        FraudDetector(Schema.transactions(), **params).fit(data)


def test_bad_data(fitted, transactions):
    with pytest.raises(ValueError, match="lacks column"):
        fitted.score(transactions.drop(columns="amount"))
    with pytest.raises(ValueError, match="not fitted"):
        FraudDetector(SCHEMA).score(transactions)
    with pytest.raises(ValueError, match="only a fitted"):
        FraudDetector(SCHEMA).save("never.fc")


def test_cross_validation_keeps_each_customer_in_one_fold(transactions):
    table = metrics.cross_validate(
        FraudDetector(SCHEMA, detectors=("isolation_forest",), random_state=0),
        transactions.iloc[:20_000],
        "is_fraud",
        n_splits=3,
        random_state=0,
    )
    assert list(table.index) == ["fold 0", "fold 1", "fold 2", "mean"]
    assert table.loc["mean", "roc_auc"] == pytest.approx(table.iloc[:3]["roc_auc"].mean())
    assert (table.iloc[:3]["roc_auc"] > 0.8).all()
    assert table.iloc[:3][["tp", "fp", "fn", "tn"]].to_numpy().sum() == 20_000
    with pytest.raises(ValueError, match="n_splits"):
        metrics.cross_validate(FraudDetector(SCHEMA), transactions, "is_fraud", n_splits=1)


def test_classic_recipe(transactions):
    detector = FraudDetector(
        SCHEMA,
        detectors=("isolation_forest", "autoencoder"),
        detector_params={"autoencoder": {"epochs": 3}},
        random_state=0,
    )
    detector.fit(transactions.iloc[:20_000])
    results, high = detector.classic_recipe(transactions.iloc[20_000:30_000])
    expected = ((results["amount_zscore"] > 3) | (results["autoencoder_score"] > 0.85)).astype(
        float
    )
    pd.testing.assert_series_equal(results["RiskScore"], expected, check_names=False)
    assert set(results["RiskScore"].unique()) <= {0.0, 1.0}
    assert high.index.isin(results.index[results["is_alert"] | (results["confidence"] > 0)]).all()
    assert np.allclose(high["confidence"], 1.0) and len(high) > 0
    with pytest.raises(ValueError, match="needs a fitted FraudDetector with 'autoencoder'"):
        FraudDetector(SCHEMA, random_state=0).fit(transactions.iloc[:5_000]).classic_recipe(
            transactions.iloc[:10]
        )


def test_quantile_map_is_the_mid_rank_in_the_training_grid(fitted, transactions):
    X = fitted._features(transactions.iloc[30_000:]).to_numpy(np.float64, copy=True)
    X[0, 0] = np.nan
    expected = np.column_stack(
        [
            (
                np.searchsorted(fitted.quantiles_[:, j], X[:, j], side="left")
                + np.searchsorted(fitted.quantiles_[:, j], X[:, j], side="right")
            )
            / (2.0 * len(fitted.quantiles_))
            for j in range(X.shape[1])
        ]
    )
    np.testing.assert_array_equal(fitted._quantile_map(X), expected)
    with pytest.raises(ValueError, match="ascending"):
        fraudcore._core.quantile_map(X, fitted.quantiles_[::-1].copy(), 1)


def test_a_diverging_autoencoder_fails_the_fit_and_an_overflowing_one_the_load(
    transactions, tmp_path
):
    import struct

    from fraudcore.detector import _split_parts

    params = {"autoencoder": {"epochs": 2, "learning_rate": 1e6}}
    detector = FraudDetector(
        SCHEMA,
        detectors=("isolation_forest", "autoencoder"),
        detector_params=params,
        random_state=0,
    )
    with pytest.raises(
        ValueError, match=r"AutoEncoder training diverged in epoch 1\b.*learning_rate"
    ):
        detector.fit(transactions.iloc[:5_000])
    with pytest.raises(ValueError, match="only a fitted FraudDetector can be saved"):
        detector.save(tmp_path / "never.fc")

    # A sound detector whose autoencoder's weights are then set to 1e300 (checksums fixed):
    # refused on load, not a model that scores NaN.
    good = FraudDetector(
        SCHEMA,
        detectors=("isolation_forest", "autoencoder"),
        detector_params={"autoencoder": {"epochs": 1}},
        random_state=0,
    )
    data = good.fit(transactions.iloc[:5_000]).__getstate__()["fraudcore_model"]
    assert (
        fraudcore.load(good.save(tmp_path / "good.fc"))
        .score(transactions.iloc[:50])["risk_score"]
        .notna()
        .all()
    )
    _, kind, meta, body = fraudcore._core.unpack_envelope(data)
    parts = _split_parts(body)
    _, ae_kind, ae_meta, ae_body = fraudcore._core.unpack_envelope(parts[1])
    n_sizes = struct.unpack_from("<Q", ae_body)[0]
    sizes = struct.unpack_from(f"<{n_sizes}q", ae_body, 8)
    count = sum(o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:]))
    huge = ae_body[: -8 * count] + np.full(count, 1e300, dtype="<f8").tobytes()
    parts[1] = fraudcore._core.pack_envelope(ae_kind, ae_meta, huge)
    body = b"".join(struct.pack("<Q", len(p)) + p for p in parts)
    (tmp_path / "bad.fc").write_bytes(fraudcore._core.pack_envelope(kind, meta, body))
    with pytest.raises(fraudcore.ModelFormatError, match="NaN or infinite|too large"):
        fraudcore.load(tmp_path / "bad.fc")
