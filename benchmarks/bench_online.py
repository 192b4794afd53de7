"""Online scoring: one transaction at a time, with its customer's history.

Run from the repository root after ``pip install ".[bench]"``::

    python benchmarks/bench_online.py [--calls 10000] [--json out.json]

What is measured, for FraudDetector's default pair (isolation_forest + knn)
and for isolation_forest + lof, each fitted (unsupervised, default
neighbor_samples=16,384) on the first 50,000 of --rows make_transactions
transactions (2,000 customers), the scorers warmed with those 50,000:

* ``OnlineScorer.score_one`` on the next --calls transactions, one thread
  calling, after 500 warm-up calls: per-transaction latency p50 / p99 /
  p99.9 over the whole stream (reasons for its alerts included), p99 of
  the rows without an alert, and the median cost of an alerted row
  (reasons: attribution and describe); and the same percentiles of the
  thread's CPU time per call, which leave out the time the thread waited
  for a core (on a shared, loaded machine the wall-clock tail is mostly
  that wait);
* the library's old path, ``FraudDetector.score`` on a one-row DataFrame
  (no history: its features see that row only), --slow-calls transactions;
* what a user would otherwise write (--slow-calls transactions): the
  customer's history and the new row through the plain pandas features
  (fraudcore._reference_features), then scikit-learn's IsolationForest
  (200 trees) and LocalOutlierFactor(novelty=True, 20 neighbours) or
  NearestNeighbors (5 neighbours, the k-NN distance), fitted on the same
  detector inputs, on that one row;
* ``score_many`` throughput, transactions per second, at 100 and 1,000
  transactions per call (median over consecutive batches of the stream).

Ratios are the other path's p50 over score_one's: above 1 means faster.
The machine's load matters for the tails: see "machine" in the JSON.
"""

import argparse
import os
import pathlib
import statistics
import time
import warnings

import numpy as np
import pandas as pd
from _common import machine, write_json

from fraudcore import FraudDetector, OnlineScorer, Schema
from fraudcore._reference_features import reference_features
from fraudcore.datasets import make_transactions

SCHEMA = Schema.transactions()
N_TRAIN = 50_000
WARM_UP = 500
PAIRS = {
    "IF+kNN": ("isolation_forest", "knn"),
    "IF+LOF": ("isolation_forest", "lof"),
}


def percentiles(seconds):
    us = np.asarray(seconds) * 1e6
    return {q: float(np.percentile(us, q)) for q in (50, 99, 99.9)}


def online_latency(detector, data, calls):
    scorer = OnlineScorer.from_history(detector, data.iloc[:N_TRAIN])
    records = data.iloc[N_TRAIN : N_TRAIN + WARM_UP + calls].to_dict("records")
    times, cpu, alerts = [], [], []
    for record in records:
        start, start_cpu = time.perf_counter(), time.thread_time()
        result = scorer.score_one(record)
        cpu.append(time.thread_time() - start_cpu)
        times.append(time.perf_counter() - start)
        alerts.append(result["is_alert"])
    times, cpu, alerts = (np.array(v[WARM_UP:]) for v in (times, cpu, alerts))
    out = percentiles(times)
    # The thread's CPU time: the call's own cost, without the time the
    # thread waited for a core (on a loaded machine, the wall-clock tail).
    out["cpu"] = percentiles(cpu)
    out["p99_without_alerts"] = float(np.percentile(times[~alerts] * 1e6, 99))
    out["cpu_p99_without_alerts"] = float(np.percentile(cpu[~alerts] * 1e6, 99))
    out["alert_median"] = float(np.median(times[alerts]) * 1e6) if alerts.any() else None
    out["alerts"] = int(alerts.sum())
    out["calls"] = len(times)
    return out


def old_path_latency(detector, data, calls):
    rows = data.iloc[N_TRAIN : N_TRAIN + calls]
    times = []
    for i in range(len(rows)):
        one = rows.iloc[i : i + 1]
        start = time.perf_counter()
        detector.score(one)
        times.append(time.perf_counter() - start)
    return percentiles(times)


def sklearn_latency(detector, data, pair, calls):
    """pandas features of the customer's history + the row, then scikit-learn
    detectors (fitted on the same detector inputs) on the one row."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

    X = detector._features(data.iloc[:N_TRAIN]).to_numpy()
    inputs = detector._inputs(X, list(pair))
    forest = IsolationForest(n_estimators=200, random_state=0).fit(inputs["isolation_forest"])
    sample = np.random.default_rng(0).choice(N_TRAIN, size=16_384, replace=False)
    other = pair[1]
    if other == "lof":
        neighbours = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(inputs[other][sample])
    else:
        neighbours = NearestNeighbors(n_neighbors=5).fit(inputs[other][sample])
    by_customer = {c: rows for c, rows in data.iloc[:N_TRAIN].groupby(SCHEMA.entity)}
    stream = data.iloc[N_TRAIN : N_TRAIN + calls]
    times = []
    for i in range(len(stream)):
        row = stream.iloc[i : i + 1]
        start = time.perf_counter()
        customer = row[SCHEMA.entity].iloc[0]
        history = by_customer.get(customer, row.iloc[:0])
        features = reference_features(pd.concat([history, row]), SCHEMA).iloc[-1:]
        x = features[detector.feature_names_].to_numpy(dtype=np.float64)
        maps = detector._inputs(x, list(pair))
        forest.score_samples(maps["isolation_forest"])
        if other == "lof":
            neighbours.score_samples(maps[other])
        else:
            neighbours.kneighbors(maps[other])
        times.append(time.perf_counter() - start)
        by_customer[customer] = pd.concat([history, row])
    return percentiles(times)


def batch_throughput(detector, data, size, batches):
    scorer = OnlineScorer.from_history(detector, data.iloc[:N_TRAIN])
    records = data.iloc[N_TRAIN:].to_dict("records")
    rates = []
    for b in range(batches):
        chunk = records[b * size : (b + 1) * size]
        if len(chunk) < size:
            break
        start = time.perf_counter()
        scorer.score_many(chunk)
        rates.append(size / (time.perf_counter() - start))
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=80_000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--slow-calls", type=int, default=300)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    data = make_transactions(
        n_customers=2_000, n_transactions=args.rows, fraud_rate=0.01, seed=0
    ).reset_index(drop=True)
    report = {"machine": {**machine(), "load_average": os.getloadavg()}, "pairs": {}}
    print(
        f"{'pair':8} {'path':28} {'p50 us':>10} {'p99 us':>10} {'p99.9 us':>10} {'p50 ratio':>10}"
    )
    for label, pair in PAIRS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector = FraudDetector(SCHEMA, detectors=pair, supervised=False, random_state=0)
            detector.fit(data.iloc[:N_TRAIN])
        online = online_latency(detector, data, args.calls)
        old = old_path_latency(detector, data, args.slow_calls)
        sklearn = sklearn_latency(detector, data, pair, args.slow_calls)
        rates = {
            size: batch_throughput(detector, data, size, max(3, 20_000 // size))
            for size in (100, 1_000)
        }
        report["pairs"][label] = {
            "score_one": online,
            "FraudDetector.score one row": old,
            "pandas + scikit-learn": sklearn,
            "score_many per second": rates,
        }
        for name, r in (
            ("OnlineScorer.score_one", online),
            ("FraudDetector.score(1 row)", old),
            ("pandas + scikit-learn", sklearn),
        ):
            print(
                f"{label:8} {name:28} {r[50]:10.1f} {r[99]:10.1f} {r[99.9]:10.1f} "
                f"{r[50] / online[50]:10.1f}"
            )
        c = online["cpu"]
        print(
            f"{label:8} {'score_one, thread CPU time':28} {c[50]:10.1f} {c[99]:10.1f} "
            f"{c[99.9]:10.1f} (without alerts: p99 {online['cpu_p99_without_alerts']:.1f})"
        )
        print(
            f"{label:8} score_one: p99 without alerts {online['p99_without_alerts']:.1f} us, "
            f"alerted row median {online['alert_median']:.1f} us "
            f"({online['alerts']} alerts in {online['calls']} calls)"
        )
        print(
            f"{label:8} score_many: {rates[100]:,.0f}/s at 100 per call, "
            f"{rates[1_000]:,.0f}/s at 1,000 per call"
        )
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
