"""Reason sentences: the words an analyst reads for each feature."""

import numpy as np
import pandas as pd
import pytest
from fraudcore import Schema, build_features
from fraudcore._reasons import _duration, describe


@pytest.mark.parametrize(
    "seconds, words",
    [(0, "0 s"), (45, "45 s"), (119, "119 s"), (119.6, "2 min"), (120, "2 min"), (7_140, "119 min"),
     (7_199, "2.0 h"), (7_200, "2.0 h"), (19_800, "5.5 h"), (172_799, "2.0 days"), (172_800, "2.0 days"),
     (863_999, "10 days"), (3_283_200, "38 days"), (69_546_930, "805 days"), (float("nan"), "an unknown time")],
)
def test_durations_read_in_the_unit_an_analyst_uses(seconds, words):
    assert _duration(seconds) == words


def _one_customer():
    times = pd.to_datetime(["2024-01-01 10:00", "2024-01-08 10:00", "2024-01-15 10:00", "2024-01-16 03:00"])
    return pd.DataFrame({"customer_id": ["c"] * 4, "timestamp": times, "amount": [20.0, 22.0, 18.0, 800.0],
                         "country": ["DE", "DE", "DE", "NG"], "device_id": ["d1", "d1", "d1", "d9"]})


def test_each_feature_is_put_in_words():
    data = _one_customer()
    schema = Schema(entity="customer_id", timestamp="timestamp", amount="amount", country="country",
                    device_id="device_id")
    features = build_features(data, schema)
    names = list(features.columns)
    last = features.iloc[[-1]]
    expect = {
        "amount_to_mean": "amount 40.0x this customer's average (800.00)",
        "seconds_since_prev": "17.0 h after the previous transaction",
        "unusual_country": "first purchase from NG",
        "new_device": "a device this customer never used before",
        "is_night": "transaction at 03:00 (night)",
        "amount_sum_24h": "18.00 spent in the last 24 hours",
        "amount_sum_1h": "nothing else spent in the last hour",
        "day_of_week": "on a Tuesday",
    }
    for name, sentence in expect.items():
        attribution = np.zeros((1, len(names)))
        attribution[0, names.index(name)] = 1.0
        assert describe(last, data.iloc[[-1]], schema, attribution, top=1) == [[sentence]]


def test_three_distinct_sentences_largest_first():
    data = _one_customer()
    schema = Schema(entity="customer_id", timestamp="timestamp", amount="amount", country="country")
    features = build_features(data, schema)
    names = list(features.columns)
    attribution = np.zeros((1, len(names)))
    # amount and amount_log1p say the same thing: it is said once.
    for weight, name in enumerate(["hour", "amount_log1p", "amount", "unusual_country"]):
        attribution[0, names.index(name)] = 1.0 + weight
    out = describe(features.iloc[[-1]], data.iloc[[-1]], schema, attribution)
    assert out == [["first purchase from NG", "amount 800.00 is unusual for this data",
                    "transaction at 03:00 (night)"]]
