"""The ``fraudcore`` command line."""

import argparse
import sys
import time

import numpy as np

DEMO_DESCRIPTION = (
    "Generate labelled data (fraudcore.datasets.make_anomalies), fit fraudcore's "
    "IsolationForest and scikit-learn's side by side on all cores, and print "
    "ROC-AUC, average precision and timings."
)


def _best_of(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def run_demo(args, out=None):
    out = out or sys.stdout
    from sklearn.ensemble import IsolationForest as SkIsolationForest
    from sklearn.metrics import average_precision_score, roc_auc_score

    from fraudcore import IsolationForest
    from fraudcore.datasets import make_anomalies

    X, y = make_anomalies(
        args.n_samples, args.n_features, contamination=args.contamination,
        random_state=args.seed,
    )
    print(
        f"data: {X.shape[0]:,} rows x {X.shape[1]} features, "
        f"{int(y.sum()):,} anomalies ({y.mean():.1%}), seed {args.seed}",
        file=out,
    )
    params = dict(n_estimators=args.n_estimators, max_samples=256, n_jobs=-1,
                  random_state=args.seed)
    rows = []
    tools = [("fraudcore", IsolationForest)]
    if not args.no_compare:
        tools.append(("scikit-learn", SkIsolationForest))
    for name, cls in tools:
        fit_time, model = _best_of(lambda: cls(**params).fit(X), args.repeats)
        score_time, scores = _best_of(lambda: model.score_samples(X), args.repeats)
        rows.append((name, fit_time, score_time, roc_auc_score(y, -scores),
                     average_precision_score(y, -scores)))

    header = f"{'model':<14}{'fit s':>9}{'score s':>10}{'rows/s':>14}{'ROC-AUC':>9}{'AP':>8}"
    print(header, file=out)
    print("-" * len(header), file=out)
    for name, fit_time, score_time, auc, ap in rows:
        print(
            f"{name:<14}{fit_time:>9.3f}{score_time:>10.3f}"
            f"{X.shape[0] / score_time:>14,.0f}{auc:>9.4f}{ap:>8.4f}",
            file=out,
        )
    if len(rows) == 2:
        fc, sk = rows
        print(
            f"fraudcore vs scikit-learn: fit {sk[1] / fc[1]:.1f}x, "
            f"score {sk[2] / fc[2]:.1f}x faster (median of {args.repeats})",
            file=out,
        )
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fraudcore", description="Fraud and anomaly detection with a native core."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="fit the isolation forest on generated data",
                          description=DEMO_DESCRIPTION)
    demo.add_argument("--n-samples", type=int, default=200_000, help="rows (default 200000)")
    demo.add_argument("--n-features", type=int, default=18, help="columns (default 18)")
    demo.add_argument("--contamination", type=float, default=0.02,
                      help="share of anomalies (default 0.02)")
    demo.add_argument("--n-estimators", type=int, default=100, help="trees (default 100)")
    demo.add_argument("--repeats", type=int, default=3, help="timing repeats (default 3)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--no-compare", action="store_true", help="skip scikit-learn")
    demo.set_defaults(handler=run_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except (ValueError, OSError) as exc:
        print(f"fraudcore {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fraudcore {args.command}: interrupted", file=sys.stderr)
        return 130
