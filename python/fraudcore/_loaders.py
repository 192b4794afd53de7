"""Loaders for the data formats fraudcore's users bring, with cleaning reports.

Each loader reads one format, checks its columns, applies documented and
switchable cleaning rules in a fixed order, and returns ``(data, report)``:
the report (:class:`CleaningReport`) says how many rows were read, what each
rule matched, whether it dropped those rows or only counted them, and how
many rows are left. A rule's count is taken over the rows the rules before it
left, so ``raw_rows - sum(applied counts) == rows``.

The rows come back in file order, indexed by ``source_row``: each row's
0-based position among the file's data rows (the header is not a data row),
so ``pandas.read_csv(path).iloc[source_row]`` is the row it was read from;
in a CSV file whose quoted fields hold no line breaks, it is on line
``source_row + 2``. Cleaning drops rows but never renumbers them, so a
score or an alert (which keep the index) points back to the file.
"""

import errno
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fraudcore import _core
from fraudcore._parallel import resolve_n_jobs

__all__ = [
    "SOURCE_ROW",
    "CleaningReport",
    "CleaningRule",
    "load_adbench",
    "load_creditcard",
    "load_fraud_data",
    "load_online_retail",
]

ONLINE_RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
FRAUD_DATA_COLUMNS = (
    "user_id",
    "signup_time",
    "purchase_time",
    "purchase_value",
    "device_id",
    "source",
    "browser",
    "sex",
    "age",
    "ip_address",
    "class",
)
IP_COUNTRY_COLUMNS = ("lower_bound_ip_address", "upper_bound_ip_address", "country")
CREDITCARD_COLUMNS = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class")

# Explicit formats, each one vectorised parse: the one the first value
# matches goes first, and each later one only sees the values the formats
# before it could not read (see _parse_times).
ONLINE_RETAIL_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",  # 2010-12-01 08:26:00 (re-saved copies)
    "%m/%d/%Y %H:%M",  # 12/1/2010 8:26 (the original download)
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M:%S",
)
FRAUD_DATA_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",  # the original Fraud_Data.csv
    "%Y-%m-%d %H:%M",  # copies re-saved through a spreadsheet lose the seconds
)

# The span datetime64[ns] can hold; times outside it count as unparseable.
_EARLIEST = np.datetime64("1678-01-01")
_LATEST = np.datetime64("2262-01-01")

UNKNOWN_COUNTRY = "Unknown"
SOURCE_ROW = "source_row"  # the name of the index of the loaders' tables


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CleaningRule:
    """One cleaning rule as it ran: ``count`` rows matched, dropped if ``applied``."""

    name: str
    doc: str
    applied: bool
    count: int


class CleaningReport:
    """What a loader read and what each of its cleaning rules did.

    Attributes
    ----------
    source : str
        The file read.
    raw_rows : int
        Rows in the file.
    rules : list of CleaningRule
        In the order they ran. ``count`` is the number of rows the rule
        matched among the rows left by the rules before it; ``applied``
        says whether those rows were dropped (True) or only counted (False).
    rows : int
        Rows returned.

    ``report["duplicates"]`` is the count of the rule of that name;
    ``to_dict()`` gives everything as plain Python values.
    """

    def __init__(self, source, raw_rows):
        self.source = str(source)
        self.raw_rows = int(raw_rows)
        self.rules = []
        self.rows = int(raw_rows)

    def _record(self, name, doc, applied, count):
        self.rules.append(CleaningRule(name, doc, bool(applied), int(count)))
        if applied:
            self.rows -= int(count)

    def __getitem__(self, name):
        for rule in self.rules:
            if rule.name == name:
                return rule.count
        known = ", ".join(rule.name for rule in self.rules) or "none"
        raise KeyError(f"no cleaning rule named {name!r} (rules: {known})")

    def __contains__(self, name):
        return any(rule.name == name for rule in self.rules)

    def to_dict(self):
        """``{"source", "raw_rows", "rules": [{"name", "doc", "applied", "count"}], "rows"}``."""
        return {
            "source": self.source,
            "raw_rows": self.raw_rows,
            "rules": [asdict(rule) for rule in self.rules],
            "rows": self.rows,
        }

    def __str__(self):
        name_width = max([len("raw rows"), *(len(rule.name) for rule in self.rules)])
        numbers = [self.raw_rows, self.rows, *(rule.count for rule in self.rules)]
        count_width = max(len(f"{n:,}") for n in numbers) + 1

        def line(name, action, count, doc=""):
            text = f"  {name:<{name_width}}  {action:<7}  {count:>{count_width}}"
            return f"{text}  {doc}" if doc else text

        lines = [f"CleaningReport for {self.source}", line("raw rows", "", f"{self.raw_rows:,}")]
        for rule in self.rules:
            if rule.applied:
                count = f"-{rule.count:,}" if rule.count else "0"
                lines.append(line(rule.name, "dropped", count, rule.doc))
            else:
                lines.append(line(rule.name, "counted", f"{rule.count:,}", rule.doc))
        lines.append(line("rows", "", f"{self.rows:,}"))
        return "\n".join(lines)

    __repr__ = __str__


class _Rules:
    """Runs cleaning rules over a file's rows, tracking which rows are kept.

    Each rule's ``matched`` is a boolean array over all the file's rows; only
    its rows still kept count (values elsewhere are ignored), and when the
    rule drops, they stop being kept. One take at the end builds the result.
    """

    def __init__(self, report, n_rows):
        self.report = report
        self.keep = np.ones(n_rows, dtype=bool)

    def apply(self, name, doc, matched, drop):
        hit = np.asarray(matched, dtype=bool) & self.keep
        count = int(np.count_nonzero(hit))
        self.report._record(name, doc, drop, count)
        if drop and count:
            self.keep &= ~hit

    def kept(self):
        """Positions of the rows still kept, in file order."""
        return np.flatnonzero(self.keep)

    def take(self, frame):
        """The rows of ``frame`` still kept, indexed by their ``source_row``."""
        rows = self.kept()
        return frame.take(rows).set_axis(pd.Index(rows, dtype=np.int64, name=SOURCE_ROW))


# --------------------------------------------------------------------------
# Reading and checking
# --------------------------------------------------------------------------


def _check_exists(path):
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    return path


def _missing_columns_error(path, format_name, missing, expected):
    return ValueError(
        f"{path} is not in the {format_name} format: missing column(s) "
        f"{', '.join(missing)} (expected {', '.join(expected)})"
    )


def _read_csv(path, format_name, columns, dtype=None):
    """The ``columns`` of a CSV file (any compression pandas infers), in that
    order, with a clear error for an empty file, missing columns or a file
    pandas cannot parse. Falls back to Latin-1 for files that are not UTF-8
    (the Kaggle copy of Online Retail is)."""
    try:
        header = pd.read_csv(path, nrows=0, encoding_errors="replace").columns
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: no rows (the file is empty)") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise _missing_columns_error(path, format_name, missing, columns)
    try:
        try:
            frame = pd.read_csv(path, encoding="utf-8", dtype=dtype)
        except UnicodeDecodeError:
            frame = pd.read_csv(path, encoding="latin-1", dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot be read as {format_name} CSV: {err}") from err
    if len(frame) == 0:
        raise ValueError(f"{path}: no rows (only a header)")
    return frame[list(columns)]


def _read_excel(path, format_name, columns, dtype=None):
    try:
        import openpyxl  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"reading {path} (an .xlsx file) needs openpyxl: pip install openpyxl"
        ) from err
    frame = pd.read_excel(path, dtype=dtype)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise _missing_columns_error(path, format_name, missing, columns)
    if len(frame) == 0:
        raise ValueError(f"{path}: no rows (only a header)")
    return frame[list(columns)]


def _numbers(frame, column, source, *, integer=False, complete=True):
    """``frame[column]`` as float64, or with ``integer`` as int64 (nullable
    Int64 when values are missing); a ValueError names ``source``, the
    column and the first data row (1-based) whose value is not a number, not
    an integer when ``integer``, or missing when ``complete``."""
    raw = frame[column]

    def fail(problem, where):
        row = int(np.flatnonzero(where.to_numpy())[0])
        raise ValueError(
            f"{source}: column {column} {problem}; the first is in data row {row + 1} "
            f"({raw.iloc[row]!r})"
        )

    if integer and pd.api.types.is_integer_dtype(raw) and not raw.isna().any():
        return raw.astype("int64")  # the usual case, with no detour through float
    values = raw
    if pd.api.types.is_bool_dtype(raw) or not pd.api.types.is_numeric_dtype(raw):
        values = pd.to_numeric(raw, errors="coerce")
        not_number = values.isna() & raw.notna()
        if not_number.any():
            fail(f"holds {int(not_number.sum())} value(s) that are not numbers", not_number)
    values = values.astype("float64")
    missing = values.isna()
    if complete and missing.any():
        fail(f"has {int(missing.sum())} missing value(s)", missing)
    if not integer:
        return values
    fractional = ~missing & (values != np.floor(values))
    if fractional.any():
        fail(f"holds {int(fractional.sum())} value(s) that are not integers", fractional)
    return _as_integers(values)


def _as_integers(values):
    """int64 when no value is missing, else pandas' nullable Int64."""
    return values.astype("Int64" if values.isna().any() else "int64")


def _parse_times(values, formats, rows):
    """datetime64[ns] array over all of ``values``: the parsed time at
    ``rows`` (positions), NaT where a value is missing or matches none of
    ``formats``, and NaT outside ``rows``.

    Each format is one vectorised parse, run only on the values the formats
    before it could not read; the format the first value matches is tried
    first, so a file in one format is parsed once. No per-row guessing.
    """
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    values = values.take(rows)
    if pd.api.types.is_datetime64_any_dtype(values):  # .xlsx cells come as datetimes
        out[rows] = values.to_numpy().astype("datetime64[ns]")
        return out
    todo = values.notna().to_numpy().copy()
    if todo.any():
        first = int(np.argmax(todo))
        formats = sorted(formats, key=lambda fmt: not _matches(values.iloc[first], fmt))
    for fmt in formats:
        if not todo.any():
            break
        parsed = pd.to_datetime(values[todo], format=fmt, errors="coerce", cache=False).to_numpy()
        ok = (parsed >= _EARLIEST) & (parsed < _LATEST)
        out[rows[todo][ok]] = parsed[ok].astype("datetime64[ns]")
        todo[todo] = ~ok
    return out


def _matches(value, fmt):
    try:
        datetime.strptime(str(value), fmt)
    except ValueError:
        return False
    return True


def _starts_with(values, prefix, rows):
    """Boolean array over all of ``values``: the value at one of ``rows``
    starts with ``prefix`` (False where missing and outside ``rows``).

    Tested once per distinct value: invoice numbers repeat on every line of
    an invoice, and ``str.startswith`` on each row is a Python call per row.
    """
    codes, uniques = pd.factorize(values.take(rows))
    matches = np.append(np.asarray(uniques.str.startswith(prefix), dtype=bool), False)
    out = np.zeros(len(values), dtype=bool)
    out[rows] = matches[codes]  # code -1 (missing) reads the appended False
    return out


def _row_ids(frame):
    """int64 array, one id per row of ``frame``: equal exactly when the rows
    are equal in every column (missing equal to missing)."""
    ids = np.zeros(len(frame), dtype=np.int64)
    n_ids = 1
    for column in frame.columns:
        codes, uniques = pd.factorize(frame[column])  # missing -> -1
        n_codes = len(uniques) + 1
        if n_ids * n_codes >= 2**62:  # renumber the ids densely before they overflow
            ids, distinct = pd.factorize(ids)
            n_ids = len(distinct)
        ids = ids * n_codes + (codes + 1)
        n_ids *= n_codes
    return ids


def _duplicated(frame, rows, prefilter=None):
    """Boolean array over all of ``frame``'s rows: True at each of ``rows``
    equal in every column (missing equal to missing) to an earlier one of
    ``rows``.

    With ``prefilter`` (a few columns that are cheap to hash and tell most
    rows apart), rows are compared on those first and only the rows sharing
    their values with another row are compared in full. Equal rows agree on
    any subset of columns, so the result is exact; hashing the long string
    columns is the expensive part, and this runs it on a few rows only (on
    Online Retail, 10,538 of 406,829 rows share their date, stock code,
    quantity and price with another).
    """
    out = np.zeros(len(frame), dtype=bool)
    if prefilter is not None:
        ids = _row_ids(frame[list(prefilter)].take(rows))
        rows = rows[pd.Series(ids).duplicated(keep=False).to_numpy()]
    out[rows] = pd.Series(_row_ids(frame.take(rows))).duplicated().to_numpy()
    return out


# --------------------------------------------------------------------------
# Online Retail
# --------------------------------------------------------------------------


def load_online_retail(
    path,
    *,
    drop_missing_customer=True,
    drop_duplicates=True,
    drop_cancellations=False,
    drop_nonpositive_price=False,
    drop_unparseable_dates=True,
):
    """Load the UCI Online Retail ("E-Commerce Data") transaction log.

    Columns: InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
    UnitPrice, CustomerID, Country (others are ignored). Reads ``.csv`` (any
    compression pandas infers, e.g. ``.csv.gz``; UTF-8 or Latin-1) and
    ``.xlsx`` (needs openpyxl). InvoiceDate may be ISO (``2010-12-01
    08:26:00``) or as in the original download (``12/1/2010 8:26``, month
    first), mixed in one file too.

    Cleaning rules, in the order they run (each counts the rows it matches
    among those the rules before it left, and drops them when switched on):

    - ``missing_customer`` (``drop_missing_customer``, default on): rows
      without a CustomerID.
    - ``unparseable_dates`` (``drop_unparseable_dates``, default on): rows
      whose InvoiceDate is missing or in none of the accepted formats
      (kept as NaT when off).
    - ``duplicates`` (``drop_duplicates``, default on): rows identical to an
      earlier row in all eight columns (dates compared after parsing); the
      first is kept.
    - ``cancellations`` (``drop_cancellations``, default off): rows whose
      InvoiceNo starts with "C" (cancelled orders, negative Quantity).
      Flagged in ``is_cancellation`` either way.
    - ``nonpositive_price`` (``drop_nonpositive_price``, default off): rows
      with UnitPrice <= 0 (free items, bad-debt adjustments).

    On the complete file: 541,909 rows, 406,829 with a CustomerID, 401,604
    after dropping duplicates too, 4,372 customers.

    Parameters
    ----------
    path : str or path-like
    drop_missing_customer, drop_duplicates, drop_cancellations,
    drop_nonpositive_price, drop_unparseable_dates : bool
        Switch the rules above between dropping and only counting.

    Returns
    -------
    data : DataFrame
        Rows in file order, indexed by ``source_row`` (see the module's
        documentation). InvoiceNo, StockCode,
        Description (may be missing), Country: str; Quantity: int64;
        InvoiceDate: datetime64[ns]; UnitPrice: float64; CustomerID: int64
        (nullable Int64 when rows without one are kept); plus
        ``TotalSpent`` = Quantity * UnitPrice (float64) and
        ``is_cancellation`` (bool).
    report : CleaningReport

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is empty, lacks one of the columns (the message names them),
        or Quantity / UnitPrice / CustomerID hold values that are not numbers
        (Quantity and UnitPrice must also be complete, Quantity and
        CustomerID integers).
    """
    fmt = "Online Retail"
    path = _check_exists(path)
    strings = {c: "str" for c in ("InvoiceNo", "StockCode", "Description", "Country")}
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        frame = _read_excel(path, fmt, ONLINE_RETAIL_COLUMNS, dtype=strings)
    else:
        frame = _read_csv(path, fmt, ONLINE_RETAIL_COLUMNS, dtype={**strings, "InvoiceDate": "str"})
    report = CleaningReport(path, len(frame))
    rules = _Rules(report, len(frame))
    source = f"{path} ({fmt})"

    customer = _numbers(frame, "CustomerID", source, integer=True, complete=False)
    frame = frame.assign(
        Quantity=_numbers(frame, "Quantity", source, integer=True),
        UnitPrice=_numbers(frame, "UnitPrice", source),
        CustomerID=customer,
    )
    rules.apply(
        "missing_customer",
        "rows without a CustomerID",
        customer.isna().to_numpy(),
        drop_missing_customer,
    )
    times = _parse_times(frame["InvoiceDate"], ONLINE_RETAIL_DATE_FORMATS, rules.kept())
    frame["InvoiceDate"] = times
    rules.apply(
        "unparseable_dates",
        "InvoiceDate missing or in no accepted format",
        np.isnat(times),
        drop_unparseable_dates,
    )
    rules.apply(
        "duplicates",
        "rows identical to an earlier row (first kept)",
        _duplicated(frame, rules.kept(), ["InvoiceDate", "StockCode", "Quantity", "UnitPrice"]),
        drop_duplicates,
    )
    cancellation = _starts_with(frame["InvoiceNo"], "C", rules.kept())
    rules.apply("cancellations", 'InvoiceNo starting with "C"', cancellation, drop_cancellations)
    rules.apply(
        "nonpositive_price",
        "UnitPrice <= 0",
        (frame["UnitPrice"] <= 0).to_numpy(),
        drop_nonpositive_price,
    )

    rows = rules.kept()
    data = rules.take(frame)
    data["CustomerID"] = _as_integers(data["CustomerID"])
    data["TotalSpent"] = data["Quantity"] * data["UnitPrice"]
    data["is_cancellation"] = cancellation[rows]
    return data, report


# --------------------------------------------------------------------------
# Fraud_Data (+ IpAddress_to_Country)
# --------------------------------------------------------------------------


def _ip_countries(ips, ip_country_path):
    """Country of each address by range lookup in an IpAddress_to_Country file;
    "Unknown" for missing addresses and addresses outside every range."""
    fmt = "IpAddress_to_Country"
    path = _check_exists(ip_country_path)
    table = _read_csv(path, fmt, IP_COUNTRY_COLUMNS, dtype={"country": "str"})
    source = f"{path} ({fmt})"
    lower = _numbers(table, "lower_bound_ip_address", source).to_numpy()
    upper = _numbers(table, "upper_bound_ip_address", source).to_numpy()
    order = np.argsort(lower, kind="stable")
    try:
        ranges = _core.IpRangeTable(lower[order], upper[order])
    except ValueError as err:
        raise ValueError(
            f"{source}, its ranges numbered after sorting by lower bound: {err}"
        ) from None
    countries = table["country"].to_numpy(dtype=object)[order]
    # The extra last entry makes index -1 ("no range") read as Unknown.
    names = np.append(countries, UNKNOWN_COUNTRY)
    names[:-1][table["country"].isna().to_numpy()[order]] = UNKNOWN_COUNTRY
    found = ranges.find_all(np.ascontiguousarray(ips, dtype=np.float64), resolve_n_jobs(-1))
    return names[found]


def load_fraud_data(
    path,
    ip_country_path=None,
    *,
    drop_missing_user=True,
    drop_duplicates=True,
    drop_unparseable_dates=True,
    drop_nonpositive_value=True,
):
    """Load the e-commerce Fraud_Data table, optionally with countries by IP.

    Columns: user_id, signup_time, purchase_time, purchase_value, device_id,
    source, browser, sex, age, ip_address, class (others are ignored). Times
    are ``YYYY-MM-DD HH:MM:SS`` or, in copies re-saved through a spreadsheet,
    ``YYYY-MM-DD HH:MM``. ``class`` is the label, 1 = fraud.

    Cleaning rules, in the order they run (each counts the rows it matches
    among those the rules before it left, and drops them when switched on):

    - ``missing_user`` (``drop_missing_user``, default on): rows without a
      user_id.
    - ``unparseable_dates`` (``drop_unparseable_dates``, default on): rows
      whose signup_time or purchase_time is missing or in neither format
      (kept as NaT when off).
    - ``duplicates`` (``drop_duplicates``, default on): rows identical to an
      earlier row in all eleven columns; the first is kept.
    - ``nonpositive_value`` (``drop_nonpositive_value``, default on): rows
      with purchase_value <= 0.

    Parameters
    ----------
    path : str or path-like
        A Fraud_Data CSV (any compression pandas infers).
    ip_country_path : str, path-like or None
        An IpAddress_to_Country CSV (lower_bound_ip_address,
        upper_bound_ip_address, country; any row order, ranges must not
        overlap). When given, a ``country`` column is added: the country of
        the range holding ip_address (bounds inclusive), "Unknown" where
        ip_address is missing or in no range. The lookup is a native binary
        search on all cores.
    drop_missing_user, drop_duplicates, drop_unparseable_dates,
    drop_nonpositive_value : bool
        Switch the rules above between dropping and only counting.

    Returns
    -------
    data : DataFrame
        Rows in file order, indexed by ``source_row`` (see the module's
        documentation). user_id, age: int64 (nullable
        Int64 when missing values are kept); signup_time, purchase_time:
        datetime64[ns]; purchase_value, ip_address: float64; class: int64;
        device_id, source, browser, sex (and country): str.
    report : CleaningReport

    Raises
    ------
    FileNotFoundError
        No file at ``path`` or ``ip_country_path``.
    ValueError
        A file is empty or lacks one of its columns (the message names
        them); a numeric column holds something else; purchase_value or
        class has missing values; the IP ranges overlap.
    """
    fmt = "Fraud_Data"
    path = _check_exists(path)
    if ip_country_path is not None:
        _check_exists(ip_country_path)  # before the longer read of the data
    strings = {c: "str" for c in ("device_id", "source", "browser", "sex")}
    strings.update(signup_time="str", purchase_time="str")
    frame = _read_csv(path, fmt, FRAUD_DATA_COLUMNS, dtype=strings)
    report = CleaningReport(path, len(frame))
    rules = _Rules(report, len(frame))
    source = f"{path} ({fmt})"

    frame = frame.assign(
        user_id=_numbers(frame, "user_id", source, integer=True, complete=False),
        purchase_value=_numbers(frame, "purchase_value", source),
        age=_numbers(frame, "age", source, integer=True, complete=False),
        ip_address=_numbers(frame, "ip_address", source, complete=False),
        **{"class": _numbers(frame, "class", source, integer=True)},
    )
    rules.apply(
        "missing_user",
        "rows without a user_id",
        frame["user_id"].isna().to_numpy(),
        drop_missing_user,
    )
    for column in ("signup_time", "purchase_time"):
        frame[column] = _parse_times(frame[column], FRAUD_DATA_TIME_FORMATS, rules.kept())
    rules.apply(
        "unparseable_dates",
        "signup_time or purchase_time missing or in no accepted format",
        frame["signup_time"].isna().to_numpy() | frame["purchase_time"].isna().to_numpy(),
        drop_unparseable_dates,
    )
    rules.apply(
        "duplicates",
        "rows identical to an earlier row (first kept)",
        _duplicated(frame, rules.kept(), ["user_id", "purchase_time", "purchase_value"]),
        drop_duplicates,
    )
    rules.apply(
        "nonpositive_value",
        "purchase_value <= 0",
        (frame["purchase_value"] <= 0).to_numpy(),
        drop_nonpositive_value,
    )

    data = rules.take(frame)
    data["user_id"] = _as_integers(data["user_id"])
    data["age"] = _as_integers(data["age"])
    if ip_country_path is not None:
        countries = _ip_countries(data["ip_address"].to_numpy(), ip_country_path)
        data["country"] = pd.Series(countries, index=data.index, dtype="str")
    return data, report


# --------------------------------------------------------------------------
# Credit card (ULB)
# --------------------------------------------------------------------------


def load_creditcard(path, *, drop_duplicates=False):
    """Load the ULB credit-card fraud data (creditcard.csv).

    Columns: Time (seconds since the first transaction), V1..V28 (PCA
    components), Amount, Class (1 = fraud); others are ignored. No column
    may have missing values.

    Cleaning rules:

    - ``duplicates`` (``drop_duplicates``, default off): rows identical to an
      earlier row in all 31 columns; the first is kept. Counted either way
      (the published file has 1,081).

    Returns
    -------
    data : DataFrame
        Time, V1..V28, Amount: float64; Class: int64 in {0, 1}. Rows in file
        order, indexed by ``source_row`` (see the module's documentation).
    report : CleaningReport

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is empty, lacks columns (the message names them), has
        missing or non-numeric values, or a Class other than 0 and 1.
    """
    fmt = "creditcard (ULB)"
    path = _check_exists(path)
    frame = _read_csv(path, fmt, CREDITCARD_COLUMNS)
    report = CleaningReport(path, len(frame))
    source = f"{path} ({fmt})"
    columns = {c: _numbers(frame, c, source) for c in CREDITCARD_COLUMNS[:-1]}
    label = _numbers(frame, "Class", source, integer=True)
    if not label.isin([0, 1]).all():
        bad = sorted(int(v) for v in set(label.unique()) - {0, 1})
        raise ValueError(f"{source}: Class must be 0 or 1, found {bad[:5]}")
    frame = pd.DataFrame({**columns, "Class": label})
    rules = _Rules(report, len(frame))
    rules.apply(
        "duplicates",
        "rows identical to an earlier row (first kept)",
        _duplicated(frame, rules.kept()),
        drop_duplicates,
    )
    return rules.take(frame), report


# --------------------------------------------------------------------------
# ADBench / ODDS .npz
# --------------------------------------------------------------------------


def load_adbench(path):
    """Load an ADBench / ODDS ``.npz`` benchmark file (keys X and y).

    Opened with ``allow_pickle=False``: a file that needs pickle is refused.
    No cleaning rules run; the file is checked instead.

    Returns
    -------
    (X, y) : tuple
        X: float64, C-contiguous, shape (n_samples, n_features); y: int64 of
        shape (n_samples,), 1 = anomaly, 0 = normal.
    report : CleaningReport
        ``raw_rows == rows == n_samples``, no rules.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not an .npz file, or no X or y, X not 2-D, X and y of different
        lengths, NaN or infinity in X, or y not in {0, 1}.
    """
    path = _check_exists(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path} cannot be read as an .npz file: {err}") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz file with X and y")
    with archive:
        missing = [key for key in ("X", "y") if key not in archive.files]
        if missing:
            raise ValueError(
                f"{path} is not an ADBench .npz file: missing key(s) {', '.join(missing)} "
                f"(has {', '.join(archive.files) or 'none'})"
            )
        try:
            X, y = archive["X"], archive["y"]
        except ValueError as err:  # object arrays need pickle
            raise ValueError(f"{path}: {err}") from err
    if X.ndim != 2:
        raise ValueError(f"{path}: X must be 2-D, got shape {X.shape}")
    y = np.ravel(y)
    if len(X) != len(y):
        raise ValueError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError(f"{path}: no rows")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"{path}: X holds NaN or infinity (first in row {row})")
    labels = np.unique(y)
    if not np.isin(labels, [0, 1]).all():
        raise ValueError(f"{path}: y must hold only 0 and 1, found {labels[:5].tolist()}")
    report = CleaningReport(path, len(X))
    return (X, y.astype(np.int64)), report
