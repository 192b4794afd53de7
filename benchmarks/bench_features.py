"""fraudcore's feature kernel side by side with the same features in plain pandas.

Run from the repository root after ``pip install ".[bench]"``::

    python benchmarks/bench_features.py [--repeats 3] [--json out.json]

What is measured (fraudcore on all cores, n_jobs=-1; pandas as it runs):

* batch features of make_transactions data (--rows, default 1,000,000
  transactions of --customers, default 20,000 customers, 1% fraud):
  ``fraudcore.build_features`` against ``reference_features``, the plain
  pandas implementation (groupby + cumulative sums + expanding + time-based
  rolling windows) that is also the tests' oracle; median of --repeats
  runs, the tools interleaved run by run; and the largest difference
  between their values, relative to max(1, |value|);
* streaming: ``FeatureState.update`` on one transaction (a dict) from
  Python, after the state has seen the first 90% of the rows; median over
  blocks of 2,000 calls on the remaining rows;
* the whole Online Retail file (../shared/data/online_retail.csv.gz,
  skipped when absent): ``load_online_retail`` against plain pandas doing
  the same cleaning (read_csv, dropna on CustomerID, drop_duplicates,
  to_datetime), and the feature step on the 401,604 clean rows, fraudcore
  against the pandas implementation.

Ratios are the pandas time over fraudcore's: above 1 means fraudcore is
faster.
"""

import argparse
import pathlib
import statistics
import time

import numpy as np
import pandas as pd
from _common import interleaved_medians, machine, write_json

import fraudcore
from fraudcore import FeatureState, Schema, build_features
from fraudcore._reference_features import reference_features
from fraudcore.datasets import load_online_retail, make_transactions

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_RETAIL = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"


def largest_difference(features, expected):
    a, b = features.to_numpy(), expected[features.columns].to_numpy()
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


def compare_features(data, schema, repeats):
    medians, times, results = interleaved_medians(
        {
            "fraudcore": lambda r: build_features(data, schema, n_jobs=-1),
            "pandas": lambda r: reference_features(data, schema),
        },
        repeats,
    )
    return medians, times, largest_difference(results["fraudcore"], results["pandas"])


def streaming_us(data, schema, block=2_000):
    split = int(len(data) * 0.9)
    state = FeatureState(schema)
    state.update(data.iloc[:split])  # history, as a restarted service would have it
    records = data.iloc[split:].to_dict("records")
    per_call = []
    for start in range(0, len(records) - block + 1, block):
        chunk = records[start : start + block]
        t = time.perf_counter()
        for transaction in chunk:
            state.update(transaction)
        per_call.append((time.perf_counter() - t) / block * 1e6)
    return statistics.median(per_call), per_call


def plain_pandas_retail(path):
    frame = pd.read_csv(path)
    frame = frame.dropna(subset=["CustomerID"]).drop_duplicates()
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    return frame


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--retail", type=pathlib.Path, default=DEFAULT_RETAIL)
    parser.add_argument(
        "--json", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "features.json"
    )
    args = parser.parse_args()

    print(f"fraudcore {fraudcore.__version__}, pandas {pd.__version__}, {machine()['cpus']} cores")
    data = make_transactions(args.customers, args.rows, 0.01, seed=0)
    schema = Schema.transactions()
    medians, times, difference = compare_features(data, schema, args.repeats)
    stream_median, stream_blocks = streaming_us(data, schema)
    rows = [
        (
            "make_transactions",
            f"{args.rows:,} x {args.customers:,} customers",
            medians["pandas"],
            medians["fraudcore"],
            difference,
        )
    ]
    report = {
        "benchmark": "features",
        "machine": machine(),
        "params": {"rows": args.rows, "customers": args.customers, "repeats": args.repeats},
        "transactions": {"seconds": times, "medians": medians, "max_rel_difference": difference},
        "streaming_us_per_update": {"median": stream_median, "blocks": stream_blocks},
    }

    if args.retail.is_file():
        load = interleaved_medians(
            {
                "fraudcore": lambda r: load_online_retail(args.retail),
                "pandas": lambda r: plain_pandas_retail(args.retail),
            },
            args.repeats,
        )
        retail, cleaning = load[2]["fraudcore"]
        r_medians, r_times, r_difference = compare_features(
            retail, Schema.online_retail(), args.repeats
        )
        rows.append(
            (
                "Online Retail",
                f"{len(retail):,} rows, {retail['CustomerID'].nunique():,} customers",
                r_medians["pandas"],
                r_medians["fraudcore"],
                r_difference,
            )
        )
        report["online_retail"] = {
            "rows": len(retail),
            "cleaning": cleaning.to_dict(),
            "load_seconds": load[1],
            "load_medians": load[0],
            "features": {
                "seconds": r_times,
                "medians": r_medians,
                "max_rel_difference": r_difference,
            },
        }
    else:
        load = None
        print(f"{args.retail} not found: the Online Retail rows are skipped")

    print(
        f"\n{'features of':<20}{'data':<36}{'pandas s':>10}{'fraudcore s':>13}{'x':>7}{'max diff':>10}"
    )
    for name, shape, reference, ours, diff in rows:
        print(
            f"{name:<20}{shape:<36}{reference:>10.3f}{ours:>13.3f}{reference / ours:>7.1f}{diff:>10.1e}"
        )
    if load is not None:
        fc, pd_s = load[0]["fraudcore"], load[0]["pandas"]
        print(
            f"{'load + clean':<20}{'online_retail.csv.gz':<36}{pd_s:>10.3f}{fc:>13.3f}{pd_s / fc:>7.1f}"
        )
    print(
        f"\nFeatureState.update, one transaction from Python: {stream_median:.1f} us "
        f"(median of {len(stream_blocks)} blocks of 2,000 calls)"
    )
    print(f"(medians of {args.repeats} interleaved runs; max diff is relative to max(1, |value|))")
    write_json(args.json, report)


if __name__ == "__main__":
    main()
