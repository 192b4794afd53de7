"""fraudcore.IsolationForest side by side with scikit-learn (and isotree).

Run from the repository root after ``pip install ".[bench]"``::

    python benchmarks/bench_iforest.py [--rows 400000] [--json out.json]

What is measured, every tool on all cores (n_jobs=-1 / nthreads=-1), with
the same parameters (100 trees, max_samples 256):

* fit: seconds to fit on ROWS x FEATURES float64 rows (make_anomalies),
  median of --repeats runs, the tools interleaved run by run so background
  load hits them alike, with a 0.25 s pause before each timed call so one
  tool's spinning OpenMP workers do not slow the next;
* batch: seconds for score_samples on the same rows, median likewise;
* single-row latency: median of --latency-calls calls of
  score_samples(X[i:i+1]) on consecutive rows;
* peak memory: in a fresh subprocess per tool, the growth of the resident
  set's high-water mark (ru_maxrss) from after the data is built to after
  fit + batch scoring;
* ROC-AUC on every ADBench file in --adbench (default ../shared/data/adbench;
  skipped when absent): mean over --seeds seeds, fit and scored on all rows.

Ratios are scikit-learn's time over the tool's: above 1 means faster.
"""

import argparse
import os
import pathlib
import statistics
import time

import numpy as np
from _common import child_peak_memory, machine, report_peak_memory, timed, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_ADBENCH = ROOT.parent / "shared" / "data" / "adbench"
N_ESTIMATORS = 100
MAX_SAMPLES = 256


def make_tools():
    """name -> (fit(X, seed) -> model, score(model, X) -> higher-is-normal scores)."""
    from sklearn.ensemble import IsolationForest as SkIsolationForest

    from fraudcore import IsolationForest

    params = dict(n_estimators=N_ESTIMATORS, max_samples=MAX_SAMPLES, n_jobs=-1)
    tools = {
        "fraudcore": (
            lambda X, seed: IsolationForest(random_state=seed, **params).fit(X),
            lambda m, X: m.score_samples(X),
        ),
        "scikit-learn": (
            lambda X, seed: SkIsolationForest(random_state=seed, **params).fit(X),
            lambda m, X: m.score_samples(X),
        ),
    }
    try:
        import isotree
    except ImportError:
        return tools
    tools["isotree"] = (
        lambda X, seed: isotree.IsolationForest(
            ntrees=N_ESTIMATORS, sample_size=MAX_SAMPLES, ndim=1, nthreads=-1,
            random_seed=seed, missing_action="fail",
        ).fit(X),
        lambda m, X: -m.predict(X),
    )
    return tools


def measure_speed(tools, X, repeats, latency_calls):
    fit_times = {name: [] for name in tools}
    score_times = {name: [] for name in tools}
    models = {}
    for r in range(repeats):
        for name, (fit, score) in tools.items():
            t, models[name] = timed(lambda: fit(X, r))
            fit_times[name].append(t)
            t, _ = timed(lambda: score(models[name], X))
            score_times[name].append(t)
    results = {}
    for name, (fit, score) in tools.items():
        model = models[name]
        for i in range(20):  # warm up
            score(model, X[i:i + 1])
        latencies = []
        for i in range(latency_calls):
            row = X[i:i + 1]
            start = time.perf_counter()
            score(model, row)
            latencies.append(time.perf_counter() - start)
        results[name] = {
            "fit_s": statistics.median(fit_times[name]),
            "score_s": statistics.median(score_times[name]),
            "single_row_us": statistics.median(latencies) * 1e6,
            "fit_runs_s": fit_times[name],
            "score_runs_s": score_times[name],
        }
    return results


def child_memory_run(name, rows, features):
    """Subprocess side: peak memory of fit + batch scoring."""
    from fraudcore.datasets import make_anomalies

    X, _ = make_anomalies(rows, features, random_state=0)
    fit, score = make_tools()[name]
    report_peak_memory(lambda: score(fit(X, 0), X))


def measure_memory(tools, rows, features):
    return {
        name: child_peak_memory(__file__, ["--child-memory", name, "--rows", str(rows),
                                           "--features", str(features)])
        for name in tools
    }


def measure_adbench(tools, folder, seeds):
    import warnings

    from sklearn.metrics import roc_auc_score

    # Files smaller than max_samples make every tool warn that it clips it.
    warnings.simplefilter("ignore", UserWarning)

    files = sorted(folder.glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))
    per_file = {}
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            X = np.ascontiguousarray(data["X"], dtype=np.float64)
            y = data["y"].astype(int)
        row = {}
        for name, (fit, score) in tools.items():
            aucs = [roc_auc_score(y, -score(fit(X, s), X)) for s in range(seeds)]
            row[name] = float(np.mean(aucs))
        per_file[path.stem] = row
        print(f"  {path.stem:<22}" + "".join(f"{row[n]:>14.4f}" for n in tools), flush=True)
    means = {name: float(np.mean([r[name] for r in per_file.values()])) for name in tools}
    return {"files": per_file, "mean": means}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--features", type=int, default=18)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--latency-calls", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--adbench", type=pathlib.Path, default=DEFAULT_ADBENCH)
    parser.add_argument("--json", type=pathlib.Path,
                        default=ROOT / "benchmarks" / "results" / "iforest.json")
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        return child_memory_run(args.child_memory, args.rows, args.features)

    import sklearn

    import fraudcore
    from fraudcore.datasets import make_anomalies

    tools = make_tools()
    X, _ = make_anomalies(args.rows, args.features, random_state=0)
    print(f"IsolationForest, {N_ESTIMATORS} trees, max_samples {MAX_SAMPLES}, "
          f"{args.rows:,} x {args.features} float64, {os.cpu_count()} cores, "
          f"fraudcore {fraudcore.__version__}, scikit-learn {sklearn.__version__}")
    speed = measure_speed(tools, X, args.repeats, args.latency_calls)
    memory = measure_memory(tools, args.rows, args.features)

    adbench = None
    if args.adbench.is_dir():
        print(f"ROC-AUC on ADBench ({args.adbench}), mean of {args.seeds} seeds:")
        print(f"  {'file':<22}" + "".join(f"{n:>14}" for n in tools))
        adbench = measure_adbench(tools, args.adbench, args.seeds)
    else:
        print(f"ADBench folder {args.adbench} not found: ROC-AUC comparison skipped")

    sk = speed["scikit-learn"]
    header = (f"{'tool':<14}{'fit s':>9}{'x sk':>7}{'score s':>10}{'x sk':>7}"
              f"{'rows/s':>13}{'1-row us':>10}{'x sk':>8}{'peak MB':>9}{'AUC':>8}")
    print()
    print(header)
    print("-" * len(header))
    for name, r in speed.items():
        auc = adbench["mean"][name] if adbench else float("nan")
        print(f"{name:<14}{r['fit_s']:>9.3f}{sk['fit_s'] / r['fit_s']:>7.1f}"
              f"{r['score_s']:>10.3f}{sk['score_s'] / r['score_s']:>7.1f}"
              f"{args.rows / r['score_s']:>13,.0f}{r['single_row_us']:>10.1f}"
              f"{sk['single_row_us'] / r['single_row_us']:>8.1f}{memory[name]:>9.1f}{auc:>8.4f}")
    print(f"(medians: fit and batch of {args.repeats} interleaved runs, single row of "
          f"{args.latency_calls} calls; AUC = mean ROC-AUC over ADBench files and seeds)")

    report = {
        "benchmark": "iforest",
        "machine": machine(),
        "params": {"rows": args.rows, "features": args.features, "n_estimators": N_ESTIMATORS,
                   "max_samples": MAX_SAMPLES, "repeats": args.repeats,
                   "latency_calls": args.latency_calls, "seeds": args.seeds},
        "speed": speed,
        "peak_memory_mb": memory,
        "ratios_vs_scikit_learn": {
            name: {"fit": sk["fit_s"] / r["fit_s"], "score": sk["score_s"] / r["score_s"],
                   "single_row": sk["single_row_us"] / r["single_row_us"]}
            for name, r in speed.items()
        },
        "adbench_roc_auc": adbench,
    }
    write_json(args.json, report)


if __name__ == "__main__":
    main()
