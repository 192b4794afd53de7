"""make_transactions: the frame's contract, its habits and its five fraud patterns."""

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from fraudcore._synthetic_transactions import (
    COUNTRY_CODES,
    FRAUD_PATTERNS,
    MERCHANT_CATEGORIES,
    MIN_VICTIM_HISTORY,
    TRANSACTION_COLUMNS,
    make_transactions,
)

START = pd.Timestamp("2024-01-01")
DAYS = 90


@pytest.fixture(scope="module")
def frame():
    """50,000 rows, 1,000 customers, 1% fraud: 100 rows of each pattern."""
    return make_transactions(1_000, 50_000, fraud_rate=0.01, seed=11)


@pytest.fixture(scope="module")
def legit(frame):
    return frame[frame["is_fraud"] == 0]


def rows_of(frame, pattern):
    rows = frame[frame["fraud_pattern"] == pattern]
    assert len(rows) > 0, f"no {pattern} rows"
    return rows


def seen_before(frame, rows, column):
    """For each of ``rows``: was its ``column`` value in an earlier legit row of its customer?"""
    legit = frame[frame["is_fraud"] == 0]
    first_use = (
        legit.groupby(["customer_id", column])["timestamp"].min().rename("first_use").reset_index()
    )
    merged = rows[["customer_id", column, "timestamp"]].merge(
        first_use, on=["customer_id", column], how="left"
    )
    return (merged["first_use"] < merged["timestamp"]).to_numpy()


def earlier_legit_mean_amount(frame, rows):
    """Each row's amount over the mean of its customer's earlier legit amounts."""
    legit = frame[frame["is_fraud"] == 0]
    ratios = []
    for row in rows.itertuples():
        history = legit[(legit["customer_id"] == row.customer_id)]
        history = history[history["timestamp"] < row.timestamp]
        ratios.append(row.amount / history["amount"].mean())
    return np.array(ratios)


# --------------------------------------------------------------------------
# The frame's contract


def test_columns_dtypes_and_index(frame):
    assert tuple(frame.columns) == TRANSACTION_COLUMNS
    assert isinstance(frame.index, pd.RangeIndex)
    assert frame.index.equals(pd.RangeIndex(len(frame)))
    expected = {
        "transaction_id": np.dtype("int64"),
        "customer_id": np.dtype("int64"),
        "timestamp": np.dtype("datetime64[ns]"),
        "amount": np.dtype("float64"),
        "signup_time": np.dtype("datetime64[ns]"),
        "is_fraud": np.dtype("int8"),
    }
    for column, dtype in expected.items():
        assert frame[column].dtype == dtype, column
    for column in ("country", "device_id", "ip_address", "merchant", "fraud_pattern"):
        assert pd.api.types.is_string_dtype(frame[column]), column
        assert frame[column].map(type).eq(str).all(), column


def test_value_formats(frame):
    assert frame["country"].isin(COUNTRY_CODES).all()
    assert frame["merchant"].isin(MERCHANT_CATEGORIES).all()
    assert frame["device_id"].str.fullmatch(r"D\d{6,}").all()
    octets = frame["ip_address"].str.split(".", expand=True).astype(int)
    assert octets.shape[1] == 4
    assert ((octets >= 0) & (octets <= 255)).all().all()
    assert (octets[0] >= 1).all() and (octets[0] < 224).all()


@pytest.mark.parametrize(
    "n_customers, n_transactions, fraud_rate",
    [(1, 1, 0.0), (3, 7, 0.0), (50, 1_000, 0.5), (300, 20_001, 0.013), (500, 400, 0.0)],
)
def test_row_count_and_fraud_count_are_exact(n_customers, n_transactions, fraud_rate):
    frame = make_transactions(n_customers, n_transactions, fraud_rate, seed=0, days=30)
    assert len(frame) == n_transactions
    assert frame["is_fraud"].sum() == int(np.floor(fraud_rate * n_transactions + 0.5))
    assert frame["customer_id"].between(0, n_customers - 1).all()


def test_every_customer_has_a_row_when_rows_suffice():
    frame = make_transactions(300, 3_000, 0.02, seed=4)
    assert frame["customer_id"].nunique() == 300


def test_sorted_by_time_within_the_period(frame):
    assert frame["timestamp"].is_monotonic_increasing
    assert (frame["transaction_id"].to_numpy() == np.arange(len(frame))).all()
    assert frame["timestamp"].min() >= START
    assert frame["timestamp"].max() < START + pd.Timedelta(days=DAYS)


def test_start_and_days_set_the_period():
    frame = make_transactions(50, 2_000, 0.02, seed=1, start="2023-06-15", days=10)
    assert frame["timestamp"].min() >= pd.Timestamp("2023-06-15")
    assert frame["timestamp"].max() < pd.Timestamp("2023-06-25")


def test_same_seed_same_frame_and_other_seed_other_frame():
    first = make_transactions(100, 3_000, 0.02, seed=5)
    pd.testing.assert_frame_equal(first, make_transactions(100, 3_000, 0.02, seed=5))
    pd.testing.assert_frame_equal(
        first, make_transactions(100, 3_000, 0.02, seed=np.random.default_rng(5))
    )
    other = make_transactions(100, 3_000, 0.02, seed=6)
    assert not first["amount"].equals(other["amount"])
    assert not first["timestamp"].equals(other["timestamp"])


def test_amounts_are_positive_cents(frame):
    assert (frame["amount"] > 0).all()
    cents = frame["amount"].to_numpy() * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)


def test_signup_is_per_customer_and_before_the_first_transaction(frame):
    per_customer = frame.groupby("customer_id").agg(
        signups=("signup_time", "nunique"),
        signup=("signup_time", "first"),
        first_transaction=("timestamp", "min"),
    )
    assert (per_customer["signups"] == 1).all()
    assert (per_customer["signup"] < per_customer["first_transaction"]).all()
    # Some customers join during the period, others before it.
    assert (per_customer["signup"] >= START).any()
    assert (per_customer["signup"] < START).any()


# --------------------------------------------------------------------------
# Fraud labels and counts


def test_every_pattern_present_in_equal_shares(frame):
    counts = frame.loc[frame["is_fraud"] == 1, "fraud_pattern"].value_counts()
    assert counts.to_dict() == {pattern: 100 for pattern in FRAUD_PATTERNS}


def test_pattern_label_is_empty_exactly_for_legit_rows(frame):
    assert ((frame["fraud_pattern"] == "") == (frame["is_fraud"] == 0)).all()
    assert frame["is_fraud"].isin([0, 1]).all()


def test_no_fraud_when_rate_is_zero():
    frame = make_transactions(100, 5_000, fraud_rate=0.0, seed=2)
    assert frame["is_fraud"].sum() == 0
    assert (frame["fraud_pattern"] == "").all()


def test_pattern_weights_choose_the_patterns():
    frame = make_transactions(
        200, 10_000, 0.02, seed=3, pattern_weights={"card_testing": 3, "amount_spike": 1}
    )
    counts = frame.loc[frame["is_fraud"] == 1, "fraud_pattern"].value_counts().to_dict()
    assert counts == {"card_testing": 150, "amount_spike": 50}


def test_victims_have_legit_history_on_an_earlier_day(frame):
    legit = frame[frame["is_fraud"] == 0]
    fraud = frame[frame["is_fraud"] == 1]
    day = frame["timestamp"].dt.floor("D")
    earlier = (
        fraud[["customer_id"]]
        .assign(day=day[fraud.index])
        .merge(legit[["customer_id"]].assign(legit_day=day[legit.index]), on="customer_id")
    )
    earlier = earlier[earlier["legit_day"] < earlier["day"]]
    history = earlier.groupby(["customer_id", "day"]).size()
    fraud_keys = fraud[["customer_id"]].assign(day=day[fraud.index]).drop_duplicates()
    assert len(history) == len(fraud_keys)
    assert (history >= MIN_VICTIM_HISTORY).all()


# --------------------------------------------------------------------------
# Each pattern is visible to point-in-time behaviour features


def test_card_testing_comes_in_small_fast_bursts_from_a_new_device(frame):
    rows = rows_of(frame, "card_testing")
    assert rows["amount"].between(0.5, 5.0).all()
    bursts = rows.groupby("device_id").agg(
        size=("amount", "size"),
        customers=("customer_id", "nunique"),
        span=("timestamp", lambda t: t.max() - t.min()),
    )
    assert bursts["size"].between(5, 20).all()
    assert (bursts["customers"] == 1).all()
    assert (bursts["span"] <= pd.Timedelta(minutes=10)).all()
    # Every row has >= 5 rows of its customer (itself included) within 10 minutes.
    for row in rows.itertuples():
        same_customer = frame[frame["customer_id"] == row.customer_id]
        near = (same_customer["timestamp"] - row.timestamp).abs() <= pd.Timedelta(minutes=10)
        assert near.sum() >= 5
    assert not seen_before(frame, rows, "device_id").any()
    assert not seen_before(frame, rows, "ip_address").any()


def test_account_takeover_is_new_device_new_country_large_amount(frame, legit):
    rows = rows_of(frame, "account_takeover")
    home = legit.groupby("customer_id")["country"].agg(lambda c: c.value_counts().index[0])
    assert (rows["country"].to_numpy() != home[rows["customer_id"]].to_numpy()).all()
    assert not seen_before(frame, rows, "device_id").any()
    assert not seen_before(frame, rows, "ip_address").any()
    assert not seen_before(frame, rows, "country").any()
    ratio = earlier_legit_mean_amount(frame, rows)
    assert np.median(ratio) > 4
    assert (ratio > 1.5).mean() > 0.9


def test_amount_spike_is_a_large_amount_from_familiar_device_and_country(frame):
    rows = rows_of(frame, "amount_spike")
    assert seen_before(frame, rows, "device_id").all()
    assert seen_before(frame, rows, "country").all()
    ratio = earlier_legit_mean_amount(frame, rows)
    assert np.median(ratio) > 6
    assert (ratio > 2).mean() > 0.9


def test_night_activity_is_between_one_and_five_from_a_new_device(frame, legit):
    rows = rows_of(frame, "night_activity")
    hours = rows["timestamp"].dt.hour
    assert hours.between(1, 4).all()
    assert not seen_before(frame, rows, "device_id").any()
    assert np.median(earlier_legit_mean_amount(frame, rows)) > 2
    # The victims hardly ever shop at that time themselves.
    victims_legit = legit[legit["customer_id"].isin(rows["customer_id"])]
    assert victims_legit["timestamp"].dt.hour.between(1, 4).mean() < 0.03


def test_shared_device_rings_span_many_customers(frame, legit):
    rows = rows_of(frame, "shared_device")
    rings = rows.groupby("device_id").agg(
        customers=("customer_id", "nunique"),
        size=("customer_id", "size"),
        ips=("ip_address", "nunique"),
        span=("timestamp", lambda t: t.max() - t.min()),
    )
    assert rings["customers"].between(10, 40).all()
    assert (rings["size"] == rings["customers"]).all()
    assert (rings["ips"] == 1).all()
    assert (rings["span"] <= pd.Timedelta(hours=6)).all()
    assert not rows["device_id"].isin(legit["device_id"]).any()
    assert not seen_before(frame, rows, "device_id").any()


def test_shared_device_accounts_bounds_ring_sizes():
    frame = make_transactions(500, 20_000, 0.02, seed=8, shared_device_accounts=(3, 5))
    rows = rows_of(frame, "shared_device")
    assert rows.groupby("device_id")["customer_id"].nunique().between(3, 5).all()


# --------------------------------------------------------------------------
# Legitimate habits


def test_legit_devices_are_personal_and_few(legit):
    assert (legit.groupby("device_id")["customer_id"].nunique() == 1).all()
    assert legit.groupby("customer_id")["device_id"].nunique().max() <= 3


def test_legit_customers_stay_mostly_home_and_in_daytime(legit):
    home_share = legit.groupby("customer_id")["country"].agg(lambda c: c.value_counts().iloc[0])
    assert home_share.sum() / len(legit) > 0.9
    assert legit["timestamp"].dt.hour.between(1, 4).mean() < 0.02
    home_countries = legit.groupby("customer_id")["country"].agg(
        lambda c: c.value_counts().index[0]
    )
    assert home_countries.value_counts(normalize=True).iloc[0] > 0.15


def test_legit_spend_and_activity_vary_across_customers(legit):
    medians = legit.groupby("customer_id")["amount"].median()
    assert medians.quantile(0.95) / medians.quantile(0.05) > 10
    activity = legit.groupby("customer_id").size()
    assert activity.max() > 5 * activity.median()


# --------------------------------------------------------------------------
# Bad parameters


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"n_customers": 0}, "n_customers must be >= 1"),
        ({"n_customers": 2.5}, "n_customers must be an integer"),
        ({"n_transactions": 0}, "n_transactions must be >= 1"),
        ({"n_transactions": True}, "n_transactions must be an integer"),
        ({"fraud_rate": -0.1}, r"fraud_rate must be in \[0, 0.5\]"),
        ({"fraud_rate": 0.6}, r"fraud_rate must be in \[0, 0.5\]"),
        ({"fraud_rate": float("nan")}, r"fraud_rate must be in \[0, 0.5\]"),
        ({"fraud_rate": "0.1"}, "fraud_rate must be a number"),
        ({"days": 0}, "days must be >= 1"),
        ({"days": 1}, "days must be >= 2 when there is fraud"),
        ({"n_countries": 2}, r"n_countries must be in \[3, "),
        ({"n_countries": len(COUNTRY_CODES) + 1}, r"n_countries must be in \[3, "),
        ({"start": "not a date"}, "start must be a date"),
        ({"start": "2024-01-01 12:00"}, "start must be at midnight"),
        ({"start": pd.Timestamp("2024-01-01", tz="UTC")}, "start must be a naive"),
        ({"shared_device_accounts": (1, 5)}, "2 <= low <= high"),
        ({"shared_device_accounts": (20, 10)}, "2 <= low <= high"),
        ({"shared_device_accounts": 10}, "must be a pair"),
        ({"pattern_weights": {"phishing": 1}}, r"unknown pattern\(s\) \['phishing'\]"),
        ({"pattern_weights": {"card_testing": -1}}, "must be finite and >= 0"),
        ({"pattern_weights": {"card_testing": 0}}, "positive sum"),
    ],
)
def test_invalid_parameters_raise_a_clear_value_error(arguments, message):
    parameters = {"n_customers": 20, "n_transactions": 500, "seed": 0, **arguments}
    with pytest.raises(ValueError, match=message):
        make_transactions(**parameters)


def test_too_little_history_for_any_victim_raises():
    # Two legitimate rows cannot give anyone three rows of history.
    with pytest.raises(ValueError, match="no customer has 3 legitimate transactions"):
        make_transactions(n_customers=1, n_transactions=4, fraud_rate=0.5, seed=0)
