"""The fraudcore command line."""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

import fraudcore
from fraudcore.cli import main


def test_demo_trains_evaluates_and_writes_results(capsys, tmp_path):
    out_file = tmp_path / "demo.csv"
    assert main(["demo", "--n-transactions", "20000", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("ensemble", "isolation_forest", "knn")
    }
    assert set(rows) == {"ensemble", "isolation_forest", "knn"}
    assert float(rows["isolation_forest"][1]) > 0.9  # ROC-AUC on held-out transactions
    assert "top alerts" in out and "results written to" in out
    import pandas as pd

    results = pd.read_csv(out_file)
    assert len(results) == 6_000 and {"risk_score", "is_alert", "reasons", "is_fraud"} <= set(
        results
    )


def test_demo_takes_the_normalisation_and_the_neighbour_sample(capsys, tmp_path, monkeypatch):
    from fraudcore import FraudDetector

    seen = []
    fit = FraudDetector.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(self.get_params())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(FraudDetector, "fit", recording_fit)
    argv = [
        "demo",
        "--n-transactions",
        "5000",
        "--out",
        str(tmp_path / "d.csv"),
        "--normalization",
        "rank",
    ]
    assert main([*argv, "--neighbor-samples", "0"]) == 0
    assert main([*argv, "--neighbor-samples", "1000"]) == 0
    assert [(p["normalization"], p["neighbor_samples"]) for p in seen] == [
        ("rank", None),
        ("rank", 1000),
    ]
    capsys.readouterr()
    assert main(["demo", "--n-transactions", "5000", "--normalization", "softmax"]) == 1
    assert "normalization must be one of" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_bad_argument_is_one_line_on_stderr():
    proc = subprocess.run(
        [sys.executable, "-m", "fraudcore", "demo", "--n-transactions", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("fraudcore demo: error:")


def test_module_entry_point_help():
    proc = subprocess.run(
        [sys.executable, "-m", "fraudcore", "demo", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "FraudDetector" in proc.stdout


def test_train_score_evaluate_round_trip(tmp_path, capsys):
    from fraudcore.datasets import make_transactions

    data = make_transactions(n_customers=400, n_transactions=8_000, fraud_rate=0.02, seed=1)
    data.to_csv(tmp_path / "tx.csv", index=False)
    model = tmp_path / "model.fc"
    assert (
        main(
            [
                "train",
                str(tmp_path / "tx.csv"),
                "--out",
                str(model),
                "--label",
                "is_fraud",
                "--target-recall",
                "0.8",
            ]
        )
        == 0
    )
    assert "model written to" in capsys.readouterr().out
    assert (
        main(["score", str(model), str(tmp_path / "tx.csv"), "--out", str(tmp_path / "out.csv")])
        == 0
    )
    assert "alerts" in capsys.readouterr().out
    import pandas as pd

    results = pd.read_csv(tmp_path / "out.csv")
    assert len(results) == len(data) and {"risk_score", "is_alert", "risk_level", "reasons"} <= set(
        results
    )
    assert main(["evaluate", str(model), str(tmp_path / "tx.csv")]) == 0
    out = capsys.readouterr().out
    assert "roc_auc" in out and "recall" in out


def test_command_errors_are_one_line(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    cases = [
        ["train", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "m.fc")],
        ["train", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "m.fc")],
        [
            "score",
            str(tmp_path / "missing.fc"),
            str(tmp_path / "empty.csv"),
            "--out",
            str(tmp_path / "o.csv"),
        ],
    ]
    for argv in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "fraudcore", *argv], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 1, argv
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (
            proc.stderr
        )


def test_progress_bars_only_on_a_terminal_and_not_with_quiet(monkeypatch):
    from fraudcore import cli

    args = cli.build_parser().parse_args(["demo"])
    quiet = cli.build_parser().parse_args(["demo", "--quiet"])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert cli._progress(args) and not cli._progress(quiet)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not cli._progress(args)


@pytest.fixture(scope="module")
def hostile_transactions(tmp_path_factory):
    """Transactions whose countries hold terminal escape sequences, and a model trained on them."""
    from fraudcore.datasets import make_transactions

    folder = tmp_path_factory.mktemp("hostile")
    data = make_transactions(n_customers=300, n_transactions=6_000, fraud_rate=0.03, seed=5)
    data["country"] = data["country"].where(data["is_fraud"] == 0, "\x1b[2J\x1b[31mXX\u202e")
    data.to_csv(folder / "tx.csv", index=False)
    return folder


def _run(argv, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "fraudcore", *map(str, argv)],
        text=True,
        timeout=600,
        **kwargs,
        check=False,
    )


def test_a_reader_that_stops_early_never_costs_the_model(hostile_transactions, tmp_path):
    # `fraudcore train ... | head -1` used to lose the model on a closed pipe.
    # Here the pipe is closed before the command writes anything.
    for run in range(2):
        model = tmp_path / f"model-{run}.fc"
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            # Unbuffered, as on a terminal: the first print meets the closed pipe
            # before the model could be written (unless the model comes first).
            proc = _run(
                ["train", hostile_transactions / "tx.csv", "--out", model, "--quiet"],
                stdout=write_end,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            os.close(write_end)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        assert fraudcore.load(model).threshold_ > 0


def test_data_cannot_drive_the_terminal(hostile_transactions, tmp_path):
    model = tmp_path / "model.fc"
    assert (
        _run(
            ["train", hostile_transactions / "tx.csv", "--out", model, "--quiet"],
            capture_output=True,
        ).returncode
        == 0
    )
    proc = _run(
        [
            "score",
            model,
            hostile_transactions / "tx.csv",
            "--out",
            tmp_path / "out.csv",
            "--top",
            "50",
        ],
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "first purchase from \\x1b[2J\\x1b[31mXX\\u202e" in proc.stdout  # shown, escaped
    assert "\x1b" not in proc.stdout and "\u202e" not in proc.stdout
    # The results file keeps the data as it was.
    assert "\x1b[2J" in pd.read_csv(tmp_path / "out.csv")["reasons"].str.cat()


def test_a_terminal_that_cannot_show_a_character_gets_an_escape(hostile_transactions, tmp_path):
    model = tmp_path / "model.fc"
    assert (
        _run(
            ["train", hostile_transactions / "tx.csv", "--out", model, "--quiet"],
            capture_output=True,
        ).returncode
        == 0
    )
    data = pd.read_csv(hostile_transactions / "tx.csv")
    data["country"] = data["country"].where(data["is_fraud"] == 0, "Côte d’Ivoire")
    data.to_csv(tmp_path / "tx.csv", index=False)
    proc = _run(
        ["score", model, tmp_path / "tx.csv", "--out", tmp_path / "out.csv", "--top", "50"],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "first purchase from C\\xf4te d\\u2019Ivoire" in proc.stdout


def test_escape_controls_keeps_newlines_and_tabs():
    from fraudcore.cli import escape_controls

    assert escape_controls("a\tb\nc\x07\x9b\u200b") == "a\tb\nc\\x07\\x9b\\u200b"


# -- results traced to the file -------------------------------------------------


def _raw_retail_file(path):
    """An Online Retail file as downloaded: dates month first, some rows
    without a customer and a repeated row (the loader drops both)."""
    from conftest import retail_table

    raw = retail_table(n_customers=80, n_invoices=1_200, seed=4)
    raw["InvoiceDate"] = raw["InvoiceDate"].dt.strftime("%m/%d/%Y %H:%M")
    raw["CustomerID"] = raw["CustomerID"].astype(float)
    raw.loc[raw.index % 97 == 3, "CustomerID"] = float("nan")
    raw = pd.concat([raw.iloc[:500], raw.iloc[[20]], raw.iloc[500:]], ignore_index=True)
    raw.to_csv(path, index=False)
    return path


def _check_traced(results, raw_path, identifiers):
    """results' source_row names the raw file's row of the same ids."""
    raw = pd.read_csv(raw_path, dtype={"InvoiceNo": str}, encoding="latin-1")
    assert list(results.columns[: 1 + len(identifiers)]) == ["source_row", *identifiers]
    assert results["source_row"].is_unique
    same = raw.iloc[results["source_row"]].reset_index(drop=True)
    for column in identifiers:
        pd.testing.assert_series_equal(results[column], same[column], check_dtype=False)


def test_score_writes_ids_and_file_rows_and_prints_the_cleaning(tmp_path, capsys):
    raw_path = _raw_retail_file(tmp_path / "retail.csv")
    model, out_file = tmp_path / "retail.fc", tmp_path / "scored.csv"
    assert (
        main(["train", str(raw_path), "--format", "online_retail", "--out", str(model), "--quiet"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "CleaningReport for" in printed and "missing_customer   dropped" in printed
    assert (
        main(
            [
                "score",
                str(model),
                str(raw_path),
                "--format",
                "online_retail",
                "--out",
                str(out_file),
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert re.search(r"\n  duplicates +dropped +-1  rows identical", printed)
    results = pd.read_csv(out_file, dtype={"InvoiceNo": str})
    raw = pd.read_csv(raw_path)
    assert len(results) == raw["CustomerID"].notna().sum() - 1 < len(raw)
    _check_traced(results, raw_path, ["CustomerID", "InvoiceNo"])
    assert (
        results["is_alert"].any() and not results.loc[results["is_cancellation"], "is_alert"].any()
    )
    # The top alerts printed name their file row and ids.
    top = results[results["is_alert"]].sort_values("risk_score", ascending=False).iloc[0]
    ids = f"CustomerID {top['CustomerID']}  InvoiceNo {top['InvoiceNo']}"
    assert f"row {top['source_row']:>7}  {ids}" in printed


def test_score_keeps_transaction_ids_of_plain_files(tmp_path):
    from fraudcore.datasets import make_transactions

    data = make_transactions(n_customers=200, n_transactions=3_000, seed=2)
    data.to_csv(tmp_path / "tx.csv", index=False)
    assert (
        main(["train", str(tmp_path / "tx.csv"), "--out", str(tmp_path / "m.fc"), "--quiet"]) == 0
    )
    assert (
        main(
            [
                "score",
                str(tmp_path / "m.fc"),
                str(tmp_path / "tx.csv"),
                "--out",
                str(tmp_path / "o.csv"),
                "--quiet",
            ]
        )
        == 0
    )
    results = pd.read_csv(tmp_path / "o.csv")
    _check_traced(results, tmp_path / "tx.csv", ["transaction_id", "customer_id"])
    assert (results["source_row"] == results.index).all()  # nothing was cleaned


@pytest.mark.parametrize("command", ["train", "score", "evaluate"])
def test_labelled_formats_print_their_cleaning(tmp_path, capsys, command):
    import numpy as np

    rng = np.random.default_rng(0)
    columns = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
    table = pd.DataFrame(rng.normal(size=(400, 31)), columns=columns)
    table["Time"] = np.arange(400.0)
    table["Amount"] = rng.exponential(50.0, 400).round(2)
    table["Class"] = (rng.random(400) < 0.1).astype(int)
    table = pd.concat([table, table.iloc[[7]]])  # a duplicate, counted
    table.to_csv(tmp_path / "cc.csv", index=False)
    model = tmp_path / "cc.fc"
    argv = {
        "train": ["train", str(tmp_path / "cc.csv"), "--out", str(model)],
        "score": ["score", str(model), str(tmp_path / "cc.csv"), "--out", str(tmp_path / "o.csv")],
        "evaluate": ["evaluate", str(model), str(tmp_path / "cc.csv")],
    }
    if command != "train":
        assert main([*argv["train"], "--format", "creditcard", "--quiet"]) == 0
        capsys.readouterr()
    assert main([*argv[command], "--format", "creditcard", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("CleaningReport for ")
    assert re.search(
        r"\n  duplicates +counted +1  rows identical to an earlier row \(first kept\)\n", printed
    )


def test_real_online_retail_results_point_at_the_file_rows(shared_data, tmp_path, capsys):
    real = shared_data / "online_retail.csv.gz"
    raw = pd.read_csv(real, dtype={"InvoiceNo": str}, encoding="latin-1")
    raw.iloc[:30_000].to_csv(tmp_path / "head.csv.gz", index=False)  # the file's first 30,000 rows
    model, out_file = tmp_path / "retail.fc", tmp_path / "scored.csv"
    assert (
        main(
            [
                "train",
                str(tmp_path / "head.csv.gz"),
                "--format",
                "online_retail",
                "--out",
                str(model),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "score",
                str(model),
                str(tmp_path / "head.csv.gz"),
                "--format",
                "online_retail",
                "--out",
                str(out_file),
                "--quiet",
            ]
        )
        == 0
    )
    assert re.search(r"\n  missing_customer +dropped +-\d", capsys.readouterr().out)
    results = pd.read_csv(out_file, dtype={"InvoiceNo": str})
    _check_traced(results, real, ["CustomerID", "InvoiceNo"])
    assert results["source_row"].max() < 30_000 < len(raw)
    alerts = results[results["is_alert"]]
    assert len(alerts) > 100 and not alerts["InvoiceNo"].str.startswith("C").any()


def test_the_default_detectors_are_fraud_detectors_own():
    from fraudcore.cli import build_parser

    for command in (["demo"], ["train", "data.csv", "--out", "m.fc"]):
        args = build_parser().parse_args(command)
        assert tuple(args.detectors.split(",")) == tuple(fraudcore.FraudDetector().detectors)


def test_the_command_line_works_without_any_extra():
    """fraudcore lists its commands and runs the core ones with none of the
    extras' packages importable (serve, dashboard, stream and replay say
    which extra they need only when they run)."""
    blocked = ["fastapi", "uvicorn", "sqlalchemy", "orjson", "redis", "confluent_kafka", "dash"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from fraudcore.cli import build_parser, main\n"
        "print(build_parser().format_help())\n"
        "status = main(['stream', '--source', 'redis://h:1/s', '--group', 'g', '--model', 'm'])\n"
        "sys.exit(status)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1, proc.stderr
    assert "usage: fraudcore" in proc.stdout and "replay" in proc.stdout
    assert "fraudcore stream: error:" in proc.stderr
    assert "pip install 'fraudcore[stream]'" in proc.stderr or "fraudcore[service]" in proc.stderr
