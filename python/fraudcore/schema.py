"""Schema: which of a user's columns plays which role in the features.

A transaction table needs a timestamp and an amount (or a quantity and a
unit price, whose product is the amount); every other role is optional and
adds the features that use it (see :func:`fraudcore.build_features`). The
ready-made schemas match the loaders in :mod:`fraudcore.datasets`.
"""

from dataclasses import asdict, dataclass, fields

__all__ = ["Schema"]

_ROLES = (
    "entity", "timestamp", "amount", "quantity", "unit_price", "country", "ip_address",
    "device_id", "browser", "source", "merchant", "invoice", "signup_time", "label",
)
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
    time_unit: str = "ns"
    passthrough: tuple = ()

    def __post_init__(self):
        for role in _ROLES:
            value = getattr(self, role)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"Schema.{role} must be a column name (str) or None, got {value!r}")
        if self.timestamp is None:
            raise ValueError("Schema needs a timestamp column")
        if self.amount is None and (self.quantity is None or self.unit_price is None):
            raise ValueError("Schema needs an amount column, or both quantity and unit_price")
        if self.time_unit not in _TIME_UNITS:
            raise ValueError(f"Schema.time_unit must be one of {_TIME_UNITS}, got {self.time_unit!r}")
        if isinstance(self.passthrough, str) or not all(isinstance(c, str) for c in self.passthrough):
            raise ValueError("Schema.passthrough must be a sequence of column names")
        object.__setattr__(self, "passthrough", tuple(self.passthrough))

    @property
    def roles(self):
        """{role: column} for every role that is set."""
        return {role: getattr(self, role) for role in _ROLES if getattr(self, role) is not None}

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
        """UCI Online Retail (:func:`fraudcore.datasets.load_online_retail`)."""
        return cls(entity="CustomerID", timestamp="InvoiceDate", quantity="Quantity",
                   unit_price="UnitPrice", country="Country", merchant="StockCode",
                   invoice="InvoiceNo")

    @classmethod
    def fraud_data(cls):
        """E-commerce Fraud_Data (:func:`fraudcore.datasets.load_fraud_data` with the
        IP-to-country table, which adds the ``country`` column)."""
        return cls(entity="user_id", timestamp="purchase_time", amount="purchase_value",
                   country="country", ip_address="ip_address", device_id="device_id",
                   browser="browser", source="source", signup_time="signup_time", label="class")

    @classmethod
    def fraud_data_without_country(cls):
        """Fraud_Data loaded without the IP-to-country table."""
        return cls(entity="user_id", timestamp="purchase_time", amount="purchase_value",
                   ip_address="ip_address", device_id="device_id", browser="browser",
                   source="source", signup_time="signup_time", label="class")

    @classmethod
    def creditcard(cls):
        """ULB credit-card data: no customer id; Time in seconds; V1..V28 kept."""
        return cls(timestamp="Time", amount="Amount", label="Class", time_unit="s",
                   passthrough=tuple(f"V{i}" for i in range(1, 29)))

    @classmethod
    def transactions(cls):
        """:func:`fraudcore.datasets.make_transactions`."""
        return cls(entity="customer_id", timestamp="timestamp", amount="amount", country="country",
                   ip_address="ip_address", device_id="device_id", merchant="merchant",
                   signup_time="signup_time", label="is_fraud")
