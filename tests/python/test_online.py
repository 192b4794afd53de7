"""OnlineScorer: streaming results equal FraudDetector.score's, bit for bit.

The reference of a transaction at position k of a time-ordered table is
``detector.score(rows[:k + 1]).iloc[-1]``; a batch score of ``rows[:j]``
gives it for every k < j at once (a row's features use only earlier rows).
"""

import math
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import fraudcore
from fraudcore import FeatureState, FraudDetector, OnlineScorer, Schema
from fraudcore.datasets import make_transactions

SCHEMA = Schema.transactions()
N_TRAIN, N_HISTORY = 3_000, 3_400  # fitted on the first rows; streamed after the history


@pytest.fixture(scope="module")
def rows():
    data = make_transactions(n_customers=150, n_transactions=4_000, fraud_rate=0.03, seed=5)
    return data.reset_index(drop=True)


def _fit(rows, **params):
    """An unsupervised detector fitted on the first N_TRAIN rows."""
    return FraudDetector(SCHEMA, random_state=0, n_jobs=1, supervised=False, **params).fit(
        rows.iloc[:N_TRAIN]
    )


DETECTORS = {
    "if_knn": {"supervised": False},
    "if_lof": {"supervised": False, "detectors": ("isolation_forest", "lof")},
    "if_knn_supervised": {"supervised": True},
    "if_lof_supervised": {"supervised": True, "detectors": ("isolation_forest", "lof")},
    "all": {
        "supervised": True,
        "detectors": ("isolation_forest", "lof", "autoencoder", "knn"),
        "detector_params": {"autoencoder": {"epochs": 2}},
        "neighbor_samples": 1_000,
    },
}


@pytest.fixture(scope="module", params=list(DETECTORS))
def detector(request, rows):
    params = dict(DETECTORS[request.param])
    labelled = params.pop("supervised")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fitted = FraudDetector(SCHEMA, random_state=0, n_jobs=1, supervised=labelled, **params)
        fitted.fit(rows.iloc[:N_TRAIN], rows["is_fraud"].iloc[:N_TRAIN] if labelled else None)
    assert (fitted.supervised_ is not None) == labelled
    return fitted


def assert_same(result, expected, features=None):
    """One OnlineScorer result against a row of FraudDetector.score."""
    assert list(result) == [*expected.index, "features", "reason_details"]
    for column, value in expected.items():
        if column == "reasons":
            assert result[column] == list(value)
        elif isinstance(value, (float, np.floating)):
            assert isinstance(result[column], float)
            np.testing.assert_array_equal(result[column], value, err_msg=column)
        else:
            assert result[column] == value, column
    assert [d["text"] for d in result["reason_details"]] == result["reasons"]
    if features is not None:
        assert list(result["features"]) == list(features.index)
        np.testing.assert_array_equal(list(result["features"].values()), features.to_numpy())


def test_score_one_equals_score_of_the_rows_so_far(detector, rows):
    scorer = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY])
    records = rows.to_dict("records")
    end = len(rows) - 2
    expected = detector.score(rows.iloc[:end])
    features = detector._features(rows.iloc[:end])
    results = [scorer.score_one(records[k]) for k in range(N_HISTORY, end)]
    for k, result in zip(range(N_HISTORY, end), results):
        assert_same(result, expected.iloc[k], features.iloc[k])
    assert any(r["is_alert"] for r in results)
    # the literal definition, for a few rows
    for k in (end, end + 1):
        assert_same(scorer.score_one(records[k]), detector.score(rows.iloc[: k + 1]).iloc[-1])


def test_score_many_equals_score(detector, rows):
    scorer = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY])
    records = rows.to_dict("records")
    expected = detector.score(rows.iloc[: N_HISTORY + 300])
    first = scorer.score_many(records[N_HISTORY : N_HISTORY + 200])
    frame = rows.iloc[N_HISTORY + 200 : N_HISTORY + 300]
    second = scorer.score_many(frame)  # a DataFrame too
    for k, result in zip(range(N_HISTORY, N_HISTORY + 300), first + second):
        assert_same(result, expected.iloc[k])


def test_a_batch_with_several_transactions_of_one_customer(rows):
    detector = _fit(rows)
    customer = rows["customer_id"].iloc[N_HISTORY:].value_counts().index[0]
    own = rows.index[(rows["customer_id"] == customer) & (rows.index >= N_HISTORY)][:6]
    assert len(own) >= 4
    batch = sorted({*own, *range(N_HISTORY, N_HISTORY + 10)})  # time order = row order
    history = rows.iloc[:N_HISTORY]
    table = pd.concat([history, rows.loc[batch]])
    expected = detector.score(table).iloc[len(history) :]
    scorer = OnlineScorer.from_history(detector, history)
    results = scorer.score_many([rows.loc[k].to_dict() for k in batch])
    for result, (_, row) in zip(results, expected.iterrows()):
        assert_same(result, row)
    counts = [r["features"]["entity_count"] for r, k in zip(results, batch) if k in set(own)]
    assert counts == sorted(counts) and counts[-1] == counts[0] + len(counts) - 1


def test_reasons_all_and_none(rows):
    detector = _fit(rows)
    records = rows.to_dict("records")[N_HISTORY : N_HISTORY + 40]
    for reasons in ("all", None):
        expected = detector.score(rows.iloc[: N_HISTORY + 40], reasons=reasons)
        scorer = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY], reasons=reasons)
        one = [scorer.score_one(r) for r in records[:20]]
        many = scorer.score_many(records[20:])
        for k, result in zip(range(N_HISTORY, N_HISTORY + 40), one + many):
            assert_same(result, expected.iloc[k])
            if reasons == "all":
                assert result["reasons"]
                for d in result["reason_details"]:
                    if d["feature"] is not None:
                        assert d["value"] == result["features"][d["feature"]]


def test_state_of_the_wrong_settings_is_refused(rows):
    detector = _fit(rows)
    with pytest.raises(ValueError, match="windows"):
        OnlineScorer(detector, FeatureState(SCHEMA, windows=("1h",)))
    with pytest.raises(ValueError, match="schema"):
        OnlineScorer(detector, FeatureState(Schema.fraud_data()))
    with pytest.raises(ValueError, match="night_hours"):
        OnlineScorer(detector, FeatureState(SCHEMA, night_hours=(1, 5)))
    with pytest.raises(ValueError, match="fitted FraudDetector"):
        OnlineScorer(FraudDetector(SCHEMA))
    with pytest.raises(ValueError, match="reasons"):
        OnlineScorer(detector, reasons="some")


# -- bad input ------------------------------------------------------------------


def _bad_records(record, earlier_time):
    return [
        ("amount", {k: v for k, v in record.items() if k != "amount"}),
        ("amount", {**record, "amount": float("nan")}),
        ("amount", {**record, "amount": math.inf}),
        ("amount", {**record, "amount": "twelve"}),
        ("timestamp", {**record, "timestamp": "not a time"}),
        ("timestamp", {**record, "timestamp": earlier_time}),
        ("customer_id", {**record, "customer_id": None}),
    ]


def test_bad_input_is_refused_and_changes_nothing(rows):
    detector = _fit(rows)
    records = rows.to_dict("records")
    scorer = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY])
    reference = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY])
    before = pickle.dumps(scorer.state)
    customer = records[N_HISTORY]["customer_id"]
    last = rows.loc[rows["customer_id"] == customer, "timestamp"].iloc[0]
    # a new customer and a new device too: nothing of them may stay behind
    record = {**records[N_HISTORY], "device_id": "never-seen"}
    for field, bad in _bad_records(record, last - pd.Timedelta(days=1)):
        with pytest.raises(ValueError, match=field):
            scorer.score_one(bad)
        assert pickle.dumps(scorer.state) == before, field
        batch = [records[N_HISTORY + 1], records[N_HISTORY + 2], bad]
        with pytest.raises(ValueError, match=f"(record|index|row) 2.*|.*{field}"):
            scorer.score_many(batch)
        assert pickle.dumps(scorer.state) == before, field
    for k in range(N_HISTORY, N_HISTORY + 20):
        assert scorer.score_one(records[k]) == reference.score_one(records[k])


def test_score_many_names_the_record(rows):
    detector = _fit(rows)
    records = rows.to_dict("records")
    scorer = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY])
    batch = records[N_HISTORY : N_HISTORY + 5]
    batch[3] = {k: v for k, v in batch[3].items() if k != "amount"}
    with pytest.raises(ValueError, match="record 3 lacks field 'amount'"):
        scorer.score_many(batch)
    batch[3] = {**records[N_HISTORY + 3], "amount": float("nan")}
    with pytest.raises(ValueError, match="amount.*index 3"):
        scorer.score_many(batch)
    batch[3] = {**records[N_HISTORY + 3], "timestamp": "yesterday-ish"}
    with pytest.raises(ValueError, match="timestamp.*index 3"):
        scorer.score_many(batch)
    with pytest.raises(TypeError, match="record 1"):
        scorer.score_many([records[N_HISTORY], 5])


# -- state over time: threads, snapshots -------------------------------------------


def test_threads_share_a_scorer(rows):
    detector = _fit(rows)
    stream = rows.iloc[N_HISTORY : N_HISTORY + 400]
    scorer = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY])
    customers = stream["customer_id"].unique()
    parts = [stream[stream["customer_id"].isin(customers[i::4])] for i in range(4)]
    results = {}

    def work(part):
        for index, record in zip(part.index, part.to_dict("records")):
            results[index] = scorer.score_one(record)

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(work, p) for p in parts]:
            done.result()  # re-raises what a thread raised
    assert len(results) == len(stream)
    # Each customer's history went in in order, so the state is the one a
    # single thread feeding the rows in time order builds.
    after = rows.to_dict("records")[N_HISTORY + 400 : N_HISTORY + 450]
    sequential = OnlineScorer.from_history(detector, rows.iloc[: N_HISTORY + 400])
    assert scorer.score_many(after) == sequential.score_many(after)


def test_a_saved_state_continues_the_stream(rows, tmp_path):
    detector = _fit(rows)
    records = rows.to_dict("records")
    whole = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY])
    expected = [whole.score_one(r) for r in records[N_HISTORY : N_HISTORY + 100]]
    first = OnlineScorer.from_history(detector, rows.iloc[:N_HISTORY])
    got = [first.score_one(r) for r in records[N_HISTORY : N_HISTORY + 50]]
    first.state.save(tmp_path / "state.fc")
    restored = OnlineScorer(detector, fraudcore.load(tmp_path / "state.fc"))
    pickled = pickle.loads(pickle.dumps(first))
    rest = records[N_HISTORY + 50 : N_HISTORY + 100]
    assert got + [restored.score_one(r) for r in rest] == expected
    assert got + pickled.score_many(rest) == expected


def test_warm_takes_any_order_and_records(rows):
    detector = _fit(rows)
    shuffled = rows.iloc[:N_HISTORY].sample(frac=1.0, random_state=1)
    a = OnlineScorer(detector)
    a.warm(shuffled)
    b = OnlineScorer(detector)
    b.warm(rows.iloc[:N_HISTORY].to_dict("records"))
    records = rows.to_dict("records")[N_HISTORY : N_HISTORY + 30]
    assert a.score_many(records) == b.score_many(records)


# -- real data ---------------------------------------------------------------------


def _stream_equals_batch(detector, table, start, stop):
    scorer = OnlineScorer.from_history(detector, table.iloc[:start])
    records = table.to_dict("records")
    expected = detector.score(table.iloc[:stop])
    middle = (start + stop) // 2
    results = [scorer.score_one(r) for r in records[start:middle]]
    results += scorer.score_many(records[middle:stop])
    for k, result in zip(range(start, stop), results):
        assert_same(result, expected.iloc[k])
    return results


def test_real_fraud_data(shared_data):
    from fraudcore.datasets import load_fraud_data

    data, _ = load_fraud_data(
        shared_data / "fraud_data_subset.csv.gz", shared_data / "ip_to_country_subset.csv.gz"
    )
    schema = Schema.fraud_data()
    data = data.sort_values(schema.timestamp, kind="stable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        detector = FraudDetector(
            schema, detectors=("isolation_forest", "lof"), random_state=0, n_jobs=1
        ).fit(data.iloc[:15_000])
    _stream_equals_batch(detector, data.iloc[:15_600], 15_000, 15_600)


def test_real_online_retail(shared_data):
    from fraudcore.datasets import load_online_retail

    data = load_online_retail(shared_data / "online_retail.csv.gz")[0].iloc[:25_000]
    schema = Schema.online_retail()
    detector = FraudDetector(schema, random_state=0, n_jobs=1, alert_cancellations=True)
    detector.fit(data.iloc[:20_000])
    results = _stream_equals_batch(detector, data, 20_000, 20_600)
    assert any(r["is_cancellation"] for r in results)
