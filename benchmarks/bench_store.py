"""The alert store's scoring write path on SQLite and PostgreSQL.

Run from the repository root after ``pip install ".[service]"``::

    python benchmarks/bench_store.py [--json out.json] [--no-postgres]

What the scoring worker does per batch: ``existing(event_ids)`` (none are
stored yet) then ``write_scored(items)``, one transaction. Items are shaped
like the service's: 30 features, 3 detector scores, 3 reasons, a raw
transaction of 10 fields, one in 20 an alert, 200 customers. Batches of 1,
100 and 1000; each figure is the median over many batches written one after
another into a store that grows as it goes (a fresh store per backend and
batch size, 500 batches of 1, 60 of 100, 20 of 1000), in milliseconds of
wall time, and for write_scored also of this process's CPU time (on a
shared machine the wall time includes waiting for a core; on PostgreSQL
the server's work is not in this process's CPU time).

* SQLite: a file in a temporary directory, WAL, ``synchronous=NORMAL``
  (the store's default: no fsync per commit);
* PostgreSQL: a server of the benchmark's own on 127.0.0.1
  (tests/python/_postgres.py) with PostgreSQL's default durability (fsync
  and synchronous_commit on: every commit waits for the disk). Skipped
  without PostgreSQL's binaries.

Then the transaction_features layout: the same 1000 items' features
inserted as one JSON object per event (the store's layout) and as one row
per (event, feature), each in one transaction, median of 20.
"""

import argparse
import datetime as dt
import pathlib
import statistics
import sys
import tempfile
import time

from _common import machine, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

BATCHES = {1: 500, 100: 60, 1000: 20}
N_FEATURES = 30


def make_items(start, n):
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    items = []
    for k in range(start, start + n):
        alert = k % 20 == 0
        amount = 5.0 + (k * 7919) % 1000 / 10
        items.append(
            {
                "event_id": f"evt-{k:09d}",
                "customer_id": f"cust-{k % 200}",
                "occurred_at": t0 + dt.timedelta(seconds=k),
                "amount": amount,
                "transaction": {
                    "id": f"evt-{k:09d}",
                    "customer": f"cust-{k % 200}",
                    "time": (t0 + dt.timedelta(seconds=k)).isoformat(),
                    "amount": amount,
                    "country": "FR",
                    "device_id": f"dev-{k % 300}",
                    "browser": "Chrome",
                    "ip_address": f"10.0.{k % 250}.{k % 7}",
                    "source": "SEO",
                    "merchant": "m-1",
                },
                "features": {f"feature_{j}": k * 0.001 + j for j in range(N_FEATURES)},
                "scores": {"isolation_forest": 0.61, "lof": 0.42, "autoencoder": 0.55},
                "risk_score": 0.999 if alert else 0.5,
                "fraud_probability": None,
                "risk_level": "CRITICAL" if alert else "LOW",
                "priority": 1 if alert else 5,
                "confidence": 0.8,
                "is_alert": alert,
                "reasons": [
                    {"feature": "amount", "value": amount, "text": "amount far above usual"},
                    {"feature": "new_device", "value": 1.0, "text": "a device never seen"},
                    {"feature": "hour", "value": 3.0, "text": "at night"},
                ],
                "model_version": "bench",
                "country": "FR",
                "device": f"dev-{k % 300}",
                "browser": "Chrome",
                "ip": f"10.0.{k % 250}.{k % 7}",
            }
        )
    return items


def write_path_ms(url):
    """Batch size -> median ms of existing + write_scored, and of write_scored alone."""
    from fraudcore.service.store import AlertStore

    figures = {}
    for size, repeats in BATCHES.items():
        store = AlertStore(url(size))
        try:
            store.write_scored(make_items(10**8, 1))  # connections and caches warm
            batches = [make_items(r * size, size) for r in range(repeats)]
            whole, write, cpu = [], [], []
            for items in batches:
                start = time.perf_counter()
                assert not store.existing([item["event_id"] for item in items])
                middle, cpu_start = time.perf_counter(), time.process_time()
                store.write_scored(items)
                end = time.perf_counter()
                cpu.append(time.process_time() - cpu_start)
                whole.append(end - start)
                write.append(end - middle)
        finally:
            store.close()
        figures[size] = {
            "existing_and_write_ms": 1000 * statistics.median(whole),
            "write_scored_ms": 1000 * statistics.median(write),
            "write_scored_cpu_ms": 1000 * statistics.median(cpu),
        }
        print(
            f"  batch {size:>5}: write_scored {figures[size]['write_scored_ms']:8.3f} ms "
            f"(this process's CPU {figures[size]['write_scored_cpu_ms']:8.3f} ms), "
            f"with existing {figures[size]['existing_and_write_ms']:8.3f} ms",
            flush=True,
        )
    return figures


def feature_layouts_ms(url):
    """ms to insert 1000 events' features as JSON objects and as rows."""
    from sqlalchemy import Column, Float, MetaData, String, Table, insert

    from fraudcore.service.engine import connect, write_transaction
    from fraudcore.service.tables import Json

    engine, _ = connect(url)
    meta = MetaData()
    as_json = Table("bench_json", meta, Column("event_id", String(128)), Column("f", Json))
    as_rows = Table(
        "bench_rows",
        meta,
        Column("event_id", String(128)),
        Column("name", String(64)),
        Column("value", Float),
    )
    meta.create_all(engine)
    times = {"json": [], "rows": []}
    try:
        for r in range(20):
            items = make_items(r * 1000, 1000)
            json_rows = [{"event_id": i["event_id"], "f": i["features"]} for i in items]
            feature_rows = [
                {"event_id": i["event_id"], "name": name, "value": value}
                for i in items
                for name, value in i["features"].items()
            ]
            for layout, table, rows in (
                ("json", as_json, json_rows),
                ("rows", as_rows, feature_rows),
            ):
                start = time.perf_counter()
                with write_transaction(engine) as connection:
                    connection.execute(insert(table), rows)
                times[layout].append(time.perf_counter() - start)
    finally:
        meta.drop_all(engine)
        engine.dispose()
    figures = {layout: 1000 * statistics.median(ts) for layout, ts in times.items()}
    print(
        f"  features of 1000 events: JSON {figures['json']:.1f} ms, "
        f"{N_FEATURES} rows each {figures['rows']:.1f} ms"
    )
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    report = {"machine": machine(), "batches": BATCHES, "sqlite": {}, "postgresql": None}
    with tempfile.TemporaryDirectory() as folder:
        print("SQLite (file, WAL, synchronous=NORMAL)")
        report["sqlite"]["write_path"] = write_path_ms(
            lambda size: f"sqlite:///{folder}/bench_{size}.db"
        )
        report["sqlite"]["feature_layouts"] = feature_layouts_ms(f"sqlite:///{folder}/layout.db")

    if not args.no_postgres:
        from _postgres import PostgresServer, find_binaries

        folder = find_binaries()
        if folder is None:
            print("PostgreSQL: skipped (no initdb / pg_ctl found)")
        else:
            server = PostgresServer(folder, durable=True).start()
            try:
                print("PostgreSQL (own server, default durability)")
                report["postgresql"] = {
                    "write_path": write_path_ms(lambda size: server.create_database()),
                    "feature_layouts": feature_layouts_ms(server.create_database()),
                }
            finally:
                server.stop()
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
