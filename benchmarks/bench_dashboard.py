"""The analyst dashboard's queries against a full alert store, on SQLite and PostgreSQL.

Run from the repository root after ``pip install ".[service]"``::

    python benchmarks/bench_dashboard.py [--json out.json] [--no-postgres]
        [--transactions 1000000] [--alerts 100000] [--repeats 25]

How it fills a store (a fresh one per backend): ``--transactions`` scored
events written with ``AlertStore.write_scored`` in batches of 5,000 (the
write path itself, so every row, rollup included, is what the service would
store), in time order over 90 days; exactly ``--alerts`` of them alerts
(scores 0.9 to 1, levels from the detector's thresholds), the rest scores
below 0.97. ~20,000 customers (one in 50 of the events' count, at most
20,000; a few very busy, most quiet), 40 countries (skewed; 2% of a
customer's events abroad, 1% unknown), devices and IP addresses each
shared by about three customers, five browsers, 20 features and 3
detector scores per event. Then analysts decide one alert in 20 through
``move_alert`` (some investigated first, some closed after), and late
labels arrive through ``add_labels`` for 2% of the events (chargebacks,
some overruling an analyst's decision, some for events scored elsewhere),
so "confirmed" and precision are non-trivial.

How it times: each query once to warm the caches, then ``--repeats`` times
one after another; p50 and p95 of the wall time in milliseconds, against the
target of 300 ms. The queries: the queue's first page (25 rows and the
total), each filter (status, level, customer, country, a week of
created_at), each sort column descending, page 500 (offset 12,500) in
queue order and sorted by amount; the overview's summary, statistics,
fraud_trends("day"), fraud_geography, fraud_devices, fraud_browsers,
score_histogram(50); the alert page's related(event) and
customer_history(customer). Then, with ``fraudcore[dashboard]`` installed,
the dashboard's callbacks as a whole (``fraudcore.dashboard``'s functions
that its Dash callbacks call, rows and figures included): the queue's
first page, a level filter, a sort by amount and page 500; the overview
(every card and chart in one call); an alert page's data; the customer
explorer. HTTP and the browser's rendering are not in these figures.

* SQLite: a file in a temporary directory (WAL, ``synchronous=NORMAL``);
* PostgreSQL: a server of the benchmark's own on 127.0.0.1
  (tests/python/_postgres.py) with fsync off (the figures are reads; the
  fill is faster), ``VACUUM ANALYZE`` after the fill (as autovacuum would
  have done on a live database). Skipped without PostgreSQL's binaries.
"""

import argparse
import datetime as dt
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
from _common import machine, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

TARGET_MS = 300.0
BATCH = 5_000
DAYS = 90
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
COUNTRIES = [f"C{k:02d}" for k in range(40)]
BROWSERS = ("Chrome", "Safari", "Firefox", "Edge", "Opera")
LEVELS = (("CRITICAL", 0.999, 1), ("HIGH", 0.99, 2), ("MEDIUM", 0.95, 3), ("LOW", 0.0, 4))
N_FEATURES = 20


class Population:
    """The customers and what each one uses, drawn once per run."""

    def __init__(self, n_transactions, n_alerts, seed=0):
        rng = np.random.default_rng(seed)
        self.n, self.n_alerts = n_transactions, n_alerts
        self.customers = max(10, min(20_000, n_transactions // 50))
        skew = 1.0 / np.arange(1, len(COUNTRIES) + 1)
        self.home = rng.choice(len(COUNTRIES), size=self.customers, p=skew / skew.sum())
        self.browser = rng.choice(
            len(BROWSERS), size=self.customers, p=[0.5, 0.25, 0.12, 0.1, 0.03]
        )
        n_devices, n_ips = max(2, int(self.customers * 0.7)), max(2, int(self.customers * 0.8))
        self.devices = rng.integers(0, n_devices, size=(self.customers, 2))
        self.ips = rng.integers(0, n_ips, size=(self.customers, 3))
        alerts = np.zeros(n_transactions, dtype=bool)
        alerts[rng.choice(n_transactions, size=n_alerts, replace=False)] = True
        self.alerts = alerts
        self.rng = rng

    def items(self, start, stop):
        """The scored items of events start .. stop - 1 (write_scored's dicts)."""
        rng, size = self.rng, stop - start
        customer = (self.customers * rng.random(size) ** 2).astype(int)
        seconds = (np.arange(start, stop) + rng.random(size)) * (DAYS * 86_400 / self.n)
        amount = np.round(rng.lognormal(3.5, 1.1, size), 2)
        alert = self.alerts[start:stop]
        score = np.where(alert, 0.9 + 0.1 * rng.random(size) ** 0.3, 0.97 * rng.random(size))
        where = rng.random(size)
        features = rng.normal(size=(size, N_FEATURES))
        items = []
        for k in range(size):
            c = int(customer[k])
            if where[k] < 0.01:
                country = None
            elif where[k] < 0.03:
                country = COUNTRIES[int(where[k] * 1000) % len(COUNTRIES)]
            else:
                country = COUNTRIES[self.home[c]]
            device = f"dev-{self.devices[c, k % 2]}"
            ip = f"10.{self.ips[c, k % 3] // 250 % 250}.{self.ips[c, k % 3] % 250}.9"
            level, _, priority = next(lv for lv in LEVELS if score[k] >= lv[1])
            is_alert = bool(alert[k])
            event_id = f"evt-{start + k:09d}"
            occurred = T0 + dt.timedelta(seconds=float(seconds[k]))
            items.append(
                {
                    "event_id": event_id,
                    "customer_id": f"cust-{c:05d}",
                    "occurred_at": occurred,
                    "amount": float(amount[k]),
                    "transaction": {
                        "id": event_id,
                        "customer": f"cust-{c:05d}",
                        "time": occurred.isoformat(),
                        "amount": float(amount[k]),
                        "country": country,
                        "device_id": device,
                        "browser": BROWSERS[self.browser[c]],
                        "ip_address": ip,
                        "source": "SEO",
                        "merchant": f"m-{k % 50}",
                    },
                    "features": {f"feature_{j}": float(features[k, j]) for j in range(N_FEATURES)},
                    "scores": {
                        "isolation_forest": float(score[k]),
                        "lof": float(score[k]) * 0.9,
                        "autoencoder": float(score[k]) * 0.8,
                    },
                    "risk_score": float(score[k]),
                    "fraud_probability": None,
                    "risk_level": level,
                    "priority": priority if is_alert else 5,
                    "confidence": 0.8,
                    "is_alert": is_alert,
                    "reasons": (
                        [{"feature": "amount", "value": float(amount[k]), "text": "unusual"}]
                        if is_alert
                        else []
                    ),
                    "model_version": "bench",
                    "country": country,
                    "device": device,
                    "browser": BROWSERS[self.browser[c]],
                    "ip": ip,
                }
            )
        return items


def fill(store, population):
    """Write the population's events, decide alerts, add late labels; seconds per stage."""
    seconds = {}
    start = time.perf_counter()
    alert_ids = []
    for first in range(0, population.n, BATCH):
        items = population.items(first, min(population.n, first + BATCH))
        ids = store.write_scored(items)
        alert_ids.extend(
            (alert_id, item["event_id"], item["risk_score"])
            for alert_id, item in zip(ids, items)
            if alert_id is not None
        )
    seconds["write_scored"] = time.perf_counter() - start

    start = time.perf_counter()
    rng = np.random.default_rng(1)
    decided = rng.choice(len(alert_ids), size=len(alert_ids) // 20, replace=False)
    for position in decided:
        alert_id, _, score = alert_ids[position]
        fraud = rng.random() < (score - 0.9) * 8
        path = (["INVESTIGATING"] if rng.random() < 0.5 else []) + [
            "CONFIRMED_FRAUD" if fraud else "FALSE_POSITIVE"
        ]
        if rng.random() < 0.3:
            path.append("CLOSED")
        for status in path:
            store.move_alert(alert_id, status, analyst=f"analyst-{position % 7}")
    seconds["move_alert"] = time.perf_counter() - start

    start = time.perf_counter()
    n_labels = max(1, population.n // 50)
    events = rng.choice(population.n, size=n_labels, replace=False)
    overruled = [alert_ids[p][1] for p in decided[: max(1, len(decided) // 10)]]
    labels = [
        {
            "event_id": f"evt-{e:09d}",
            "label": int(population.alerts[e] and rng.random() < 0.4 or rng.random() < 0.01),
            "time": T0 + dt.timedelta(days=DAYS + 10),
            "source": "chargeback",
        }
        for e in events
    ]
    labels += [{"event_id": e, "label": int(rng.random() < 0.5)} for e in overruled]
    labels += [{"event_id": f"elsewhere-{k}", "label": 1} for k in range(100)]
    store.add_labels(labels)
    seconds["add_labels"] = time.perf_counter() - start
    if store.dialect == "postgresql":
        # What autovacuum does to a live database sooner or later: without
        # it the planner knows nothing of the million new rows, and an
        # autovacuum starting mid-run would time itself into the queries.
        start = time.perf_counter()
        with store._engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )
        seconds["vacuum_analyze"] = time.perf_counter() - start
    return seconds


def queries(store):
    """name -> a call of the dashboard's, with arguments found in the store."""
    from fraudcore.service.store import QUEUE_SORTS

    busy = store.customer_ids(limit=1)[0]
    first = store.alert_queue(limit=1)[0][0]
    created = first["created_at"]
    calls = {
        "queue first page": lambda: store.alert_queue(),
        "queue status=OPEN": lambda: store.alert_queue(status="OPEN"),
        "queue status=INVESTIGATING": lambda: store.alert_queue(status="INVESTIGATING"),
        "queue level=HIGH": lambda: store.alert_queue(level="HIGH"),
        "queue customer": lambda: store.alert_queue(customer_id=busy),
        "queue country": lambda: store.alert_queue(country=COUNTRIES[5]),
        "queue created in a week": lambda: store.alert_queue(
            since=created - dt.timedelta(days=1), until=created + dt.timedelta(days=6)
        ),
    }
    for column in QUEUE_SORTS:
        calls[f"queue sort {column} desc"] = lambda c=column: store.alert_queue(sort=[(c, "desc")])
    calls["queue page 500"] = lambda: store.alert_queue(offset=12_500)
    calls["queue page 500 sort amount"] = lambda: store.alert_queue(
        offset=12_500, sort=[("amount", "desc")]
    )
    calls["queue page 500 status=OPEN"] = lambda: store.alert_queue(offset=12_500, status="OPEN")
    calls.update(
        {
            "summary": store.summary,
            "statistics": store.statistics,
            "fraud_trends day": lambda: store.fraud_trends("day"),
            "fraud_geography": store.fraud_geography,
            "fraud_devices": store.fraud_devices,
            "fraud_browsers": store.fraud_browsers,
            "score_histogram 50": lambda: store.score_histogram(50),
            "related": lambda: store.related(first["event_id"]),
            "customer_history": lambda: store.customer_history(busy),
        }
    )
    return calls


def callbacks(store):
    """name -> a dashboard callback's whole work (fraudcore.dashboard's
    functions the Dash callbacks call: queries plus shaping rows and
    figures), or {} without the dashboard extra."""
    try:
        from fraudcore.dashboard import alert, customers, overview, queue
    except ImportError:
        print("  (the dashboard's callbacks: skipped, fraudcore[dashboard] not installed)")
        return {}
    busy = store.customer_ids(limit=1)[0]
    first = store.alert_queue(limit=1)[0][0]
    by_amount = [{"column_id": "amount", "direction": "desc"}]
    return {
        "callback queue first page": lambda: queue.queue_view(store, status=queue.DEFAULT_STATUS),
        "callback queue filter level": lambda: queue.queue_view(
            store, status=queue.DEFAULT_STATUS, level=["HIGH"]
        ),
        "callback queue sort amount": lambda: queue.queue_view(
            store, status=queue.DEFAULT_STATUS, sort_by=by_amount
        ),
        "callback queue page 500": lambda: queue.queue_view(store, status=None, page=499),
        "callback overview (all charts)": lambda: overview.overview_view(store),
        "callback alert page data": lambda: alert.alert_data(store, first["id"]),
        "callback customer explorer": lambda: customers.customer_view(store, busy, "TotalSpent"),
    }


def time_queries(calls, repeats):
    """name -> {p50_ms, p95_ms, target_ms, pass}."""
    figures = {}
    for name, call in calls.items():
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(1000 * (time.perf_counter() - start))
        p50, p95 = statistics.median(times), float(np.percentile(times, 95))
        figures[name] = {
            "p50_ms": p50,
            "p95_ms": p95,
            "target_ms": TARGET_MS,
            "pass": p95 <= TARGET_MS,
        }
        print(
            f"  {name:<32} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  "
            f"{'pass' if p95 <= TARGET_MS else 'FAIL'}",
            flush=True,
        )
    return figures


def run_backend(url, population, repeats):
    from fraudcore.service.store import AlertStore

    store = AlertStore(url)
    try:
        start = time.perf_counter()
        stages = fill(store, population)
        print(
            f"  filled in {time.perf_counter() - start:.0f} s "
            + ", ".join(f"{name} {s:.1f} s" for name, s in stages.items()),
            flush=True,
        )
        stats, summary = store.statistics(), store.summary()
        contents = {
            "transactions": summary["transactions"],
            "alerts": stats["total"],
            "confirmed_fraud": summary["confirmed_fraud"],
            "precision": stats["precision"],
        }
        print("  " + ", ".join(f"{k} {v}" for k, v in contents.items()), flush=True)
        return {
            "fill_s": stages,
            "store": contents,
            "queries": time_queries({**queries(store), **callbacks(store)}, repeats),
        }
    finally:
        store.close()


def print_table(report):
    print(f"\n{'backend':<11} {'query':<32} {'p50 ms':>9} {'p95 ms':>9} {'target':>7}  result")
    for backend in ("sqlite", "postgresql"):
        if not report[backend]:
            continue
        for name, row in report[backend]["queries"].items():
            print(
                f"{backend:<11} {name:<32} {row['p50_ms']:9.1f} {row['p95_ms']:9.1f} "
                f"{row['target_ms']:7.0f}  {'pass' if row['pass'] else 'FAIL'}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=25, help="timed calls per query")
    args = parser.parse_args()
    if not 0 < args.alerts <= args.transactions:
        parser.error("--alerts must be between 1 and --transactions")
    report = {
        "machine": machine(),
        "transactions": args.transactions,
        "alerts": args.alerts,
        "repeats": args.repeats,
        "sqlite": None,
        "postgresql": None,
    }
    with tempfile.TemporaryDirectory() as folder:
        print("SQLite (file, WAL, synchronous=NORMAL)", flush=True)
        population = Population(args.transactions, args.alerts)
        report["sqlite"] = run_backend(f"sqlite:///{folder}/dashboard.db", population, args.repeats)

    if not args.no_postgres:
        from _postgres import PostgresServer, find_binaries

        folder = find_binaries()
        if folder is None:
            print("PostgreSQL: skipped (no initdb / pg_ctl found)")
        else:
            server = PostgresServer(folder).start()
            try:
                print("PostgreSQL (own server, fsync off)", flush=True)
                population = Population(args.transactions, args.alerts)
                report["postgresql"] = run_backend(
                    server.create_database(), population, args.repeats
                )
            finally:
                server.stop()
    print_table(report)
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
