"""The alert store's schema versions and the steps between them.

A database records its version in ``schema_version`` (0: empty). Opening a
store runs the pending steps of :data:`STEPS` in order, each in its own
transaction together with the new version number, so a step is either done
and recorded or not done at all (SQLite and PostgreSQL both have
transactional DDL). Two processes opening the same database at once do not
run a step twice: each step's transaction takes the write lock first
(SQLite's ``BEGIN IMMEDIATE``; a transaction-level advisory lock on
PostgreSQL) and reads the version again under it. A database newer than
:data:`HEAD` is refused with :class:`SchemaError`.

Rule for new steps: a step creates tables and indexes from
:mod:`fraudcore.service.tables`, which holds the newest shape. When a later
step changes a table an earlier step created (a column added, say), that
earlier step must stop using the shared definition and create the table as
it was then, so a fresh database and an upgraded one end the same.

=== ==========================================================================
1   transactions, transaction_features, anomaly_scores, alerts, alert_audit,
    labels, model_metrics, state_snapshots (primary and unique keys only)
2   user_profiles, filled from the stored transactions and alerts; the
    queries' secondary indexes (tables.INDEXES)
3   alerts.amount, occurred_at and country, copied from their transactions;
    rollups and label_winners, filled from the stored rows; the dashboard's indexes
    (tables.DASHBOARD_INDEXES)
=== ==========================================================================
"""

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateIndex, CreateTable

from fraudcore.service import rollups
from fraudcore.service import tables as t
from fraudcore.service.engine import write_transaction
from fraudcore.service.errors import SchemaError
from fraudcore.service.queries import ranked_winners

# Any constant that no other code of the database uses as an advisory lock.
_PG_LOCK_KEY = 0x0F4A_D0C0


def _create(connection, *tables):
    for table in tables:
        connection.execute(CreateTable(table))


# alerts as step 1 created it (step 3 adds columns).
_ALERTS_1 = Table(
    "alerts",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "event_id", t.EventId, ForeignKey(t.transactions.c.event_id), nullable=False, unique=True
    ),
    Column("customer_id", String(128), nullable=False),
    Column("status", String(24), nullable=False),
    Column("decision", String(24)),
    Column("risk_level", String(16), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("risk_score", Float, nullable=False),
    Column("created_at", t.UtcDateTime, nullable=False),
    Column("updated_at", t.UtcDateTime, nullable=False),
    Column("assigned_to", String(128)),
    Column("version", Integer, nullable=False),
)
# The columns step 3 adds to alerts, copied from the alert's transaction.
_ALERT_COPIES = ("amount", "occurred_at", "country")


def _step_1(connection):
    _create(
        connection,
        t.transactions,
        t.transaction_features,
        t.anomaly_scores,
        _ALERTS_1,
        t.alert_audit,
        t.labels,
        t.model_metrics,
        t.state_snapshots,
    )


def _step_2(connection):
    _create(connection, t.user_profiles)
    tx, alerts = t.transactions, t.alerts
    n_alerts = (
        select(func.count())
        .where(alerts.c.customer_id == tx.c.customer_id)
        .correlate(tx)
        .scalar_subquery()
    )
    per_customer = select(
        tx.c.customer_id,
        func.min(tx.c.occurred_at),
        func.max(tx.c.occurred_at),
        func.count(),
        func.sum(tx.c.amount),
        func.max(n_alerts),
    ).group_by(tx.c.customer_id)
    connection.execute(insert(t.user_profiles).from_select(list(t.user_profiles.c), per_customer))
    for index in t.INDEXES:
        connection.execute(CreateIndex(index))


def _step_3(connection):
    a, tx = t.alerts, t.transactions
    for name in _ALERT_COPIES:
        kind = a.c[name].type.compile(dialect=connection.dialect)
        connection.execute(text(f"ALTER TABLE {a.name} ADD COLUMN {name} {kind}"))
    connection.execute(
        update(a)
        .values({name: tx.c[name] for name in _ALERT_COPIES})
        .where(tx.c.event_id == a.c.event_id)
    )
    _create(connection, t.rollups, t.label_winners)
    rollups.backfill(connection)
    connection.execute(
        insert(t.label_winners).from_select(list(t.label_winners.c), ranked_winners())
    )
    for index in t.DASHBOARD_INDEXES:
        connection.execute(CreateIndex(index))


STEPS = (
    (1, "scoring, workflow, labels, models and snapshots tables", _step_1),
    (2, "user_profiles (filled from the stored rows) and the queries' indexes", _step_2),
    (
        3,
        "alerts' copies of their transactions' fields, rollups and the dashboard's indexes",
        _step_3,
    ),
)
HEAD = STEPS[-1][0]


def _read_version(connection):
    if not inspect(connection).has_table("schema_version"):
        return 0
    value = connection.execute(select(t.schema_version.c.version)).scalar()
    return 0 if value is None else int(value)


def current_version(engine):
    """The schema version of the database behind engine (0 when empty)."""
    with engine.connect() as connection:
        return _read_version(connection)


def upgrade(engine, target=None):
    """Run the pending steps up to ``target`` (default :data:`HEAD`); returns
    the database's version afterwards. SchemaError when the database is
    newer than this code."""
    target = HEAD if target is None else int(target)
    if not 0 <= target <= HEAD:
        raise ValueError(f"target schema version must be between 0 and {HEAD}, got {target}")
    for version, _, step in STEPS:
        if version > target:
            break
        with write_transaction(engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY}
                )
            found = _read_version(connection)
            _refuse_newer(found, engine)
            if found >= version:
                continue
            if found == 0 and version == 1:
                connection.execute(CreateTable(t.schema_version, if_not_exists=True))
            step(connection)
            connection.execute(t.schema_version.delete())
            connection.execute(t.schema_version.insert().values(version=version))
    version = current_version(engine)
    _refuse_newer(version, engine)
    return version


def _refuse_newer(found, engine):
    if found > HEAD:
        raise SchemaError(
            f"the database at {engine.url.render_as_string(hide_password=True)} has schema "
            f"version {found}, newer than this fraudcore's {HEAD}: upgrade fraudcore "
            "(never open it with an older one)"
        )
