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
  per file, the rows whose 20th and 21st neighbours are tied (there LOF
  depends on which tied row a search keeps), scikit-learn's LOF fit time (in
  a subprocess, given up after a minute) and fraudcore's, the largest
  relative difference of negative_outlier_factor_, and ROC-AUC; and the
  ROC-AUC of KNNDetector (k=5, PyOD's default) next to the same score
  computed with scikit-learn's NearestNeighbors (where its LOF finished).

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
        {
            name: (lambda r, cls=cls: cls(n_neighbors=N_NEIGHBORS, n_jobs=-1).fit(X))
            for name, cls in classes.items()
        },
        repeats,
    )
    novelty_models = {
        name: cls(n_neighbors=N_NEIGHBORS, novelty=True, n_jobs=-1).fit(X)
        for name, cls in classes.items()
    }
    score_s, score_runs, scores = interleaved_medians(
        {name: (lambda r, m=m: m.score_samples(new)) for name, m in novelty_models.items()},
        repeats,
    )
    memory = {
        name: child_peak_memory(__file__, ["--child-memory", name, kind, str(rows), str(features)])
        for name in classes
    }
    return {
        "data": kind,
        "rows": rows,
        "features": features,
        "fit_s": fit_s,
        "fit_runs_s": fit_runs,
        "novelty_score_s": score_s,
        "novelty_score_runs_s": score_runs,
        "peak_memory_mb": memory,
        "fit_algorithm": fitted["fraudcore"].fit_algorithm_,
        "max_rel_diff_training": max_relative_difference(
            fitted["fraudcore"].negative_outlier_factor_,
            fitted["scikit-learn"].negative_outlier_factor_,
        ),
        "max_rel_diff_novelty": max_relative_difference(
            scores["fraudcore"], scores["scikit-learn"]
        ),
    }


def child_memory_run(name, kind, rows, features):
    X = make_data(kind, int(rows), int(features))
    cls = lof_classes()[name]
    report_peak_memory(lambda: cls(n_neighbors=N_NEIGHBORS, n_jobs=-1).fit(X))


def knn_reference_scores(X, k):
    """The k-NN score as one would compute it with scikit-learn (PyOD's KNN)."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k, n_jobs=-1).fit(X).kneighbors()[0][:, -1]


SKLEARN_TIME_LIMIT_S = 60.0


def child_sklearn_lof(path, out):
    """Subprocess side: scikit-learn's LOF on one ADBench file."""
    from sklearn.neighbors import LocalOutlierFactor as SkLOF

    with np.load(path, allow_pickle=False) as data:
        X = np.ascontiguousarray(data["X"], dtype=np.float64)
    warnings.simplefilter("ignore", UserWarning)
    start = time.perf_counter()
    nof = SkLOF(n_jobs=-1).fit(X).negative_outlier_factor_
    np.save(out, nof)
    print(time.perf_counter() - start)


def sklearn_lof_within_limit(path):
    """(seconds, scores) of scikit-learn's LOF, or (None, None) past the limit."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "nof.npy"
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--child-sklearn", str(path), str(out)],
                capture_output=True,
                text=True,
                check=True,
                timeout=SKLEARN_TIME_LIMIT_S + 30,
            )
        except subprocess.TimeoutExpired:
            return None, None
        seconds = float(proc.stdout.strip().splitlines()[-1])
        return (seconds, np.load(out)) if seconds <= SKLEARN_TIME_LIMIT_S else (None, None)


def tied_rows(X, k):
    """Rows whose k-th and (k + 1)-th other rows are equally far: their LOF
    depends on which tied row a search keeps."""
    from fraudcore import _core

    index = _core.NeighborIndex()
    index.fit(X, 2.0, "auto", 30, k + 1)
    dist, _ = index.kneighbors_fitted(k + 1, os.cpu_count())
    return int(np.sum(dist[:, k - 1] == dist[:, k]))


def measure_adbench(folder):
    from sklearn.metrics import roc_auc_score

    from fraudcore import KNNDetector, LocalOutlierFactor

    files = sorted(folder.glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))
    out = {}
    print(
        f"  {'file':<20}{'rows':>8}{'cols':>5}{'tied':>7}{'sk fit s':>10}{'fc fit s':>10}"
        f"{'x sk':>7}{'max rel diff':>14}{'sk LOF':>8}{'fc LOF':>8}{'fc kNN':>8}{'sk kNN':>8}"
    )
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            X = np.ascontiguousarray(data["X"], dtype=np.float64)
            y = data["y"].astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicates, small files
            start = time.perf_counter()
            ours = LocalOutlierFactor(n_jobs=-1).fit(X).negative_outlier_factor_
            fc_s = time.perf_counter() - start
            knn = KNNDetector(n_jobs=-1).fit(X).negative_knn_distance_
        sk_s, theirs = sklearn_lof_within_limit(path)
        row = {
            "rows": X.shape[0],
            "features": X.shape[1],
            "tied_rows": tied_rows(X, N_NEIGHBORS),
            "fraudcore_fit_s": fc_s,
            "scikit-learn_fit_s": sk_s,
            "fraudcore_lof_auc": float(roc_auc_score(y, -ours)),
            "scikit-learn_lof_auc": None if theirs is None else float(roc_auc_score(y, -theirs)),
            "max_rel_diff": None if theirs is None else max_relative_difference(ours, theirs),
            "fraudcore_knn_auc": float(roc_auc_score(y, -knn)),
            # The same neighbour search: skipped where scikit-learn's LOF ran out of time.
            "scikit-learn_knn_auc": None
            if theirs is None
            else float(roc_auc_score(y, knn_reference_scores(X, 5))),
        }
        out[path.stem] = row
        fmt = lambda v, spec: "-" if v is None else format(v, spec)
        print(
            f"  {path.stem:<20}{X.shape[0]:>8}{X.shape[1]:>5}{row['tied_rows']:>7}"
            f"{fmt(sk_s, '.2f') if sk_s is not None else '>60':>10}{fc_s:>10.3f}"
            f"{fmt(None if sk_s is None else sk_s / fc_s, '.1f'):>7}"
            f"{fmt(row['max_rel_diff'], '.1e'):>14}{fmt(row['scikit-learn_lof_auc'], '.4f'):>8}"
            f"{row['fraudcore_lof_auc']:>8.4f}{row['fraudcore_knn_auc']:>8.4f}"
            f"{fmt(row['scikit-learn_knn_auc'], '.4f'):>8}",
            flush=True,
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--data", nargs="+", default=["anomalies", "gaussian"], choices=["anomalies", "gaussian"]
    )
    parser.add_argument("--adbench", type=pathlib.Path, default=DEFAULT_ADBENCH)
    parser.add_argument(
        "--json", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "neighbors.json"
    )
    parser.add_argument("--child-memory", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--child-sklearn", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        return child_memory_run(*args.child_memory)
    if args.child_sklearn:
        return child_sklearn_lof(*args.child_sklearn)

    import sklearn

    import fraudcore
    from fraudcore import _core

    print(
        f"LocalOutlierFactor, n_neighbors={N_NEIGHBORS}, {os.cpu_count()} cores, "
        f"fraudcore {fraudcore.__version__} (kernel {_core.NeighborIndex.kernel_isa()}), "
        f"scikit-learn {sklearn.__version__}"
    )
    shapes = []
    for kind in args.data:
        for rows, features in SHAPES:
            print(f"  measuring {kind} {rows:,} x {features} ...", flush=True)
            shapes.append(measure_shape(kind, rows, features, args.repeats))

    header = (
        f"{'data':<10}{'shape':>13}{'algo':>8}{'sk fit s':>10}{'fc fit s':>10}{'x sk':>7}"
        f"{'sk new s':>10}{'fc new s':>10}{'x sk':>7}{'sk MB':>8}{'fc MB':>8}{'max rel diff':>14}"
    )
    print()
    print(header)
    print("-" * len(header))
    for s in shapes:
        fit, new, mem = s["fit_s"], s["novelty_score_s"], s["peak_memory_mb"]
        print(
            f"{s['data']:<10}{s['rows']:>9,} x {s['features']:<2}{s['fit_algorithm']:>8}"
            f"{fit['scikit-learn']:>10.2f}{fit['fraudcore']:>10.3f}"
            f"{fit['scikit-learn'] / fit['fraudcore']:>7.1f}"
            f"{new['scikit-learn']:>10.3f}{new['fraudcore']:>10.3f}"
            f"{new['scikit-learn'] / new['fraudcore']:>7.1f}"
            f"{mem['scikit-learn']:>8.1f}{mem['fraudcore']:>8.1f}"
            f"{max(s['max_rel_diff_training'], s['max_rel_diff_novelty']):>14.1e}"
        )
    print(
        f"(fit = outlier-mode fit with training scores; new = score_samples of {NEW_ROWS:,} new "
        f"rows; medians of {args.repeats} interleaved runs; MB = peak RSS growth of one fit)"
    )

    adbench = None
    if args.adbench.is_dir():
        print(f"\nADBench ({args.adbench}): LOF n_neighbors=20, KNNDetector k=5")
        adbench = measure_adbench(args.adbench)
        ran = [r for r in adbench.values() if r["max_rel_diff"] is not None]
        untied = [r for r in ran if r["tied_rows"] == 0]
        tied = [r for r in ran if r["tied_rows"] > 0]
        print(
            f"  scikit-learn finished {len(ran)} of {len(adbench)} files within "
            f"{SKLEARN_TIME_LIMIT_S:.0f} s; on the {len(untied)} without tied k-th neighbours "
            f"the largest relative difference is {max(r['max_rel_diff'] for r in untied):.1e}; "
            f"the {len(tied)} with ties depend on which tied row each tool keeps "
            "(tests/python/test_adbench.py checks fraudcore's choice against a reference)"
        )
        for key in (
            "scikit-learn_lof_auc",
            "fraudcore_lof_auc",
            "scikit-learn_knn_auc",
            "fraudcore_knn_auc",
        ):
            print(f"  mean {key} over those {len(ran)} files: {np.mean([r[key] for r in ran]):.4f}")
    else:
        print(f"ADBench folder {args.adbench} not found: skipped")

    write_json(
        args.json,
        {
            "benchmark": "neighbors",
            "machine": machine(),
            "params": {"n_neighbors": N_NEIGHBORS, "new_rows": NEW_ROWS, "repeats": args.repeats},
            "shapes": shapes,
            "adbench": adbench,
        },
    )


if __name__ == "__main__":
    main()
