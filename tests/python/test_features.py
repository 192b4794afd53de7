"""The native feature kernel: the pandas oracle, batch = streaming, state, errors."""

import dataclasses
import os
import pickle
import threading
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fraudcore
from fraudcore import FeatureState, Schema, build_features
from fraudcore._reference_features import reference_features

RETAIL_LIKE = Schema(
    entity="customer",
    timestamp="when",
    quantity="qty",
    unit_price="price",
    invoice="invoice",
    country="country",
)
TRANSACTIONS = Schema(
    entity="customer",
    timestamp="when",
    amount="amount",
    country="country",
    device_id="device",
    ip_address="ip",
    signup_time="signup",
)
NO_ENTITY = Schema(timestamp="seconds", amount="amount", time_unit="s", passthrough=("v1", "v2"))


def random_table(n, seed, *, tie_step_s=600, days=10):
    """Transactions with many time ties, missing categories and returns."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, days * 86_400, n)) // tie_step_s * tie_step_s
    frame = pd.DataFrame(
        {
            "customer": rng.integers(0, max(2, n // 40), n),
            "when": pd.Timestamp("2024-03-01") + pd.to_timedelta(seconds, unit="s"),
            "amount": rng.lognormal(3, 1, n).round(2),
            "qty": rng.choice([-2, 1, 1, 2, 3, 12, 48], n).astype(float),
            "price": rng.choice([0.85, 1.25, 2.1, 4.95], n),
            "invoice": rng.integers(0, n // 3 + 1, n).astype(str),
            "country": rng.choice(["DE", "FR", "GB", None], n, p=[0.5, 0.2, 0.2, 0.1]),
            "device": rng.choice(["d1", "d2", "d3", "d4", None], n),
            "ip": rng.choice(["10.0.0.1", "10.0.0.2", "10.0.0.3"], n),
            "signup": pd.Timestamp("2024-02-01")
            + pd.to_timedelta(rng.integers(0, 20, n), unit="D"),
            "seconds": seconds.astype(float) + rng.random(n).round(3),
            "v1": rng.normal(size=n),
            "v2": rng.normal(size=n),
        }
    )
    frame.loc[frame.sample(frac=0.05, random_state=seed).index, "signup"] = pd.NaT
    return frame.sample(frac=1.0, random_state=seed)  # input order != time order


def assert_equal_to_oracle(features, expected):
    assert list(features.columns) == list(expected.columns)
    assert features.index.equals(expected.index)
    for name in features.columns:
        np.testing.assert_allclose(
            features[name].to_numpy(), expected[name].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=name
        )


@pytest.mark.parametrize(
    "schema", [RETAIL_LIKE, TRANSACTIONS, NO_ENTITY], ids=["retail", "transactions", "no_entity"]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_pandas_oracle(schema, seed):
    data = random_table(4_000, seed)
    windows = ("30min", "1h", "24h", "7D")
    features = build_features(data, schema, windows=windows, night_hours=(22, 6), n_jobs=2)
    assert_equal_to_oracle(
        features, reference_features(data, schema, windows=windows, night_hours=(22, 6))
    )
    assert np.isfinite(features.to_numpy()).all()


def test_hand_computed_values():
    data = pd.DataFrame(
        {
            "customer": [7, 7, 7, 8, 7],
            "when": pd.to_datetime(
                [
                    "2024-03-02 10:00",
                    "2024-03-02 10:30",
                    "2024-03-02 10:30",
                    "2024-03-02 10:40",
                    "2024-03-03 23:10",
                ]
            ),
            "amount": [10.0, 30.0, 20.0, 5.0, 100.0],
        }
    )
    f = build_features(data, Schema(entity="customer", timestamp="when", amount="amount"))
    assert f["entity_count"].tolist() == [0, 1, 2, 0, 3]
    assert f["entity_mean"].tolist() == [0, 10, 20, 0, 20]
    assert f["entity_std"].iloc[2] == pytest.approx(10.0)
    assert f["amount_zscore"].iloc[4] == pytest.approx((100 - 20) / np.sqrt(200 / 3))
    assert f["amount_to_mean"].tolist() == [1, 3, 1, 1, 5]
    # The third row ties the second in time: the earlier input row counts as earlier.
    assert f["count_1h"].tolist() == [0, 1, 2, 0, 0]
    assert f["amount_sum_1h"].tolist() == [0, 10, 40, 0, 0]
    assert f["count_24h"].tolist() == [0, 1, 2, 0, 0]  # 10:30 -> 23:10 next day is > 24 h
    assert f["seconds_since_prev"].tolist() == [-1, 1800, 0, -1, 132_000]
    assert f["hour"].tolist() == [10, 10, 10, 10, 23]
    assert f["day_of_week"].tolist() == [5, 5, 5, 5, 6]  # 2024-03-02 was a Saturday
    assert f["is_weekend"].all() and f["is_night"].sum() == 0
    assert f["amount_log1p"].iloc[0] == pytest.approx(np.log1p(10))


def test_quantity_invoice_country_device_and_signup_features():
    data = pd.DataFrame(
        {
            "customer": [1, 1, 1, 1, 2, 2],
            "when": pd.date_range("2024-01-01", periods=6, freq="h"),
            "qty": [1.0, 2.0, 1.0, 40.0, 3.0, 3.0],
            "price": [2.0, 2.0, 2.0, 2.0, 1.0, 1.0],
            "invoice": ["A", "A", "B", "C", "Z", "Z"],
            "country": ["UK", "UK", "FR", "UK", None, "NG"],
            "device": ["x", "x", "y", "x", "x", None],
            "ip": ["i1", "i1", "i1", "i2", "i1", "i1"],
            "signup": pd.to_datetime(["2023-12-31 23:00"] * 4 + [None, "2024-01-01 03:00"]),
        }
    )
    schema = dataclasses.replace(
        RETAIL_LIKE, device_id="device", ip_address="ip", signup_time="signup"
    )
    f = build_features(data, schema)
    assert f["amount"].tolist() == [2, 4, 2, 80, 3, 3]
    assert f["quantity_spike"].tolist() == [0, 0, 0, 1, 0, 0]
    assert f["hist_freq"].tolist() == [0, 0, 1, 2, 0, 0]
    assert f["unusual_country"].tolist() == [0, 0, 1, 0, 0, 1]  # a missing country is never unusual
    assert f["new_device"].tolist() == [0, 0, 1, 0, 0, 0]
    assert f["device_users"].tolist() == [1, 1, 1, 1, 2, 0]
    assert f["ip_users"].tolist() == [1, 1, 1, 1, 2, 2]
    assert f["signup_delay_s"].tolist() == [3600, 7200, 10800, 14400, -1, 7200]


@pytest.mark.parametrize(
    "devices",
    [
        ["a", "b", "a", None, "b", "c"],  # ASCII: the native factoriser
        ["é", "b", "é", np.nan, "b", "ü"],  # non-ASCII: pandas' factorize
        [1, "b", 1, None, "b", 2.5],  # mixed objects: pandas' factorize
    ],
)
def test_categorical_columns_of_any_kind(devices):
    data = pd.DataFrame(
        {
            "customer": [1, 2, 1, 2, 1, 3],
            "device": pd.Series(devices, dtype=object),
            "when": pd.date_range("2024-01-01", periods=6, freq="h"),
            "amount": 1.0,
        }
    )
    schema = Schema(entity="customer", timestamp="when", amount="amount", device_id="device")
    f = build_features(data, schema)
    assert f["device_users"].tolist() == [1, 1, 1, 0, 2, 1]
    assert f["new_device"].tolist() == [0, 0, 0, 0, 1, 0]
    assert_equal_to_oracle(f, reference_features(data, schema))


def test_a_mean_left_by_returns_is_zero_not_rounding_noise():
    amounts = [0.1, 0.2, -0.3, 0.7, -0.7, 5.0]  # the running mean before 5.0 is 0 (or 1e-17)
    data = pd.DataFrame(
        {"when": pd.date_range("2024-01-01", periods=6, freq="h"), "amount": amounts}
    )
    f = build_features(data, Schema(timestamp="when", amount="amount"))
    assert abs(f["entity_mean"].iloc[5]) < 1e-15
    assert f["amount_to_mean"].iloc[5] == 1.0  # not 5 / 1e-17
    assert f["amount_zscore"].iloc[5] == pytest.approx(5.0 / f["entity_std"].iloc[5])


def test_no_history_defaults_are_neutral_and_finite():
    data = pd.DataFrame({"when": ["2024-01-01 02:00"], "amount": [-5.0]})
    f = build_features(data, Schema(timestamp="when", amount="amount"))
    row = f.iloc[0]
    assert row["entity_count"] == 0 and row["amount_zscore"] == 0 and row["amount_to_mean"] == 1
    assert row["seconds_since_prev"] == -1 and row["is_night"] == 1
    assert row["amount_log1p"] == pytest.approx(-np.log1p(5))  # signed: returns stay finite


def stream(state, data, batch):
    """Feed data (already in time order) to a FeatureState in batches of `batch` rows."""
    if batch == 1:
        return pd.DataFrame(
            [state.update(row) for row in data.to_dict("records")], index=data.index
        )
    return pd.concat([state.update(data.iloc[i : i + batch]) for i in range(0, len(data), batch)])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 120),
    batch=st.sampled_from([1, 7]),
    tie_step=st.sampled_from([1, 900, 3_600]),
)
def test_streaming_equals_batch(seed, n, batch, tie_step):
    data = random_table(n, seed, tie_step_s=tie_step, days=3)
    data = data.sort_values("when", kind="stable")  # a stream arrives in time order
    for schema in (TRANSACTIONS, RETAIL_LIKE):
        expected = build_features(data, schema, windows=("1h", "6h"))
        got = stream(FeatureState(schema, windows=("1h", "6h")), data, batch)
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
        assert list(got.columns) == list(expected.columns)


def test_state_saves_and_resumes(tmp_path):
    data = random_table(600, 3).sort_values("when", kind="stable")
    expected = build_features(data, TRANSACTIONS)
    state = FeatureState(TRANSACTIONS)
    first = stream(state, data.iloc[:400], 50)
    resumed = fraudcore.load(state.save(tmp_path / "state.fc"))
    assert resumed.n_entities_ == state.n_entities_
    copy = pickle.loads(pickle.dumps(state))
    for twin in (resumed, copy):
        rest = stream(twin, data.iloc[400:], 1)
        np.testing.assert_array_equal(pd.concat([first, rest]).to_numpy(), expected.to_numpy())
    with pytest.raises(fraudcore.ModelFormatError):
        FeatureState().__setstate__(
            {"fraudcore_model": state.__getstate__()["fraudcore_model"][:-9]}
        )


def test_streaming_rejects_out_of_order_and_keeps_the_state():
    state = FeatureState(TRANSACTIONS)
    base = {
        "customer": 1,
        "amount": 10.0,
        "country": "DE",
        "device": "d",
        "ip": "i",
        "signup": "2024-01-01",
    }
    state.update({**base, "when": "2024-02-01 10:00"})
    with pytest.raises(ValueError, match="time order"):
        state.update({**base, "when": "2024-02-01 09:00", "amount": 1e6})
    after = state.update({**base, "when": "2024-02-01 11:00"})
    assert after["entity_count"] == 1 and after["entity_mean"] == 10.0
    # An unseen category at streaming time is simply new.
    fresh = state.update(
        {**base, "when": "2024-02-01 12:00", "device": "never-seen", "country": "NG"}
    )
    assert fresh["new_device"] == 1 and fresh["unusual_country"] == 1 and fresh["device_users"] == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.drop(columns="amount"), r"lacks column\(s\) \['amount'\]"),
        (
            lambda d: d.assign(amount=[1.0, np.nan, 3.0]),
            "amount column 'amount' has a missing or infinite value at index 1",
        ),
        (
            lambda d: d.assign(when=["2024-01-01", "not a date", "2024-01-02"]),
            "timestamp column 'when' at index 1: 'not a date' is not a time",
        ),
        (
            lambda d: d.assign(
                when=[pd.Timestamp("2024-01-01"), pd.NaT, pd.Timestamp("2024-01-02")]
            ),
            "missing at index 1",
        ),
        (
            lambda d: d.assign(customer=[1, None, 2]),
            "entity column 'customer' is missing at index 1",
        ),
        (lambda d: d.assign(amount=["a", "b", "c"]), "must be numeric"),
        (lambda d: d.iloc[:0], "no rows"),
    ],
)
def test_bad_input_is_a_clear_error(change, message):
    data = pd.DataFrame(
        {
            "customer": [1, 1, 2],
            "when": pd.date_range("2024-01-01", periods=3, freq="D"),
            "amount": [1.0, 2.0, 3.0],
        }
    )
    with pytest.raises(ValueError, match=message):
        build_features(change(data), Schema(entity="customer", timestamp="when", amount="amount"))


def test_bad_settings_and_schemas():
    data = random_table(10, 0)
    with pytest.raises(ValueError, match="windows must be durations"):
        build_features(data, TRANSACTIONS, windows=("soon",))
    with pytest.raises(ValueError, match="every window must be positive"):
        build_features(data, TRANSACTIONS, windows=("-1h",))
    with pytest.raises(ValueError, match="night hours"):
        build_features(data, TRANSACTIONS, night_hours=(0, 30))
    with pytest.raises(ValueError, match="needs a timestamp"):
        Schema(amount="amount")
    with pytest.raises(ValueError, match="quantity and unit_price"):
        Schema(timestamp="when", quantity="qty")
    with pytest.raises(ValueError, match="time_unit"):
        Schema(timestamp="when", amount="amount", time_unit="days")
    with pytest.raises(ValueError, match="lacks field 'amount'"):
        FeatureState(TRANSACTIONS).update({"customer": 1, "when": "2024-01-01"})
    with pytest.raises(ValueError, match="not a time"):
        FeatureState(TRANSACTIONS).update({"customer": 1, "when": "yesterday-ish", "amount": 1.0})
    assert Schema.from_dict(TRANSACTIONS.to_dict()) == TRANSACTIONS


def test_time_zones_keep_the_wall_clock():
    naive = pd.DataFrame(
        {
            "when": pd.date_range("2024-06-01 23:30", periods=3, freq="20min"),
            "amount": [1.0, 2.0, 3.0],
        }
    )
    aware = naive.assign(when=naive["when"].dt.tz_localize("Europe/Berlin"))
    schema = Schema(timestamp="when", amount="amount")
    pd.testing.assert_frame_equal(build_features(aware, schema), build_features(naive, schema))


def test_ready_made_schemas_name_their_formats():
    assert Schema.online_retail().entity == "CustomerID"
    assert Schema.fraud_data().ip_address == "ip_address"
    assert Schema.creditcard().passthrough[-1] == "V28"
    assert Schema.transactions().label == "is_fraud"


def test_the_real_files_load_clean_and_featurize(shared_data):
    from fraudcore.datasets import load_fraud_data, load_online_retail

    retail, report = load_online_retail(shared_data / "online_retail.csv.gz")
    assert report.rows == 401_604
    features = build_features(retail, Schema.online_retail())
    assert features.shape[0] == 401_604 and np.isfinite(features.to_numpy()).all()
    # Returns cancel purchases here, so this also checks the rounding-noise rule.
    assert_equal_to_oracle(features, reference_features(retail, Schema.online_retail()))

    fraud, _ = load_fraud_data(
        shared_data / "fraud_data_subset.csv.gz", shared_data / "ip_to_country_subset.csv.gz"
    )
    features = build_features(fraud, Schema.fraud_data())
    assert len(features) == 51_689 and np.isfinite(features.to_numpy()).all()
    assert features["device_users"].max() > 1  # devices shared across accounts exist
    assert_equal_to_oracle(features, reference_features(fraud, Schema.fraud_data()))


# Regression tests from a review of the first version.


def test_times_outside_the_nanosecond_range_are_errors_not_wrapped():
    schema = Schema(timestamp="t", amount="a")
    with pytest.raises(ValueError, match="outside 1677"):
        build_features(pd.DataFrame({"t": ["1500-06-01 10:00"], "a": [1.0]}), schema)
    with pytest.raises(ValueError, match="outside 1677"):
        FeatureState(schema).update({"t": "2500-06-01 10:00", "a": 1.0})
    with pytest.raises(ValueError, match="out-of-range"):
        build_features(
            pd.DataFrame({"t": [1e12], "a": [1.0]}),
            Schema(timestamp="t", amount="a", time_unit="s"),
        )
    far = build_features(
        pd.DataFrame({"t": [-9e9, 9e9], "a": [1.0, 1.0]}),
        Schema(timestamp="t", amount="a", time_unit="s"),
    )
    assert far["seconds_since_prev"].tolist() == [-1.0, 1.8e10]  # no int64 overflow
    close = build_features(
        pd.DataFrame({"t": np.array([10**18, 10**18 + 100]), "a": [1.0, 1.0]}),
        Schema(timestamp="t", amount="a"),
    )
    assert close["seconds_since_prev"].iloc[1] == pytest.approx(1e-7)  # int ns stay exact


def test_utc_offsets_keep_the_wall_clock_in_batch_and_streaming():
    rows = pd.DataFrame(
        {"t": ["2024-06-01T10:00:00+02:00", "2024-06-01T23:30:00+02:00"], "a": [1.0, 2.0]}
    )
    schema = Schema(timestamp="t", amount="a")
    batch = build_features(rows, schema)
    assert batch["hour"].tolist() == [10, 23]
    state = FeatureState(schema)
    assert [state.update(r)["hour"] for r in rows.to_dict("records")] == [10, 23]
    # Several offsets in one column: each time keeps its wall clock, in both paths.
    offsets = pd.DataFrame(
        {"t": ["2024-06-01T10:00:00+02:00", "2024-06-01T11:00:00+05:00"], "a": [1.0, 1.0]}
    )
    assert build_features(offsets, schema)["hour"].tolist() == [10, 11]
    state = FeatureState(schema)
    assert [state.update(r)["hour"] for r in offsets.to_dict("records")] == [10, 11]


def test_every_kind_of_missing_category_is_missing_in_streaming_too():
    rows = [
        {"c": 1, "t": "2024-01-01 00:00", "a": 1.0, "dev": pd.NA, "co": "DE"},
        {"c": 2, "t": "2024-01-01 01:00", "a": 1.0, "dev": pd.NA, "co": pd.NA},
        {"c": 1, "t": "2024-01-01 02:00", "a": 1.0, "dev": np.float32("nan"), "co": None},
    ]
    schema = Schema(entity="c", timestamp="t", amount="a", device_id="dev", country="co")
    state = FeatureState(schema)
    streamed = pd.DataFrame([state.update(r) for r in rows])
    batch = build_features(pd.DataFrame(rows).astype({"dev": object, "co": object}), schema)
    np.testing.assert_array_equal(streamed.to_numpy(), batch.to_numpy())
    assert streamed["device_users"].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="entity"):
        FeatureState(schema).update({**rows[0], "c": pd.NA})


def test_saved_vocabularies_recognise_every_kind_of_value(tmp_path):
    import uuid

    schema = Schema(entity="c", timestamp="t", amount="a")
    customer = uuid.uuid4()
    state = FeatureState(schema)
    state.update({"c": customer, "t": "2024-01-01 00:00", "a": 10.0})
    twin = fraudcore.load(state.save(tmp_path / "s.fc"))
    later = {"c": customer, "t": "2024-01-01 01:00", "a": 10.0}
    assert twin.update(later)["entity_count"] == state.update(later)["entity_count"] == 1
    assert twin.n_entities_ == 1


def test_a_rejected_batch_changes_nothing():
    schema = Schema(entity="c", timestamp="t", amount="a", passthrough=("v",))
    state = FeatureState(schema)
    bad_order = pd.DataFrame(
        {
            "c": [1, 2, 2],
            "t": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-01 09:00"]),
            "a": 1.0,
            "v": 0.0,
        }
    )
    with pytest.raises(ValueError, match="row 2 is earlier"):
        state.update(bad_order)
    with pytest.raises(ValueError, match="v"):
        state.update(bad_order.sort_values("t").assign(v=[0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="lacks field 'v'"):
        state.update({"c": 1, "t": "2024-01-01", "a": 1.0})
    assert state.n_entities_ == 0
    assert state.update(bad_order.sort_values("t"))["entity_count"].tolist() == [0, 0, 1]
    assert len(state.update(bad_order.iloc[:0])) == 0  # an empty micro-batch is fine


def test_window_sums_do_not_carry_the_rounding_of_older_amounts():
    data = pd.DataFrame(
        {
            "t": pd.to_datetime(["2024-01-01 00:00", "2024-01-02 00:00", "2024-01-02 00:10"]),
            "a": [1e16, 1.0, 1.0],
        }
    )
    f = build_features(data, Schema(timestamp="t", amount="a"))
    assert f["amount_sum_1h"].tolist() == [0.0, 0.0, 1.0]


def test_settings_that_would_clash_are_refused():
    data = random_table(10, 0)
    with pytest.raises(ValueError, match="given twice"):
        build_features(data, TRANSACTIONS, windows=("1h", "60min"))
    with pytest.raises(ValueError, match="sequence of durations"):
        build_features(data, TRANSACTIONS, windows="7D")
    with pytest.raises(ValueError, match="whole hours"):
        build_features(data, TRANSACTIONS, night_hours=(0, 5.9))
    with pytest.raises(ValueError, match="overwrite features"):
        build_features(data, Schema(timestamp="when", amount="amount", passthrough=("hour",)))


# Regression tests from an adversarial probe (issue 12).


@pytest.mark.parametrize(
    "when, message",
    [
        ("3000-01-01", "'3000-01-01' is outside 1677-09-21 .. 2262-04-11"),
        ("not a date", "'not a date' is not a time"),
    ],
)
def test_a_bad_time_gets_the_same_message_in_batch_and_streaming(when, message):
    schema = Schema(entity="c", timestamp="t", amount="a")
    data = pd.DataFrame({"c": [1, 1], "t": ["2024-01-01", when], "a": [1.0, 2.0]})
    with pytest.raises(ValueError, match=f"timestamp column 't' at index 1: {message}"):
        build_features(data, schema)
    state = FeatureState(schema)
    with pytest.raises(ValueError, match=f"^timestamp column 't': {message}"):
        state.update({"c": 1, "t": when, "a": 1.0})
    with pytest.raises(ValueError, match=f"timestamp column 't' at index 1: {message}"):
        state.update(data)
    assert state.n_entities_ == 0


def test_aware_times_among_naive_ones_keep_their_wall_clock_in_batch_and_streaming():
    schema = Schema(entity="c", timestamp="t", amount="a")
    mixed = pd.DataFrame(
        {
            "c": [1, 1, 1],
            "a": [1.0, 2.0, 3.0],
            "t": ["2024-01-01 10:00", "2024-01-02 11:00+02:00", "2024-01-03"],
        }
    )
    naive = mixed.assign(
        t=[
            pd.Timestamp("2024-01-01 10:00"),
            pd.Timestamp("2024-01-02 11:00"),
            pd.Timestamp("2024-01-03"),
        ]
    )
    expected = build_features(naive, schema)
    pd.testing.assert_frame_equal(build_features(mixed, schema), expected)
    objects = mixed.assign(
        t=[
            pd.Timestamp("2024-01-01 10:00"),
            pd.Timestamp("2024-01-02 11:00", tz="Europe/Berlin"),
            pd.Timestamp("2024-01-03"),
        ]
    )
    pd.testing.assert_frame_equal(build_features(objects, schema), expected)
    state = FeatureState(schema)
    streamed = pd.DataFrame([state.update(row) for row in mixed.to_dict("records")])
    np.testing.assert_array_equal(streamed.to_numpy(), expected.to_numpy())


@pytest.mark.parametrize(
    "amounts, culprit",
    [
        ([1.0, 1e300, 2.0], "the amount \\('a'\\) at index 11 is 1e\\+300"),
        ([1.0, -1e101, 2.0], "the amount \\('a'\\) at index 11 is -1e\\+101"),
    ],
)
def test_huge_finite_amounts_are_named_at_the_feature_step(amounts, culprit):
    schema = Schema(entity="c", timestamp="t", amount="a")
    data = pd.DataFrame(
        {"c": [1, 1, 2], "t": pd.date_range("2024-01-01", periods=3, freq="h"), "a": amounts},
        index=[10, 11, 12],
    )
    with pytest.raises(ValueError, match=culprit + ", outside 0 or 1e-100 .. 1e\\+100"):
        build_features(data, schema)
    state = FeatureState(schema)
    with pytest.raises(
        ValueError, match="amount .* is outside the magnitudes the features can hold"
    ):
        state.update({"c": 1, "t": "2024-01-01", "a": amounts[1]})
    assert state.n_entities_ == 0


def test_an_amount_product_that_overflows_is_named():
    schema = Schema(entity="c", timestamp="t", quantity="q", unit_price="p")
    data = pd.DataFrame(
        {"c": [1, 1], "t": ["2024-01-01", "2024-01-02"], "q": [1.0, 1e200], "p": [2.0, 1e200]}
    )
    with pytest.raises(ValueError, match="the amount \\('q' x 'p'\\) at index 1 is inf"):
        build_features(data, schema)


def test_amounts_too_small_for_the_ratios_are_refused():
    # Beside an amount of 1e100, a mean of 1e-300 would make amount_to_mean
    # infinite; non-zero amounts below 1e-100 are refused, so no feature can
    # overflow (the bound in features.hpp).
    schema = Schema(entity="c", timestamp="t", amount="a")
    data = pd.DataFrame({"c": [1, 1], "t": ["2024-01-01", "2024-01-02"], "a": [1e-300, 1e100]})
    with pytest.raises(
        ValueError, match=r"the amount \('a'\) at index 0 is 1e-300, outside 0 or 1e-100 .. 1e\+100"
    ):
        build_features(data, schema)
    state = FeatureState(schema)
    with pytest.raises(
        ValueError, match="amount 1e-300 is outside the magnitudes the features can hold"
    ):
        state.update({"c": 1, "t": "2024-01-01", "a": 1e-300})
    assert state.n_entities_ == 0
    extremes = data.assign(a=[1e-100, 1e100])
    assert np.isfinite(build_features(extremes, schema).to_numpy()).all()
    zero = build_features(data.assign(a=[0.0, 1e100]), schema)
    assert np.isfinite(zero.to_numpy()).all()


def test_mixed_day_and_month_orders_are_refused_not_guessed_per_value():
    schema = Schema(entity="c", timestamp="t", amount="a")
    data = pd.DataFrame(
        {"c": [1, 1], "t": ["01/02/2024 10:00", "13/02/2024 10:00"], "a": [1.0, 2.0]}
    )
    with pytest.raises(
        ValueError, match="not ISO 8601, and the column's times are not all in one format"
    ):
        build_features(data, schema)


def test_settings_are_fixed_once_the_state_holds_history(tmp_path):
    schema = Schema(entity="c", timestamp="t", amount="a")
    state = FeatureState(schema).set_params(spike_sigmas=4.0)  # nothing remembered yet: fine
    state.update({"c": 1, "t": "2024-01-01", "a": 1.0})
    with pytest.raises(ValueError, match="settings are fixed once it holds history"):
        state.set_params(spike_sigmas=5.0)
    assert fraudcore.load(state.save(tmp_path / "s.fc")).spike_sigmas == 4.0


def test_a_fork_during_an_update_leaves_the_childs_state_usable():
    # The fork waits for running updates, so a child never inherits a held lock.
    schema = Schema(entity="c", timestamp="t", amount="a")
    state = FeatureState(schema)
    batch = pd.DataFrame(
        {
            "c": np.arange(200_000) % 5_000,
            "a": 1.0,
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(200_000), unit="s"),
        }
    )
    updater = threading.Thread(target=state.update, args=(batch,))
    updater.start()
    time.sleep(0.05)  # the update (a few tenths of a second) is running, its lock held
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one update, then report
        try:
            state.update({"c": "child", "t": "2030-01-01", "a": 1.0})
            os.write(write_end, b"ok")
        finally:
            os._exit(0)
    os.close(write_end)
    updater.join()
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's update hung on a lock held at the fork")
        time.sleep(0.01)
    assert os.read(read_end, 2) == b"ok"
    os.close(read_end)


@pytest.mark.parametrize(
    "field, value",
    [
        ("a", None),
        ("a", [1.0]),
        ("a", 1j),
        ("a", 10**400),
        ("a", "twelve"),
        ("a", {}),
        ("q", None),
        ("q", 10**400),
        ("p", 1j),
    ],
)
def test_every_bad_number_in_an_update_is_a_value_error_naming_the_field(field, value):
    if field == "a":
        schema = Schema(entity="c", timestamp="t", amount="a")
    else:
        schema = Schema(entity="c", timestamp="t", quantity="q", unit_price="p")
    state = FeatureState(schema)
    row = {"c": 1, "t": "2024-01-01", "a": 1.0, "q": 1.0, "p": 1.0, field: value}
    with pytest.raises(ValueError, match=f"field '{field}' must be a number, got"):
        state.update(row)
    assert state.n_entities_ == 0


def test_a_save_during_concurrent_updates_is_a_consistent_snapshot(tmp_path):
    # Customer k only ever spends k, so after a reload each remembered
    # customer's mean must be its own number, and a new customer must have
    # no history. The race is forced: while a save has written the
    # vocabularies and not yet the histories, another thread adds a new
    # customer. Without the lock the update lands in between, the file's
    # histories know a customer its vocabulary lacks, and after a reload the
    # next new customer inherits that history.
    schema = Schema(entity="c", timestamp="t", amount="a")
    state = FeatureState(schema)
    for k in range(1, 51):
        state.update(
            {
                "c": f"customer-{k}",
                "t": pd.Timestamp("2024-01-01") + pd.Timedelta(seconds=k),
                "a": float(k),
            }
        )
    body = state._body
    racers = []

    def body_after_a_racing_update():
        racer = threading.Thread(
            target=state.update,
            args=({"c": "customer-51", "a": 51.0, "t": pd.Timestamp("2024-01-02")},),
        )
        racer.start()
        racer.join(timeout=0.5)  # with the lock it waits for the save to finish
        racers.append(racer)
        return body()

    state._body = body_after_a_racing_update
    path = state.save(tmp_path / "state.fc")
    racers[0].join()
    del state._body
    loaded = fraudcore.load(path)
    customers = list(loaded.vocabularies_["entity"])
    assert loaded.n_entities_ == len(customers)
    probe = pd.DataFrame({"c": [*customers, "newcomer"], "a": 1.0, "t": pd.Timestamp("2025-01-01")})
    features = loaded.update(probe)
    np.testing.assert_array_equal(
        features["entity_mean"].to_numpy()[:-1], [float(c.split("-")[1]) for c in customers]
    )
    assert features["entity_count"].iloc[-1] == 0
    # The racing update was not lost: it is in the live state, after the save.
    assert state.n_entities_ == 51


def test_batches_from_several_threads_all_land(tmp_path):
    schema = Schema(entity="c", timestamp="t", amount="a")
    state = FeatureState(schema)

    def feed(thread):
        for b in range(20):
            state.update(
                pd.DataFrame(
                    {
                        "c": [f"{thread}-{b}-{i}" for i in range(100)],
                        "a": 1.0,
                        "t": pd.Timestamp("2024-01-01"),
                    }
                )
            )

    threads = [threading.Thread(target=feed, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.n_entities_ == 4 * 20 * 100 == len(state.vocabularies_["entity"])
    assert fraudcore.load(state.save(tmp_path / "s.fc")).n_entities_ == 8_000


def test_numeric_times_held_as_objects_count_the_time_unit_in_batch_as_in_streaming():
    schema = Schema(entity="c", timestamp="t", amount="a", time_unit="s")
    data = pd.DataFrame({"c": [1, 1], "t": pd.Series([0, 3600], dtype=object), "a": [1.0, 2.0]})
    batch = build_features(data, schema)
    assert batch["seconds_since_prev"].tolist() == [-1.0, 3600.0]
    state = FeatureState(schema)
    streamed = [state.update(row)["seconds_since_prev"] for row in data.to_dict("records")]
    assert streamed == [-1.0, 3600.0]
