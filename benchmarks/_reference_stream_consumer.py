"""The stream consumer fraudcore's replaces, written the usual way: a Python
loop over a Redis stream, pandas features and scikit-learn per message.

For each message, one at a time: ``XREADGROUP`` with ``count=1`` on each of
the stream's partitions in turn (the layout of
:mod:`fraudcore.stream.redis_streams`: ``S:meta`` holds the partition count,
the partitions are ``S:0`` .. ``S:{P-1}``, the transaction in the field
``tx``), ``json.loads``, the features of that one transaction from its
customer's pandas history, the scaler and the two detectors on that one row,
an ``INSERT`` of the result into SQLite (``sqlite3``; one commit per
message), then ``XACK``. No micro-batches, no pipelining.

The features and the scoring are those of ``benchmarks/_plain_service.py``
(the plain scoring service of ``bench_service.py``): the per-message path is
its ``PlainScorer.features`` / ``score`` (count, mean and standard deviation
of the customer's earlier amounts, z-score, ratio to the mean, hour, day,
weekend, night, seconds since the previous transaction, count and amount sum
over the trailing 1 h / 24 h / 7 days, a new country or device, seconds since
signup, customers per device and IP: fraudcore's columns); scikit-learn's
``IsolationForest`` (200 trees) and ``LocalOutlierFactor(n_neighbors=20,
novelty=True)`` on standardised features, fitted on the training
transactions' features (``fraudcore._reference_features``). Two differences
from the plain service, so the comparison with ``fraudcore stream`` is like
for like:

* the LOF learns from 16,384 training rows drawn at random (fraudcore's
  ``neighbor_samples``; the plain service's LOF over 100,000 rows takes
  minutes to fit), the forest from all of them; the alert threshold is the
  99th percentile of the risk score on other training rows;
* the customers' histories start empty, as ``fraudcore stream``'s do on a
  fresh store.

SQLite is opened as fraudcore's store opens it (WAL, ``synchronous =
NORMAL``), so the two differ in how they compute, not in how often they
sync the disk.

Run by ``bench_stream.py``::

    python benchmarks/_reference_stream_consumer.py --source redis://HOST:PORT/STREAM \\
        --group reference --train train.pkl --db ref.db --messages 3000 --seconds 60 \\
        --json out.json

It stops after ``--messages`` messages, after ``--seconds`` (checked between
messages), or when every partition is read to its end; the JSON has its
counts and its rate (messages / seconds from its first read to its last
acknowledgement; the fit is timed apart).
"""

import argparse
import json
import sqlite3
import statistics
import time
import types
from collections import defaultdict
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import redis
from _plain_service import PlainScorer
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler

from fraudcore import Schema
from fraudcore._reference_features import reference_features
from fraudcore._synthetic_transactions import TRANSACTION_COLUMNS

NEIGHBOR_SAMPLES = 16_384
# the transaction as the stream carries it: make_transactions' columns, no labels
FIELDS = ("event_id", *(c for c in TRANSACTION_COLUMNS if c not in ("is_fraud", "fraud_pattern")))
CREATE = """
CREATE TABLE IF NOT EXISTS scored (
    event_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    amount REAL NOT NULL,
    risk_score REAL NOT NULL,
    risk_level TEXT NOT NULL,
    is_alert INTEGER NOT NULL,
    scores TEXT NOT NULL,
    reasons TEXT NOT NULL,
    model_version TEXT NOT NULL,
    stored_at REAL NOT NULL
)
"""
INSERT = "INSERT OR IGNORE INTO scored VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class StreamScorer(PlainScorer):
    """The plain service's scorer: its features and scoring, the LOF on a
    sample of the training rows, empty customer histories."""

    def __init__(self, train, neighbor_samples=NEIGHBOR_SAMPLES, seed=0):
        features = reference_features(train, Schema.transactions())
        self.names = list(features.columns)
        X = features.to_numpy(dtype=float)
        self.scaler = StandardScaler().fit(X)
        Z = self.scaler.transform(X)
        order = np.random.default_rng(seed).permutation(len(Z))
        fit_rows = order[:neighbor_samples]
        held = order[neighbor_samples : 2 * neighbor_samples]
        forest = IsolationForest(n_estimators=200, random_state=0).fit(Z)
        lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(Z[fit_rows])
        self.detectors = {"isolation_forest": forest, "lof": lof}
        self.training_scores = {
            "isolation_forest": np.sort(-forest.score_samples(Z)),
            "lof": np.sort(-lof.negative_outlier_factor_),  # the fitted rows' own LOF
        }
        threshold_rows = Z[held] if len(held) else Z  # tiny training sets: every row
        self.threshold = float(np.quantile(self._risk(threshold_rows)[0], 0.99))
        self.history = {}
        self.device_users = defaultdict(set)
        self.ip_users = defaultdict(set)


def partition_keys(client, stream):
    recorded = client.hget(f"{stream}:meta", "partitions")
    partitions = int(recorded) if recorded is not None else 1
    return [stream] if partitions == 1 else [f"{stream}:{p}" for p in range(partitions)]


def open_db(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(CREATE)
    db.commit()
    return db


def consume(client, keys, group, consumer, scorer, db, *, messages, seconds):
    """The loop; its counts and timings."""
    for key in keys:
        try:
            client.xgroup_create(key, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
    processed = alerts = 0
    per_message_ms = []
    stopped_by = "end of stream"
    started, cpu_started = time.perf_counter(), time.process_time()
    while True:
        got = False
        for key in keys:
            if processed >= messages:
                break
            reply = client.xreadgroup(group, consumer, {key: ">"}, count=1)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    begun = time.perf_counter()
                    record = json.loads(fields[b"tx"])
                    tx = types.SimpleNamespace(**{name: record.get(name) for name in FIELDS})
                    result = scorer.score(tx)
                    db.execute(
                        INSERT,
                        (
                            str(result["event_id"]),
                            str(tx.customer_id),
                            str(tx.timestamp),
                            float(tx.amount),
                            result["risk_score"],
                            result["risk_level"],
                            int(result["is_alert"]),
                            json.dumps(result["scores"]),
                            json.dumps(result["reasons"]),
                            result["model_version"],
                            time.time(),
                        ),
                    )
                    db.commit()
                    client.xack(key, group, entry_id)
                    processed += 1
                    alerts += bool(result["is_alert"])
                    got = True
                    per_message_ms.append((time.perf_counter() - begun) * 1000)
        elapsed = time.perf_counter() - started
        if processed >= messages:
            stopped_by = "messages"
            break
        if elapsed >= seconds:
            stopped_by = "seconds"
            break
        if not got:
            break
    elapsed = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    stored = db.execute("SELECT COUNT(*) FROM scored").fetchone()[0]
    return {
        "processed": processed,
        "alerts": alerts,
        "stored": stored,
        "seconds": elapsed,
        "transactions_per_s": processed / elapsed if elapsed > 0 else 0.0,
        "cpu_s": cpu_s,
        "stopped_by": stopped_by,
        "per_message_ms": {
            "p50": statistics.median(per_message_ms) if per_message_ms else None,
            "p99": float(np.quantile(per_message_ms, 0.99)) if per_message_ms else None,
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="redis://HOST:PORT/STREAM")
    parser.add_argument("--group", default="reference")
    parser.add_argument("--consumer", default="reference-1")
    parser.add_argument("--train", required=True, help="a pickled DataFrame without labels")
    parser.add_argument("--db", required=True, help="a SQLite file")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    parts = urlsplit(args.source)
    stream = parts.path.strip("/").split("/")[-1]
    client = redis.Redis.from_url(f"{parts.scheme}://{parts.netloc}/0", socket_timeout=60)
    train = pd.read_pickle(args.train)
    fit_started = time.perf_counter()
    scorer = StreamScorer(train)
    fit_s = time.perf_counter() - fit_started
    keys = partition_keys(client, stream)
    db = open_db(args.db)
    try:
        out = consume(
            client,
            keys,
            args.group,
            args.consumer,
            scorer,
            db,
            messages=args.messages,
            seconds=args.seconds,
        )
    finally:
        db.close()
        client.close()
    out.update(
        fit_s=fit_s,
        train_rows=len(train),
        lof_rows=min(NEIGHBOR_SAMPLES, len(train)),
        partitions=len(keys),
        threshold=scorer.threshold,
    )
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
