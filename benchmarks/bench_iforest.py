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
  skipped when absent): mean over --seeds seeds, fit and scored on all rows;
* wide data, where a tree's splits read few of its columns: fit seconds
  (median of --repeats interleaved runs) and the fit's peak memory (as above,
  fit only) on InternetAds (1,966 x 1,555, from --adbench; skipped when
  absent) and on --wide-rows x --wide-features float64 rows (make_anomalies).

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

    params = {"n_estimators": N_ESTIMATORS, "max_samples": MAX_SAMPLES, "n_jobs": -1}
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
            ntrees=N_ESTIMATORS,
            sample_size=MAX_SAMPLES,
            ndim=1,
            nthreads=-1,
            random_seed=seed,
            missing_action="fail",
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
            t, models[name] = timed(lambda fit=fit, r=r: fit(X, r))
            fit_times[name].append(t)
            t, _ = timed(lambda score=score, name=name: score(models[name], X))
            score_times[name].append(t)
    results = {}
    for name, (fit, score) in tools.items():
        model = models[name]
        for i in range(20):  # warm up
            score(model, X[i : i + 1])
        latencies = []
        for i in range(latency_calls):
            row = X[i : i + 1]
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
        name: child_peak_memory(
            __file__, ["--child-memory", name, "--rows", str(rows), "--features", str(features)]
        )
        for name in tools
    }


def wide_data(case, adbench, rows, features):
    """X of a wide case: "InternetAds" (from the ADBench folder) or "synthetic"."""
    if case == "InternetAds":
        with np.load(adbench / "17_InternetAds.npz", allow_pickle=False) as data:
            return np.ascontiguousarray(data["X"], dtype=np.float64)
    from fraudcore.datasets import make_anomalies

    return make_anomalies(rows, features, random_state=0)[0]


def child_wide_memory_run(name, case, adbench, rows, features):
    """Subprocess side: peak memory of one fit on a wide case."""
    X = wide_data(case, adbench, rows, features)
    fit, _ = make_tools()[name]
    report_peak_memory(lambda: fit(X, 0))


def measure_wide(tools, adbench, rows, features, repeats):
    cases = {}
    if (adbench / "17_InternetAds.npz").is_file():
        cases["InternetAds"] = wide_data("InternetAds", adbench, rows, features)
    else:
        print(f"{adbench / '17_InternetAds.npz'} not found: InternetAds wide case skipped")
    cases["synthetic"] = wide_data("synthetic", adbench, rows, features)
    results = {}
    for case, X in cases.items():
        fit_times = {name: [] for name in tools}
        for r in range(repeats):
            for name, (fit, _) in tools.items():
                fit_times[name].append(timed(lambda fit=fit, X=X, r=r: fit(X, r))[0])
        results[case] = {
            "shape": list(X.shape),
            "fit_s": {name: statistics.median(ts) for name, ts in fit_times.items()},
            "fit_runs_s": fit_times,
            "fit_peak_mb": {
                name: child_peak_memory(
                    __file__,
                    [
                        "--child-wide",
                        name,
                        "--wide-case",
                        case,
                        "--adbench",
                        str(adbench),
                        "--wide-rows",
                        str(rows),
                        "--wide-features",
                        str(features),
                    ],
                )
                for name in tools
            },
        }
    return results


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
    parser.add_argument("--wide-rows", type=int, default=20_000)
    parser.add_argument("--wide-features", type=int, default=1_000)
    parser.add_argument(
        "--json", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "iforest.json"
    )
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    parser.add_argument("--child-wide", help=argparse.SUPPRESS)
    parser.add_argument("--wide-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        return child_memory_run(args.child_memory, args.rows, args.features)
    if args.child_wide:
        return child_wide_memory_run(
            args.child_wide, args.wide_case, args.adbench, args.wide_rows, args.wide_features
        )

    import sklearn

    import fraudcore
    from fraudcore.datasets import make_anomalies

    tools = make_tools()
    X, _ = make_anomalies(args.rows, args.features, random_state=0)
    print(
        f"IsolationForest, {N_ESTIMATORS} trees, max_samples {MAX_SAMPLES}, "
        f"{args.rows:,} x {args.features} float64, {os.cpu_count()} cores, "
        f"fraudcore {fraudcore.__version__}, scikit-learn {sklearn.__version__}"
    )
    speed = measure_speed(tools, X, args.repeats, args.latency_calls)
    memory = measure_memory(tools, args.rows, args.features)

    wide = measure_wide(tools, args.adbench, args.wide_rows, args.wide_features, args.repeats)

    adbench = None
    if args.adbench.is_dir():
        print(f"ROC-AUC on ADBench ({args.adbench}), mean of {args.seeds} seeds:")
        print(f"  {'file':<22}" + "".join(f"{n:>14}" for n in tools))
        adbench = measure_adbench(tools, args.adbench, args.seeds)
    else:
        print(f"ADBench folder {args.adbench} not found: ROC-AUC comparison skipped")

    sk = speed["scikit-learn"]
    header = (
        f"{'tool':<14}{'fit s':>9}{'x sk':>7}{'score s':>10}{'x sk':>7}"
        f"{'rows/s':>13}{'1-row us':>10}{'x sk':>8}{'peak MB':>9}{'AUC':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, r in speed.items():
        auc = adbench["mean"][name] if adbench else float("nan")
        print(
            f"{name:<14}{r['fit_s']:>9.3f}{sk['fit_s'] / r['fit_s']:>7.1f}"
            f"{r['score_s']:>10.3f}{sk['score_s'] / r['score_s']:>7.1f}"
            f"{args.rows / r['score_s']:>13,.0f}{r['single_row_us']:>10.1f}"
            f"{sk['single_row_us'] / r['single_row_us']:>8.1f}{memory[name]:>9.1f}{auc:>8.4f}"
        )
    print(
        f"(medians: fit and batch of {args.repeats} interleaved runs, single row of "
        f"{args.latency_calls} calls; AUC = mean ROC-AUC over ADBench files and seeds)"
    )

    header = f"{'wide data':<26}{'tool':<14}{'fit s':>9}{'x sk':>7}{'fit peak MB':>13}"
    print()
    print(header)
    print("-" * len(header))
    for case, w in wide.items():
        label = f"{case} {w['shape'][0]:,} x {w['shape'][1]:,}"
        for name, t in w["fit_s"].items():
            print(
                f"{label:<26}{name:<14}{t:>9.3f}{w['fit_s']['scikit-learn'] / t:>7.1f}"
                f"{w['fit_peak_mb'][name]:>13.1f}"
            )
            label = ""
    print(
        f"(fit: median of {args.repeats} interleaved runs; peak: growth of the resident set's "
        "high-water mark during one fit, in a fresh process)"
    )

    report = {
        "benchmark": "iforest",
        "machine": machine(),
        "params": {
            "rows": args.rows,
            "features": args.features,
            "n_estimators": N_ESTIMATORS,
            "max_samples": MAX_SAMPLES,
            "repeats": args.repeats,
            "latency_calls": args.latency_calls,
            "seeds": args.seeds,
            "wide_rows": args.wide_rows,
            "wide_features": args.wide_features,
        },
        "speed": speed,
        "peak_memory_mb": memory,
        "ratios_vs_scikit_learn": {
            name: {
                "fit": sk["fit_s"] / r["fit_s"],
                "score": sk["score_s"] / r["score_s"],
                "single_row": sk["single_row_us"] / r["single_row_us"],
            }
            for name, r in speed.items()
        },
        "adbench_roc_auc": adbench,
        "wide": wide,
        "wide_fit_ratios_vs_scikit_learn": {
            case: {name: w["fit_s"]["scikit-learn"] / t for name, t in w["fit_s"].items()}
            for case, w in wide.items()
        },
    }
    write_json(args.json, report)


if __name__ == "__main__":
    main()
