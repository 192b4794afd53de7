"""How the alert store connects: URLs, connection settings, write transactions.

``sqlite:///path`` (the default backend) and ``postgresql+psycopg://...``
(``postgresql://`` and ``postgres://`` mean psycopg 3 too). Anything else is
a ValueError naming the accepted forms.

SQLite connections: WAL journal (readers never wait for the writer), a busy
timeout (``BUSY_TIMEOUT_MS``: a writer waits for another instead of failing
with "database is locked"), foreign keys on, ``synchronous`` as asked
(NORMAL: a commit survives a crash of the process, the last commits may be
lost on a power cut; FULL survives that too). pysqlite's own transaction
handling is switched off and SQLAlchemy's ``begin`` emits ``BEGIN``
itself, so that :func:`write_transaction` can take the write lock up front
(``BEGIN IMMEDIATE``): a deferred transaction that reads and then writes can
fail at once with SQLITE_BUSY when another writer committed in between, and
the busy timeout cannot help it.

PostgreSQL connections: session time zone UTC; :func:`write_transaction`
is a plain READ COMMITTED transaction (the store's writes are guarded by
their WHERE clauses, unique keys and row locks).

JSON is written with orjson (NumPy scalars and arrays allowed; NaN and
infinities become null, as JSON has neither).
"""

import contextlib
import sqlite3
import time

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

BUSY_TIMEOUT_MS = 30_000
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json_default(value):
    if hasattr(value, "isoformat"):  # pandas.Timestamp and the like
        return value.isoformat()
    if hasattr(value, "item"):  # NumPy scalars orjson does not know
        return value.item()
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be stored as JSON")


def dumps(value):
    """JSON text of value (orjson, see the module docstring)."""
    return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS).decode()


def normalize_url(url):
    """(SQLAlchemy URL, dialect name) of a store URL."""
    text = str(url)
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            text = "postgresql+psycopg://" + text[len(prefix) :]
    parsed = make_url(text)
    dialect = parsed.get_backend_name()
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(
            f"store url {url!r}: expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    return parsed, dialect


def _use_wal(cursor):
    """Switch a SQLite database to WAL (kept in the file). Switching needs the
    database to itself and SQLite answers "database is locked" at once, not
    after the busy timeout, while another connection works on a new file (the
    stores of several processes opening it together): retried until the
    busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def connect(url, *, synchronous="NORMAL"):
    """A SQLAlchemy engine for a store URL, with the settings above."""
    parsed, dialect = normalize_url(url)
    options = {"json_serializer": dumps, "json_deserializer": orjson.loads}
    if dialect == "postgresql":
        engine = create_engine(
            parsed,
            pool_size=10,
            max_overflow=40,
            connect_args={"options": "-c timezone=UTC"},
            **options,
        )
        return engine, dialect

    synchronous = str(synchronous).upper()
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
    if parsed.database in (None, "", ":memory:"):
        # One shared connection: each connection to :memory: is its own database.
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        options.update(pool_size=10, max_overflow=40)
    engine = create_engine(parsed, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy's begin emits BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        # On the driver's connection: SQLAlchemy's statement machinery costs
        # more than the statement itself here.
        connection.connection.driver_connection.execute(f"BEGIN {mode}")

    return engine, dialect


@contextlib.contextmanager
def write_transaction(engine):
    """A connection in a transaction that will write; committed on success,
    rolled back on any exception (which propagates). On SQLite it holds the
    write lock from its first statement (waiting up to the busy timeout)."""
    with engine.connect() as connection:
        connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection
