"""fraudcore's LocalOutlierFactor and KNNDetector side by side with scikit-learn.

Run from the repository root after ``pip install ".[bench]"``::

    python benchmarks/bench_neighbors.py [--repeats 3] [--json out.json]

What is measured, every tool on all cores (n_jobs=-1), n_neighbors=20, for
100,000 x 18 and 500,000 x 3 float64 rows of two kinds of data (the
package's make_anomalies: clustered inliers with anomalies, the shape of
fraud features; and i.i.d. Gaussian noise, where no index can prune much):

* fit: seconds for LocalOutlierFactor().fit(X) in outlier mode (neighbours
  of every row among the others, and its LOF), median of --repeats runs,
  the tools interleaved run by run with a pause before each (_common.py);
* novelty: seconds for score_samples on 10,000 new rows of a model fitted
  with novelty=True, median likewise;
* peak memory: growth of the resident high-water mark during one outlier
  fit, in a fresh subprocess per tool;
* agreement: the largest relative difference between the tools' scores;
* ADBench (--adbench, default ../shared/data/adbench; skipped when absent):
  per file, scikit-learn's and fraudcore's LOF fit time, the largest
  relative difference of negative_outlier_factor_, and ROC-AUC; and the
  ROC-AUC of KNNDetector (k=5, PyOD's default) next to the same score
  computed with scikit-learn's NearestNeighbors.

Ratios are scikit-learn's time (or memory) over fraudcore's: above 1 means
fraudcore is faster (or smaller).
"""

import argparse
import os
import pathlib
import time
import warnings

import numpy as np
from _common import child_peak_memory, interleaved_medians, machine, report_peak_memory, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_ADBENCH = ROOT.parent / "shared" / "data" / "adbench"
SHAPES = [(100_000, 18), (500_000, 3)]
N_NEIGHBORS = 20
NEW_ROWS = 10_000


def make_data(kind, rows, features, seed=0):
    from fraudcore.datasets import make_anomalies

    if kind == "anomalies":
        X, _ = make_anomalies(rows, features, random_state=seed)
        return np.ascontiguousarray(X, dtype=np.float64)
    return np.random.default_rng(seed).normal(size=(rows, features))


def lof_classes():
    from sklearn.neighbors import LocalOutlierFactor as SkLOF

    from fraudcore import LocalOutlierFactor

    return {"fraudcore": LocalOutlierFactor, "scikit-learn": SkLOF}


def max_relative_difference(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def measure_shape(kind, rows, features, repeats):
    X = make_data(kind, rows, features)
    new = make_data(kind, NEW_ROWS, features, seed=1)
    classes = lof_classes()
    fit_s, fit_runs, fitted = interleaved_medians(
        {name: (lambda r, cls=cls: cls(n_neighbors=N_NEIGHBORS, n_jobs=-1).fit(X))
         for name, cls in classes.items()},
        repeats,
    )
    novelty_models = {name: cls(n_neighbors=N_NEIGHBORS, novelty=True, n_jobs=-1).fit(X)
                      for name, cls in classes.items()}
    score_s, score_runs, scores = interleaved_medians(
        {name: (lambda r, m=m: m.score_samples(new)) for name, m in novelty_models.items()},
        repeats,
    )
    memory = {name: child_peak_memory(__file__, ["--child-memory", name, kind, str(rows),
                                                 str(features)])
              for name in classes}
    return {
        "data": kind, "rows": rows, "features": features,
        "fit_s": fit_s, "fit_runs_s": fit_runs,
        "novelty_score_s": score_s, "novelty_score_runs_s": score_runs,
        "peak_memory_mb": memory,
        "fit_algorithm": fitted["fraudcore"].fit_algorithm_,
        "max_rel_diff_training": max_relative_difference(
            fitted["fraudcore"].negative_outlier_factor_,
            fitted["scikit-learn"].negative_outlier_factor_),
        "max_rel_diff_novelty": max_relative_difference(scores["fraudcore"],
                                                        scores["scikit-learn"]),
    }


def child_memory_run(name, kind, rows, features):
    X = make_data(kind, int(rows), int(features))
    cls = lof_classes()[name]
    report_peak_memory(lambda: cls(n_neighbors=N_NEIGHBORS, n_jobs=-1).fit(X))


def knn_reference_scores(X, k):
    """The k-NN score as one would compute it with scikit-learn (PyOD's KNN)."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k, n_jobs=-1).fit(X).kneighbors()[0][:, -1]


def measure_adbench(folder):
    from sklearn.metrics import roc_auc_score

    from fraudcore import KNNDetector

    classes = lof_classes()
    files = sorted(folder.glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))
    out = {}
    print(f"  {'file':<20}{'rows':>8}{'cols':>5}{'sk fit s':>10}{'fc fit s':>10}"
          f"{'x sk':>7}{'max rel diff':>14}{'LOF AUC':>9}{'kNN AUC':>9}{'sk kNN':>8}")
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            X = np.ascontiguousarray(data["X"], dtype=np.float64)
            y = data["y"].astype(int)
        row = {"rows": X.shape[0], "features": X.shape[1]}
        nof = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicates, small files
            for name, cls in classes.items():
                start = time.perf_counter()
                nof[name] = cls(n_jobs=-1).fit(X).negative_outlier_factor_
                row[f"{name}_fit_s"] = time.perf_counter() - start
                row[f"{name}_lof_auc"] = float(roc_auc_score(y, -nof[name]))
            knn = KNNDetector(n_jobs=-1).fit(X).negative_knn_distance_
        row["max_rel_diff"] = max_relative_difference(nof["fraudcore"], nof["scikit-learn"])
        row["fraudcore_knn_auc"] = float(roc_auc_score(y, -knn))
        row["scikit-learn_knn_auc"] = float(roc_auc_score(y, knn_reference_scores(X, 5)))
        row["scikit-learn_within_a_minute"] = row["scikit-learn_fit_s"] <= 60.0
        out[path.stem] = row
        print(f"  {path.stem:<20}{X.shape[0]:>8}{X.shape[1]:>5}{row['scikit-learn_fit_s']:>10.2f}"
              f"{row['fraudcore_fit_s']:>10.3f}"
              f"{row['scikit-learn_fit_s'] / row['fraudcore_fit_s']:>7.1f}"
              f"{row['max_rel_diff']:>14.1e}{row['fraudcore_lof_auc']:>9.4f}"
              f"{row['fraudcore_knn_auc']:>9.4f}{row['scikit-learn_knn_auc']:>8.4f}", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", nargs="+", default=["anomalies", "gaussian"],
                        choices=["anomalies", "gaussian"])
    parser.add_argument("--adbench", type=pathlib.Path, default=DEFAULT_ADBENCH)
    parser.add_argument("--json", type=pathlib.Path,
                        default=ROOT / "benchmarks" / "results" / "neighbors.json")
    parser.add_argument("--child-memory", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        return child_memory_run(*args.child_memory)

    import sklearn

    import fraudcore
    from fraudcore import _core

    print(f"LocalOutlierFactor, n_neighbors={N_NEIGHBORS}, {os.cpu_count()} cores, "
          f"fraudcore {fraudcore.__version__} (kernel {_core.NeighborIndex.kernel_isa()}), "
          f"scikit-learn {sklearn.__version__}")
    shapes = []
    for kind in args.data:
        for rows, features in SHAPES:
            print(f"  measuring {kind} {rows:,} x {features} ...", flush=True)
            shapes.append(measure_shape(kind, rows, features, args.repeats))

    header = (f"{'data':<10}{'shape':>13}{'algo':>8}{'sk fit s':>10}{'fc fit s':>10}{'x sk':>7}"
              f"{'sk new s':>10}{'fc new s':>10}{'x sk':>7}{'sk MB':>8}{'fc MB':>8}{'max rel diff':>14}")
    print()
    print(header)
    print("-" * len(header))
    for s in shapes:
        fit, new, mem = s["fit_s"], s["novelty_score_s"], s["peak_memory_mb"]
        print(f"{s['data']:<10}{s['rows']:>9,} x {s['features']:<2}{s['fit_algorithm']:>8}"
              f"{fit['scikit-learn']:>10.2f}{fit['fraudcore']:>10.3f}"
              f"{fit['scikit-learn'] / fit['fraudcore']:>7.1f}"
              f"{new['scikit-learn']:>10.3f}{new['fraudcore']:>10.3f}"
              f"{new['scikit-learn'] / new['fraudcore']:>7.1f}"
              f"{mem['scikit-learn']:>8.1f}{mem['fraudcore']:>8.1f}"
              f"{max(s['max_rel_diff_training'], s['max_rel_diff_novelty']):>14.1e}")
    print(f"(fit = outlier-mode fit with training scores; new = score_samples of {NEW_ROWS:,} new "
          f"rows; medians of {args.repeats} interleaved runs; MB = peak RSS growth of one fit)")

    adbench = None
    if args.adbench.is_dir():
        print(f"\nADBench ({args.adbench}): LOF n_neighbors=20, KNNDetector k=5")
        adbench = measure_adbench(args.adbench)
        within = [r for r in adbench.values() if r["scikit-learn_within_a_minute"]]
        print(f"  largest relative difference over the {len(within)} files scikit-learn fits "
              f"within a minute: {max(r['max_rel_diff'] for r in within):.1e}")
        for key in ("scikit-learn_lof_auc", "fraudcore_lof_auc", "fraudcore_knn_auc",
                    "scikit-learn_knn_auc"):
            print(f"  mean {key}: {np.mean([r[key] for r in adbench.values()]):.4f}")
    else:
        print(f"ADBench folder {args.adbench} not found: skipped")

    write_json(args.json, {
        "benchmark": "neighbors",
        "machine": machine(),
        "params": {"n_neighbors": N_NEIGHBORS, "new_rows": NEW_ROWS, "repeats": args.repeats},
        "shapes": shapes,
        "adbench": adbench,
    })


if __name__ == "__main__":
    main()
