"""What a forked child gets: parallel loops on plain threads, against one thread.

GNU OpenMP's worker threads do not survive fork(), so in a child forked
from a process that loaded fraudcore (gunicorn --preload, a multiprocessing
pool, Spark's Python workers) fraudcore runs its parallel loops on threads
it starts and joins per call instead of OpenMP's pool. The alternative was
to fall back to one thread in a child. This script measures the choice:
the same calls in the parent (OpenMP), in a forked child with every core
(plain threads) and in a forked child on one thread, medians of interleaved
runs (see _common.py), with the ratio of each child to the parent.

    python benchmarks/bench_fork.py [--rows 200000] [--repeats 5] [--json out.json]
"""

import argparse
import json
import multiprocessing
import statistics

from _common import machine, timed

from fraudcore import IsolationForest, LocalOutlierFactor, Schema, build_features
from fraudcore.datasets import make_anomalies, make_transactions


def tasks(rows):
    X, _ = make_anomalies(rows, 16, random_state=0)
    forest = IsolationForest(n_estimators=100, random_state=0).fit(X)
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(X[:20_000])
    data = make_transactions(n_customers=rows // 50, n_transactions=rows, seed=0)
    schema = Schema.transactions()

    def with_jobs(model, n_jobs):
        model.n_jobs = n_jobs
        return model

    return {
        f"IsolationForest.score_samples ({rows:,} x 16)": lambda n_jobs: with_jobs(
            forest, n_jobs
        ).score_samples(X),
        f"LocalOutlierFactor.score_samples ({rows // 10:,} rows, 20k indexed)": lambda n_jobs: (
            with_jobs(lof, n_jobs).score_samples(X[: rows // 10])
        ),
        f"build_features ({rows:,} transactions)": lambda n_jobs: build_features(
            data, schema, n_jobs=n_jobs
        ),
        f"IsolationForest.fit ({rows:,} x 16, 200 trees)": lambda n_jobs: IsolationForest(
            n_estimators=200, max_samples=4096, random_state=0, n_jobs=n_jobs
        ).fit(X),
    }


_TASKS = {}


def _seconds(name, n_jobs):
    return timed(lambda: _TASKS[name](n_jobs))[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    _TASKS.update(tasks(args.rows))
    for run in _TASKS.values():
        run(-1)  # the parent's OpenMP threads now exist: the case that used to hang
    results = []
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as child:
        for name in _TASKS:
            times = {"parent": [], "child": [], "child_1": []}
            for _ in range(args.repeats):
                times["parent"].append(_seconds(name, -1))
                times["child"].append(child.apply(_seconds, (name, -1)))
                times["child_1"].append(child.apply(_seconds, (name, 1)))
            results.append({"task": name, **{k: statistics.median(v) for k, v in times.items()}})
    header = f"{'task':<60}{'parent s':>10}{'child s':>10}{'1 thread s':>12}{'child/parent':>14}{'1 thr/parent':>14}"
    print(header + "\n" + "-" * len(header))
    for r in results:
        print(
            f"{r['task']:<60}{r['parent']:>10.3f}{r['child']:>10.3f}{r['child_1']:>12.3f}"
            f"{r['child'] / r['parent']:>14.2f}{r['child_1'] / r['parent']:>14.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
