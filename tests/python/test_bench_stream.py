"""benchmarks/bench_stream.py at a tiny size: every run happens, its counts
add up (each transaction of the stream scored and stored once, the reference
consumer's messages processed and stored), the latencies and the targets are
in the JSON. Not its speed."""

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("redis", reason="the stream extra is not installed")
pytest.importorskip("sqlalchemy", reason="the service extra is not installed")

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def test_tiny_run_scores_every_transaction_and_reports_each_figure(tmp_path):
    from _brokers import find_redis
    from conftest import skip_or_fail

    if find_redis() is None:
        skip_or_fail("redis-server not found: apt-get install redis-server")
    out = tmp_path / "stream.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_stream.py")]
        + ["--transactions", "6000", "--repeats", "1", "--latency-seconds", "3"]
        + ["--reference-messages", "200", "--json", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=BENCHMARKS.parent,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    data = report["data"]
    assert (data["transactions"], data["train_rows"], data["stream_rows"]) == (6000, 3000, 3000)
    assert data["partitions"] == 4
    assert report["model"]["detectors"] and report["model"]["fit_s"] > 0
    assert report["redis_stopped"]

    (run,) = report["throughput"]["runs"]
    assert run["sent"] == run["scored"] == data["stream_rows"]
    assert run["store"]["transactions"] == data["stream_rows"]
    assert run["stats"]["dead_letters"] == run["stats"]["failed_batches"] == 0
    assert run["stats"]["duplicates"] == 0 and run["stats"]["lag"] == 0
    assert run["store"]["alerts"] == run["stats"]["alerts"]
    for key in ("busy_transactions_per_s", "end_to_end_transactions_per_s"):
        assert run[key] > 0 and report["throughput"]["median"][key] == run[key]
    assert run["first_delivery_to_last_ack_s"] > 0

    latency = report["latency"]
    sent = latency["sent"]
    assert sent == 3000 and latency["scored"] == latency["n"] == sent
    assert latency["store"]["transactions"] == sent
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]

    reference = report["reference"]
    assert reference["processed"] == reference["stored"] == 200
    assert reference["stopped_by"] == "messages" and reference["transactions_per_s"] > 0

    assert set(report["ratios"]) == {"end_to_end", "busy"}
    assert len(report["targets"]) == 3
    assert all(isinstance(t["pass"], bool) for t in report["targets"])
    assert "reference (pandas + scikit-learn per msg)" in proc.stdout
