"""The features of :mod:`fraudcore.features`, written the usual pandas way.

groupby + cumulative sums + ``expanding`` + time-based ``rolling`` windows,
as a data scientist would write them without fraudcore. It is the
correctness oracle of the native kernel in the tests and its baseline in
``benchmarks/bench_features.py``; it is not meant for production use (it is
many times slower). Same inputs and outputs as
:func:`fraudcore.build_features`.
"""

import numpy as np
import pandas as pd

from fraudcore.features import DEFAULT_WINDOWS, _config, _times_ns


def reference_features(
    data, schema, *, windows=DEFAULT_WINDOWS, night_hours=(0, 6), spike_sigmas=3.0
):
    """Plain-pandas twin of :func:`fraudcore.build_features` (same columns)."""
    n = len(data)
    t = pd.DataFrame(
        {
            "pos": np.arange(n),
            "entity": data[schema.entity].to_numpy() if schema.entity is not None else np.zeros(n),
            "time": pd.to_datetime(
                _times_ns(data[schema.timestamp], schema.time_unit, "timestamp")
            ),
        }
    )
    if schema.amount is not None:
        t["amount"] = data[schema.amount].to_numpy(dtype=float)
    else:
        t["amount"] = data[schema.quantity].to_numpy(dtype=float) * data[
            schema.unit_price
        ].to_numpy(dtype=float)
    # Each entity's rows in time order, ties in input order.
    t = t.sort_values(["entity", "time", "pos"], kind="stable").reset_index(drop=True)
    g = t.groupby("entity", sort=False)
    a = t["amount"]
    out = pd.DataFrame(index=t.index)
    out["amount"] = a
    out["amount_log1p"] = np.sign(a) * np.log1p(a.abs())
    out["amount_sqrt"] = np.sign(a) * np.sqrt(a.abs())

    count = g.cumcount()
    mean, std, noise = _earlier_mean_std(t, "amount")
    out["entity_count"] = count.astype(float)
    out["entity_mean"] = mean
    out["entity_std"] = std
    spread = (count >= 2) & (std > noise)
    out["amount_zscore"] = np.where(spread, (a - mean) / std.where(spread, 1.0), 0.0)
    positive = (count > 0) & (mean > 0) & (mean > noise)
    out["amount_to_mean"] = np.where(positive, a / mean.where(positive, 1.0), 1.0)

    hour = t["time"].dt.hour
    start, end = night_hours
    night = (hour >= start) & (hour < end) if start <= end else (hour >= start) | (hour < end)
    out["hour"] = hour.astype(float)
    out["day_of_week"] = t["time"].dt.day_of_week.astype(float)
    out["is_weekend"] = (t["time"].dt.day_of_week >= 5).astype(float)
    out["is_night"] = night.astype(float)
    out["seconds_since_prev"] = g["time"].diff().dt.total_seconds().fillna(-1.0)

    # The columns' window labels ("1h", "7d") are the kernel's names.
    names = _config(schema, windows, night_hours, spike_sigmas).feature_names()
    labels = [name[len("count_") :] for name in names if name.startswith("count_")]
    for w, label in zip(windows, labels):
        rolled = g.rolling(pd.Timedelta(w), on="time", closed="right")["amount"]
        # (t - w, t] holds the current row too: take it out.
        out[f"count_{label}"] = rolled.count().to_numpy() - 1.0
        out[f"amount_sum_{label}"] = rolled.sum().to_numpy() - a.to_numpy()
    out["amount_x_hour"] = a * hour
    out["amount_x_night"] = np.where(night, a, 0.0)

    sorted_rows = t["pos"].to_numpy()
    if schema.quantity is not None:
        t["quantity"] = data[schema.quantity].to_numpy(dtype=float)[sorted_rows]
        q_mean, q_std, q_noise = _earlier_mean_std(t, "quantity")
        spike = (
            (count >= 2)
            & (q_std > q_noise)
            & ((t["quantity"] - q_mean).abs() > spike_sigmas * q_std)
        )
        out["quantity"] = t["quantity"]
        out["quantity_spike"] = spike.astype(float)
    if schema.invoice is not None:
        t["invoice"] = data[schema.invoice].to_numpy()[sorted_rows]
        first = t["invoice"].notna() & ~t.duplicated(["entity", "invoice"])
        distinct_before = first.groupby(t["entity"], sort=False).cumsum() - first
        seen_before = t["invoice"].notna() & ~first
        out["hist_freq"] = (distinct_before - seen_before).astype(float)
    for role, name in (("country", "unusual_country"), ("device_id", "new_device")):
        if getattr(schema, role) is not None:
            t[role] = data[getattr(schema, role)].to_numpy()[sorted_rows]
            first = t[role].notna() & ~t.duplicated(["entity", role])
            out[name] = ((count > 0) & first).astype(float)
    if schema.signup_time is not None:
        signup = data[schema.signup_time]
        delay = np.full(n, -1.0)
        present = signup.notna().to_numpy()
        signup_ns = _times_ns(signup[present], schema.time_unit, "signup_time")
        time_ns = _times_ns(data[schema.timestamp], schema.time_unit, "timestamp")[present]
        delay[present] = (pd.to_timedelta(time_ns - signup_ns)).total_seconds()
        out["signup_delay_s"] = delay[sorted_rows]
    for role, name in (("device_id", "device_users"), ("ip_address", "ip_users")):
        if getattr(schema, role) is not None:
            out[name] = _distinct_users(t, data[getattr(schema, role)].to_numpy()[sorted_rows])

    out.index = sorted_rows
    out = out.sort_index()
    out.index = data.index
    for name in schema.passthrough:
        out[name] = data[name].to_numpy(dtype=float)
    return out


def _earlier_mean_std(t, column):
    """Mean and population std of each entity's earlier values (0 without any),
    and the rounding-noise level 1e-9 x their mean magnitude: a mean or std
    at or below it counts as zero."""

    def earlier(values):
        return (
            values.reset_index(level=0, drop=True)
            .sort_index()
            .groupby(t["entity"], sort=False)
            .shift(1)
            .fillna(0.0)
        )

    expanding = t.groupby("entity", sort=False)[column].expanding()
    magnitude = t[column].abs().groupby(t["entity"], sort=False).expanding().mean()
    return earlier(expanding.mean()), earlier(expanding.std(ddof=0)), 1e-9 * earlier(magnitude)


def _distinct_users(t, values):
    """Distinct entities per value up to and including each row, in time order."""
    frame = pd.DataFrame(
        {
            "value": values,
            "entity": t["entity"].to_numpy(),
            "time": t["time"].to_numpy(),
            "pos": t["pos"].to_numpy(),
        },
        index=t.index,
    )
    frame = frame.sort_values(["time", "pos"], kind="stable")
    first = frame["value"].notna() & ~frame.duplicated(["value", "entity"])
    users = first.groupby(frame["value"], sort=False).cumsum()
    return users.reindex(t.index).fillna(0.0).astype(float)
