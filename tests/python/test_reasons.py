"""Reason sentences: each names a deviation, in words an analyst reads; a neutral value says nothing."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from fraudcore import Schema, build_features
from fraudcore._reasons import NOTHING_RARE, _count, _duration, describe
from fraudcore.datasets import load_fraud_data
from fraudcore.detector import _QUANTILES, FraudDetector


@pytest.mark.parametrize(
    "seconds, words",
    [
        (0, "0 s"),
        (45, "45 s"),
        (119, "119 s"),
        (119.6, "2 min"),
        (120, "2 min"),
        (7_140, "119 min"),
        (7_199, "2.0 h"),
        (7_200, "2.0 h"),
        (19_800, "5.5 h"),
        (172_799, "2.0 days"),
        (172_800, "2.0 days"),
        (863_999, "10 days"),
        (3_283_200, "38 days"),
        (69_546_930, "805 days"),
        (float("nan"), "an unknown time"),
    ],
)
def test_durations_read_in_the_unit_an_analyst_uses(seconds, words):
    assert _duration(seconds) == words


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "0 accounts"),
        (1, "1 account"),
        (2, "2 accounts"),
        (1.0, "1 account"),
        (1_200, "1,200 accounts"),
    ],
)
def test_counts_agree_with_their_noun(n, words):
    assert _count(n, "account") == words


# -- a training population whose shares are known by hand ---------------------------------------

N = 10_000


def _blocks(*parts):
    """Column of N values from (value, rows) blocks, in order; the last fills up."""
    values = np.concatenate([np.full(rows, value, dtype=np.float64) for value, rows in parts[:-1]])
    return np.concatenate([values, np.full(N - len(values), parts[-1][0], dtype=np.float64)])


def _training():
    i = np.arange(N)
    amount = i + 1.0  # 1 .. 10,000: the share strictly below v is (ceil(v) - 1) / N
    hour = np.where(
        i < 9_900, 8 + i % 12, np.where(i < 9_950, 7, 3)
    )  # 07:00 and 03:00 hold 0.5% each
    day = np.where(i < 9_900, i % 6, 6)  # Sunday 1%
    return pd.DataFrame(
        {
            "amount": amount,
            "amount_log1p": np.log1p(amount),
            "amount_sqrt": np.sqrt(amount),
            "entity_count": i % 50,
            "entity_mean": 50.0 + i % 100,
            "entity_std": 5.0 + i % 20,
            "amount_zscore": (i % 61 - 30) / 10,
            "amount_to_mean": 0.5 + (i % 16) / 10,
            "hour": hour,
            "day_of_week": day,
            "is_weekend": (day >= 5) * 1.0,
            "is_night": (hour < 6) * 1.0,
            # 1% first transactions, 70% at the time of the previous one (lines of one invoice),
            # 29% after a gap of 10 min .. 483 h
            "seconds_since_prev": np.where(
                i < 100, -1.0, np.where(i < 7_100, 0.0, (i - 7_099) * 600.0)
            ),
            "count_1h": _blocks((0, 9_700), (1, 250), (12, 0)),
            "amount_sum_1h": _blocks((0, 9_700), (50, 250), (-40, 0)),
            "amount_x_hour": amount * hour,
            "amount_x_night": amount * (hour < 6),
            "quantity": 1.0 + i % 10,
            "quantity_spike": _blocks((0, 9_800), (1, 0)),
            "hist_freq": i % 20,
            "unusual_country": _blocks((0, 9_800), (1, 0)),
            "new_device": _blocks((0, 9_800), (1, 0)),
            "device_users": _blocks((1, 9_600), (2, 250), (4, 0)),
            "ip_users": _blocks((0, 4_000), (1, 5_460), (2, 250), (3, 150), (5, 0)),
            # 1% without signup time, 4.9% bought within the signup's minute, then 0.9 .. 94 days
            "signup_delay_s": np.where(i < 100, -1.0, np.where(i < 590, 0.0, (i - 589) * 864.0)),
            "V14": (i - 5_000) / 1_000,
        }
    )


TRAINING = _training()
POPULATION = np.quantile(TRAINING.to_numpy(), np.linspace(0, 1, _QUANTILES), axis=0)
SCHEMA = Schema(
    entity="customer_id",
    timestamp="timestamp",
    amount="amount",
    country="country",
    device_id="device_id",
)
# An ordinary transaction: every value in the middle of its population.
ORDINARY = {
    "amount": 5_000.0,
    "amount_log1p": math.log1p(5_000),
    "amount_sqrt": math.sqrt(5_000),
    "entity_count": 25.0,
    "entity_mean": 100.0,
    "entity_std": 14.0,
    "amount_zscore": 0.5,
    "amount_to_mean": 1.2,
    "hour": 10.0,
    "day_of_week": 0.0,
    "is_weekend": 0.0,
    "is_night": 0.0,
    "seconds_since_prev": 0.0,
    "count_1h": 0.0,
    "amount_sum_1h": 0.0,
    "amount_x_hour": 50_000.0,
    "amount_x_night": 0.0,
    "quantity": 5.0,
    "quantity_spike": 0.0,
    "hist_freq": 10.0,
    "unusual_country": 0.0,
    "new_device": 0.0,
    "device_users": 1.0,
    "ip_users": 1.0,
    "signup_delay_s": 3_000_000.0,
    "V14": 0.1,
}


def _reasons(attributed, top=3, country="DE", **values):
    """describe() of the ordinary transaction changed by `values`, with the
    attribution spread over `attributed` (a name or names, largest first)."""
    attributed = [attributed] if isinstance(attributed, str) else attributed
    features = pd.DataFrame([{**ORDINARY, **values}], columns=list(TRAINING.columns))
    attribution = np.zeros((1, features.shape[1]))
    for rank, name in enumerate(attributed):
        attribution[0, features.columns.get_loc(name)] = len(attributed) - rank
    return describe(
        features, pd.DataFrame({"country": [country]}), SCHEMA, attribution, POPULATION, top=top
    )[0]


def _reason(name, **values):
    (sentence,) = _reasons(name, top=1, **values)
    return sentence


def test_an_ordinary_transaction_has_no_reason():
    # Every feature drove the score a little; none has an unusual value.
    assert _reasons(list(TRAINING.columns)) == [NOTHING_RARE]
    for name in TRAINING.columns:
        assert _reason(name) == NOTHING_RARE, name


@pytest.mark.parametrize(
    "values",
    [
        {"amount_to_mean": 1.0, "amount_zscore": 0.0},  # "1.0x this customer's average"
        {"amount_to_mean": 2.0, "amount_zscore": 2.9},
        {"amount_to_mean": 0.5, "amount_zscore": -2.0},
        {"amount_to_mean": 5.0, "amount_zscore": 9.0, "entity_count": 0.0},  # no history, no usual
        {
            "amount_to_mean": 1.5,
            "amount_zscore": 4.0,
            "entity_count": 1.0,
        },  # one earlier: no spread
    ],
)
def test_an_amount_near_the_customers_usual_is_no_reason(values):
    for name in ("amount_to_mean", "amount_zscore"):
        assert _reason(name, **values) == NOTHING_RARE


@pytest.mark.parametrize(
    "values, sentence",
    [
        (
            {
                "amount": 800.0,
                "entity_count": 4.0,
                "entity_mean": 20.0,
                "amount_to_mean": 40.0,
                "amount_zscore": 50.0,
            },
            "amount 800.00 is 40x this customer's average of 20.00 and 50.0 standard deviations above it",
        ),
        (
            {
                "amount": 70.0,
                "entity_count": 4.0,
                "entity_mean": 20.0,
                "amount_to_mean": 3.5,
                "amount_zscore": 1.0,
            },
            "amount 70.00 is 3.5x this customer's average of 20.00",
        ),
        (
            {
                "amount": 5.0,
                "entity_count": 4.0,
                "entity_mean": 20.0,
                "amount_to_mean": 0.25,
                "amount_zscore": -1.5,
            },
            "amount 5.00 is 0.25x this customer's average of 20.00",
        ),
        (
            {
                "amount": 30.0,
                "entity_count": 9.0,
                "entity_mean": 20.0,
                "amount_to_mean": 1.5,
                "amount_zscore": 3.5,
            },
            "amount 30.00 is 3.5 standard deviations above this customer's average of 20.00",
        ),
        (
            {
                "amount": -45.0,
                "entity_count": 9.0,
                "entity_mean": 20.0,
                "amount_to_mean": -2.25,
                "amount_zscore": -6.0,
            },
            "amount -45.00 is negative, against this customer's average of 20.00 and 6.0 standard deviations below it",
        ),
    ],
)
def test_an_amount_far_from_the_customers_usual_is_said_once(values, sentence):
    # amount_to_mean and amount_zscore say the same thing: one sentence.
    assert _reasons(["amount_to_mean", "amount_zscore"], **values) == [sentence]


@pytest.mark.parametrize("value", [1.0, 2.5, 9_600.0, 9_990.5, 9_999.0, 1e6])
def test_percentiles_are_the_exact_training_share_rounded_down(value):
    """The words against a hand-computed reference: the share of training
    amounts strictly below (above) the value, rounded down to 0.1%."""
    amounts = TRAINING["amount"].to_numpy()
    below, above = (amounts < value).mean(), (amounts > value).mean()
    sentence = _reason("amount", amount=value)
    if max(below, above) < 0.95:
        assert sentence == NOTHING_RARE
        return
    side, share = ("higher", below) if below > above else ("lower", above)
    words = (
        "all transactions" if share == 1 else f"{math.floor(share * 1000) / 10:g}% of transactions"
    )
    assert sentence == f"amount {value:,.2f}, {side} than {words}"


def test_percentile_words_by_hand():
    assert _reason("amount", amount=9_990.5) == "amount 9,990.50, higher than 99.9% of transactions"
    assert (
        _reason("amount_log1p", amount=9_600.0)
        == "amount 9,600.00, higher than 95.9% of transactions"
    )
    assert _reason("amount_sqrt", amount=1.0) == "amount 1.00, lower than 99.9% of transactions"
    assert _reason("amount", amount=20_000.0) == "amount 20,000.00, higher than all transactions"
    assert _reason("amount", amount=9_400.0) == NOTHING_RARE  # the top 6%: not rare enough
    assert _reason("V14", V14=-9.2) == "V14 = -9.2, lower than all transactions"
    assert _reason("V14", V14=4.9604) == "V14 = 4.96, higher than 99.6% of transactions"
    assert _reason("V14", V14=2.0) == NOTHING_RARE


def test_a_point_mass_never_makes_its_own_value_rare():
    # 96% of transactions are on a device of 1 account: 1 is ordinary, 2 is rare.
    assert _reason("device_users", device_users=1.0) == NOTHING_RARE
    assert (
        _reason("device_users", device_users=2.0)
        == "device shared by 2 accounts; 96% of transactions are on a device of 1 account"
    )
    assert (
        _reason("device_users", device_users=4.0)
        == "device shared by 4 accounts; 98.5% of transactions are on a device with fewer accounts"
    )
    # 40% of transactions have no IP address and 54.6% one of 1 account: only 94.6% are below 2.
    assert _reason("ip_users", ip_users=2.0) == NOTHING_RARE
    assert (
        _reason("ip_users", ip_users=3.0)
        == "IP address shared by 3 accounts; 97.1% of transactions are from an IP address with fewer accounts"
    )
    # 97% of transactions have no earlier one in the last hour.
    assert (
        _reason("count_1h", count_1h=1.0)
        == "1 earlier transaction in the last hour; 97% of transactions have fewer"
    )
    assert (
        _reason("count_1h", count_1h=12.0)
        == "12 earlier transactions in the last hour; 99.5% of transactions have fewer"
    )
    assert _reason("count_1h", count_1h=0.0) == NOTHING_RARE


def test_sums_in_a_window():
    assert _reason("amount_sum_1h", amount_sum_1h=0.0) == NOTHING_RARE
    assert (
        _reason("amount_sum_1h", amount_sum_1h=50.0)
        == "50.00 spent in the last hour, more than before 97.5% of transactions"
    )
    assert (
        _reason("amount_sum_1h", amount_sum_1h=-40.0)
        == "40.00 refunded (net) in the last hour, more than before 99.5% of transactions"
    )


def test_signup_delay_against_every_purchase_with_a_signup_time():
    # 4.9% of transactions came within the signup's minute, 1% have no signup
    # time: 9,410 of the 9,900 with one came later (95.05%).
    assert (
        _reason("signup_delay_s", signup_delay_s=0.0)
        == "bought 0 s after signing up; 95% of purchases come later"
    )
    assert (
        _reason("signup_delay_s", signup_delay_s=9e6)
        == "bought 104 days after signing up; all purchases come sooner"
    )
    assert _reason("signup_delay_s", signup_delay_s=-1.0) == NOTHING_RARE
    assert _reason("signup_delay_s", signup_delay_s=86_400.0 * 5) == NOTHING_RARE


def test_gaps_are_compared_with_gaps():
    # 70% of the rows share their previous row's time (lines of one invoice): an
    # invoice's first line after half an hour is not rare among real gaps.
    assert _reason("seconds_since_prev", seconds_since_prev=1_800.0) == NOTHING_RARE
    assert _reason("seconds_since_prev", seconds_since_prev=0.0) == NOTHING_RARE
    sentence = _reason("seconds_since_prev", seconds_since_prev=1_700_000.0)
    # 2,833 of the 2,900 positive gaps are shorter: 97.6%, read from the grid as at least 97.5%.
    assert re.fullmatch(
        r"20 days after the previous transaction; 97\.[56]% of gaps between "
        r"a customer's transactions are shorter",
        sentence,
    ), sentence
    assert (
        _reason("seconds_since_prev", seconds_since_prev=-1.0)
        == "first transaction of this customer; 99% of transactions come after an earlier one of their customer"
    )


def test_hours_and_days_are_rare_only_when_few_transactions_fall_on_them():
    assert _reason("hour", hour=14.0) == NOTHING_RARE
    assert (
        _reason("hour", hour=7.0)
        == "transaction at 07:00; 99.5% of transactions are at other hours"
    )
    assert (
        _reason("is_night", hour=3.0, is_night=1.0)
        == "at night (03:00); 99.5% of transactions are by day"
    )
    assert (
        _reason("amount_x_night", hour=3.0, is_night=1.0, amount_x_night=5_000.0)
        == "at night (03:00); 99.5% of transactions are by day"
    )
    assert _reason("day_of_week", day_of_week=0.0) == NOTHING_RARE  # "on a Monday"
    assert (
        _reason("is_weekend", day_of_week=5.0, is_weekend=1.0) == NOTHING_RARE
    )  # Saturdays: 16.5%
    assert (
        _reason("day_of_week", day_of_week=6.0, is_weekend=1.0)
        == "on a Sunday; 99% of transactions are on other days"
    )


def test_the_customers_history():
    assert (
        _reason("unusual_country", country="NG", unusual_country=1.0, entity_count=3.0)
        == "first purchase from NG after 3 earlier transactions"
    )
    assert (
        _reason("new_device", new_device=1.0, entity_count=1.0)
        == "a device this customer never used in 1 earlier transaction"
    )
    assert (
        _reason("quantity_spike", quantity=40.0, quantity_spike=1.0)
        == "quantity 40 far from this customer's usual, higher than all transactions"
    )
    assert _reason("quantity", quantity=40.0) == "quantity 40, higher than all transactions"
    assert (
        _reason("hist_freq", hist_freq=150.0)
        == "150 earlier invoices of this customer; all transactions come from customers with fewer"
    )
    assert (
        _reason("entity_count", entity_count=60.0)
        == "a customer with 60 earlier transactions; all transactions come from customers with fewer"
    )
    assert (
        _reason("entity_mean", entity_mean=149.5)
        == "this customer's earlier transactions average 149.50; all transactions come from customers "
        "with a lower average"
    )
    for name in ("unusual_country", "new_device", "quantity_spike", "hist_freq", "entity_count"):
        assert _reason(name) == NOTHING_RARE


def test_the_next_feature_speaks_when_the_first_is_neutral():
    # The largest attribution is on an ordinary Monday: the device speaks first.
    assert _reasons(
        ["day_of_week", "device_users", "amount"], device_users=4.0, amount=9_990.5
    ) == [
        "device shared by 4 accounts; 98.5% of transactions are on a device with fewer accounts",
        "amount 9,990.50, higher than 99.9% of transactions",
    ]
    # amount and amount_log1p say the same thing: it is said once.
    assert _reasons(["amount", "amount_log1p", "hour"], amount=9_990.5, hour=7.0) == [
        "amount 9,990.50, higher than 99.9% of transactions",
        "transaction at 07:00; 99.5% of transactions are at other hours",
    ]


def test_features_from_the_kernel_are_put_in_words():
    times = pd.to_datetime(
        ["2024-01-01 10:00", "2024-01-08 10:00", "2024-01-15 10:00", "2024-01-16 03:00"]
    )
    data = pd.DataFrame(
        {
            "customer_id": ["c"] * 4,
            "timestamp": times,
            "amount": [20.0, 22.0, 18.0, 800.0],
            "country": ["DE", "DE", "DE", "NG"],
            "device_id": ["d1", "d1", "d1", "d9"],
        }
    )
    features = build_features(data, SCHEMA)
    population = np.quantile(features.iloc[:3].to_numpy(), np.linspace(0, 1, _QUANTILES), axis=0)
    names = list(features.columns)
    attribution = np.zeros((1, len(names)))
    for rank, name in enumerate(
        ["amount_to_mean", "amount_zscore", "unusual_country", "new_device"]
    ):
        attribution[0, names.index(name)] = 4 - rank
    # 800 against 20, 22 and 18: 40x the mean, (800 - 20) / sqrt(8 / 3) standard deviations.
    assert describe(features.iloc[[-1]], data.iloc[[-1]], SCHEMA, attribution, population) == [
        [
            "amount 800.00 is 40x this customer's average of 20.00 and 477.7 standard deviations above it",
            "first purchase from NG after 3 earlier transactions",
            "a device this customer never used in 3 earlier transactions",
        ]
    ]
    with pytest.raises(ValueError, match="population must be a quantile grid"):
        describe(features, data, SCHEMA, np.ones((4, len(names))), population[:, :3])


# -- real data ---------------------------------------------------------------------------------

# Sentences that name a share of training transactions, the feature they read and its side.
_RARITY = [
    (re.compile(r"^amount ([-\d,.]+), (higher|lower) than ([\d.]+%|all)"), "amount"),
    (re.compile(r"^device shared by (\d+) accounts; ([\d.]+%|all)"), "device_users"),
    (re.compile(r"^IP address shared by (\d+) accounts; ([\d.]+%|all)"), "ip_users"),
]


def _percent(words):
    return 100.0 if words == "all" else float(words.rstrip("%"))


@pytest.fixture(scope="module")
def fraud_data_alerts(shared_data):
    data, _ = load_fraud_data(
        shared_data / "fraud_data_subset.csv.gz", shared_data / "ip_to_country_subset.csv.gz"
    )
    train = np.random.default_rng(0).random(len(data)) < 0.7
    detector = FraudDetector(Schema.fraud_data(), supervised=False, random_state=0).fit(data[train])
    out, _, features = detector._scored(data, "alerts", "test")
    rows = np.flatnonzero(out["is_alert"].to_numpy())
    attribution = detector._attribution(detector._inputs(features.to_numpy(dtype=np.float64)[rows]))
    training = detector._features(data[train])  # what quantiles_ was computed on
    return detector, training, features.iloc[rows], attribution, out["reasons"].iloc[rows].tolist()


def test_fraud_data_alerts_name_the_signup_delay_where_it_drove_the_score(fraud_data_alerts):
    detector, training, features, attribution, reasons = fraud_data_alerts
    delay = training["signup_delay_s"].to_numpy()
    delay = delay[delay >= 0]
    top = np.argmax(attribution, axis=1) == detector.feature_names_.index("signup_delay_s")
    named = 0
    for row in np.flatnonzero(top):
        value, said = features["signup_delay_s"].iloc[row], reasons[row]
        rare = max((delay < value).mean(), (delay > value).mean()) >= 0.95
        mentions = any("after signing up" in r for r in said)
        # Named where the delay is rare; an ordinary delay (weeks, as most) is no reason.
        assert mentions == rare, (value, said)
        named += mentions
    assert named >= 10, f"only {named} alerts led by the signup delay name it"
    # The purchases made within the signup's minute (all fraud in this data) are the
    # strongest signal: most of their alerts name it, whatever the largest attribution.
    quick = np.flatnonzero(features["signup_delay_s"].to_numpy() == 0)
    said = [any(r.startswith("bought 0 s after signing up") for r in reasons[row]) for row in quick]
    assert len(quick) >= 100 and np.mean(said) >= 0.8, (len(quick), np.mean(said))


def test_fraud_data_alerts_carry_no_neutral_fact(fraud_data_alerts):
    _, training, _, _, reasons = fraud_data_alerts
    assert all(1 <= len(r) <= 3 for r in reasons)
    said = [r for rs in reasons for r in rs]
    neutral = re.compile(
        r"on a (Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day|transaction at \d\d:00|"
        r"^0 earlier|\b1 earlier transactions|customer's average|earlier transaction"
    )
    # Hours and weekdays are evenly spread here, and every user buys once.
    assert not [r for r in said if neutral.search(r)]
    # Every share a reason states is the exact training share, rounded down, and at least 95%.
    checked = 0
    for sentence in said:
        for pattern, name in _RARITY:
            match = pattern.match(sentence)
            if match:
                value = float(match.group(1).replace(",", ""))
                column = training[name].to_numpy()
                share = (
                    (column > value).mean() if "lower than" in sentence else (column < value).mean()
                )
                # Read from the quantile grid: never above the exact share (to within one
                # training row, which the grid's interpolation blurs), at most 0.2% below it.
                row = 1 / len(column)
                assert share >= 0.95 - row, sentence
                stated = _percent(match.groups()[-1]) / 100
                assert share - 0.002 <= stated <= share + row, (sentence, share)
                checked += 1
    assert checked >= 100
