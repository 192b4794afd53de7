"""The scoring service: same answers as the library, idempotent, durable,
keyed, and a JSON 4xx naming the field for every bad input.

In-process tests use FastAPI's TestClient on a SQLite store and on a real
PostgreSQL server (conftest's store_url); the restart and hot-swap tests run
``fraudcore serve`` as a separate process on a free loopback port.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed (fraudcore[service])")

from _server import Server
from fastapi.testclient import TestClient

from fraudcore import FraudDetector, Schema
from fraudcore.datasets import make_transactions
from fraudcore.service.app import create_app
from fraudcore.service.auth import KeyRing, create_key
from fraudcore.service.store import AlertStore

SCHEMA = Schema.transactions()
N_TRAIN = 6_000


@pytest.fixture(scope="module")
def data():
    return make_transactions(n_customers=300, n_transactions=8_000, fraud_rate=0.03, seed=11)


@pytest.fixture(scope="module")
def detector(data):
    return FraudDetector(
        SCHEMA,
        supervised=False,
        neighbor_samples=2_000,
        contamination=0.03,
        random_state=0,
        n_jobs=2,
    ).fit(data.iloc[:N_TRAIN])


@pytest.fixture(scope="module")
def model_file(detector, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.fc"
    detector.save(path)
    return path


def as_json(frame):
    """Rows as the JSON a client sends: ISO times, no label columns."""
    out = []
    for row in frame.drop(columns=["is_fraud", "fraud_pattern"]).to_dict("records"):
        for key in ("timestamp", "signup_time"):
            row[key] = row[key].isoformat()
        row["event_id"] = f"tx-{row['transaction_id']}"
        out.append(row)
    return out


@pytest.fixture()
def client(detector, store_url):
    """A TestClient of the app on a new store: SQLite, and the real PostgreSQL."""
    with TestClient(create_app(detector, db=store_url)) as c:
        yield c


def test_detect_answers_what_score_gives_with_the_same_history(client, detector, data):
    stream = data.iloc[N_TRAIN : N_TRAIN + 400]
    sent = [client.post("/detect", json=t).json() for t in as_json(stream)]
    expected = detector.score(stream, reasons="alerts")
    np.testing.assert_array_equal(
        [r["risk_score"] for r in sent], expected["risk_score"].to_numpy()
    )
    assert [r["risk_level"] for r in sent] == list(expected["risk_level"])
    assert [r["is_alert"] for r in sent] == list(expected["is_alert"])
    assert [[x["text"] for x in r["reasons"]] for r in sent] == list(expected["reasons"])
    assert [r["event_id"] for r in sent] == [f"tx-{t}" for t in stream["transaction_id"]]
    alerts = [r for r in sent if r["is_alert"]]
    assert alerts, "the generated stream must raise alerts for this test to mean anything"
    assert all(isinstance(r["alert_id"], int) for r in alerts)
    assert all("alert_id" not in r for r in sent if not r["is_alert"])


def test_batch_equals_single_calls(detector, data, tmp_path):
    stream = as_json(data.iloc[N_TRAIN : N_TRAIN + 300])
    with TestClient(create_app(detector, db=f"sqlite:///{tmp_path / 'a.db'}")) as a:
        singles = [a.post("/detect", json=t).json() for t in stream]
    with TestClient(create_app(detector, db=f"sqlite:///{tmp_path / 'b.db'}")) as b:
        batch = b.post("/detect/batch", json={"transactions": stream}).json()["results"]
    for one, other in zip(singles, batch):
        one.pop("alert_id", None), other.pop("alert_id", None)
    assert singles == batch


def test_a_retry_returns_the_stored_result_and_opens_no_second_alert(client, data):
    stream = as_json(data.iloc[N_TRAIN : N_TRAIN + 300])
    first = [client.post("/detect", json=t).json() for t in stream]
    alerted = next(t for t, r in zip(stream, first) if r["is_alert"])
    again = client.post("/detect", json=alerted).json()
    original = next(r for r in first if r["event_id"] == alerted["event_id"])
    assert again["duplicate"] is True and original["duplicate"] is False
    assert again["alert_id"] == original["alert_id"]
    assert again["risk_score"] == original["risk_score"]
    n_alerts = sum(r["is_alert"] for r in first)
    listed = client.get("/alerts", params={"limit": 1000}).json()["alerts"]
    assert len(listed) == n_alerts
    # twice in one batch, and again after: scored once
    batch = client.post("/detect/batch", json={"transactions": [stream[0], stream[0]]}).json()
    assert [r["duplicate"] for r in batch["results"]] == [True, True]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": None}, "amount"),
        ({"amount": "12.5"}, "amount"),
        ({"amount": True}, "amount"),
        ({"timestamp": "yesterday-ish"}, "timestamp"),
        ({"timestamp": None}, "timestamp"),
        ({"customer_id": None}, "customer_id"),
        ({"customer_id": [1]}, "customer_id"),
        ({"event_id": ""}, "event_id"),
        ({"country": {"a": 1}}, "country"),
    ],
)
def test_bad_fields_are_a_422_naming_the_field_and_write_nothing(client, data, change, field):
    good = as_json(data.iloc[N_TRAIN : N_TRAIN + 1])[0]
    response = client.post("/detect", json={**good, **change})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    bad = {"event_id": "x", **change}  # a new event id, unless the bad field is the id
    batch = client.post("/detect/batch", json={"transactions": [good, {**good, **bad}]})
    assert batch.status_code == 422
    assert batch.json()["error"]["index"] == 1
    assert client.get("/summary").json()["transactions"] == 0


def test_malformed_bodies(client, data):
    good = as_json(data.iloc[N_TRAIN : N_TRAIN + 1])[0]
    assert client.post("/detect", content=b"{not json").status_code == 400
    assert client.post("/detect", content=b'{"amount": NaN}').status_code == 400
    infinite = client.post("/detect", content=b'{"amount": 1e999}')
    assert infinite.status_code == 400 and "infinity" in infinite.json()["error"]["message"]
    assert client.post("/detect", json=[good]).status_code == 422
    assert client.post("/detect/batch", json=good).status_code == 422
    big = client.post("/detect/batch", json={"transactions": [good] * 5_001})
    assert big.status_code == 413 and big.json()["error"]["field"] == "transactions"
    huge = client.post(
        "/detect", content=b" " * (17 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    behind_fastapi = client.post(
        "/labels", content=b" " * (17 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert behind_fastapi.status_code == 413
    assert client.get("/alerts", params={"status": "NOPE"}).json()["error"]["field"] == "status"
    assert client.get("/alerts", params={"limit": 5000}).status_code == 422
    assert client.get("/alerts/999999").status_code == 404


def test_a_transaction_before_the_customers_last_is_refused_and_changes_nothing(client, data):
    stream = as_json(data.iloc[N_TRAIN : N_TRAIN + 50])
    for t in stream:
        assert client.post("/detect", json=t).status_code == 200
    late = dict(stream[-1], event_id="late", timestamp="2023-01-01T00:00:00")
    refused = client.post("/detect", json=late)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "timestamp"
    assert client.get("/summary").json()["transactions"] == 50


def test_workflow_over_http(client, data):
    stream = as_json(data.iloc[N_TRAIN : N_TRAIN + 400])
    results = [client.post("/detect", json=t).json() for t in stream]
    alert_id = next(r["alert_id"] for r in results if r["is_alert"])
    alert = client.get(f"/alerts/{alert_id}")
    version = alert.json()["version"]
    assert alert.headers["etag"] == f'"{version}"'
    moved = client.put(
        f"/alerts/{alert_id}",
        json={"status": "INVESTIGATING", "note": "looking", "version": version},
    )
    assert moved.status_code == 200, moved.text
    stale = client.put(
        f"/alerts/{alert_id}", json={"status": "CONFIRMED_FRAUD", "version": version}
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    unknown = client.put(f"/alerts/{alert_id}", json={"status": "MAYBE"})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "status"
    done = client.put(
        f"/alerts/{alert_id}",
        json={"status": "CONFIRMED_FRAUD"},
        headers={"If-Match": moved.headers["etag"]},
    )
    assert done.status_code == 200
    illegal = client.put(f"/alerts/{alert_id}", json={"status": "INVESTIGATING"})
    assert illegal.status_code == 409 and illegal.json()["error"]["code"] == "illegal_transition"
    trail = client.get(f"/alerts/{alert_id}").json()["audit"]
    assert [a["to_status"] for a in trail][-2:] == ["INVESTIGATING", "CONFIRMED_FRAUD"]
    stats = client.get("/alerts/statistics").json()
    assert stats["precision"] == 1.0
    labels = client.post(
        "/labels", json={"labels": [{"event_id": stream[0]["event_id"], "label": 1}]}
    )
    assert labels.status_code == 200


def test_reads_and_reports(client, data, detector):
    stream = as_json(data.iloc[N_TRAIN : N_TRAIN + 200])
    client.post("/detect/batch", json={"transactions": stream})
    assert client.get("/").json()["status"] == "ok"
    health = client.get("/health").json()
    assert health["database"]["reachable"] and health["model_version"].startswith("model@")
    info = client.get("/models/info").json()
    assert (
        info["features"] == list(detector.feature_names_)
        and info["threshold"] == detector.threshold_
    )
    for path in (
        "/summary",
        "/fraud_trends",
        "/fraud_geography",
        "/fraud_devices",
        "/fraud_browsers",
    ):
        assert client.get(path).status_code == 200, path
    top = client.get("/fraud_devices", params={"limit": 2, "by": "alerts"}).json()
    every = client.get("/fraud_devices?by=alerts").json()
    assert len(top) <= 2 and top == [r for r in every if r["device"] is not None][:2]
    assert client.get("/fraud_devices", params={"by": "amount"}).status_code == 422
    customers = client.get("/customer_ids").json()["customer_ids"]
    assert customers
    anomalies = client.post(
        "/api/anomalies", json={"customer_id": customers[0], "filter_metric": "TotalSpent"}
    )
    assert set(anomalies.json()) >= {"anomaly_list", "chart_data", "drill_down_data"}
    bad = client.post("/api/anomalies", json={"customer_id": customers[0], "filter_metric": "Nope"})
    assert bad.status_code == 422
    text = client.get("/metrics").text
    assert 'fraudcore_requests_total{path="/detect/batch",method="POST",status="200"} 1' in text
    assert "fraudcore_transactions_scored_total 200" in text
    assert client.get("/docs").status_code == 200
    assert "/detect" in client.get("/openapi.json").json()["paths"]


def test_keys_and_scopes(detector, tmp_path):
    path = tmp_path / "keys.json"
    scorer = create_key(str(path), "checkout", ["score"])
    reviewer = create_key(str(path), "ana", ["review"])
    assert scorer not in path.read_text() and len(KeyRing.from_file(path)) == 2
    app = create_app(detector, db=f"sqlite:///{tmp_path / 's.db'}", api_keys=str(path))
    with TestClient(app) as c:
        t = {"customer_id": 1, "timestamp": "2024-05-01T10:00:00", "amount": 10.0, "event_id": "k1"}
        assert c.post("/detect", json=t).status_code == 401
        assert c.post("/detect", json=t, headers={"X-API-Key": "fc_wrong"}).status_code == 401
        assert c.post("/detect", json=t, headers={"X-API-Key": reviewer}).status_code == 403
        assert c.post("/detect", json=t, headers={"X-API-Key": scorer}).status_code == 200
        assert (
            c.post("/detect", json=t, headers={"Authorization": f"Bearer {scorer}"}).status_code
            == 200
        )
        assert c.get("/alerts", headers={"X-API-Key": scorer}).status_code == 200
        assert c.get("/alerts").status_code == 401
        assert c.post("/models/reload", headers={"X-API-Key": reviewer}).status_code == 403
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200


# -- a real server process --------------------------------------------------------------


def test_kill_9_and_restart_lose_no_history(model_file, detector, data, tmp_path, store_url):
    stream = as_json(data.iloc[N_TRAIN : N_TRAIN + 600])
    db = store_url
    server = Server(model_file, db, tmp_path)
    try:
        first = [server.http.post("/detect", json=t).json() for t in stream[:300]]
    finally:
        server.kill(signal.SIGKILL)  # no clean stop: no snapshot at exit
    server = Server(model_file, db, tmp_path)
    try:
        second = [server.http.post("/detect", json=t).json() for t in stream[300:]]
        retried = server.http.post("/detect", json=stream[10]).json()
    finally:
        server.kill(signal.SIGTERM)
    expected = detector.score(data.iloc[N_TRAIN : N_TRAIN + 600])
    np.testing.assert_array_equal(
        [r["risk_score"] for r in first + second], expected["risk_score"].to_numpy()
    )
    assert retried["duplicate"] and retried["risk_score"] == first[10]["risk_score"]
    with AlertStore(db) as store:
        assert store.last_seq() == 600


def test_ten_hot_swaps_under_load_fail_no_request(model_file, data, detector, tmp_path):
    other = tmp_path / "other.fc"
    FraudDetector(SCHEMA, supervised=False, neighbor_samples=2_000, random_state=1, n_jobs=2).fit(
        data.iloc[:N_TRAIN]
    ).save(other)
    broken = tmp_path / "broken.fc"
    broken.write_bytes(other.read_bytes()[:1000])
    keys = tmp_path / "keys.json"
    admin = create_key(str(keys), "ops", ["admin"])
    server = Server(
        model_file, f"sqlite:///{tmp_path / 'swap.db'}", tmp_path, ["--api-keys", str(keys)]
    )
    stream = as_json(data.iloc[N_TRAIN:])
    statuses, lock = [], threading.Lock()
    customers = sorted({t["customer_id"] for t in stream})

    def client(part):  # each thread its own customers, in time order
        import httpx

        with httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": admin}) as http:
            for t in stream:
                if customers.index(t["customer_id"]) % 4 == part:
                    code = http.post("/detect", json=t).status_code
                    with lock:
                        statuses.append(code)

    try:
        threads = [threading.Thread(target=client, args=(p,)) for p in range(4)]
        for t in threads:
            t.start()
        versions = []
        headers = {"X-API-Key": admin}
        for k in range(10):
            path = other if k % 2 == 0 else model_file
            swap = server.http.post("/models/reload", json={"path": str(path)}, headers=headers)
            assert swap.status_code == 200, swap.text
            versions.append(swap.json()["version"])
            refused = server.http.post(
                "/models/reload", json={"path": str(broken)}, headers=headers
            )
            assert refused.status_code == 422
        for t in threads:
            t.join()
        assert server.http.get("/health").json()["model_version"] == versions[-1]
    finally:
        server.kill(signal.SIGTERM)
    assert len(statuses) == len(stream)
    assert set(statuses) == {200}
    assert len(set(versions)) == 2


def test_serve_refuses_an_open_host_without_keys(model_file):
    proc = subprocess.run(
        [sys.executable, "-m", "fraudcore", "serve", str(model_file), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1 and "--api-keys" in proc.stderr


def test_the_service_is_not_imported_by_the_package():
    code = "import sys, fraudcore, fraudcore.cli; print(any(m.split('.')[0] in ('fastapi','sqlalchemy','uvicorn','dash','plotly','flask') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_openapi_keys_json_roundtrip(tmp_path):
    path = tmp_path / "k.json"
    create_key(str(path), "a", ["score", "review"])
    with pytest.raises(ValueError, match="already has a key named"):
        create_key(str(path), "a", ["score"])
    with pytest.raises(ValueError, match="scopes"):
        create_key(str(path), "b", ["root"])
    document = json.loads(path.read_text())
    assert document["keys"][0]["scopes"] == ["score", "review"]
    assert pd.Series([len(k["sha256"]) for k in document["keys"]]).eq(64).all()


def test_sighup_reloads_the_model_file(model_file, data, tmp_path):
    served = tmp_path / "served.fc"
    served.write_bytes(model_file.read_bytes())
    server = Server(served, f"sqlite:///{tmp_path / 'hup.db'}", tmp_path)
    try:
        before = server.http.get("/health").json()["model_version"]
        FraudDetector(
            SCHEMA, supervised=False, neighbor_samples=2_000, random_state=5, n_jobs=2
        ).fit(data.iloc[:N_TRAIN]).save(served)
        os.kill(server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        after = before
        while after == before and time.monotonic() < deadline:
            time.sleep(0.2)
            after = server.http.get("/health").json()["model_version"]
        assert after != before and after.startswith("served@")
        assert (
            server.http.post(
                "/detect", json=as_json(data.iloc[N_TRAIN : N_TRAIN + 1])[0]
            ).status_code
            == 200
        )
    finally:
        server.kill(signal.SIGTERM)


def test_serve_without_the_extra_says_how_to_install_it(model_file):
    code = (
        "import sys; sys.modules['uvicorn'] = None; from fraudcore.cli import main; "
        f"sys.exit(main(['serve', {str(model_file)!r}]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1
    assert "pip install 'fraudcore[service]'" in proc.stderr
