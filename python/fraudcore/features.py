"""Transactions in, features out: the native feature kernel from pandas.

:func:`build_features` computes every feature of a whole table at once
(C++, parallel over entities); :class:`FeatureState` computes the same
features one transaction (or a small batch) at a time, keeping each entity's
history, for a service. Feeding a table's rows to ``FeatureState.update`` in
time order (ties in input order) gives exactly the numbers
``build_features`` gives for the table.

Point in time: a transaction's entity features use only that entity's
strictly earlier transactions (earlier in time, or at the same time and
earlier in the input). The features, in column order:

================== ==========================================================
amount             the amount (quantity x unit price when the schema says so)
amount_log1p       sign(a) log(1 + abs(a)); signed, so returns stay finite
amount_sqrt        sign(a) sqrt(abs(a))
entity_count       the entity's earlier transactions
entity_mean        their mean amount (0 without history)
entity_std         their population standard deviation (0 without history)
amount_zscore      (amount - mean) / std; 0 with fewer than 2 earlier or std 0
amount_to_mean     amount / mean; 1 without history or when mean <= 0
                   (a mean or std within 1e-9 x the mean absolute earlier
                   amount counts as 0: rounding left by a purchase and its
                   return is not a tiny mean)
hour, day_of_week  of the timestamp (Monday = 0), read as wall-clock time
is_weekend         Saturday or Sunday
is_night           night_hours[0] <= hour < night_hours[1] (wraps midnight)
seconds_since_prev since the entity's previous transaction; -1 for the first
count_<w>          the entity's earlier transactions in the trailing window w
amount_sum_<w>     their amount sum
amount_x_hour      amount x hour
amount_x_night     amount if night, else 0
quantity           (schema.quantity) the quantity
quantity_spike     1 if abs(quantity - mean) > spike_sigmas x std of the
                   entity's earlier quantities (2 or more, std > 0), else 0
hist_freq          (schema.invoice) distinct earlier invoices of the entity,
                   not counting the current one
unusual_country    (schema.country) 1 if the entity has history and never
                   used this country before
new_device         (schema.device_id) 1 if the entity has history and never
                   used this device before
signup_delay_s     (schema.signup_time) seconds from signup; -1 if missing
device_users       (schema.device_id) distinct entities that used this device,
                   up to and including this transaction; 0 if missing
ip_users           (schema.ip_address) the same for the IP address
<passthrough>      the schema's passthrough columns, as they are
================== ==========================================================

Missing categorical values (NaN / None) count as "no value": never new,
never shared. A value never seen before (a new device, country or IP, in a
batch or at streaming time) is simply new: it gets a fresh code, and
``new_device`` / ``unusual_country`` say so. A missing entity, timestamp or
amount, an unparseable time, or a non-numeric amount is a ValueError naming
the column and the row.
"""

import math
import os
import threading
import weakref

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from fraudcore import _core
from fraudcore._parallel import resolve_n_jobs
from fraudcore._persistence import MetadataError, NativeModelMixin, fitted, register
from fraudcore.schema import Schema

__all__ = ["FeatureState", "build_features"]

DEFAULT_WINDOWS = ("1h", "24h", "7D")
_CATEGORICAL_ROLES = ("invoice", "country", "device_id", "ip_address")
# Amounts (and quantities) beyond these would let squares, sums or ratios overflow.
MAX_ABS_AMOUNT, MIN_ABS_AMOUNT = _core.MAX_ABS_AMOUNT, _core.MIN_ABS_AMOUNT
_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def build_features(
    data, schema, *, windows=DEFAULT_WINDOWS, night_hours=(0, 6), spike_sigmas=3.0, n_jobs=-1
):
    """Point-in-time features of every transaction in ``data``.

    Parameters
    ----------
    data : pandas.DataFrame
        Transactions, in any order; the columns ``schema`` names.
    schema : Schema
    windows : sequence of str or pandas.Timedelta
        Trailing windows of the ``count_*`` / ``amount_sum_*`` features.
    night_hours : (int, int)
        Night is start <= hour < end; start > end wraps past midnight.
    spike_sigmas : float
        Threshold of ``quantity_spike``, in standard deviations.
    n_jobs : int
        Threads (joblib convention: -1 = all cores).

    Returns
    -------
    pandas.DataFrame
        One row per transaction, same index and order as ``data``; columns
        as listed in this module's documentation.
    """
    config = _config(schema, windows, night_hours, spike_sigmas)
    columns, passthrough = _encode_table(data, schema, _Vocabularies(remember=False))
    matrix = _core.build_features(config, **columns, n_threads=resolve_n_jobs(n_jobs))
    return _frame(matrix, config, data, passthrough)


@register
class FeatureState(NativeModelMixin, BaseEstimator):
    """Streaming features: each entity's history, updated one transaction at a time.

    Parameters are those of :func:`build_features`. ``update`` returns the
    features of a transaction from the history so far, then adds it. Feed
    transactions in time order per entity (an earlier time than the
    entity's last raises ValueError and leaves the state unchanged).
    ``save`` / ``fraudcore.load`` (and pickle) keep the whole state, so a
    restarted service keeps every customer's history.

    Thread safety: one FeatureState may be shared by threads. Updates are
    serialized: each ``update`` call (a single transaction or a whole
    batch) is applied at once, and ``save`` / pickle write a consistent
    snapshot taken between two updates, never half of one. The batch
    kernel runs without the GIL, so other Python threads go on meanwhile.
    Threads that feed the same entity should agree on its time order: a
    transaction that arrives after a later one of its entity is refused.

    Attributes
    ----------
    feature_names_ : list of str
    n_entities_ : int
        Entities with at least one transaction.
    """

    _native_type = _core.FeatureStateModel
    _fitted_attributes = ("vocabularies_",)

    def __init__(
        self, schema=None, *, windows=DEFAULT_WINDOWS, night_hours=(0, 6), spike_sigmas=3.0
    ):
        self.schema = schema
        self.windows = windows
        self.night_hours = night_hours
        self.spike_sigmas = spike_sigmas

    def __sklearn_is_fitted__(self):
        return True  # usable from the start: an empty history

    def _lock(self):
        """The lock that serializes updates and snapshots (made on first use;
        dict.setdefault is atomic, so two threads get the same lock)."""
        lock = self.__dict__.get("_update_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_update_lock", threading.RLock())
            _LOCKS_TO_HOLD_OVER_FORK.add(lock)
        return lock

    def _state(self):
        native = getattr(self, "_native", None)
        if native is None:
            with self._lock():  # one thread makes it; the others see it made
                native = getattr(self, "_native", None)
                if native is None:
                    if not isinstance(self.schema, Schema):
                        raise ValueError(f"FeatureState needs a Schema, got {self.schema!r}")
                    config = _config(self.schema, self.windows, self.night_hours, self.spike_sigmas)
                    self.vocabularies_ = {}
                    native = self._native = _core.FeatureStateModel(config)
                    self._restore_native_attributes()
        return native

    def set_params(self, **params):
        """As scikit-learn's; refused once the state holds history, whose
        features were computed with the old settings."""
        if getattr(self, "_native", None) is not None and self._native.n_entities > 0:
            raise ValueError(
                "a FeatureState's settings are fixed once it holds history; "
                "start a new FeatureState (sklearn.base.clone) for other settings"
            )
        self.__dict__.pop("_native", None)  # made again, with the new settings, on first use
        return super().set_params(**params)

    def _restore_native_attributes(self):
        self._vocab = _Vocabularies(self.vocabularies_)
        self._single = _single_row_encoder(self.schema, self._vocab)
        self._keys = list(self._native.names)

    @property
    def feature_names_(self):
        return list(self._state().names) + list(self.schema.passthrough)

    @property
    def n_entities_(self):
        return self._state().n_entities

    def update(self, transaction):
        """Features of ``transaction`` from the history so far, then remember it.

        Parameters
        ----------
        transaction : dict, pandas.Series or pandas.DataFrame
            One transaction (keys / fields named by the schema), or a small
            batch in time order.

        Returns
        -------
        dict {feature name: float} for one transaction, or a DataFrame
        (same index as the batch) for a batch.
        """
        if type(transaction) is not dict:  # a dict, the streaming hot path, skips these checks
            if isinstance(transaction, pd.DataFrame):
                with self._lock():
                    return self._update_many(transaction)
            if isinstance(transaction, pd.Series):
                transaction = transaction.to_dict()
            if not isinstance(transaction, dict):
                raise TypeError(
                    f"update takes a dict, Series or DataFrame, got {type(transaction).__name__}"
                )
        try:  # read the passthrough values first: a rejected update changes nothing
            extra = {name: _number(transaction, name) for name in self.schema.passthrough}
        except KeyError as exc:
            raise ValueError(
                f"the transaction lacks field {exc.args[0]!r} named by the schema"
            ) from None
        with self._lock():  # the vocabularies and the native state change together
            native = self._native if getattr(self, "_native", None) is not None else self._state()
            with _AllOrNothing(self._vocab, self.schema):
                out = native.update(self._keys, *self._single(transaction))
        if extra:
            out.update(extra)
        return out

    def _update_many(self, transactions):
        native = self._state()
        if len(transactions) == 0:
            return pd.DataFrame(
                np.empty((0, len(self.feature_names_))),
                columns=self.feature_names_,
                index=transactions.index,
            )
        with _AllOrNothing(self._vocab, self.schema):
            columns, passthrough = _encode_table(transactions, self.schema, self._vocab)
            matrix = native.update_many(**columns)
        return _frame(matrix, native.config, transactions, passthrough)

    def _to_bytes(self):
        with self._lock():  # a snapshot between updates: vocabularies and histories agree
            self._state()
            return super()._to_bytes()

    def _validate_params(self):
        """What the feature kernel needs of the parameters (load runs it; _state makes the same)."""
        _config(self.schema, self.windows, self.night_hours, self.spike_sigmas)

    def _check_fitted_attributes(self, params, attributes, native):
        config = _config(
            params["schema"], params["windows"], params["night_hours"], params["spike_sigmas"]
        )
        for name, param in (
            ("windows_ns", "windows"),
            ("night_start_hour", "night_hours"),
            ("night_end_hour", "night_hours"),
            ("spike_sigmas", "spike_sigmas"),
            *(
                (f"has_{role}", "schema")
                for role in ("quantity", "invoice", "country", "device", "ip", "signup")
            ),
        ):
            if getattr(native.config, name) != getattr(config, name):
                raise MetadataError(f"params.{param}", f"disagrees with the saved state's {name}")
        vocabularies = fitted(attributes, "vocabularies_")
        if not isinstance(vocabularies, dict):
            raise MetadataError("attributes.vocabularies_", "must be a dict")
        for role, values in vocabularies.items():
            field = f"attributes.vocabularies_.{role}"
            if role not in ("entity", *_CATEGORICAL_ROLES):
                raise MetadataError(field, "is not a categorical role")
            if not (
                isinstance(values, list)
                and all(
                    isinstance(v, (str, int, bool)) or (isinstance(v, float) and np.isfinite(v))
                    for v in values
                )
            ):
                raise MetadataError(field, "must be a list of str or finite numbers")
            if len(set(values)) != len(values):
                raise MetadataError(field, "holds a value twice")
        if native.n_entities > max(1, len(vocabularies.get("entity", ()))):
            raise MetadataError(
                "attributes.vocabularies_.entity",
                f"has fewer values than the state's {native.n_entities} entities",
            )


class _AllOrNothing:
    """Context of an update: if it fails, the values it added to the
    vocabularies are forgotten (the native state refuses a bad transaction
    or batch before changing), and the kernel's refusal of a time earlier
    than the entity's last names the timestamp column."""

    __slots__ = ("schema", "vocab")

    def __init__(self, vocab, schema):
        self.vocab, self.schema = vocab, schema

    def __enter__(self):
        self.vocab.added = []

    def __exit__(self, kind, exc, traceback):
        if exc is not None:
            self.vocab.forget_added()
        self.vocab.added = None
        if isinstance(exc, ValueError) and "time order" in str(exc):
            raise ValueError(f"timestamp column {self.schema.timestamp!r}: {exc}") from None
        return False


# Fork safety: a fork while another thread updates a FeatureState would give
# the child a copy whose lock (and native mutex) is held forever. As the
# logging module does, every state's lock is taken before a fork and released
# after it, in the parent and the child, so a child's copy is always idle.
_LOCKS_TO_HOLD_OVER_FORK = weakref.WeakSet()


def _take_locks_before_fork():
    global _held_over_fork
    _held_over_fork = list(_LOCKS_TO_HOLD_OVER_FORK)
    for lock in _held_over_fork:
        lock.acquire()


def _release_locks_after_fork():
    global _held_over_fork
    for lock in reversed(_held_over_fork):
        lock.release()
    _held_over_fork = []


_held_over_fork = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_take_locks_before_fork,
        after_in_parent=_release_locks_after_fork,
        after_in_child=_release_locks_after_fork,
    )


# ---------------------------------------------------------------------------
# Encoding: pandas columns and Python values to the kernel's int64 / float64


class _Vocabularies:
    """Codes of categorical values (entities, invoices, countries, ...).

    ``values`` maps a role to the list of its values in code order (saved
    with a FeatureState); a code is the value's position. Missing values
    (None, NaN) have code -1.
    """

    def __init__(self, values=None, *, remember=True):
        self.remember = remember  # False: codes of this one table only (build_features)
        self.values = {} if values is None else values
        self.added = None  # a list: (role, value) of each value coded since, to forget_added
        self.codes = {
            role: {v: i for i, v in enumerate(vals)} for role, vals in self.values.items()
        }

    def code(self, role, value):
        if _is_missing(value):
            return -1
        key = _plain(value)  # what a saved vocabulary holds, so lookups agree after a load
        codes = self.codes.get(role)
        if codes is None:
            codes = self.codes[role] = {}
            self.values[role] = []
        code = codes.get(key)
        if code is None:
            code = codes[key] = len(codes)
            self.values[role].append(key)
            if self.added is not None:
                self.added.append((role, key))
        return code

    def _codes(self, role, uniques, plain_text):
        """np.int64 codes of distinct values; ``plain_text``: all are str
        (natively factorised), so the known ones are looked up in bulk."""
        if not plain_text or len(uniques) == 0:
            return np.fromiter(
                (self.code(role, v) for v in uniques), dtype=np.int64, count=len(uniques)
            )
        known = self.codes.get(role, {})
        found = [known.get(v, -2) for v in uniques]
        for i, code in enumerate(found):
            if code == -2:  # a new value: coded (and remembered) one by one
                found[i] = self.code(role, uniques[i])
        return np.asarray(found, dtype=np.int64)

    def forget_added(self):
        """Drop the values coded since ``added`` was set (newest first), so a
        refused update leaves the vocabularies as they were."""
        for role, key in reversed(self.added or ()):
            del self.codes[role][key]
            self.values[role].pop()
        self.added = []

    def encode(self, columns):
        """{role: int64 codes} of {role: column} (-1 where missing).

        Columns of str are factorised natively, in parallel (a few times
        faster than pandas); others, or str columns holding other values,
        by pandas.
        """
        text = [
            role
            for role, series in columns.items()
            if series.dtype == object or pd.api.types.is_string_dtype(series.dtype)
        ]
        native = (
            _core.factorize_strings(
                [columns[role].to_numpy(dtype=object) for role in text], resolve_n_jobs(-1)
            )
            if text
            else []
        )
        factorized = dict(zip(text, native))
        out = {}
        for role, series in columns.items():
            found = factorized.get(role)
            local, uniques = (
                found if found is not None else pd.factorize(series, use_na_sentinel=True)
            )
            if not self.remember:
                out[role] = np.asarray(local, dtype=np.int64)
                continue
            mapping = self._codes(role, uniques, plain_text=found is not None)
            out[role] = np.append(mapping, -1)[local]  # local code -1 (missing) picks the final -1
        return out


def _is_missing(value):
    """None, NaN (any float type), pd.NA or NaT."""
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, (float, np.floating)) and value != value)
    )


def _plain(value):
    """A JSON-able Python scalar for a vocabulary value (other types: their str)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _config(schema, windows, night_hours, spike_sigmas):
    if not isinstance(schema, Schema):
        raise ValueError(f"schema must be a fraudcore.Schema, got {schema!r}")
    config = _core.FeatureConfig()
    if isinstance(windows, str):
        raise ValueError(
            f"windows must be a sequence of durations such as ('1h', '24h'), got {windows!r}"
        )
    try:
        config.windows_ns = [int(pd.Timedelta(w).value) for w in windows]
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"windows must be durations such as '1h' or '7d', got {windows!r}: {exc}"
        ) from None
    try:
        start, end = night_hours
        if int(start) != start or int(end) != end:
            raise ValueError
        config.night_start_hour, config.night_end_hour = int(start), int(end)
    except (TypeError, ValueError):
        raise ValueError(
            f"night_hours must be a pair of whole hours, got {night_hours!r}"
        ) from None
    config.spike_sigmas = float(spike_sigmas)
    config.has_quantity = schema.quantity is not None
    config.has_invoice = schema.invoice is not None
    config.has_country = schema.country is not None
    config.has_device = schema.device_id is not None
    config.has_ip = schema.ip_address is not None
    config.has_signup = schema.signup_time is not None
    config.validate()
    clash = sorted(set(schema.passthrough) & set(config.feature_names()))
    if clash:
        raise ValueError(
            f"passthrough column(s) {clash} would overwrite features of the same name; rename them"
        )
    return config


_TIME_RANGE = "outside 1677-09-21 .. 2262-04-11, the range of fraudcore's nanosecond times"


def _times_ns(series, unit, what):
    """int64 nanoseconds of a time column; ValueError naming the first bad value.

    Times with a time zone or a UTC offset keep their wall-clock time. A
    column pandas cannot read at once (mixed formats, offsets or time zones)
    is read value by value, as the streaming path reads one.
    """
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "integer",
        "floating",
        "mixed-integer-float",
    ):
        series = series.astype(
            np.float64
        )  # numbers held as objects count time_unit, as streaming does
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (np.abs(values * _NS_PER_UNIT[unit]) >= 2.0**63)
        if bad.any():
            raise ValueError(
                f"{what} column {series.name!r} has a missing, infinite or out-of-range value "
                f"{series.iloc[np.argmax(bad)]!r} at index {_label(series.index[np.argmax(bad)])!r}"
            )
        if pd.api.types.is_integer_dtype(series.dtype) and unit == "ns":
            return series.to_numpy(dtype=np.int64)  # exact: no trip through float64
        return np.round(values * _NS_PER_UNIT[unit]).astype(np.int64)
    times = series
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        # One format for the whole column (pandas infers it from the first
        # value), else ISO 8601 in any of its forms; never a guess per value,
        # which would read 01/02 and 13/02 with the day in different places.
        times = _parsed(series, None)
        if times is None:
            times = _parsed(series, "ISO8601")
        if times is None:
            return _times_one_by_one(series, unit, what)
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_localize(None)  # keep the wall-clock time
    try:
        times = times.dt.as_unit("ns")
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        return _times_one_by_one(series, unit, what)  # names the first time out of range
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _parsed(series, format):
    """pd.to_datetime of every present value in ``format``, or None if one fails."""
    try:
        times = pd.to_datetime(series, errors="coerce", format=format)
    except (ValueError, TypeError):  # several UTC offsets or time zones in one column
        return None
    return None if (times.isna() & series.notna()).any() else times


def _times_one_by_one(series, unit, what):
    """Times pandas could not read as one column (mixed offsets, time zones,
    Timestamp objects): each value as the streaming path reads it, strings
    only in ISO 8601."""
    # Which values read as ISO 8601, in one pass (utc=True: mixed offsets parse).
    iso = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True).notna().to_numpy()
    out = np.empty(len(series), dtype=np.int64)
    for i, (label, value) in enumerate(series.items()):
        if _is_missing(value):
            out[i] = np.iinfo(np.int64).min  # NaT: the caller names it
            continue
        try:
            if isinstance(value, str) and not iso[i]:
                _time_ns(value, _NS_PER_UNIT[unit])  # raises for a value that is no time at all
                raise ValueError(
                    f"{value!r} is not ISO 8601, and the column's times are not all in "
                    "one format; give the column one format"
                )
            out[i] = _time_ns(value, _NS_PER_UNIT[unit])
        except ValueError as exc:
            raise ValueError(
                f"{what} column {series.name!r} at index {_label(label)!r}: {exc}"
            ) from None
    return out


def _time_ns(value, ns_per_unit):
    """int64 nanoseconds of one time value (a number counts ``ns_per_unit``);
    a ValueError saying what is wrong with it. An aware time keeps its
    wall-clock time."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if not np.isfinite(value) or abs(float(value) * ns_per_unit) >= 2.0**63:
            raise ValueError(f"{value!r} is missing, infinite or out of range")
        if isinstance(value, (int, np.integer)) and ns_per_unit == 1:
            return int(value)
        return int(round(float(value) * ns_per_unit))
    try:
        stamp = pd.Timestamp(value)
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        raise ValueError(f"{value!r} is {_TIME_RANGE}") from None
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a time") from None
    if stamp is pd.NaT:
        raise ValueError(f"{value!r} is missing")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)  # keep the wall-clock time, as batch does
    try:
        return stamp.as_unit("ns").value
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        raise ValueError(f"{value!r} is {_TIME_RANGE}") from None


def _encode_table(data, schema, vocab):
    """The kernel's keyword arguments for a DataFrame, and {name: values} of
    the schema's passthrough columns."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    schema.validate(data)
    if len(data) == 0:
        raise ValueError("the data has no rows")
    time_ns = _times_ns(data[schema.timestamp], schema.time_unit, "timestamp")
    if (time_ns == np.iinfo(np.int64).min).any():
        first = data.index[np.argmax(time_ns == np.iinfo(np.int64).min)]
        raise ValueError(
            f"timestamp column {schema.timestamp!r} is missing at index {_label(first)!r}"
        )
    if schema.amount is not None:
        amount = _amounts(
            _numbers(data[schema.amount], "amount"),
            data[schema.amount],
            f"the amount ({schema.amount!r})",
        )
    else:
        with np.errstate(over="ignore"):
            amount = _numbers(data[schema.quantity], "quantity") * _numbers(
                data[schema.unit_price], "unit_price"
            )
        amount = _amounts(
            amount,
            data[schema.quantity],
            f"the amount ({schema.quantity!r} x {schema.unit_price!r})",
        )
    columns = {
        "entity": None,
        "time_ns": time_ns,
        "amount": amount,
        "quantity": None,
        "invoice": None,
        "country": None,
        "device": None,
        "ip": None,
        "signup_ns": None,
        "has_signup_time": None,
    }
    if schema.entity is not None:
        entity = data[schema.entity]
        if entity.isna().any():
            first = data.index[np.argmax(entity.isna().to_numpy())]
            raise ValueError(
                f"entity column {schema.entity!r} is missing at index {_label(first)!r}"
            )
    if schema.quantity is not None:
        columns["quantity"] = _amounts(
            _numbers(data[schema.quantity], "quantity"),
            data[schema.quantity],
            f"the quantity ({schema.quantity!r})",
            small_too=False,
        )
    # Checked before the kernel runs, so a bad batch changes no state.
    passthrough = {name: _numbers(data[name], name) for name in schema.passthrough}
    categorical = {
        role: data[getattr(schema, role)]
        for role in ("entity", *_CATEGORICAL_ROLES)
        if getattr(schema, role) is not None
    }
    codes = vocab.encode(categorical)
    for role, key in zip(
        ("entity", *_CATEGORICAL_ROLES), ("entity", "invoice", "country", "device", "ip")
    ):
        if role in codes:
            columns[key] = codes[role]
    if schema.signup_time is not None:
        signup = data[schema.signup_time]
        present = signup.notna().to_numpy()
        values = np.zeros(len(data), dtype=np.int64)
        values[present] = _times_ns(signup[present], schema.time_unit, "signup_time")
        columns["signup_ns"] = values
        columns["has_signup_time"] = present.astype(np.uint8)
    return columns, passthrough


def _numbers(series, role):
    try:
        values = series.to_numpy(dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"{role} column {series.name!r} must be numeric, got dtype {series.dtype}"
        ) from None
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{role} column {series.name!r} has a missing or infinite value at index "
            f"{_label(series.index[np.argmax(bad)])!r}"
        )
    return values


def _amounts(values, series, what, small_too=True):
    """``values``, or a ValueError naming the first transaction whose amount
    (or quantity) is beyond what the features can hold."""
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(values)
        bad = ~(magnitude <= MAX_ABS_AMOUNT) | (
            (magnitude < MIN_ABS_AMOUNT) & (magnitude > 0) & small_too
        )
    if bad.any():
        first = np.argmax(bad)
        raise ValueError(
            f"{what} at index {_label(series.index[first])!r} is {float(values[first])!r}, outside "
            f"0 or {MIN_ABS_AMOUNT:g} .. {MAX_ABS_AMOUNT:g} in magnitude, what fraudcore's features "
            "can hold; is the column in a sensible unit?"
        )
    return values


def _label(value):
    """An index label as the user wrote it (a Python scalar, not np.int64(3))."""
    return value.item() if isinstance(value, np.generic) else value


def _number(transaction, key):
    """float(transaction[key]), or a ValueError naming the field when it is
    not a finite number (KeyError when absent), as batch refuses it."""
    value = transaction[key]
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"field {key!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"field {key!r} must be a finite number, got {value!r}")
    return number


def _frame(matrix, config, data, passthrough):
    """DataFrame over ``matrix`` (n x features) without copying it, then the passthrough columns."""
    out = pd.DataFrame(matrix, columns=config.feature_names(), index=data.index, copy=False)
    for name, values in passthrough.items():
        out[name] = values
    return out


def _single_row_encoder(schema, vocab):
    """A function: transaction dict -> FeatureStateModel.update arguments.

    The streaming hot path (a service calls it per transaction), so the
    common cases (pd.Timestamp or ISO string times, known categories) take
    few branches.
    """
    unit = _NS_PER_UNIT[schema.time_unit]
    when_key, amount_key, entity_key = schema.timestamp, schema.amount, schema.entity
    quantity_key, price_key, signup_key = schema.quantity, schema.unit_price, schema.signup_time
    categorical = [(role, getattr(schema, role)) for role in _CATEGORICAL_ROLES]
    code = vocab.code

    def time_ns(value, what):
        if type(value) is pd.Timestamp and value.tzinfo is None and value.unit == "ns":
            return value.value
        try:
            return _time_ns(value, unit)
        except ValueError as exc:
            raise ValueError(f"{what} {exc}") from None

    def encode(t):
        try:
            when = time_ns(t[when_key], f"timestamp column {when_key!r}:")
            if amount_key is not None:
                amount = _number(t, amount_key)
            else:
                amount = _number(t, quantity_key) * _number(t, price_key)
            quantity = _number(t, quantity_key) if quantity_key is not None else 0.0
            entity = 0
            if entity_key is not None:
                entity = code("entity", t[entity_key])
                if entity < 0:
                    raise ValueError(f"the entity ({entity_key!r}) is missing")
            codes = [
                -1 if column is None else code(role, t.get(column)) for role, column in categorical
            ]
            signup, has_signup = 0, False
            if signup_key is not None:
                raw = t.get(signup_key)
                if (
                    raw is not None
                    and raw is not pd.NaT
                    and not (isinstance(raw, float) and raw != raw)
                ):
                    signup, has_signup = time_ns(raw, f"signup_time column {signup_key!r}:"), True
        except KeyError as exc:
            raise ValueError(
                f"the transaction lacks field {exc.args[0]!r} named by the schema"
            ) from None
        return (
            entity,
            when,
            amount,
            quantity,
            codes[0],
            codes[1],
            codes[2],
            codes[3],
            signup,
            has_signup,
        )

    return encode
