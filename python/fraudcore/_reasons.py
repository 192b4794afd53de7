"""Reason codes: the features behind an alert, in words an analyst reads.

:func:`describe` takes, per alert, each feature's share of the row's
unusualness (from the detectors, see FraudDetector._attribution) and turns
the three largest into sentences built from the feature values and the raw
transaction ("amount 14.0x this customer's average", "7 transactions in
the last hour", "first purchase from NG").
"""

import numpy as np

__all__ = ["describe"]

_WINDOW_WORDS = {"1h": "the last hour", "24h": "the last 24 hours", "7d": "the last 7 days"}


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _window(label):
    return _WINDOW_WORDS.get(label, f"the last {label}")


def _duration(seconds):
    """A time span in the unit an analyst would use: "40 s", "12 min", "5.5 h", "38 days".
    Each unit is kept below where the next one starts, after rounding."""
    if not np.isfinite(seconds):
        return "an unknown time"
    for unit, size, limit, digits in (("s", 1, 120, 0), ("min", 60, 120, 0), ("h", 3_600, 48, 1)):
        value = round(seconds / size, digits)
        if value < limit:
            return f"{value:.{digits}f} {unit}"
    days = seconds / 86_400
    return f"{days:.1f} days" if round(days, 1) < 10 else f"{days:,.0f} days"


def _phrase(name, row, raw, schema):
    """One sentence for feature `name` of a row (None: nothing worth saying)."""
    v = float(row[name])
    amount = float(row["amount"])
    if name == "amount_to_mean":
        return f"amount {v:.1f}x this customer's average ({amount:,.2f})"
    if name == "amount_zscore":
        return f"amount {v:+.1f} standard deviations from this customer's usual"
    if name in ("amount", "amount_log1p", "amount_sqrt", "amount_x_hour"):
        return f"amount {amount:,.2f} is unusual for this data"
    if name == "amount_x_night" or name == "is_night" or name == "hour":
        return f"transaction at {int(row['hour']):02d}:00" + (" (night)" if row.get("is_night", 0) else "")
    if name.startswith("count_"):
        return f"{v:.0f} earlier transactions in {_window(name[len('count_'):])}"
    if name.startswith("amount_sum_"):
        window = _window(name[len("amount_sum_"):])
        if v == 0:
            return f"nothing else spent in {window}"
        return f"{v:,.2f} spent in {window}" if v > 0 else f"{-v:,.2f} refunded in {window} (net)"
    if name == "seconds_since_prev":
        return "first transaction of this customer" if v < 0 else f"{_duration(v)} after the previous transaction"
    if name in ("entity_count", "entity_mean", "entity_std"):
        return f"{row['entity_count']:.0f} earlier transactions of this customer (average {row['entity_mean']:,.2f})"
    if name == "unusual_country":
        country = raw.get(schema.country) if schema.country else None
        return f"first purchase from {country}" if v > 0 else f"purchase from {country}"
    if name == "new_device":
        return "a device this customer never used before" if v > 0 else "a device this customer used before"
    if name == "device_users":
        return f"device used by {v:.0f} accounts"
    if name == "ip_users":
        return f"IP address used by {v:.0f} accounts"
    if name == "signup_delay_s":
        return "no signup time" if v < 0 else f"purchase {_duration(v)} after signup"
    if name in ("quantity", "quantity_spike"):
        return f"quantity {row['quantity']:.0f}" + (" far from this customer's usual" if row["quantity_spike"] else "")
    if name == "hist_freq":
        return f"{v:.0f} earlier invoices of this customer"
    if name in ("day_of_week", "is_weekend"):
        return "weekend transaction" if row.get("is_weekend", 0) else f"on a {_WEEKDAYS[int(row['day_of_week']) % 7]}"
    return f"{name} = {v:.4g}"


def describe(features, data, schema, attribution, top=3):
    """Up to `top` distinct sentences per row, largest attribution first."""
    names = list(features.columns)
    records = features.to_dict("records")
    raws = data.to_dict("records")
    order = np.argsort(-attribution, axis=1, kind="stable")
    out = []
    for i, row in enumerate(records):
        sentences = []
        for j in order[i]:
            sentence = _phrase(names[j], row, raws[i], schema)
            if sentence and sentence not in sentences:
                sentences.append(sentence)
            if len(sentences) == top:
                break
        out.append(sentences)
    return out
