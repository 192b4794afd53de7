"""The supervised stage: native trees equal scikit-learn's, exact TreeSHAP,
calibration, persistence, and FraudDetector with full, partial and no labels."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

import fraudcore
from fraudcore import FraudDetector, Schema, metrics
from fraudcore.datasets import make_transactions
from fraudcore.supervised import (
    GradientBoostingStage,
    _from_histogram_gradient_boosting,
    _platt,
    _smote,
)


def _labelled(n=3000, d=5, seed=0, missing=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if missing:
        X[::11, 1] = np.nan  # missing values take the learned side
    y = (X[:, 0] + X[:, 2] * X[:, 3] + rng.normal(size=n) > 1.5).astype(int)
    return X, y


def test_native_trees_score_as_scikit_learn():
    X, y = _labelled(missing=True)
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X, y)
    native = _from_histogram_gradient_boosting(model, X.shape[1])
    np.testing.assert_allclose(
        native.decision_function(X, 2), model.decision_function(X), rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(
        native.decision_function(X.astype(np.float32), 1),
        native.decision_function(X.astype(np.float32).astype(np.float64), 2),
    )


def _conditional_expectation(nodes, baseline, x, known):
    """E[f(x) | x_known] with unknown features averaged by cover: the game TreeSHAP solves."""

    def walk(k):
        f = nodes["feature"][k]
        if f < 0:
            return nodes["value"][k]
        left, right = nodes["left"][k], nodes["right"][k]
        if f in known:
            go_left = (
                nodes["missing_left"][k] != 0 if np.isnan(x[f]) else x[f] <= nodes["threshold"][k]
            )
            return walk(left if go_left else right)
        cover = nodes["cover"]
        return (cover[left] * walk(left) + cover[right] * walk(right)) / cover[k]

    return baseline + sum(walk(root) for root in nodes["tree_begin"])


def test_contributions_are_exact_shapley_values():
    X, y = _labelled(d=5)
    stage = GradientBoostingStage(max_iter=12, max_leaf_nodes=8, random_state=0).fit(X, y)
    rows = X[:12]
    phi = stage.contributions(rows)
    np.testing.assert_allclose(
        phi.sum(axis=1), stage.decision_function(rows), atol=1e-10
    )  # local accuracy
    nodes, d = stage._native.export_nodes(), X.shape[1]
    baseline = stage._native.baseline
    for x, values in zip(rows, phi):
        for i in range(d):
            others = [j for j in range(d) if j != i]
            shapley = 0.0
            for size in range(d):
                weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                for subset in itertools.combinations(others, size):
                    shapley += weight * (
                        _conditional_expectation(nodes, baseline, x, {*subset, i})
                        - _conditional_expectation(nodes, baseline, x, set(subset))
                    )
            assert values[i] == pytest.approx(shapley, abs=1e-9)
        assert values[d] == pytest.approx(
            _conditional_expectation(nodes, baseline, x, set()), abs=1e-9
        )


def test_contributions_do_not_depend_on_threads():
    X, y = _labelled(n=5000)
    stage = GradientBoostingStage(max_iter=30, random_state=0).fit(X, y)
    one = stage.set_params(n_jobs=1).contributions(X)
    np.testing.assert_array_equal(one, stage.set_params(n_jobs=2).contributions(X))


def test_platt_matches_a_logistic_fit_and_calibrates():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=20_000) * 2.0
    y = (rng.random(raw.size) < 1.0 / (1.0 + np.exp(-(0.7 * raw - 2.0)))).astype(int)
    slope, intercept = _platt(raw, y)
    assert slope == pytest.approx(0.7, abs=0.05) and intercept == pytest.approx(-2.0, abs=0.1)
    separable = np.r_[np.zeros(50), np.ones(5)]
    assert all(np.isfinite(_platt(separable * 10.0, separable)))  # smoothed targets: finite


def test_class_weights_shift_raw_scores_but_calibration_takes_it_out():
    X, y = _labelled(n=20_000, seed=3)
    X_fit, y_fit, X_cal, y_cal = X[:14_000], y[:14_000], X[14_000:], y[14_000:]
    stage = GradientBoostingStage(max_iter=60, random_state=0).fit(
        X_fit, y_fit, X_calibration=X_cal, y_calibration=y_cal
    )
    p = stage.predict_proba(X_cal)[:, 1]
    assert p.mean() == pytest.approx(y_cal.mean(), abs=0.01)  # calibrated on average
    raw = 1.0 / (1.0 + np.exp(-stage.decision_function(X_cal)))
    assert raw.mean() > y_cal.mean() + 0.1  # balanced class weights alone overstate fraud


def test_smote_adds_fraud_rows_between_fraud_rows():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(500, 2)), rng.normal(loc=5.0, size=(20, 2))])
    y = np.r_[np.zeros(500, int), np.ones(20, int)]
    X2, y2 = _smote(X, y, 5, rng)
    assert (y2 == 1).sum() == (y2 == 0).sum() == 500
    synthetic = X2[len(X) :]
    assert np.all(synthetic.min(axis=0) >= X[y == 1].min(axis=0) - 1e-12)
    assert np.all(synthetic.max(axis=0) <= X[y == 1].max(axis=0) + 1e-12)
    stage = GradientBoostingStage(imbalance="smote", max_iter=10, random_state=0).fit(X, y)
    assert stage.n_synthetic_ == 480


def test_stage_round_trips_and_refuses_corrupted_trees(tmp_path):
    X, y = _labelled()
    stage = GradientBoostingStage(max_iter=20, random_state=0).fit(X, y)
    loaded = fraudcore.load(stage.save(tmp_path / "stage.fc"))
    np.testing.assert_array_equal(loaded.predict_proba(X), stage.predict_proba(X))
    np.testing.assert_array_equal(loaded.contributions(X[:50]), stage.contributions(X[:50]))
    body = bytearray(stage._native.serialize())
    nodes = stage._native.export_nodes()
    # Point the root's left child back at the root: a cycle the loader must refuse.
    offset = (
        8
        + 8
        + 8
        + 8 * len(nodes["tree_begin"])
        + 8
        + 4 * len(nodes["feature"])
        + 8
        + 8 * len(nodes["threshold"])
        + 8
    )
    body[offset : offset + 4] = np.int32(0).tobytes()
    with pytest.raises(fraudcore.ModelFormatError, match="child"):
        fraudcore._core.TreeEnsembleModel.deserialize(bytes(body))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"imbalance": "oversample"}, "imbalance"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_stage_parameters_are_checked(bad, message):
    X, y = _labelled(n=200)
    with pytest.raises(ValueError, match=message):
        GradientBoostingStage(**bad).fit(X, y)


def test_stage_needs_both_classes():
    X, _ = _labelled(n=200)
    with pytest.raises(ValueError, match="fraud and legitimate"):
        GradientBoostingStage().fit(X, np.zeros(200, int))


@pytest.fixture(scope="module")
def transactions():
    return make_transactions(n_customers=400, n_transactions=20_000, fraud_rate=0.03, seed=5)


def test_labels_make_the_detector_supervised_and_better(transactions):
    data = transactions
    cut = int(0.7 * len(data))
    y = data["is_fraud"].to_numpy()
    schema = Schema.transactions()
    unsupervised = FraudDetector(schema, supervised=False, random_state=0).fit(data.iloc[:cut])
    supervised = FraudDetector(schema, target_recall=0.8, random_state=0).fit(
        data.iloc[:cut], y[:cut]
    )
    assert unsupervised.supervised_ is None and supervised.supervised_ is not None
    ap = {
        name: metrics.average_precision(y[cut:], m.score(data)["risk_score"].to_numpy()[cut:])
        for name, m in (("unsupervised", unsupervised), ("supervised", supervised))
    }
    assert ap["supervised"] > ap["unsupervised"] + 0.02
    result = supervised.score(data).iloc[cut:]
    assert result["fraud_probability"].between(0, 1).all()
    recall = result["is_alert"].to_numpy()[y[cut:] == 1].mean()
    assert recall == pytest.approx(0.8, abs=0.1)
    alerts = result[result["is_alert"]]
    assert all(len(r) >= 1 for r in alerts["reasons"])


def test_partial_labels_train_the_trees_on_the_labelled_rows_only(transactions):
    data = transactions.iloc[:14_000]
    y = data["is_fraud"].to_numpy().astype(float)
    partial = y.copy()
    partial[np.random.default_rng(0).random(len(y)) > 0.2] = np.nan
    model = FraudDetector(Schema.transactions(), random_state=0).fit(data, partial)
    held = model.training_metrics_["rows"]
    assert 0.2 < held / int((~np.isnan(partial)).sum()) < 0.4  # 30% of the labelled customers
    assert model.n_training_rows_ == len(data) - held  # unlabelled rows train the detectors
    with pytest.raises(ValueError, match="NaN"):
        FraudDetector(Schema.transactions()).fit(data, np.where(np.isnan(partial), 2, partial))
    with pytest.raises(ValueError, match="all missing"):
        FraudDetector(Schema.transactions()).fit(data, np.full(len(data), np.nan))


def _held_out(model_cls_kwargs, data, y):
    """The rows FraudDetector holds out, recovered from its split."""
    model = FraudDetector(Schema.transactions(), **model_cls_kwargs)
    labels = model._labels(data, y)
    return ~model._validation_split(data, labels, np.random.default_rng(0))


def test_group_validation_keeps_each_customer_on_one_side(transactions):
    data, y = transactions, transactions["is_fraud"].to_numpy()
    held = _held_out({"validation": "group"}, data, y)
    customers = data["customer_id"].to_numpy()
    assert not set(customers[held]) & set(customers[~held])
    assert held.mean() == pytest.approx(0.3, abs=0.05)
    assert y[held].sum() > 0 and y[~held].sum() > 0


def test_time_validation_holds_out_the_latest_rows(transactions):
    data = transactions
    shuffled = data.sample(frac=1.0, random_state=1)
    held = _held_out({"validation": "time"}, shuffled, shuffled["is_fraud"].to_numpy())
    times = shuffled["timestamp"].to_numpy()
    assert times[held].min() >= times[~held].max()
    assert held.mean() == pytest.approx(0.3, abs=0.001)


def test_supervised_detector_round_trips(transactions, tmp_path):
    data = transactions.iloc[:8000]
    model = FraudDetector(Schema.transactions(), random_state=0, target_recall=0.8).fit(
        data, "is_fraud"
    )
    loaded = fraudcore.load(model.save(tmp_path / "m.fc"))
    pd.testing.assert_frame_equal(loaded.score(data), model.score(data))
    unsupervised = FraudDetector(Schema.transactions(), supervised=False, random_state=0).fit(
        data, "is_fraud"
    )
    assert unsupervised.supervised_ is None
    assert fraudcore.load(unsupervised.save(tmp_path / "u.fc")).supervised_ is None


def test_supervised_needs_labels(transactions):
    with pytest.raises(ValueError, match="supervised=True need labels"):
        FraudDetector(Schema(timestamp="timestamp", amount="amount"), supervised=True).fit(
            transactions
        )
    with pytest.raises(ValueError, match="supervised_params"):
        FraudDetector(Schema.transactions(), supervised_params={"depth": 3}).fit(
            transactions, "is_fraud"
        )


def test_fraud_data_with_labels_ranks_calibrates_and_explains(shared_data):
    """Real data: the labelled Fraud_Data subset, a random 70/30 split."""
    from fraudcore.datasets import load_fraud_data

    data, _ = load_fraud_data(
        shared_data / "fraud_data_subset.csv.gz", shared_data / "ip_to_country_subset.csv.gz"
    )
    test = np.random.default_rng(0).random(len(data)) < 0.3
    y = data["class"].to_numpy()
    model = FraudDetector(Schema.fraud_data(), target_recall=0.8, random_state=0).fit(data[~test])
    result = model.score(data)[test]
    assert (
        metrics.average_precision(y[test], result["risk_score"]) > 0.6
    )  # unsupervised: about 0.34
    assert result["is_alert"].to_numpy()[y[test] == 1].mean() == pytest.approx(0.8, abs=0.05)
    # A purchase within the signup minute is the data's strongest signal: the reasons say so.
    delay = (data["purchase_time"] - data["signup_time"]).dt.total_seconds().to_numpy()[test]
    fast_alerts = result[result["is_alert"].to_numpy() & (delay < 60)]
    named = fast_alerts["reasons"].map(
        lambda reasons: any("after signing up" in r for r in reasons)
    )
    assert len(fast_alerts) > 100 and named.mean() > 0.9


def test_retrain_keeps_the_detectors_and_compares_with_the_previous_model(transactions, tmp_path):
    first, later = transactions.iloc[:10_000], transactions.iloc[10_000:]
    model = FraudDetector(Schema.transactions(), random_state=0).fit(first.drop(columns="is_fraud"))
    y = later["is_fraud"].to_numpy().astype(float)
    y[np.random.default_rng(0).random(len(y)) < 0.5] = np.nan  # half the labels have arrived
    new = model.set_params(target_recall=0.8).retrain(later, y)
    assert model.supervised_ is None and new.supervised_ is not None  # the old model is unchanged
    np.testing.assert_array_equal(
        new.models_["isolation_forest"].score_samples(np.zeros((1, len(model.feature_names_)))),
        model.models_["isolation_forest"].score_samples(np.zeros((1, len(model.feature_names_)))),
    )
    previous, now = new.training_metrics_["previous"], new.training_metrics_
    assert now["on"] == "validation" and now["pr_auc"] > previous["pr_auc"]
    loaded = fraudcore.load(new.save(tmp_path / "v2.fc"))
    pd.testing.assert_frame_equal(loaded.score(later), new.score(later))


def test_retrain_command_joins_labels_on_the_transaction_id(transactions, tmp_path):
    from fraudcore.cli import main

    first, later = transactions.iloc[:10_000], transactions.iloc[10_000:]
    first.drop(columns="is_fraud").to_csv(tmp_path / "first.csv", index=False)
    later.to_csv(tmp_path / "later.csv", index=False)
    labels = (
        later[["transaction_id", "is_fraud"]]
        .rename(columns={"is_fraud": "label"})
        .sample(frac=0.6, random_state=0)
    )
    labels.to_csv(tmp_path / "labels.csv", index=False)
    assert (
        main(["train", str(tmp_path / "first.csv"), "--out", str(tmp_path / "m.fc"), "--quiet"])
        == 0
    )
    assert (
        main(
            [
                "retrain",
                str(tmp_path / "m.fc"),
                str(tmp_path / "later.csv"),
                "--labels",
                str(tmp_path / "labels.csv"),
                "--target-recall",
                "0.8",
                "--out",
                str(tmp_path / "m2.fc"),
                "--quiet",
            ]
        )
        == 0
    )
    import json

    report = json.loads((tmp_path / "m2.fc.metrics.json").read_text())
    assert set(report) == {"model", "previous_model", "on", "rows", "new", "previous"}
    assert 0.2 < report["rows"] / len(labels) < 0.4  # 30% of the customers (validation="group")
    assert report["new"]["recall"] == pytest.approx(0.8, abs=0.1) and report["new"]["pr_auc"] > 0.5
    assert fraudcore.load(tmp_path / "m2.fc").supervised_ is not None
    bad = labels.assign(label=2)
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert (
        main(
            [
                "retrain",
                str(tmp_path / "m.fc"),
                str(tmp_path / "later.csv"),
                "--labels",
                str(tmp_path / "bad.csv"),
                "--out",
                str(tmp_path / "m3.fc"),
                "--quiet",
            ]
        )
        == 1
    )
    assert not (tmp_path / "m3.fc").exists()


def test_too_few_labels_fall_back_to_the_ensemble_with_a_warning(transactions):
    data = transactions.iloc[:6000]
    y = np.full(len(data), np.nan)
    fraud = np.flatnonzero(data["is_fraud"].to_numpy() == 1)[:8]
    legit = np.flatnonzero(data["is_fraud"].to_numpy() == 0)[:40]
    y[fraud], y[legit] = 1, 0
    with pytest.warns(UserWarning, match="too few"):
        model = FraudDetector(Schema.transactions(), random_state=0).fit(data, y)
    assert model.supervised_ is None and model.score(data)["is_alert"].any()
    y[np.flatnonzero(data["is_fraud"].to_numpy() == 1)[:12]] = (
        1  # enough for "auto", too few to split
    )
    with pytest.warns(UserWarning, match="learned no split"):
        model = FraudDetector(Schema.transactions(), validation="random", random_state=0).fit(
            data, y
        )
    assert model.supervised_ is None and model.score(data)["risk_score"].nunique() > 100


def test_retrain_refuses_a_batch_too_small_to_save(transactions):
    model = FraudDetector(Schema.transactions(), random_state=0).fit(
        transactions.iloc[:5000].drop(columns="is_fraud")
    )
    tail = transactions.iloc[5000:]
    batch = pd.concat(
        [tail[tail["is_fraud"] == 1].iloc[:10], tail[tail["is_fraud"] == 0].iloc[:25]]
    )
    with pytest.raises(ValueError, match="at least 30 training rows"):
        model.set_params(validation="random").retrain(batch, batch["is_fraud"].to_numpy())


def test_platt_on_a_single_score_is_the_base_rate():
    slope, intercept = _platt(np.full(6, 0.3), np.array([0, 0, 0, 0, 1, 1]))
    assert slope == 0.0 and 1.0 / (1.0 + np.exp(-intercept)) == pytest.approx(
        (2 / 3 * 2 + 4 / 6) / 6, abs=0.05
    )


def test_label_ids_match_whatever_type_they_were_read_as():
    from fraudcore.cli import _id_text

    read_as_floats = _id_text(pd.Series([7.0, np.nan, 12.0]))  # a missing id: the column is floats
    assert read_as_floats[0] == "7" and read_as_floats[2] == "12" and read_as_floats.isna()[1]
    assert list(_id_text(pd.Series([7, 12]))) == ["7", "12"]
    assert list(_id_text(pd.Series(["a7", "b"]))) == ["a7", "b"]
