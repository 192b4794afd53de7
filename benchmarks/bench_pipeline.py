"""The whole fraud job with fraudcore against the same job done the usual way.

Run from the repository root after ``pip install ".[bench]"``::

    python benchmarks/bench_pipeline.py [--json out.json]

The job: load and clean the data, build the point-in-time features, fit an
isolation forest, a local outlier factor (novelty mode) and an autoencoder
(18... input-64-32-64-input, 10 epochs, batch 32, Adam 1e-3), and score
every transaction.

* fraudcore: ``load_online_retail`` + ``FraudDetector(detectors=
  ("isolation_forest", "lof", "autoencoder")).fit(data).score(data)``, at
  its defaults: LOF indexes a 16,384-row sample of the training rows
  (``neighbor_samples``) and the scores are combined as normal quantiles
  of their training ranks; and once more with ``neighbor_samples=None``
  (LOF on every row, as the usual way), so the table shows how much of the
  speed comes from the sample;
* the usual way: pandas (read_csv, dropna, drop_duplicates, to_datetime),
  the same features in plain pandas (``fraudcore._reference_features``),
  scikit-learn's StandardScaler, IsolationForest (200 trees) and
  LocalOutlierFactor (20 neighbours, novelty=True), and a PyTorch
  autoencoder with the same layers, epochs, batch size and optimiser; every
  tool on all cores.

On two data sets: the whole Online Retail file (../shared/data, skipped when
absent; no labels) and make_transactions data of the same size with 1%
fraud, whose labels give each way's ROC-AUC and detection rate at a 5%
false-positive rate (the three detectors' scores rank-averaged with equal
weights in the usual way; fraudcore's risk_score). One run each: the usual
way takes minutes.

Then, on the make_transactions data, fitted on the first 70% and judged on
the last 30% for three seeds: the default FraudDetector (0.6 x
IsolationForest + 0.4 x LOF) without labels, its ROC-AUC and detection at
5% FPR; and FraudDetector(target_recall=0.9) fitted with labels (it holds
out 30% of them for calibration), the recall its threshold reaches.
"""

import argparse
import os
import pathlib
import time

import numpy as np
from _common import machine, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_RETAIL = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
DETECTORS = ("isolation_forest", "lof", "autoencoder")
EPOCHS, BATCH = 10, 32


def timed_steps(steps):
    """Run (name, fn) steps in order; fn receives the previous result. -> (times, last result)."""
    times, result = {}, None
    for name, fn in steps:
        start = time.perf_counter()
        result = fn(result)
        times[name] = time.perf_counter() - start
    return times, result


def fraudcore_job(load, schema, **params):
    from fraudcore import FraudDetector

    def fit(data):
        return data, FraudDetector(
            schema, detectors=DETECTORS, random_state=0, n_jobs=-1, **params
        ).fit(data)

    def score(fitted):
        data, detector = fitted
        return detector.score(data)["risk_score"].to_numpy()

    return timed_steps([("load", lambda _: load()), ("fit", fit), ("score", score)])


def torch_autoencoder_scores(X, seed=0):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count())
    d = X.shape[1]
    net = torch.nn.Sequential(
        torch.nn.Linear(d, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, d),
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt = torch.from_numpy(X.astype(np.float32))
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(Xt)).split(BATCH):
            optimiser.zero_grad()
            loss = ((net(Xt[batch]) - Xt[batch]) ** 2).mean()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        return ((net(Xt) - Xt) ** 2).mean(dim=1).numpy()


def usual_job(load, schema):
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.preprocessing import StandardScaler

    from fraudcore._reference_features import reference_features

    def features(data):
        return StandardScaler().fit_transform(reference_features(data, schema).to_numpy())

    def detect(X):
        scores = {
            "isolation_forest": -IsolationForest(n_estimators=200, random_state=0, n_jobs=-1)
            .fit(X)
            .score_samples(X),
            "lof": -LocalOutlierFactor(n_neighbors=20, novelty=True, n_jobs=-1)
            .fit(X)
            .score_samples(X),
            "autoencoder": torch_autoencoder_scores(X),
        }
        ranks = [np.argsort(np.argsort(s)) / len(s) for s in scores.values()]
        return np.mean(ranks, axis=0)

    return timed_steps(
        [("load", lambda _: load()), ("features", features), ("fit + score", detect)]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--retail", type=pathlib.Path, default=DEFAULT_RETAIL)
    parser.add_argument(
        "--rows",
        type=int,
        default=401_604,
        help="make_transactions rows (default: Online Retail's)",
    )
    parser.add_argument(
        "--json", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "pipeline.json"
    )
    args = parser.parse_args()

    import pandas as pd
    from bench_features import plain_pandas_retail

    import fraudcore
    from fraudcore import Schema, metrics
    from fraudcore.datasets import load_online_retail, make_transactions

    print(
        f"fraudcore {fraudcore.__version__}, {machine()['cpus']} cores; detectors {', '.join(DETECTORS)}, "
        f"autoencoder {EPOCHS} epochs, batch {BATCH}"
    )
    report = {"benchmark": "pipeline", "machine": machine(), "runs": {}}
    jobs = []
    if args.retail.is_file():
        schema = Schema.online_retail()
        jobs.append(
            (
                "Online Retail",
                None,
                schema,
                lambda: load_online_retail(args.retail)[0],
                lambda: plain_pandas_retail(args.retail),
            )
        )
    else:
        print(f"{args.retail} not found: the Online Retail run is skipped")
    data = make_transactions(
        n_customers=max(1, args.rows // 50), n_transactions=args.rows, fraud_rate=0.01, seed=0
    )
    path = ROOT / "benchmarks" / "results" / "pipeline_transactions.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(path, index=False)
    read = lambda: pd.read_csv(path, parse_dates=["timestamp", "signup_time"])
    jobs.append(
        ("make_transactions", data["is_fraud"].to_numpy(), Schema.transactions(), read, read)
    )

    print(
        f"\n{'data':<20}{'way':<22}{'load s':>8}{'features s':>12}{'fit+score s':>13}{'total s':>9}"
        f"{'x':>7}{'ROC-AUC':>9}{'det@5%':>8}"
    )
    for name, labels, schema, fc_load, usual_load in jobs:
        ways = {
            "fraudcore": fraudcore_job(fc_load, schema),
            "fraudcore_every_row": fraudcore_job(fc_load, schema, neighbor_samples=None),
            "usual": usual_job(usual_load, schema),
        }
        usual_total = sum(ways["usual"][0].values())
        run = {}
        for way, (times, scores) in ways.items():
            total = sum(times.values())
            run[f"{way}_s"] = times
            if way != "usual":
                run[f"{way}_speedup"] = usual_total / total
            quality = ""
            if labels is not None:
                auc = metrics.roc_auc(labels, scores)
                detected = metrics.detection_rate_at_fpr(labels, scores, 0.05)[0]
                run[f"{way}_roc_auc"], run[f"{way}_detection_at_5pct_fpr"] = auc, detected
                quality = f"{auc:>9.4f}{detected:>8.3f}"
            features_s = times.get("features", 0.0)
            work_s = times.get("fit + score", times.get("fit", 0.0) + times.get("score", 0.0))
            print(
                f"{name:<20}{way.replace('_', ' '):<22}{times['load']:>8.1f}{features_s:>12.1f}{work_s:>13.1f}"
                f"{total:>9.1f}{usual_total / total:>7.1f}{quality}",
                flush=True,
            )
        report["runs"][name] = run
    print("(fraudcore's features are inside its fit and score; one run each)")
    report["held_out"] = held_out(data)
    write_json(args.json, report)


def held_out(data, target=0.9, seeds=(0, 1, 2)):
    """Fit on the first 70% of `data`, judge on the last 30%, per seed: the default
    FraudDetector without labels (ROC-AUC, detection at 5% FPR) and one with
    labels calibrated for `target` recall (the recall it reaches)."""
    from fraudcore import FraudDetector, Schema, metrics

    y, cut = data["is_fraud"].to_numpy(), int(0.7 * len(data))
    print(
        f"\nfitted on the first {cut:,} rows, judged on the last {len(data) - cut:,}: the default "
        f"FraudDetector without labels, and with labels and target_recall={target}"
    )
    print(
        f"{'seed':<6}{'ROC-AUC':>9}{'det@5%':>8}{'threshold':>11}{'validation recall':>19}"
        f"{'held-out recall':>17}{'precision':>11}"
    )
    rows = []
    for seed in seeds:
        default = FraudDetector(Schema.transactions(), random_state=seed).fit(data.iloc[:cut])
        risk = default.score(data, reasons=None)["risk_score"].to_numpy()[cut:]
        row = {
            "seed": seed,
            "default_roc_auc": metrics.roc_auc(y[cut:], risk),
            "default_detection_at_5pct_fpr": metrics.detection_rate_at_fpr(y[cut:], risk, 0.05)[0],
        }
        calibrated = FraudDetector(
            Schema.transactions(), target_recall=target, random_state=seed
        ).fit(data.iloc[:cut], y[:cut])
        risk = calibrated.score(data, reasons=None)["risk_score"].to_numpy()[cut:]
        figures = metrics.evaluate(y[cut:], risk, calibrated.threshold_)
        row.update(
            threshold=calibrated.threshold_,
            validation_recall=calibrated.training_metrics_["recall"],
            held_out_recall=figures["recall"],
            held_out_precision=figures["precision"],
        )
        rows.append(row)
        print(
            f"{seed:<6}{row['default_roc_auc']:>9.4f}{row['default_detection_at_5pct_fpr']:>8.3f}"
            f"{row['threshold']:>11.4f}{row['validation_recall']:>19.3f}{row['held_out_recall']:>17.3f}"
            f"{row['held_out_precision']:>11.3f}",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
