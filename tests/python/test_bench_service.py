"""benchmarks/bench_service.py: its quick mode runs end to end, every request
is answered 200 with the response's fields, every server it starts is
stopped; and the pieces its figures rest on (the load generator's response
parser, the split of customers among connections, the plain app's refusal
of an out-of-order transaction) do what they say."""

import hashlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

from fraudcore.datasets import make_transactions

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """benchmarks/bench_service.py as a module (its folder on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("bench_service")


def run_quick(tmp_path, only):
    out = tmp_path / "service.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_service.py"), "--quick", "--only", only]
        + ["--json", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=BENCHMARKS.parent,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def assert_mechanics(bench, report, stdout, kind):
    ceiling = report["generator_ceiling"]
    for concurrency in ("c=1", "c=16", "c=64"):
        run = ceiling[concurrency]
        assert run["failures"] == 0 and run["ok"] == run["requests"] > 0, run
    assert ceiling["stopped"] and not bench.group_processes(ceiling["pgid"])
    assert list(report["workers"]) == ["1"]
    workers = report["workers"]["1"]
    assert list(workers["results"]) == [kind]
    runs = workers["results"][kind]
    assert list(runs) == [
        "GET / c=16",
        "warm-up",
        "/detect c=1",
        "/detect c=16",
        "/detect c=64",
        "/detect/batch 10/call",
        "/detect/batch 50/call",
    ]
    for label, run in runs.items():
        assert run["requests"] > 0, label
        assert run["statuses"] == {"200": run["requests"]}, (label, run["first_failure"])
        assert run["failures"] == 0 and not run["errors"], (label, run["errors"])
        assert run["shape_problems"] == [], (label, run["shape_problems"])
        assert run["p50_ms"] <= run["p99_ms"] <= run["max_ms"], label
    # Every connection of c=16 had work, and the calls carry their batch size.
    assert runs["/detect c=16"]["connections"] == 16
    batch = runs["/detect/batch 10/call"]
    assert batch["items_per_s"] == pytest.approx(10 * batch["requests_per_s"])
    assert json.loads(runs["/detect c=1"]["sample"])["event_id"].startswith("bench-")
    server = workers["servers"][kind]
    assert server["stopped"] and server["leftover"] == [] and server["pids"], server
    assert not bench.group_processes(server["pgid"]), "a server process outlived the benchmark"
    assert "workers=1\nrun " in stdout


def test_quick_mode_against_the_plain_app(tmp_path, bench):
    report, stdout = run_quick(tmp_path, "plain")
    assert_mechanics(bench, report, stdout, "plain")
    assert "SKIP  every target: no fraudcore run" in stdout


def test_quick_mode_against_fraudcores_service(tmp_path, bench):
    report, stdout = run_quick(tmp_path, "fraudcore")
    assert_mechanics(bench, report, stdout, "fraudcore")
    assert [t["target"].split(":")[0] for t in report["workers"]["1"]["targets"]] == [
        "/detect c=16",
        "/detect c=16",
        "/detect c=1",
        "/detect/batch 50/call",
    ]


def test_response_parser_reads_lengths_chunks_and_pieces(bench):
    from _loadgen import _Response

    whole = b'HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\n{"a":1}NEXT'
    buf, response = bytearray(), _Response()
    for byte in whole[:-4]:  # one byte at a time: complete only at the body's end
        buf.append(byte)
        used = response.feed(buf)
        assert used == (len(buf) if len(buf) == len(whole) - 4 else 0)
    assert response.status == 200 and response.body == b'{"a":1}' and response.closes

    chunked = b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    response = _Response()
    assert response.feed(bytearray(chunked[:-3])) == 0
    assert response.feed(bytearray(chunked)) == len(chunked)
    assert response.status == 409 and response.body == b"abcde" and not response.closes


def test_each_connection_owns_its_customers_in_time_order(bench):
    data = make_transactions(n_customers=30, n_transactions=600, seed=1)
    rows = data.to_dict("records")
    parts = bench.connection_rows(rows, 7)
    owners = [{row["customer_id"] for row in part} for part in parts]
    assert all(owners) and sum(len(o) for o in owners) == len(set().union(*owners)) == 30
    assert sum(len(part) for part in parts) == 600
    for part in parts:
        times = [row["timestamp"] for row in part]
        assert times == sorted(times)


def test_plain_app_refuses_a_customers_earlier_transaction(tmp_path, monkeypatch, bench):
    import _plain_service
    from fastapi.testclient import TestClient

    data = make_transactions(n_customers=20, n_transactions=400, seed=2)
    train = data.drop(columns=bench.LABELS).iloc[:300]
    train.to_pickle(tmp_path / "train.pkl")
    key = "k-123"
    digest = hashlib.sha256(key.encode()).hexdigest()
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [{"name": "t", "sha256": digest}]}))
    monkeypatch.setitem(os.environ, "PLAIN_SERVICE_TRAIN", str(tmp_path / "train.pkl"))
    monkeypatch.setitem(os.environ, "PLAIN_SERVICE_KEYS", str(tmp_path / "keys.json"))
    client = TestClient(_plain_service.create_app())

    row = data.drop(columns=bench.LABELS).iloc[350].to_dict()
    body = {**row, "timestamp": row["timestamp"].isoformat(), "event_id": "x1"}
    body["signup_time"] = row["signup_time"].isoformat()
    assert client.post("/detect", json=body).status_code == 401
    answer = client.post("/detect", json=body, headers={"X-API-Key": key})
    assert answer.status_code == 200 and bench.FIELDS <= set(answer.json())
    earlier = {**body, "timestamp": "2024-01-01T00:00:00", "event_id": "x2"}
    refused = client.post("/detect", json=earlier, headers={"X-API-Key": key})
    assert refused.status_code == 409 and "earlier" in refused.json()["detail"]
