"""Schema: which of a user's columns plays which role in the features.

A transaction table needs a timestamp and an amount (or a quantity and a
unit price, whose product is the amount); every other role is optional and
adds the features that use it (see :func:`fraudcore.build_features`). The
ready-made schemas match the loaders in :mod:`fraudcore.datasets`.

Two more things a schema says about the rows:

- **Which rows identify a transaction** (:attr:`Schema.identifiers`): the
  transaction id, the entity and the invoice. ``FraudDetector.score`` copies
  them into its results, so every alert points back to its row.
- **Which rows are cancellations or returns** (:meth:`Schema.cancellations`):
  a boolean ``cancellation`` column, and / or the rule
  ``negative_is_cancellation`` (a negative amount or quantity is a return or
  a cancelled order, as Online Retail's "C" invoices are). They stay in
  every customer's history (the features do not change); by default
  ``FraudDetector`` fits and alerts on the other rows only.
"""

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import pandas as pd

__all__ = ["Schema"]

_ROLES = (
    "entity",
    "timestamp",
    "amount",
    "quantity",
    "unit_price",
    "country",
    "ip_address",
    "device_id",
    "browser",
    "source",
    "merchant",
    "invoice",
    "signup_time",
    "label",
    "transaction_id",
    "cancellation",
)
_IDENTIFIER_ROLES = ("transaction_id", "entity", "invoice")
_TIME_UNITS = ("ns", "us", "ms", "s")


@dataclass(frozen=True)
class Schema:
    """Column roles of a transaction table.

    Parameters
    ----------
    entity : str or None
        Customer, user or card id; features are computed per entity. None
        treats the whole table as one entity.
    timestamp : str
        Transaction time: datetime64 values, strings pandas parses, or
        numbers in ``time_unit`` since an origin.
    amount : str or None
        Transaction amount. When None, ``quantity`` and ``unit_price`` are
        required and amount = quantity x unit price (Online Retail's
        TotalSpent).
    quantity, unit_price : str or None
        Quantity adds the ``quantity`` and ``quantity_spike`` features.
    country : str or None
        Adds ``unusual_country`` (a country the entity never used before).
    ip_address, device_id : str or None
        Add ``ip_users`` / ``device_users`` (distinct entities seen on the
        value so far) and, for devices, ``new_device``.
    invoice : str or None
        Adds ``hist_freq`` (the entity's earlier distinct invoices).
    signup_time : str or None
        Adds ``signup_delay_s`` (seconds from signup to the transaction).
    browser, source, merchant : str or None
        Recorded for explanations and reports; no feature yet.
    label : str or None
        Known fraud label (1 = fraud), never a feature.
    transaction_id : str or None
        A transaction's own id, never a feature; kept in score's results.
    cancellation : str or None
        A column flagging cancellations and returns: booleans, or 0 / 1
        (missing = not a cancellation). Never a feature.
    negative_is_cancellation : bool
        Also count as a cancellation every row whose amount is negative, or
        whose quantity is when the schema has one (Online Retail: every "C"
        invoice of a customer, and only those, has a negative quantity).
    time_unit : {"ns", "us", "ms", "s"}
        Unit of numeric timestamps (the credit-card data counts seconds).
    passthrough : tuple of str
        Numeric columns copied into the features as they are (e.g. V1..V28).
    """

    entity: str = None
    timestamp: str = None
    amount: str = None
    quantity: str = None
    unit_price: str = None
    country: str = None
    ip_address: str = None
    device_id: str = None
    browser: str = None
    source: str = None
    merchant: str = None
    invoice: str = None
    signup_time: str = None
    label: str = None
    transaction_id: str = None
    cancellation: str = None
    negative_is_cancellation: bool = False
    time_unit: str = "ns"
    passthrough: tuple = ()

    def __post_init__(self):
        for role in _ROLES:
            value = getattr(self, role)
            if value is not None and not isinstance(value, str):
                raise ValueError(
                    f"Schema.{role} must be a column name (str) or None, got {value!r}"
                )
        if self.timestamp is None:
            raise ValueError("Schema needs a timestamp column")
        if self.amount is None and (self.quantity is None or self.unit_price is None):
            raise ValueError("Schema needs an amount column, or both quantity and unit_price")
        if self.time_unit not in _TIME_UNITS:
            raise ValueError(
                f"Schema.time_unit must be one of {_TIME_UNITS}, got {self.time_unit!r}"
            )
        if isinstance(self.passthrough, str) or not all(
            isinstance(c, str) for c in self.passthrough
        ):
            raise ValueError("Schema.passthrough must be a sequence of column names")
        object.__setattr__(self, "passthrough", tuple(self.passthrough))
        if not isinstance(self.negative_is_cancellation, (bool, np.bool_)):
            raise ValueError(
                "Schema.negative_is_cancellation must be True or False, "
                f"got {self.negative_is_cancellation!r}"
            )
        object.__setattr__(self, "negative_is_cancellation", bool(self.negative_is_cancellation))

    @property
    def roles(self):
        """{role: column} for every role that is set."""
        return {role: getattr(self, role) for role in _ROLES if getattr(self, role) is not None}

    @property
    def identifiers(self):
        """The columns that identify a row (transaction id, entity, invoice), as set."""
        columns = (getattr(self, role) for role in _IDENTIFIER_ROLES)
        return list(dict.fromkeys(c for c in columns if c is not None))

    @property
    def has_cancellations(self):
        """Whether this schema says which rows are cancellations."""
        return self.cancellation is not None or self.negative_is_cancellation

    def cancellations(self, frame):
        """Boolean array, True at each row of ``frame`` that is a cancellation or
        a return: flagged in the ``cancellation`` column, or (with
        ``negative_is_cancellation``) of negative amount or quantity. All False
        when the schema defines none. A value that is not a number counts as
        not negative (the features refuse it)."""
        out = np.zeros(len(frame), dtype=bool)
        if self.cancellation is not None:
            out |= _flags(frame[self.cancellation], self.cancellation)
        if self.negative_is_cancellation:
            if self.amount is not None:
                out |= _numbers(frame[self.amount]) < 0
            else:
                out |= _numbers(frame[self.quantity]) * _numbers(frame[self.unit_price]) < 0
            if self.quantity is not None:
                out |= _numbers(frame[self.quantity]) < 0
        return out

    def required_columns(self, *, label=False):
        """Columns a table must have for features (and the label, if asked)."""
        columns = [c for role, c in self.roles.items() if role != "label"] + list(self.passthrough)
        if label and self.label is not None:
            columns.append(self.label)
        return list(dict.fromkeys(columns))

    def validate(self, frame, *, label=False):
        """Raise ValueError naming every column of this schema ``frame`` lacks."""
        missing = [c for c in self.required_columns(label=label) if c not in frame.columns]
        if missing:
            raise ValueError(
                f"the data lacks column(s) {missing} named by the schema; it has {list(frame.columns)}"
            )

    def to_dict(self):
        out = asdict(self)
        out["passthrough"] = list(self.passthrough)
        return out

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown Schema field(s) {sorted(unknown)}")
        return cls(**values)

    @classmethod
    def online_retail(cls):
        """UCI Online Retail (:func:`fraudcore.datasets.load_online_retail`, or the
        file read as it is): cancellations by the negative-quantity rule, so
        the loader's ``is_cancellation`` column is not needed."""
        return cls(
            entity="CustomerID",
            timestamp="InvoiceDate",
            quantity="Quantity",
            unit_price="UnitPrice",
            country="Country",
            merchant="StockCode",
            invoice="InvoiceNo",
            negative_is_cancellation=True,
        )

    @classmethod
    def fraud_data(cls):
        """E-commerce Fraud_Data (:func:`fraudcore.datasets.load_fraud_data` with the
        IP-to-country table, which adds the ``country`` column)."""
        return cls(
            entity="user_id",
            timestamp="purchase_time",
            amount="purchase_value",
            country="country",
            ip_address="ip_address",
            device_id="device_id",
            browser="browser",
            source="source",
            signup_time="signup_time",
            label="class",
        )

    @classmethod
    def fraud_data_without_country(cls):
        """Fraud_Data loaded without the IP-to-country table."""
        return replace(cls.fraud_data(), country=None)

    @classmethod
    def creditcard(cls):
        """ULB credit-card data: no customer id; Time in seconds; V1..V28 kept."""
        return cls(
            timestamp="Time",
            amount="Amount",
            label="Class",
            time_unit="s",
            passthrough=tuple(f"V{i}" for i in range(1, 29)),
        )

    @classmethod
    def transactions(cls):
        """:func:`fraudcore.datasets.make_transactions`."""
        return cls(
            entity="customer_id",
            timestamp="timestamp",
            amount="amount",
            country="country",
            ip_address="ip_address",
            device_id="device_id",
            merchant="merchant",
            signup_time="signup_time",
            label="is_fraud",
            transaction_id="transaction_id",
        )


def _numbers(series):
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _flags(series, column):
    """A cancellation column as booleans: bools or 0 / 1, missing = False."""
    present = series.notna().to_numpy()
    values = series[present]
    if pd.api.types.is_bool_dtype(values):
        flags = values.to_numpy(dtype=bool)
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        wrong = ~numbers.isin((0, 1)).to_numpy()
        if wrong.any():
            first = int(np.argmax(wrong))
            raise ValueError(
                f"cancellation column {column!r} must hold booleans or 0 / 1, got "
                f"{values.tolist()[first]!r} at index {values.index.tolist()[first]!r}"
            )
        flags = numbers.to_numpy(dtype=np.float64) == 1
    out = np.zeros(len(series), dtype=bool)
    out[present] = flags
    return out
