"""A batch of scored items as the rows of each table: the store's hot path.

:class:`ScoredBatch` checks every item and builds every row before the
store opens its transaction, so a malformed item is a ValueError naming it
and nothing reaches the database. The item format is documented in
:mod:`fraudcore.service.store`.

:class:`ScoredWriter` writes a batch with the DB-API cursor of a
connection the store opened (the transaction is SQLAlchemy's): one
``executemany`` per table on ready-made tuples (user_profiles and rollups
are upserts adding the batch's counts), with INSERT statements made
from the table definitions (:func:`insert_sql`); on PostgreSQL the three
big tables are written with COPY instead (a quarter of executemany's client
time and half its wall time; COPY checks every constraint as INSERT does).
The values are converted here once, in the form SQLAlchemy's own types
write them, so everything else reads them through SQLAlchemy as usual:
JSON text from orjson; on SQLite, UTC times as ``YYYY-MM-DD
HH:MM:SS.ffffff`` text. Measured (benchmarks/bench_store.py): SQLAlchemy's
per-row parameter processing was half the time of a batch of 1000, and its
per-statement overhead most of the time of a batch of 1.
"""

import datetime as dt

from fraudcore.service.engine import dumps
from fraudcore.service.errors import DuplicateEvent
from fraudcore.service.rollups import hour as rollups_hour
from fraudcore.service.rollups import score_bin

UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

OPTIONAL_COLUMNS = ("country", "device", "browser", "ip")
TRANSACTION_COLUMNS = (
    "event_id",
    "customer_id",
    "occurred_at",
    "amount",
    *OPTIONAL_COLUMNS,
    "raw",
    "model_version",
)
FEATURE_COLUMNS = ("event_id", "features")
SCORE_COLUMNS = (
    "event_id",
    "risk_score",
    "fraud_probability",
    "detector_scores",
    "risk_level",
    "priority",
    "confidence",
    "is_alert",
    "reasons",
    "model_version",
)


ALERT_COLUMNS = (
    "event_id",
    "customer_id",
    "status",
    "risk_level",
    "priority",
    "risk_score",
    "created_at",
    "updated_at",
    "version",
    "amount",
    "occurred_at",
    "country",
)
PROFILE_COLUMNS = (
    "customer_id",
    "first_seen",
    "last_seen",
    "n_transactions",
    "total_amount",
    "n_alerts",
)
ROLLUP_COLUMNS = (
    "dimension",
    "known",
    "value",
    "transactions",
    "alerts",
    "amount",
    "alerted_amount",
)


def insert_sql(table, columns, dialect):
    """INSERT of columns into table with positional DB-API parameters."""
    names = [table.c[name].name for name in columns]  # KeyError: not a column of table
    mark = "?" if dialect == "sqlite" else "%s"
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
    )


def to_utc(value, what="time"):
    """An aware UTC datetime from a datetime (naive = UTC), an int of
    nanoseconds since the epoch, or ISO 8601 text."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an ISO 8601 time") from None
    if isinstance(value, dt.datetime):
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{what} must be a datetime or nanoseconds since the epoch, got {value!r}")
    return _EPOCH + dt.timedelta(microseconds=int(value) // 1000)


def _sqlite_time(value):
    """SQLAlchemy's SQLite text of a UTC datetime (an f-string: a third of
    isoformat's time, which the write path pays twice a transaction)."""
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


def _text_or_none(value):
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _rollup_key(dimension, value):
    return (dimension, 0, "") if value is None else (dimension, 1, value)


def _mapping(value, what):
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
    return value


class ScoredBatch:
    """The rows of a batch of scored items.

    transactions, features, scores: tuples in TRANSACTION_COLUMNS,
    FEATURE_COLUMNS, SCORE_COLUMNS order, values in the dialect's form.
    alerts: tuples in ALERT_COLUMNS order; alert_items: the position of
    each alert's item. profiles: tuples in PROFILE_COLUMNS order, one per
    customer, sorted by customer id (one lock order for concurrent writers).
    rollups: tuples in ROLLUP_COLUMNS order, one per (dimension, known,
    value) the batch adds to, sorted likewise.
    """

    def __init__(self, items, now, dialect):
        self._time = _sqlite_time if dialect == "sqlite" else (lambda value: value)
        # the rollups' hour: from the SQLite text (its first 13 characters) or the datetime
        self._hour = (lambda text: text[:13] + ":00:00") if dialect == "sqlite" else rollups_hour
        now = self._time(now)
        self.transactions, self.features, self.scores = [], [], []
        self.alerts, self.alert_items, self.event_ids = [], [], []
        profiles, rollups = {}, {}
        for position, item in enumerate(items):
            try:
                self._add(item, now, position, profiles, rollups)
            except (KeyError, TypeError, ValueError) as error:
                name = item.get("event_id") if isinstance(item, dict) else None
                detail = f"no {error}" if isinstance(error, KeyError) else str(error)
                raise ValueError(f"scored item {position} (event_id {name!r}): {detail}") from None
        seen = set()
        repeated = [e for e in self.event_ids if e in seen or seen.add(e)]
        if repeated:
            raise DuplicateEvent(f"event ids repeated in the batch: {repeated[:5]}", repeated)
        self.profiles = [
            (k, *[self._time(v) if isinstance(v, dt.datetime) else v for v in profiles[k][1:]])
            for k in sorted(profiles)
        ]
        self.rollups = [(*key, *rollups[key]) for key in sorted(rollups)]

    def _add(self, item, now, position, profiles, rollups):
        event_id = item["event_id"]
        if not isinstance(event_id, str) or not event_id:
            raise ValueError(f"event_id must be a non-empty string, got {event_id!r}")
        customer = str(item["customer_id"])
        occurred = to_utc(item["occurred_at"], "occurred_at")
        amount = float(item["amount"])
        model_version = str(item["model_version"])
        risk_score = float(item["risk_score"])
        if risk_score != risk_score:
            raise ValueError("risk_score is NaN")
        level = str(item["risk_level"])
        priority = int(item["priority"])
        is_alert = bool(item["is_alert"])
        probability = item["fraud_probability"]
        reasons = item["reasons"]
        if not isinstance(reasons, list):
            raise ValueError(f"reasons must be a list, got {type(reasons).__name__}")
        self.event_ids.append(event_id)
        occurred_value = self._time(occurred)
        optional = [_text_or_none(item.get(k)) for k in OPTIONAL_COLUMNS]
        country, device, browser, _ = optional
        self.transactions.append(
            (
                event_id,
                customer,
                occurred_value,
                amount,
                *optional,
                dumps(_mapping(item["transaction"], "transaction")),
                model_version,
            )
        )
        self.features.append((event_id, dumps(_mapping(item["features"], "features"))))
        self.scores.append(
            (
                event_id,
                risk_score,
                None if probability is None else float(probability),
                dumps(_mapping(item["scores"], "scores")),
                level,
                priority,
                float(item["confidence"]),
                int(is_alert),
                dumps(reasons),
                model_version,
            )
        )
        if is_alert:
            self.alert_items.append(position)
            self.alerts.append(
                (
                    event_id,
                    customer,
                    "OPEN",
                    level,
                    priority,
                    risk_score,
                    now,
                    now,
                    0,
                    amount,
                    occurred_value,
                    country,
                )
            )
        alerted = amount if is_alert else 0.0
        bin_ = str(score_bin(risk_score))
        keys = [
            ("hour", 1, self._hour(occurred_value)),
            _rollup_key("country", country),
            _rollup_key("device", device),
            _rollup_key("browser", browser),
            ("risk_level", 1, level),
            ("score_bin", 1, bin_),
        ]
        if item.get("alertable", True):
            keys.append(("alertable_bin", 1, bin_))
        for key in keys:
            counts = rollups.get(key)
            if counts is None:
                rollups[key] = counts = [0, 0, 0.0, 0.0]
            counts[0] += 1
            counts[1] += is_alert
            counts[2] += amount
            counts[3] += alerted
        profile = profiles.get(customer)
        if profile is None:
            # PROFILE_COLUMNS
            profiles[customer] = profile = [customer, occurred, occurred, 0, 0.0, 0]
        elif occurred < profile[1]:
            profile[1] = occurred
        elif occurred > profile[2]:
            profile[2] = occurred
        profile[3] += 1
        profile[4] += amount
        profile[5] += is_alert


def _add(table, column):
    """An upsert's SET clause adding the new row's column to the stored one."""
    return f"{column} = {table}.{column} + excluded.{column}"


class ScoredWriter:
    """The statements of the write path for one dialect; :meth:`write`."""

    def __init__(self, tables, dialect):
        self.dialect = dialect
        big = (
            (tables.transactions, TRANSACTION_COLUMNS),
            (tables.transaction_features, FEATURE_COLUMNS),
            (tables.anomaly_scores, SCORE_COLUMNS),
        )
        if dialect == "postgresql":
            self.inserts = [
                f"COPY {table.name} ({', '.join(table.c[c].name for c in columns)}) FROM STDIN"
                for table, columns in big
            ]
        else:
            self.inserts = [insert_sql(table, columns, dialect) for table, columns in big]
        self.insert_alert = insert_sql(tables.alerts, ALERT_COLUMNS, dialect) + " RETURNING id"
        profiles = tables.user_profiles.name

        def keep(column, better):
            return (
                f"{column} = CASE WHEN excluded.{column} {better} {profiles}.{column} "
                f"THEN excluded.{column} ELSE {profiles}.{column} END"
            )

        self.upsert_profiles = (
            insert_sql(tables.user_profiles, PROFILE_COLUMNS, dialect)
            + " ON CONFLICT (customer_id) DO UPDATE SET "
            + ", ".join(
                [
                    keep("first_seen", "<"),
                    keep("last_seen", ">"),
                    *(_add(profiles, column) for column in PROFILE_COLUMNS[3:]),
                ]
            )
        )
        rollups = tables.rollups.name
        self.upsert_rollups = (
            insert_sql(tables.rollups, ROLLUP_COLUMNS, dialect)
            + f" ON CONFLICT ({', '.join(ROLLUP_COLUMNS[:3])}) DO UPDATE SET "
            + ", ".join(_add(rollups, column) for column in ROLLUP_COLUMNS[3:])
        )

    def write(self, cursor, batch):
        """Write batch with a DB-API cursor inside the caller's transaction;
        the alert ids in batch.alerts order."""
        for sql, rows in zip(self.inserts, (batch.transactions, batch.features, batch.scores)):
            if self.dialect == "postgresql":
                with cursor.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(sql, rows)
        alert_ids = []
        if batch.alerts and self.dialect == "postgresql":
            cursor.executemany(self.insert_alert, batch.alerts, returning=True)
            while True:
                alert_ids.append(cursor.fetchone()[0])
                if not cursor.nextset():
                    break
        else:
            for row in batch.alerts:
                cursor.execute(self.insert_alert, row)
                alert_ids.append(cursor.fetchone()[0])
        cursor.executemany(self.upsert_profiles, batch.profiles)
        cursor.executemany(self.upsert_rollups, batch.rollups)
        return alert_ids
