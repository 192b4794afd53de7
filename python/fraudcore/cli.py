"""The ``fraudcore`` command line.

Reports go to stdout through :class:`TerminalOutput`: a reader that stops
early (``fraudcore train ... | head -1``) never stops a command from
finishing its work, and text taken from the data cannot drive the user's
terminal.

Rows are traced to the data file: for the formats with a loader
(online_retail, fraud_data, creditcard) ``train``, ``score`` and
``evaluate`` print what cleaning removed (the loader's CleaningReport), and
``score``'s results start with ``source_row`` (the row's 0-based position
among the file's data rows, cleaning never renumbers them) and the schema's
identifying columns (transaction id, entity, invoice).
"""

import argparse
import json
import os
import re
import sys
import time

# C0 and C1 control characters (but newline and tab), DEL, and the Unicode
# format characters that reorder or hide text (bidirectional overrides,
# zero-width characters).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text):
    """``text`` with each control character written as a visible escape (ESC -> \\x1b)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TerminalOutput:
    """A text stream for a command's report.

    Control characters are escaped (raw data values such as a device id may
    hold terminal escape sequences). A closed reader (a broken pipe) makes
    the rest of the report go nowhere instead of failing the command: the
    model is still written and the command still exits 0.
    """

    def __init__(self, stream):
        self._stream = stream
        self.closed_by_reader = False

    def write(self, text):
        if not self.closed_by_reader:
            try:
                self._stream.write(escape_controls(text))
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self):
        if not self.closed_by_reader:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self):
        self.closed_by_reader = True
        # Point the descriptor at /dev/null, so the interpreter's own flush
        # at exit does not fail again on the same pipe.
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


DEMO_DESCRIPTION = (
    "Generate labelled e-commerce transactions (fraudcore.datasets.make_transactions), "
    "train a FraudDetector on the first 70% (unsupervised), score the rest with each "
    "customer's history, print the metrics of the ensemble and of each detector, the "
    "top alerts with their reasons, and write every scored transaction to a CSV file."
)


def run_demo(args, out=None):
    out = out or sys.stdout
    from fraudcore import FraudDetector, Schema, metrics
    from fraudcore.datasets import make_transactions

    start = time.perf_counter()
    data = make_transactions(
        n_customers=max(1, args.n_transactions // 50),
        n_transactions=args.n_transactions,
        fraud_rate=args.fraud_rate,
        seed=args.seed,
    )
    cut = int(0.7 * len(data))
    y = data["is_fraud"].to_numpy()
    print(
        f"data: {len(data):,} transactions of {data['customer_id'].nunique():,} customers, "
        f"{int(y.sum()):,} fraud ({y.mean():.1%}), made in {time.perf_counter() - start:.1f} s; "
        f"training on the first {cut:,} (labels unused)",
        file=out,
    )
    detector = FraudDetector(
        Schema.transactions(),
        detectors=tuple(args.detectors.split(",")),
        supervised=False,
        contamination=args.fraud_rate,
        normalization=args.normalization,
        neighbor_samples=args.neighbor_samples or None,
        random_state=args.seed,
        verbose=_progress(args),
    )
    start = time.perf_counter()
    detector.fit(data.iloc[:cut])
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    scored = detector.score(data).iloc[cut:]  # features see each customer's history
    score_s = time.perf_counter() - start
    print(
        f"fit {fit_s:.1f} s, scored {len(data):,} rows in {score_s:.1f} s "
        f"({', '.join(f'{k} {v:.1f}' for k, v in detector.weights_.items())})",
        file=out,
    )

    held_out = y[cut:]
    columns = {"ensemble": scored["risk_score"].to_numpy()}
    columns.update({name: scored[f"score_{name}"].to_numpy() for name in detector.weights_})
    table = metrics.compare(held_out, columns, thresholds={"ensemble": detector.threshold_})
    names = ["roc_auc", "pr_auc", "precision", "recall", "f1", "detection_at_fpr_0.05", "alerts"]
    header = f"{'scores':<18}" + "".join(
        f"{n.replace('detection_at_fpr_0.05', 'det@5%FPR'):>11}" for n in names
    )
    print("\n" + header + "\n" + "-" * len(header), file=out)
    for name, row in table.iterrows():
        print(
            f"{name:<18}"
            + "".join(
                f"{row[n]:>11.4f}" if n != "alerts" else f"{int(row[n]):>11,}" for n in names
            ),
            file=out,
        )
    alerts = scored[scored["is_alert"]].sort_values("risk_score", ascending=False)
    print(f"\ntop alerts of {len(alerts):,} (held-out part):", file=out)
    for index, row in alerts.head(args.top).iterrows():
        truth = data.at[index, "fraud_pattern"] or "legitimate"
        print(
            f"  {row['risk_level']:<8} risk {row['risk_score']:.4f}  [{truth}]  {'; '.join(row['reasons'])}",
            file=out,
        )
    scored = scored.drop(columns=detector.schema.identifiers)  # data has them
    result = data.iloc[cut:].join(scored.assign(reasons=scored["reasons"].map("; ".join)))
    result.to_csv(args.out, index=False)
    print(f"\nresults written to {args.out}", file=out)
    return 0


FORMATS = ("transactions", "online_retail", "fraud_data", "creditcard", "csv")


def _read(path, fmt, args, out):
    """(DataFrame, Schema or None) of a data file in one of FORMATS, indexed by
    source_row; the loader's CleaningReport printed to ``out``."""
    import pandas as pd

    from fraudcore import Schema
    from fraudcore.datasets import SOURCE_ROW, load_creditcard, load_fraud_data, load_online_retail

    loaded = None
    if fmt == "online_retail":
        loaded = load_online_retail(path), Schema.online_retail()
    elif fmt == "fraud_data":
        data, report = load_fraud_data(path, getattr(args, "ip_country", None))
        schema = (
            Schema.fraud_data()
            if "country" in data.columns
            else Schema.fraud_data_without_country()
        )
        loaded = (data, report), schema
    elif fmt == "creditcard":
        loaded = load_creditcard(path), Schema.creditcard()
    if loaded is not None:
        (data, report), schema = loaded
        print(report, file=out)
        return data, schema
    reader = pd.read_parquet if str(path).endswith(".parquet") else pd.read_csv
    try:
        data = reader(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty") from None
    if data.empty:
        raise ValueError(f"{path} has no rows")
    data.index = pd.RangeIndex(len(data), name=SOURCE_ROW)  # nothing cleaned: the file's rows
    if fmt == "transactions":
        return data, Schema.transactions()
    roles = {
        role: getattr(args, role, None)
        for role in ("entity", "timestamp", "amount", "transaction_id", "label")
    }
    if roles["timestamp"] is None or roles["amount"] is None:
        return data, None  # the model's schema (score / evaluate), or an error (train)
    return data, Schema(**roles)


def _print_figures(figures, out):
    for key, value in figures.items():
        print(
            f"  {key:<22}{value:.4f}" if isinstance(value, float) else f"  {key:<22}{value}",
            file=out,
        )


def run_train(args, out=None):
    out = out or sys.stdout
    from fraudcore import FraudDetector

    data, schema = _read(args.data, args.format, args, out)
    if schema is None:
        raise ValueError("--format csv needs --timestamp and --amount (and usually --entity)")
    label = args.label or (schema.label if schema.label in data.columns else None)
    detector = FraudDetector(
        schema,
        detectors=tuple(args.detectors.split(",")),
        contamination=args.contamination,
        target_recall=args.target_recall,
        random_state=args.seed,
        verbose=_progress(args),
    )
    start = time.perf_counter()
    detector.fit(data, y=label if label else None)
    elapsed = time.perf_counter() - start
    path = detector.save(args.out)  # before any report: nothing printed can cost the model
    print(
        f"trained on {len(data):,} rows in {elapsed:.1f} s: "
        f"{', '.join(f'{k} {v:.2f}' for k, v in detector.weights_.items())}, "
        f"threshold {detector.threshold_:.4f}",
        file=out,
    )
    _print_figures(detector.training_metrics_, out)
    print(f"model written to {path}", file=out)
    return 0


def _progress(args):
    """Progress bars on stderr when it is a terminal, unless --quiet."""
    return sys.stderr.isatty() and not args.quiet


def _load_model(args):
    import fraudcore

    model = fraudcore.load(args.model)
    if not isinstance(model, fraudcore.FraudDetector):
        raise ValueError(f"{args.model} holds a {type(model).__name__}, not a FraudDetector")
    return model.set_params(verbose=_progress(args))


def run_score(args, out=None):
    out = out or sys.stdout
    model = _load_model(args)
    data, _ = _read(args.data, args.format, args, out)
    start = time.perf_counter()
    result = model.score(data)
    elapsed = time.perf_counter() - start
    table = result.assign(reasons=result["reasons"].map("; ".join))
    if str(args.out).endswith(".parquet"):
        table.to_parquet(args.out)
    else:
        table.to_csv(args.out)
    alerts = result[result["is_alert"]].sort_values("risk_score", ascending=False)
    print(
        f"scored {len(data):,} rows in {elapsed:.1f} s: {len(alerts):,} alerts "
        f"({result['risk_level'].value_counts().to_dict()}); results in {args.out}",
        file=out,
    )
    identifiers = model.schema.identifiers
    for index, row in alerts.head(args.top).iterrows():
        ids = "".join(f"  {name} {row[name]}" for name in identifiers)
        print(
            f"  row {index!s:>7}{ids}  {row['risk_level']:<8}  risk {row['risk_score']:.4f}  "
            f"{'; '.join(row['reasons'])}",
            file=out,
        )
    return 0


def run_evaluate(args, out=None):
    out = out or sys.stdout
    from fraudcore import metrics

    model = _load_model(args)
    data, _ = _read(args.data, args.format, args, out)
    label = args.label or model.schema.label
    if label is None or label not in data.columns:
        raise ValueError(f"the data has no label column {label!r}; name it with --label")
    result = model.score(data, reasons=None)
    figures = metrics.evaluate(
        data[label].to_numpy(), result["risk_score"].to_numpy(), model.threshold_
    )
    print(
        f"{len(data):,} rows, {int(data[label].sum()):,} labelled fraud, threshold {model.threshold_:.4f}",
        file=out,
    )
    _print_figures(figures, out)
    return 0


def _labels_by_id(data, labels_path, id_column, label_column):
    """One label per row of ``data`` (NaN where the labels file has none),
    joined on ``id_column``; (labels, count of the file's ids not in data)."""
    import numpy as np
    import pandas as pd

    labels = pd.read_csv(labels_path)
    for column in (id_column, label_column):
        if column not in labels.columns:
            raise ValueError(
                f"{labels_path} has no column {column!r}; it has {list(labels.columns)}"
            )
    repeated = labels[id_column][labels[id_column].duplicated()]
    if len(repeated):
        raise ValueError(f"{labels_path} labels id {repeated.iloc[0]!r} more than once")
    values = pd.to_numeric(labels[label_column], errors="coerce")
    if values.isna().any() or not values.isin((0, 1)).all():
        bad = labels[label_column][values.isna() | ~values.isin((0, 1))].iloc[0]
        raise ValueError(f"{labels_path} column {label_column!r} must hold 0 or 1, found {bad!r}")
    by_id = pd.Series(
        values.to_numpy(dtype=np.float64), index=_id_text(labels[id_column]).to_numpy()
    )
    return _match_labels(data, by_id, id_column)


def _labels_from_store(data, url, id_column):
    """As _labels_by_id, the labels being the alert store's at url: each
    event's latest label (analysts' decisions and late labels), its event
    id matched to ``id_column``."""
    import numpy as np
    import pandas as pd

    from fraudcore.service.store import AlertStore

    with AlertStore(url) as store:
        frame = store.labels_frame()
    by_id = pd.Series(frame["label"].to_numpy(dtype=np.float64), index=frame["event_id"])
    return _match_labels(data, by_id, id_column)


def _match_labels(data, by_id, id_column):
    """by_id (a Series: id text -> 0/1) per row of data, joined on id_column."""
    import numpy as np

    if id_column not in data.columns:
        raise ValueError(
            f"the data has no id column {id_column!r} to match the labels on; name it with --id"
        )
    ids = _id_text(data[id_column])
    unknown = int((~by_id.index.isin(ids)).sum())
    return ids.map(by_id).to_numpy(dtype=np.float64), unknown


def _id_text(ids):
    """Ids as text to match on: whole numbers without a decimal point (an id
    column with a missing value is read as floats: 7.0 matches 7)."""
    import pandas as pd

    if pd.api.types.is_float_dtype(ids.dtype):
        whole = ids.dropna()
        if (whole == whole.round()).all():
            ids = ids.astype("Int64")
    return ids.astype(str)


def _json_safe(figures):
    """Figures with NaN as None (strict JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in figures.items()}


def run_retrain(args, out=None):
    out = out or sys.stdout
    model = _load_model(args)
    data, _ = _read(args.data, args.format, args, out)
    id_column = args.id or model.schema.transaction_id
    if id_column is None:
        raise ValueError("the model's schema names no transaction id: name the id column with --id")
    if args.db is not None:
        labels, unknown = _labels_from_store(data, args.db, id_column)
        source = "store's labelled events"
    else:
        labels, unknown = _labels_by_id(data, args.labels, id_column, args.label_column)
        source = "labels file's ids"
    labelled = int((labels == labels).sum())
    print(
        f"{labelled:,} of {len(data):,} rows labelled ({int((labels == 1).sum()):,} fraud)"
        + (f"; {unknown:,} of the {source} are not in the data" if unknown else ""),
        file=out,
    )
    if args.target_recall is not None:
        model.set_params(target_recall=args.target_recall, max_fpr=None)
    start = time.perf_counter()
    new = model.retrain(data, labels)
    elapsed = time.perf_counter() - start
    path = new.save(args.out)  # before any report: nothing printed can cost the model
    new_metrics = dict(new.training_metrics_)
    old_metrics = new_metrics.pop("previous")
    with open(f"{path}.metrics.json", "w") as handle:
        json.dump(
            {
                "model": str(path),
                "previous_model": str(args.model),
                "on": new_metrics.pop("on"),
                "rows": new_metrics.pop("rows"),
                "new": _json_safe(new_metrics),
                "previous": _json_safe(old_metrics),
            },
            handle,
            indent=2,
            allow_nan=False,
        )
    print(
        f"retrained in {elapsed:.1f} s; on the {new.training_metrics_['rows']:,} held-out labelled rows:",
        file=out,
    )
    print(f"  {'':<22}{'previous':>12}{'new':>12}", file=out)
    for key, value in new_metrics.items():
        cell = lambda v: f"{v:>12.4f}" if isinstance(v, float) else f"{v:>12}"
        print(f"  {key:<22}{cell(old_metrics[key])}{cell(value)}", file=out)
    print(
        f"model written to {path} (metrics in {path}.metrics.json); {args.model} is unchanged",
        file=out,
    )
    return 0


def _data_arguments(parser):
    parser.add_argument("data", help="the transaction file (.csv, .csv.gz or .parquet)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="transactions",
        help="data format (default transactions: make_transactions' columns)",
    )
    parser.add_argument("--ip-country", help="fraud_data: the IpAddress_to_Country table")
    for role in ("entity", "timestamp", "amount", "transaction_id"):
        parser.add_argument(f"--{role.replace('_', '-')}", help=f"--format csv: the {role} column")


def _detectors_argument(parser):
    """--detectors, defaulting to FraudDetector's default pair (a test checks they agree)."""
    parser.add_argument(
        "--detectors",
        default="isolation_forest,knn",
        help="comma-separated: isolation_forest, lof, autoencoder, knn",
    )


def _common_arguments(parser, handler):
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars (shown on a terminal)"
    )
    parser.set_defaults(handler=handler)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fraudcore", description="Fraud and anomaly detection with a native core."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train and evaluate a FraudDetector on generated transactions",
        description=DEMO_DESCRIPTION,
    )
    demo.add_argument("--n-transactions", type=int, default=200_000, help="rows (default 200000)")
    demo.add_argument(
        "--fraud-rate", type=float, default=0.01, help="share of fraud (default 0.01)"
    )
    _detectors_argument(demo)
    demo.add_argument(
        "--normalization",
        default="normal",
        help="how detector scores are put on one scale: normal (default), rank, zscore, minmax",
    )
    demo.add_argument(
        "--neighbor-samples",
        type=int,
        default=16_384,
        help="training rows LOF / k-NN index (default 16384; 0: every row)",
    )
    demo.add_argument("--top", type=int, default=10, help="alerts to print (default 10)")
    demo.add_argument("--out", default="fraudcore_demo_results.csv", help="results file")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _common_arguments(demo, run_demo)

    train = sub.add_parser(
        "train",
        help="fit a FraudDetector on a transaction file",
        description="Fit a FraudDetector (features, detectors, threshold) and save it.",
    )
    _data_arguments(train)
    train.add_argument("--out", required=True, help="model file to write (e.g. model.fc)")
    train.add_argument("--label", help="label column (1 = fraud), for calibration and metrics")
    train.add_argument(
        "--target-recall", type=float, help="calibrate the threshold on held-out labels"
    )
    train.add_argument(
        "--contamination", type=float, default=0.01, help="expected fraud share (default 0.01)"
    )
    _detectors_argument(train)
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _common_arguments(train, run_train)

    score = sub.add_parser(
        "score",
        help="score a transaction file with a saved model",
        description="Score every transaction; write risk scores, alerts and reasons.",
    )
    score.add_argument("model", help="a model file written by fraudcore train")
    _data_arguments(score)
    score.add_argument("--out", required=True, help="results file (.csv or .parquet)")
    score.add_argument("--top", type=int, default=10, help="alerts to print (default 10)")
    _common_arguments(score, run_score)

    evaluate = sub.add_parser(
        "evaluate",
        help="evaluate a saved model on labelled transactions",
        description="ROC-AUC, PR-AUC, precision / recall / F1 at the threshold, "
        "detection at 5%% FPR, confusion counts.",
    )
    evaluate.add_argument("model", help="a model file written by fraudcore train")
    _data_arguments(evaluate)
    evaluate.add_argument("--label", help="label column (default: the model's)")
    _common_arguments(evaluate, run_evaluate)

    retrain = sub.add_parser(
        "retrain",
        help="refit a model's supervised stage and threshold on late labels",
        description="Labels that arrive later (chargebacks, analysts' decisions), keyed "
        "by transaction id, from a CSV file or the alert store: keep the model's features and detectors, fit the "
        "supervised stage and the threshold again, write the new model and "
        "its metrics beside the previous model's.",
    )
    retrain.add_argument("model", help="a model file written by fraudcore train")
    _data_arguments(retrain)
    source = retrain.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", help="CSV of labels: the id column and a 0/1 label column")
    source.add_argument(
        "--db",
        metavar="URL",
        help="take the labels from the alert store at URL (sqlite:///PATH or "
        "postgresql://...): each event's latest label, analysts' decisions included, "
        "its event id matched to the id column",
    )
    retrain.add_argument(
        "--id",
        help="id column shared by the data and the labels (default: the schema's transaction id)",
    )
    retrain.add_argument(
        "--label-column", default="label", help="label column of the labels file (default label)"
    )
    retrain.add_argument(
        "--target-recall",
        type=float,
        help="calibrate the new threshold for this recall (default: the model's setting)",
    )
    retrain.add_argument(
        "--out", required=True, help="the new model file (the previous one is kept)"
    )
    _common_arguments(retrain, run_retrain)
    _service_parsers(sub)
    return parser


def _service_parsers(sub):
    """serve, dashboard, keys, stream and replay: their command modules import
    the extras' dependencies only when they run."""
    from fraudcore.service.command import add_parsers
    from fraudcore.stream.command import add_parsers as add_stream_parsers

    add_parsers(sub, _common_arguments)
    add_stream_parsers(sub, _common_arguments)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    for stream in (sys.stdout, sys.stderr):  # a character the terminal cannot show: an escape
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    out, err = TerminalOutput(sys.stdout), TerminalOutput(sys.stderr)
    try:
        status = args.handler(args, out)
    except (ValueError, OSError, ImportError) as exc:
        print(f"fraudcore {args.command}: error: {exc}", file=err)
        status = 1
    except KeyboardInterrupt:
        print(f"fraudcore {args.command}: interrupted", file=err)
        status = 130
    out.flush()
    return status
