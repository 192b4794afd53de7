"""The alert store: every table and every write of the service, the
dashboard and the stream consumer (SQLAlchemy 2 Core; SQLite by default,
PostgreSQL by URL).

``AlertStore(url)`` connects (see :mod:`fraudcore.service.engine` for the
URLs and connection settings) and brings the schema up to date (see
:mod:`fraudcore.service.migrations`). One store object is safe to share
between threads; several stores (processes) may open the same database.

The scoring write path
----------------------
:meth:`AlertStore.write_scored` stores a batch of scored events in ONE
transaction: transactions, transaction_features, anomaly_scores, alerts
(for ``is_alert`` items, status OPEN, version 0), user_profiles and rollups
(:mod:`fraudcore.service.rollups`). Either
every item is stored or none (the exception propagates). An item is a dict:

================= ============================================================
event_id          str, unique over the store (a stored id or one repeated in
                  the batch is :class:`DuplicateEvent`)
customer_id       str (other values are stored as their text)
occurred_at       a datetime (an aware one is converted to UTC, a naive one is
                  read as UTC) or an int: nanoseconds since the Unix epoch, UTC
amount            float
transaction       the raw transaction, a JSON-able dict (NumPy scalars and
                  pandas Timestamps allowed)
features          dict feature name -> float (NaN is stored as null)
scores            dict detector -> float
risk_score        float
fraud_probability float or None
risk_level        str (CRITICAL, HIGH, MEDIUM, LOW)
priority          int (1 most urgent)
confidence        float
is_alert          bool
reasons           list of {"feature", "value", "text"}
model_version     str
country, device,  optional (absent = None): the transaction's country, device
browser, ip       id, browser and IP address, when the schema has them
================= ============================================================

:meth:`AlertStore.existing` returns, per stored event id, that same dict
(``occurred_at`` an aware UTC datetime) plus ``alert_id`` (None when the
event raised no alert).

``transactions.seq`` is the store's insertion order, and also its commit
order with any number of writers (services, stream consumers): on SQLite a
write transaction holds the database's write lock, on PostgreSQL
:meth:`AlertStore.write_scored` takes a transaction-level advisory lock
(``WRITE_LOCK``) before its first insert. A reader that has seen seq N has
seen everything before it, which :meth:`AlertStore.transactions_after` and
:meth:`AlertStore.events_after` rely on to rebuild and follow the online
state.

The workflow
------------
:data:`TRANSITIONS` is the workflow: OPEN -> INVESTIGATING ->
CONFIRMED_FRAUD | FALSE_POSITIVE -> CLOSED; an open alert may be decided
or closed at once, an investigated one released back to OPEN or closed
without a decision; CLOSED is final. Each accepted move is one transaction:
the alert's UPDATE guarded by its version (``WHERE id = ? AND version = ?``;
no move is ever lost to a concurrent one), its audit row and, for a
decision, a label (source "analyst", CONFIRMED_FRAUD = 1). An alert's
``version`` counts its accepted moves (0 when opened). ``assigned_to``
becomes the analyst who takes the alert (INVESTIGATING) or decides or
closes an unassigned one, and is cleared when it goes back to OPEN.
``decision`` keeps CONFIRMED_FRAUD / FALSE_POSITIVE after CLOSED.

Labels
------
Several labels per event may arrive (chargebacks, analysts' decisions); the
latest wins: the latest ``label_time``, then the last received. Labels of
event ids the store never scored are kept (chargebacks for events scored
elsewhere). "Confirmed fraud" in the dashboard aggregates means: the event's
winning label is 1.

The dashboards' aggregates (:mod:`fraudcore.service.queries`, a mixin of
:class:`AlertStore`) are computed in SQL, never over all rows in Python:
the counts of transactions and alerts from the rollups, the confirmed ones
from the labels. :meth:`AlertStore.alert_queue` filters, sorts and pages
the queue in SQL on the alerts table alone (the transaction's amount,
occurred_at and country are copied onto its alert).

Modules: tables (the schema), migrations (its versions), engine (URLs,
connection settings, write transactions), batch (the write path's rows and
statements), queries (dashboards), errors.
"""

import base64
import datetime as dt

import orjson
from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fraudcore.service import tables as t
from fraudcore.service.batch import OPTIONAL_COLUMNS, ScoredBatch, ScoredWriter, to_utc
from fraudcore.service.engine import connect, write_transaction
from fraudcore.service.errors import (
    DuplicateEvent,
    IllegalTransition,
    NotFound,
    SchemaError,
    StoreError,
    VersionConflict,
)
from fraudcore.service.migrations import upgrade
from fraudcore.service.queries import (
    LEVELS,
    DashboardQueries,
    checked_int,
    latest_labels,
    level_order,
    ranked_winners,
    rate,
    scored_events,
)

__all__ = [
    "DECISIONS",
    "QUEUE_SORTS",
    "STATUSES",
    "TRANSITIONS",
    "AlertStore",
    "DuplicateEvent",
    "IllegalTransition",
    "NotFound",
    "SchemaError",
    "StoreError",
    "VersionConflict",
]

UTC = dt.timezone.utc

STATUSES = ("OPEN", "INVESTIGATING", "CONFIRMED_FRAUD", "FALSE_POSITIVE", "CLOSED")
TRANSITIONS = {
    "OPEN": ("INVESTIGATING", "CONFIRMED_FRAUD", "FALSE_POSITIVE", "CLOSED"),
    "INVESTIGATING": ("OPEN", "CONFIRMED_FRAUD", "FALSE_POSITIVE", "CLOSED"),
    "CONFIRMED_FRAUD": ("CLOSED",),
    "FALSE_POSITIVE": ("CLOSED",),
    "CLOSED": (),
}
# A decision's label: 1 fraud, 0 not fraud.
DECISIONS = {"CONFIRMED_FRAUD": 1, "FALSE_POSITIVE": 0}
MAX_LIMIT = 1000
KEEP_SNAPSHOTS = 3
# PostgreSQL advisory lock key every scored write takes (the module doc: seq order).
WRITE_LOCK = 0x6672_6175_6463_6F72  # "fraudcor"
# SQLite's IN lists stay well under its bound-parameter limit.
_CHUNK = 500


def _now():
    return dt.datetime.now(UTC)


def _encode_cursor(row):
    key = [row["priority"], row["created_at"].isoformat(), row["id"]]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode()


def _decode_cursor(cursor):
    try:
        priority, created, alert_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(priority), dt.datetime.fromisoformat(created), int(alert_id)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"cursor {cursor!r} is not one list_alerts returned") from None


def _alert_filters(query, *, status, level, customer_id, since, until, country=None):
    """query with the WHERE clauses of the alert filters (list_alerts,
    alert_queue); a bad status or level is a ValueError naming it."""
    a = t.alerts
    for column, value, allowed in (
        (a.c.status, status, STATUSES),
        (a.c.risk_level, level, LEVELS),
    ):
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ValueError(f"{column.name} {unknown[0]!r} is not one of {allowed}")
        query = query.where(column.in_(values))
    if customer_id is not None:
        query = query.where(a.c.customer_id == str(customer_id))
    if country is not None:
        query = query.where(a.c.country == str(country))
    if since is not None:
        query = query.where(a.c.created_at >= to_utc(since, "since"))
    if until is not None:
        query = query.where(a.c.created_at < to_utc(until, "until"))
    return query


def _alert_dict(row):
    return {
        "id": row.id,
        "event_id": row.event_id,
        "customer_id": row.customer_id,
        "status": row.status,
        "decision": row.decision,
        "risk_level": row.risk_level,
        "priority": row.priority,
        "risk_score": row.risk_score,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "assigned_to": row.assigned_to,
        "version": row.version,
    }


_ALERT_COLUMNS = [
    t.alerts.c[name]
    for name in (
        "id",
        "event_id",
        "customer_id",
        "status",
        "decision",
        "risk_level",
        "priority",
        "risk_score",
        "created_at",
        "updated_at",
        "assigned_to",
        "version",
    )
]


def _in_order(column, values):
    """SQL: the position of column's value in values (levels and statuses
    sort in their own order, not alphabetically)."""
    return case({value: k for k, value in enumerate(values)}, value=column, else_=len(values))


# alert_queue's sort columns: name -> SQL expression.
QUEUE_SORTS = {
    "id": t.alerts.c.id,
    "priority": t.alerts.c.priority,
    "created_at": t.alerts.c.created_at,
    "risk_score": t.alerts.c.risk_score,
    "amount": t.alerts.c.amount,
    "occurred_at": t.alerts.c.occurred_at,
    "customer_id": t.alerts.c.customer_id,
    # OPEN, INVESTIGATING, CONFIRMED_FRAUD, FALSE_POSITIVE, CLOSED
    "status": _in_order(t.alerts.c.status, STATUSES),
    # CRITICAL first
    "risk_level": _in_order(t.alerts.c.risk_level, LEVELS),
}


def _queue_order(sort):
    """alert_queue's ORDER BY clauses for sort; ValueError naming a bad entry."""
    if not sort:
        sort = [("priority", "asc"), ("created_at", "asc")]
    if isinstance(sort, (str, bytes, dict)):
        raise ValueError(f"sort must be a list of (column, direction) pairs, got {sort!r}")
    order, seen = [], set()
    for entry in sort:
        try:
            column, direction = entry
        except (TypeError, ValueError):
            raise ValueError(f"sort entry {entry!r} is not a (column, direction) pair") from None
        if column not in QUEUE_SORTS:
            raise ValueError(f"sort column {column!r} is not one of {sorted(QUEUE_SORTS)}")
        if direction not in ("asc", "desc"):
            raise ValueError(f"sort direction {direction!r} of {column!r} is not 'asc' or 'desc'")
        if column in seen:
            raise ValueError(f"sort column {column!r} is given twice")
        seen.add(column)
        expression = QUEUE_SORTS[column]
        order.append(expression.asc() if direction == "asc" else expression.desc())
    return [*order, t.alerts.c.id.asc()]


# The alert fields that are not copies of the event's own (get_alert).
_ALERT_ONLY = ("status", "decision", "created_at", "updated_at", "assigned_to", "version")
_SCORE_FIELDS = (
    "risk_score",
    "fraud_probability",
    "risk_level",
    "priority",
    "confidence",
    "is_alert",
    "reasons",
)
_ITEM_COLUMNS = [
    t.transactions,
    t.transaction_features.c.features,
    t.anomaly_scores.c.detector_scores,
    *(t.anomaly_scores.c[name] for name in _SCORE_FIELDS),
    t.alerts.c.id.label("alert_id"),
]


_EXISTING = scored_events(*_ITEM_COLUMNS).where(
    t.transactions.c.event_id.in_(bindparam("ids", expanding=True))
)


def _stored_item(row):
    """write_scored's item, as stored, plus alert_id."""
    fields = row._mapping
    item = {
        "event_id": row.event_id,
        "customer_id": row.customer_id,
        "occurred_at": row.occurred_at,
        "amount": row.amount,
        "transaction": row.raw,
        "features": row.features,
        "scores": row.detector_scores,
        **{name: fields[name] for name in _SCORE_FIELDS},
        "model_version": row.model_version,
        **{name: fields[name] for name in OPTIONAL_COLUMNS},
        "alert_id": row.alert_id,
    }
    item["is_alert"] = bool(item["is_alert"])
    return item


def keep_winners(connection, event_ids):
    """Bring label_winners up to date for event_ids after labels of theirs
    were inserted (in the caller's transaction). A stored winner is only
    replaced by a later one (label_time, then label id), so concurrent
    writers of labels of one event end with the latest of all."""
    w = t.label_winners
    for start in range(0, len(event_ids), _CHUNK):
        winners = ranked_winners(t.labels.c.event_id.in_(event_ids[start : start + _CHUNK]))
        upsert = (postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert)(
            w
        )
        upsert = upsert.from_select(
            ["event_id", "label", "label_time", "label_id", "source"], winners
        )
        later = or_(
            upsert.excluded.label_time > w.c.label_time,
            and_(
                upsert.excluded.label_time == w.c.label_time,
                upsert.excluded.label_id > w.c.label_id,
            ),
        )
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[w.c.event_id],
                set_={
                    name: upsert.excluded[name]
                    for name in ("label", "label_time", "label_id", "source")
                },
                where=later,
            )
        )


class AlertStore(DashboardQueries):
    """The alert store at ``url`` (created or upgraded on opening).

    Parameters
    ----------
    url : str
        ``sqlite:///PATH`` (default ``sqlite:///fraudcore.db``) or
        ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB`` (``postgresql://``
        is read as psycopg 3).
    synchronous : str
        SQLite's ``PRAGMA synchronous`` (OFF, NORMAL, FULL, EXTRA); ignored
        on PostgreSQL.

    Attributes
    ----------
    url : str
        The URL, password hidden.
    dialect : str
        "sqlite" or "postgresql".
    schema_version : int
        The database's schema version after opening.
    """

    def __init__(self, url="sqlite:///fraudcore.db", *, synchronous="NORMAL"):
        self._engine, self.dialect = connect(url, synchronous=synchronous)
        self.url = self._engine.url.render_as_string(hide_password=True)
        try:
            self.schema_version = upgrade(self._engine)
        except BaseException:
            self._engine.dispose()
            raise
        self._writer = ScoredWriter(t, self.dialect)
        self._integrity_errors = (IntegrityError, self._engine.dialect.dbapi.IntegrityError)

    def __repr__(self):
        return f"AlertStore({self.url!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close every pooled connection (the store is unusable afterwards)."""
        self._engine.dispose()

    def ping(self):
        """True when the database answers."""
        try:
            with self._engine.connect() as connection:
                return connection.execute(text("SELECT 1")).scalar() == 1
        except (SQLAlchemyError, OSError):
            return False

    # ------------------------------------------------------------------ scoring

    def existing(self, event_ids):
        """{event_id: stored item + alert_id} for those of event_ids already stored."""
        found = {}
        with self._engine.connect() as connection:
            stored = self._stored_ids(connection, list(dict.fromkeys(event_ids)))
            for start in range(0, len(stored), _CHUNK):
                chunk = stored[start : start + _CHUNK]
                for row in connection.execute(_EXISTING, {"ids": chunk}):
                    found[row.event_id] = _stored_item(row)
        return found

    def _stored_ids(self, connection, event_ids):
        """Those of event_ids stored. The scoring worker asks before every
        batch and the answer is nearly always none: a plain DB-API query, as
        SQLAlchemy's statement machinery would cost more than the query."""
        mark = "?" if self.dialect == "sqlite" else "%s"
        stored = []
        cursor = connection.connection.cursor()
        try:
            for start in range(0, len(event_ids), _CHUNK):
                chunk = event_ids[start : start + _CHUNK]
                marks = ", ".join([mark] * len(chunk))
                cursor.execute(
                    f"SELECT event_id FROM transactions WHERE event_id IN ({marks})", chunk
                )
                stored.extend(row[0] for row in cursor.fetchall())
        finally:
            cursor.close()
        return stored

    def write_scored(self, items):
        """Store a batch of scored items in one transaction; their alert ids
        (None where ``is_alert`` is false), in the items' order.

        ValueError names a malformed item; DuplicateEvent lists event ids
        already stored or repeated. Either way nothing is written.
        """
        if not items:
            return []
        batch = ScoredBatch(items, _now(), self.dialect)
        try:
            with write_transaction(self._engine) as connection:
                cursor = connection.connection.cursor()
                try:
                    if self.dialect == "postgresql":  # seq order = commit order (module doc)
                        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    alert_ids = self._writer.write(cursor, batch)
                finally:
                    cursor.close()
        except self._integrity_errors as error:
            with self._engine.connect() as connection:
                stored = self._stored_ids(connection, batch.event_ids)
            if stored:
                raise DuplicateEvent(
                    f"{len(stored)} event id(s) of the batch are already stored: {stored[:5]}",
                    stored,
                ) from error
            raise
        result = [None] * len(items)
        for position, alert_id in zip(batch.alert_items, alert_ids):
            result[position] = alert_id
        return result

    def transactions_after(self, seq, limit=10_000):
        """[(seq, raw transaction)] of the transactions stored after seq, in
        seq order, at most limit."""
        tx = t.transactions
        query = select(tx.c.seq, tx.c.raw).where(tx.c.seq > seq).order_by(tx.c.seq).limit(limit)
        with self._engine.connect() as connection:
            return [(row.seq, row.raw) for row in connection.execute(query)]

    def events_after(self, seq, limit=10_000):
        """[(seq, event_id)] of the transactions stored after seq, in seq
        order, at most limit: what a second writer's follower asks first
        (:class:`~fraudcore.service.pipeline.ScoringPipeline` with
        ``follow_store``), before it reads the raw transactions it lacks."""
        tx = t.transactions
        query = (
            select(tx.c.seq, tx.c.event_id).where(tx.c.seq > seq).order_by(tx.c.seq).limit(limit)
        )
        with self._engine.connect() as connection:
            return [(row.seq, row.event_id) for row in connection.execute(query)]

    def transactions_at(self, seqs):
        """The raw transactions of the given seqs, in seq order."""
        tx = t.transactions
        out = []
        with self._engine.connect() as connection:
            for start in range(0, len(seqs), _CHUNK):
                chunk = [int(s) for s in seqs[start : start + _CHUNK]]
                query = select(tx.c.seq, tx.c.raw).where(tx.c.seq.in_(chunk))
                out.extend((row.seq, row.raw) for row in connection.execute(query))
        out.sort(key=lambda row: row[0])
        return [raw for _, raw in out]

    def last_seq(self):
        """The seq of the last stored transaction (0 when none)."""
        with self._engine.connect() as connection:
            return connection.execute(select(func.max(t.transactions.c.seq))).scalar() or 0

    def save_snapshot(self, blob, last_seq, model_version):
        """Store a snapshot of the online state that includes every transaction
        up to last_seq; only the latest KEEP_SNAPSHOTS are kept."""
        snap = t.state_snapshots
        with write_transaction(self._engine) as connection:
            connection.execute(
                insert(snap).values(
                    created_at=_now(),
                    last_seq=int(last_seq),
                    model_version=str(model_version),
                    blob=bytes(blob),
                )
            )
            keep = select(snap.c.id).order_by(snap.c.id.desc()).limit(KEEP_SNAPSHOTS)
            kept = list(connection.execute(keep).scalars())
            connection.execute(delete(snap).where(snap.c.id.not_in(kept)))

    def latest_snapshot(self):
        """(blob, last_seq, model_version) of the latest snapshot, or None."""
        snap = t.state_snapshots
        query = (
            select(snap.c.blob, snap.c.last_seq, snap.c.model_version)
            .order_by(snap.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else (bytes(row.blob), int(row.last_seq), row.model_version)

    # ----------------------------------------------------------------- workflow

    def list_alerts(
        self,
        *,
        status=None,
        level=None,
        customer_id=None,
        since=None,
        until=None,
        limit=100,
        cursor=None,
    ):
        """(alerts, next cursor): a page of alerts in queue order (priority,
        then created_at, then id), each with its transaction's amount and
        occurred_at; the cursor is None on the last page.

        status and level take one value or a list; since <= created_at < until.
        """
        limit = checked_int(limit, "limit", 1, MAX_LIMIT)
        a = t.alerts
        query = _alert_filters(
            select(*_ALERT_COLUMNS, a.c.amount, a.c.occurred_at),
            status=status,
            level=level,
            customer_id=customer_id,
            since=since,
            until=until,
        )
        if cursor is not None:
            query = query.where(
                tuple_(a.c.priority, a.c.created_at, a.c.id) > _decode_cursor(cursor)
            )
        query = query.order_by(a.c.priority, a.c.created_at, a.c.id).limit(limit + 1)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        page = []
        for row in rows[:limit]:
            alert = _alert_dict(row)
            alert["amount"], alert["occurred_at"] = row.amount, row.occurred_at
            page.append(alert)
        return page, (_encode_cursor(page[-1]) if len(rows) > limit else None)

    def alert_queue(
        self,
        *,
        status=None,
        level=None,
        customer_id=None,
        country=None,
        since=None,
        until=None,
        sort=None,
        offset=0,
        limit=25,
    ):
        """(rows, total): one page of the dashboard's alert queue and the
        number of alerts matching the filters.

        Each row has the fields list_alerts gives plus the transaction's
        country. Filters as list_alerts' (status and level one value or a
        list; since <= created_at < until) and country. sort is a list of
        (column, "asc" | "desc") with columns from :data:`QUEUE_SORTS`;
        None or [] is the queue order (priority, created_at); id is always
        the last tie-break. The page skips offset rows (>= 0) and has at
        most limit (1 to MAX_LIMIT). Filtering, sorting and paging happen
        in SQL.
        """
        limit = checked_int(limit, "limit", 1, MAX_LIMIT)
        offset = checked_int(offset, "offset", 0)
        a = t.alerts
        order = _queue_order(sort)
        filters = {
            "status": status,
            "level": level,
            "customer_id": customer_id,
            "country": country,
            "since": since,
            "until": until,
        }
        page = _alert_filters(
            select(*_ALERT_COLUMNS, a.c.amount, a.c.occurred_at, a.c.country), **filters
        )
        page = page.order_by(*order).offset(offset).limit(limit)
        total = _alert_filters(select(func.count()).select_from(a), **filters)
        with self._engine.connect() as connection:
            rows = connection.execute(page).all()
            count = connection.execute(total).scalar()
        queue = []
        for row in rows:
            alert = _alert_dict(row)
            alert.update(amount=row.amount, occurred_at=row.occurred_at, country=row.country)
            queue.append(alert)
        return queue, count

    def get_alert(self, alert_id):
        """One alert: its fields (as list_alerts gives them) and its stored item
        (as existing gives it: transaction, features, scores, reasons...) and
        ``audit``, its moves, oldest first. NotFound when there is none."""
        a, audit = t.alerts, t.alert_audit
        alert_only = [a.c[name] for name in _ALERT_ONLY]
        query = scored_events(*_ITEM_COLUMNS, *alert_only).where(a.c.id == int(alert_id))
        trail = (
            select(audit.c.from_status, audit.c.to_status, audit.c.analyst, audit.c.note)
            .add_columns(audit.c.at, audit.c.version)
            .where(audit.c.alert_id == int(alert_id))
            .order_by(audit.c.id)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
            if row is None:
                raise NotFound(f"no alert {alert_id}")
            history = [dict(r._mapping) for r in connection.execute(trail)]
        alert = {"id": row.alert_id, **_stored_item(row)}
        alert.update({name: row._mapping[name] for name in _ALERT_ONLY}, audit=history)
        return alert

    def move_alert(self, alert_id, to_status, *, analyst, note=None, expected_version=None):
        """Move an alert to to_status (see TRANSITIONS); the updated alert.

        NotFound, IllegalTransition, or VersionConflict when expected_version
        is given and is not the alert's version. Without expected_version a
        move that loses a race to a concurrent one is judged again against
        the alert's new status.
        """
        if to_status not in STATUSES:
            raise ValueError(f"status {to_status!r} is not one of {STATUSES}")
        if not isinstance(analyst, str) or not analyst.strip():
            raise ValueError(f"analyst must be a non-empty string, got {analyst!r}")
        a = t.alerts
        alert_id = int(alert_id)
        while True:
            with write_transaction(self._engine) as connection:
                current = connection.execute(
                    select(*_ALERT_COLUMNS).where(a.c.id == alert_id)
                ).first()
                if current is None:
                    raise NotFound(f"no alert {alert_id}")
                if expected_version is not None and current.version != int(expected_version):
                    raise VersionConflict(
                        f"alert {alert_id} is at version {current.version}, not {expected_version}"
                    )
                if to_status not in TRANSITIONS[current.status]:
                    raise IllegalTransition(
                        f"alert {alert_id} cannot move from {current.status} to {to_status} "
                        f"(allowed: {', '.join(TRANSITIONS[current.status]) or 'none'})"
                    )
                now = _now()
                values = {
                    "status": to_status,
                    "version": current.version + 1,
                    "updated_at": now,
                    "assigned_to": (
                        None
                        if to_status == "OPEN"
                        else analyst
                        if to_status == "INVESTIGATING"
                        else current.assigned_to or analyst
                    ),
                }
                if to_status in DECISIONS:
                    values["decision"] = to_status
                moved = connection.execute(
                    update(a)
                    .where(a.c.id == alert_id, a.c.version == current.version)
                    .values(values)
                )
                if moved.rowcount == 1:
                    connection.execute(
                        insert(t.alert_audit).values(
                            alert_id=alert_id,
                            from_status=current.status,
                            to_status=to_status,
                            analyst=analyst,
                            note=note,
                            at=now,
                            version=current.version + 1,
                        )
                    )
                    if to_status in DECISIONS:
                        connection.execute(
                            insert(t.labels).values(
                                event_id=current.event_id,
                                label=DECISIONS[to_status],
                                label_time=now,
                                source="analyst",
                                received_at=now,
                            )
                        )
                        keep_winners(connection, [current.event_id])
                    row = connection.execute(
                        select(*_ALERT_COLUMNS).where(a.c.id == alert_id)
                    ).one()
                    return _alert_dict(row)
            if expected_version is not None:
                raise VersionConflict(f"alert {alert_id} was moved by someone else meanwhile")

    def statistics(self):
        """Alert counts by status and by risk level, the decisions, and
        precision = confirmed / (confirmed + false positive) (None before any
        decision)."""
        a = t.alerts
        # One scan of the alerts for all three counts (three GROUP BYs cost three).
        query = select(a.c.status, a.c.risk_level, a.c.decision, func.count()).group_by(
            a.c.status, a.c.risk_level, a.c.decision
        )
        by_status, by_level, decided = {}, {}, {}
        with self._engine.connect() as connection:
            for status, level, decision, n in connection.execute(query):
                by_status[status] = by_status.get(status, 0) + n
                by_level[level] = by_level.get(level, 0) + n
                if decision is not None:
                    decided[decision] = decided.get(decision, 0) + n
        confirmed = decided.get("CONFIRMED_FRAUD", 0)
        false_positive = decided.get("FALSE_POSITIVE", 0)
        return {
            "total": sum(by_status.values()),
            "by_status": {s: by_status.get(s, 0) for s in STATUSES},
            "by_level": {lv: by_level.get(lv, 0) for lv in sorted(by_level, key=level_order)},
            "confirmed_fraud": confirmed,
            "false_positive": false_positive,
            "precision": rate(confirmed, confirmed + false_positive),
        }

    # ------------------------------------------------------------------- labels

    def add_labels(self, labels):
        """Store labels {event_id, label (0/1), time?, source?}; how many.
        time (the label's own time; default now) is a datetime, nanoseconds
        since the epoch or ISO text; source defaults to "external"."""
        now = _now()
        rows = []
        for position, item in enumerate(labels):
            try:
                event_id, label = item["event_id"], item["label"]
            except (KeyError, TypeError):
                raise ValueError(
                    f"label {position} needs event_id and label, got {item!r}"
                ) from None
            if not isinstance(event_id, str) or not event_id:
                raise ValueError(f"label {position}: event_id must be a non-empty string")
            if label not in (0, 1):
                raise ValueError(
                    f"label {position} ({event_id!r}): label must be 0 or 1, got {label!r}"
                )
            when = item.get("time")
            rows.append(
                {
                    "event_id": event_id,
                    "label": int(label),
                    "label_time": now if when is None else to_utc(when, f"label {position} time"),
                    "source": str(item.get("source") or "external"),
                    "received_at": now,
                }
            )
        if rows:
            with write_transaction(self._engine) as connection:
                connection.execute(insert(t.labels), rows)
                keep_winners(connection, list({row["event_id"]: None for row in rows}))
        return len(rows)

    def labels_frame(self):
        """pandas DataFrame (event_id, label, label_time, source): each
        labelled event's winning label (analysts' decisions and external
        labels alike), ordered by event_id."""
        import pandas as pd

        latest = latest_labels().subquery()
        query = select(latest).order_by(latest.c.event_id)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        frame = pd.DataFrame(rows, columns=["event_id", "label", "label_time", "source"])
        frame["label"] = frame["label"].astype("int64")
        frame["label_time"] = pd.to_datetime(frame["label_time"], utc=True)
        return frame

    # ------------------------------------------------------------------- models

    def record_model(self, version, fingerprint, metrics):
        """Record that a model was loaded, with its metrics (a JSON-able dict)."""
        with write_transaction(self._engine) as connection:
            connection.execute(
                insert(t.model_metrics).values(
                    model_version=str(version),
                    fingerprint=str(fingerprint),
                    loaded_at=_now(),
                    metrics=dict(metrics),
                )
            )

    def latest_model(self):
        """{model_version, fingerprint, loaded_at, metrics} of the last recorded model, or None."""
        m = t.model_metrics
        query = (
            select(m.c.model_version, m.c.fingerprint, m.c.loaded_at, m.c.metrics)
            .order_by(m.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else dict(row._mapping)
