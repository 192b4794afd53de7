"""benchmarks/bench_dashboard.py at a tiny size: it fills a store on each
backend (PostgreSQL when its binaries are here), the decisions and late
labels make precision and "confirmed" non-trivial, and every query of the
table is timed and reported in the JSON."""

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sqlalchemy", reason="the service extra is not installed")

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
QUERIES = {
    "callback queue first page",
    "callback queue page 500",
    "callback overview (all charts)",
    "callback customer explorer",
    "queue first page",
    "queue status=OPEN",
    "queue level=HIGH",
    "queue customer",
    "queue country",
    "queue created in a week",
    "queue sort amount desc",
    "queue page 500",
    "summary",
    "statistics",
    "fraud_trends day",
    "fraud_geography",
    "fraud_devices",
    "fraud_browsers",
    "score_histogram 50",
    "related",
    "customer_history",
}


def test_tiny_run_fills_both_backends_and_times_every_query(tmp_path):
    from _postgres import find_binaries

    out = tmp_path / "dashboard.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_dashboard.py")]
        + ["--transactions", "3000", "--alerts", "300", "--repeats", "2", "--json", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS.parent,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert (report["transactions"], report["alerts"], report["repeats"]) == (3000, 300, 2)
    backends = ["sqlite"] + (["postgresql"] if find_binaries() else [])
    for backend in backends:
        run = report[backend]
        stages = {"write_scored", "move_alert", "add_labels"}
        if backend == "postgresql":
            stages.add("vacuum_analyze")
        assert set(run["fill_s"]) == stages
        assert run["store"]["transactions"] == 3000 and run["store"]["alerts"] == 300
        assert 0 < run["store"]["precision"] < 1
        assert 0 < run["store"]["confirmed_fraud"]
        assert QUERIES <= set(run["queries"])
        for name, row in run["queries"].items():
            assert 0 < row["p50_ms"] <= row["p95_ms"], name
            assert row["target_ms"] == 300 and row["pass"] == (row["p95_ms"] <= 300), name
            assert f"{backend:<11} {name:<32}" in proc.stdout
