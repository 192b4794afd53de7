"""The analyst's desk: its callbacks as functions, on a store the service's
own scoring path filled (the demo builder), and the desk's access rules.

The browser tests (test_dashboard_browser.py) drive the same pages in a
real headless Chromium.
"""

import statistics

import numpy as np
import pytest

pytest.importorskip("dash", reason="the dashboard extra is not installed")

from fraudcore.dashboard import alert, customers, model, overview, queue
from fraudcore.dashboard.app import create_dashboard, route
from fraudcore.dashboard.desk import ACTIONS, Desk, NotAllowed
from fraudcore.service.auth import KeyRing, hash_key
from fraudcore.service.demo import build_demo
from fraudcore.service.queries import LEVELS
from fraudcore.service.store import AlertStore, IllegalTransition


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(model path, store URL) of a small demo: scored by the pipeline, half
    the alerts decided by their labels, missed fraud as chargebacks."""
    return build_demo(tmp_path_factory.mktemp("demo"), n_transactions=12_000, weeks=3)


@pytest.fixture
def store(demo, tmp_path):
    """A copy of the demo store per test (decisions change it)."""
    import shutil

    path = tmp_path / "desk.db"
    shutil.copy(demo[1].removeprefix("sqlite:///"), path)
    with AlertStore(f"sqlite:///{path}") as s:
        yield s


KEYS = KeyRing(
    [
        {"name": "rita", "scopes": ["review"], "sha256": hash_key("rita-key")},
        {"name": "sam", "scopes": ["score"], "sha256": hash_key("sam-key")},
    ]
)


def open_alerts(store, n=5):
    rows, _ = store.alert_queue(status="OPEN", limit=n)
    return rows


# -- the desk's access rules ------------------------------------------------------------


def test_keys_desk_needs_a_session_and_review_scope_to_decide(store):
    desk = Desk(store, keys=KEYS)
    assert desk.mode == "keys"
    target = open_alerts(store)[0]
    with pytest.raises(NotAllowed, match="sign in"):
        desk.decide(None, target["id"], "fraud")
    with pytest.raises(NotAllowed, match="not accepted"):
        desk.sign_in("wrong")
    token, who = desk.sign_in("sam-key")
    assert who.name == "sam" and not desk.may_decide(token)
    with pytest.raises(NotAllowed, match="lacks the scope 'review'"):
        desk.decide(token, target["id"], "fraud")
    token, who = desk.sign_in("rita-key")
    moved = desk.decide(
        token, target["id"], "fraud", note=" seen ", version=target["version"], analyst="mallory"
    )
    assert moved["status"] == "CONFIRMED_FRAUD"
    audit = store.get_alert(target["id"])["audit"]
    # recorded under the key's name, not the typed one; the note trimmed
    assert (audit[-1]["analyst"], audit[-1]["note"], audit[-1]["to_status"]) == (
        "rita",
        "seen",
        "CONFIRMED_FRAUD",
    )
    # the decision is a label for the next model (PUT /alerts' store code)
    labels = store.labels_frame()
    assert labels.set_index("event_id").loc[target["event_id"], "label"] == 1
    desk.sign_out(token)
    assert desk.identity(token) is None


def test_sessions_expire(store):
    desk = Desk(store, keys=KEYS, session_seconds=-1)
    token, _ = desk.sign_in("rita-key")
    assert desk.identity(token) is None


def test_read_only_desk_refuses_decisions_and_open_desk_needs_a_name(store):
    target = open_alerts(store)[0]
    with pytest.raises(NotAllowed, match="read-only"):
        Desk(store, read_only=True).decide(None, target["id"], "close")
    desk = Desk(store)
    assert desk.mode == "open" and desk.may_decide(None)
    with pytest.raises(ValueError, match="analyst"):
        desk.decide(None, target["id"], "close", analyst="  ")
    with pytest.raises(ValueError, match="action"):
        desk.decide(None, target["id"], "delete", analyst="ann")
    desk.decide(None, target["id"], "investigate", analyst="ann")
    with pytest.raises(IllegalTransition):
        desk.decide(None, target["id"], "investigate", analyst="ann")
    assert store.get_alert(target["id"])["assigned_to"] == "ann"


def test_decision_outcome_reports_conflicts_instead_of_overwriting(store):
    desk = Desk(store)
    target = open_alerts(store)[0]
    state = {"id": target["id"], "version": target["version"]}
    message, moved = alert.decision_outcome(desk, None, state, "investigate", "", "ann")
    assert moved["status"] == "INVESTIGATING" and "INVESTIGATING" in message
    # a second analyst still looking at the old version
    message, moved = alert.decision_outcome(desk, None, state, "fraud", "", "bob")
    assert moved is None and "someone else changed" in message
    assert store.get_alert(target["id"])["status"] == "INVESTIGATING"
    message, moved = alert.decision_outcome(desk, None, state, "close", "", "")
    assert moved is None and "analyst" in message


# -- the queue --------------------------------------------------------------------------


def test_queue_pages_in_queue_order_with_filters_and_sorting(store):
    rows, count, page, text = queue.queue_view(store, status=["OPEN"], page=0, page_size=10)
    reference, total = store.alert_queue(status=["OPEN"], limit=10)
    assert [r["id"] for r in rows] == [r["id"] for r in reference]
    assert count == -(-total // 10) and page == 0
    assert text.startswith(f"alerts 1–10 of {total:,}")
    assert rows[0]["alert"] == f"[#{reference[0]['id']}](alert/{reference[0]['id']})"
    # the last page, and a page past the end shows the last one
    last, _, page, _ = queue.queue_view(store, status=["OPEN"], page=count + 5, page_size=10)
    assert page == count - 1 and 1 <= len(last) <= 10
    # sorting by risk score, highest first; unsortable columns are ignored
    rows, *_ = queue.queue_view(
        store,
        sort_by=[
            {"column_id": "risk_score", "direction": "desc"},
            {"column_id": "country", "direction": "asc"},
        ],
        page_size=50,
    )
    scores = [r["risk_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    # filters: a customer, a level, a date range (end inclusive)
    some = rows[0]
    only, *_ = queue.queue_view(store, customer=some["customer_id"], page_size=100)
    assert only and {r["customer_id"] for r in only} == {some["customer_id"]}
    day = some["created_at"][:10]
    dated, *_ = queue.queue_view(store, start_date=day, end_date=day, page_size=100)
    assert dated and {r["created_at"][:10] for r in dated} == {day}
    none, count, page, text = queue.queue_view(
        store, level=["LOW"], customer="no-such-customer", page=7
    )
    assert none == [] and (count, page) == (1, 0) and text == "no alerts match these filters"
    # the Alert column sorts by id; Level in its own order (CRITICAL first), not by name
    by_id, *_ = queue.queue_view(store, sort_by=[{"column_id": "alert", "direction": "desc"}])
    ids = [r["id"] for r in by_id]
    assert ids == sorted(ids, reverse=True) and "id desc" in _[-1]
    by_level, *_ = queue.queue_view(
        store, status=None, sort_by=[{"column_id": "risk_level", "direction": "asc"}], page_size=500
    )
    order = [LEVELS.index(r["risk_level"]) for r in by_level]
    assert order == sorted(order)
    with pytest.raises(ValueError, match="start date"):
        queue.queue_view(store, start_date="yesterday")


def test_queue_filters_by_country(store):
    rows, _ = store.alert_queue(limit=1)
    country = rows[0]["country"]
    found, *_ = queue.queue_view(store, country=country, status=None, page_size=200)
    assert found and {r["country"] for r in found} == {country}


# -- the alert page ----------------------------------------------------------------------


def test_alert_data_has_reasons_history_and_the_customers_usual(store):
    target = open_alerts(store)[0]
    data = alert.alert_data(store, target["id"])
    a = data["alert"]
    assert a["id"] == target["id"] and a["reasons"] and all(r["text"] for r in a["reasons"])
    assert any(h["event_id"] == a["event_id"] for h in data["history"])
    others = [h for h in data["history"] if h["event_id"] != a["event_id"]]
    for name, value, usual, n in data["usual"]:
        assert value == a["features"][name] and n == len(others)
        if others:
            assert usual == pytest.approx(statistics.median(h["features"][name] for h in others))
    for r in data["related"]:
        assert r["customer_id"] != a["customer_id"] and r["shared"] in ("device", "ip", "device+ip")


def test_allowed_actions_follow_the_workflow():
    assert alert.allowed_actions("OPEN") == set(ACTIONS)
    assert alert.allowed_actions("CONFIRMED_FRAUD") == {"close"}
    assert alert.allowed_actions("CLOSED") == set()


# -- customer explorer, overview, model ---------------------------------------------------


def test_customer_view_follows_customer_and_metric(store):
    customer = store.customer_ids(limit=1)[0]
    reference = store.customer_anomalies(customer, "TotalSpent")
    figure, rows, text = customers.customer_view(store, customer, "TotalSpent")
    bar = figure["data"][0]
    assert list(bar["y"]) == [r["value"] for r in reference["anomaly_list"]]
    assert len(bar["y"]) == min(10, len(reference["drill_down_data"]))
    assert len(rows) == min(customers.DRILL_DOWN, len(reference["drill_down_data"]))
    assert text.startswith(f"{reference['n_transactions']:,} transactions")
    other, _, _ = customers.customer_view(store, customer, "risk_score")
    assert list(other["data"][0]["y"]) == sorted(other["data"][0]["y"], reverse=True)
    empty, rows, _ = customers.customer_view(store, "no-such-customer", "TotalSpent")
    assert rows == [] and "no transactions" in empty["layout"]["annotations"][0]["text"]


def test_overview_cards_are_the_stores_numbers(store):
    cards, trends, countries, devices, browsers, scores = overview.overview_view(store)
    summary, stats = store.summary(), store.statistics()
    values = [c.children[1].children for c in cards]
    assert values[0] == f"{summary['transactions']:,}"
    assert values[1] == f"{stats['total']:,}"
    assert values[2] == f"{stats['by_status']['OPEN']:,}"
    assert values[4] == f"{stats['precision']:.1%}"
    assert sum(trends["data"][0]["y"]) == stats["total"]
    assert sum(scores["data"][0]["y"]) == summary["transactions"]
    threshold = overview.threshold_of(store)
    assert scores["layout"]["shapes"][0]["x0"] == threshold
    # the busiest countries and devices by alerts, as the store counts them
    by_country = sorted(
        (r for r in store.fraud_geography() if r["country"] is not None),
        key=lambda r: (-r["alerts"], -r["transactions"], r["country"]),
    )[: overview.TOP]
    assert list(countries["data"][0]["x"]) == [r["country"] for r in by_country]
    assert list(countries["data"][1]["y"]) == [r["confirmed"] for r in by_country]
    assert max(devices["data"][0]["y"]) == max(r["alerts"] for r in store.fraud_devices())
    # generated transactions have no browser: said, not drawn as "(unknown)"
    assert "no browser" in browsers["layout"]["annotations"][0]["text"]


def test_what_if_equals_counting_the_stored_scores(store):
    import sqlalchemy as sa

    with store._engine.connect() as c:
        scores = np.array(
            c.execute(sa.text("SELECT risk_score FROM anomaly_scores")).scalars().all()
        )
    latest = store.labels_frame().set_index("event_id")["label"]
    with store._engine.connect() as c:
        by_event = dict(c.execute(sa.text("SELECT event_id, risk_score FROM anomaly_scores")).all())
    labelled = {e: (by_event[e], y) for e, y in latest.items() if e in by_event}
    histogram = store.score_histogram(bins=model.BINS)
    days = store.active_days()
    assert days == len(store.fraud_trends("day"))
    # at the model's own threshold the what-if raises the alerts the store holds
    at_threshold = model.what_if(histogram, overview.threshold_of(store), days)
    assert at_threshold["alerts"] == store.statistics()["total"]
    for threshold in (0.5, 0.9, 0.97, 0.995):
        found = model.what_if(histogram, threshold, days)
        assert found["alerts"] == int((scores >= threshold).sum())
        assert found["per_day"] == pytest.approx(found["alerts"] / days)
        fraud = [s for s, y in labelled.values() if y == 1]
        above = [y for s, y in labelled.values() if s >= threshold]
        if above:
            assert found["precision"] == pytest.approx(sum(above) / len(above))
        assert found["recall"] == pytest.approx(sum(s >= threshold for s in fraud) / len(fraud))


# -- routing and the app ------------------------------------------------------------------


def test_routes_need_sign_in_on_a_keys_desk(store):
    desk = Desk(store, keys=KEYS)
    app = create_dashboard(desk)
    page, bar = route(app, desk, "/dashboard/", "", None)
    assert "Sign in" in str(page) and "signin-key" in str(bar)
    token, _ = desk.sign_in("rita-key")
    target = open_alerts(store)[0]
    for path, expected in (
        ("/dashboard/", "queue-table"),
        ("/dashboard/overview", "overview-cards"),
        ("/dashboard/customers", "explorer-customer"),
        ("/dashboard/model", "whatif-threshold"),
        (f"/dashboard/alert/{target['id']}", "decision-buttons"),
        ("/dashboard/alert/999999", "no such alert"),
        ("/dashboard/alert/x", "not an alert number"),
        ("/dashboard/nowhere", "no page"),
    ):
        page, bar = route(app, desk, path, "", token)
        assert expected in str(page), path
        assert "signed in as rita" in str(bar)


def test_serve_mounts_the_desk_next_to_the_api(demo, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from fraudcore.service.app import create_app

    db = tmp_path / "served.db"
    shutil.copy(demo[1].removeprefix("sqlite:///"), db)
    app = create_app(demo[0], db=f"sqlite:///{db}", dashboard=True)
    with TestClient(app) as client:
        assert client.get("/dashboard", follow_redirects=False).status_code == 307
        page = client.get("/dashboard/")
        assert page.status_code == 200 and "fraudcore desk" in page.text
        layout = client.get("/dashboard/_dash-layout")
        assert layout.status_code == 200 and "page-content" in layout.text
        assert client.get("/health").status_code == 200
        # the model page reads what /models/info says, recorded in the store
        info = client.get("/models/info").json()
        recorded = AlertStore(f"sqlite:///{db}").latest_model()
        assert recorded["metrics"]["threshold"] == info["threshold"]
        assert recorded["metrics"]["detectors"] == info["detectors"]


def test_the_desk_alone_is_read_only_without_keys(demo, store):
    from fastapi.testclient import TestClient

    from fraudcore.dashboard import standalone_app

    app = standalone_app(demo[1])
    with TestClient(app) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard/"
        assert "fraudcore desk" in client.get("/dashboard/").text
    desk = app.state.desk
    assert desk.mode == "read-only" and not desk.may_decide(None)
    # read-only with keys too: a review key signs in to read, not to decide
    target = open_alerts(store)[0]
    desk = Desk(store, keys=KEYS, read_only=True)
    token, _ = desk.sign_in("rita-key")
    assert desk.identity(token) is not None and not desk.may_decide(token)
    with pytest.raises(NotAllowed, match="read-only"):
        desk.decide(token, target["id"], "fraud")


def dash_request(client, app, output_of, cookie=None):
    """POST one of the desk's callbacks as the browser would (all inputs None)."""
    key = next(k for k in app.callback_map if output_of in k)
    spec = app.callback_map[key]
    body = {
        "output": key,
        "outputs": [
            {"id": o.split(".")[0], "property": o.split(".")[1]}
            for o in key.strip(".").split("...")
        ],
        "inputs": [{**i, "value": None} for i in spec["inputs"]],
        "state": [{**i, "value": None} for i in spec["state"]],
        "changedPropIds": [],
    }
    headers = {"Cookie": f"fraudcore_desk={cookie}"} if cookie else {}
    return client.post("/dashboard/_dash-update-component", json=body, headers=headers)


def test_callbacks_answer_only_signed_in_sessions(demo, tmp_path):
    """A crafted callback request without a session (or with a stale one)
    gets nothing; with a signed-in key it gets the data."""
    import shutil

    from fastapi.testclient import TestClient

    from fraudcore.service.app import create_app

    db = tmp_path / "guarded.db"
    shutil.copy(demo[1].removeprefix("sqlite:///"), db)
    app = create_app(demo[0], db=f"sqlite:///{db}", api_keys=KEYS, dashboard=True)
    desk = app.state.desk
    with TestClient(app) as client:
        dash_app = desk.dash_app
        for output in ("queue-table.data", "overview-cards.children", "explorer-chart.figure"):
            assert dash_request(client, dash_app, output).status_code == 204, output
            assert dash_request(client, dash_app, output, "stale").status_code == 204, output
        token, _ = desk.sign_in("sam-key")  # any accepted key may read
        answer = dash_request(client, dash_app, "overview-cards.children", token)
        assert answer.status_code == 200 and "Transactions scored" in answer.text


def test_fraudcore_dashboard_refuses_an_open_host_without_keys(demo):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "fraudcore", "dashboard", "--db", demo[1], "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0 and "needs --api-keys" in proc.stderr


def test_serve_demo_refuses_a_model_too_and_serve_needs_one(tmp_path, capsys):
    from fraudcore.cli import main

    assert main(["serve", "model.fc", "--demo", "--demo-dir", str(tmp_path)]) != 0
    assert "not both" in capsys.readouterr().err
    assert main(["serve"]) != 0
    assert "give a model file" in capsys.readouterr().err


def test_the_demo_on_online_retail_shows_real_customers(shared_data, tmp_path):
    """The Online Retail project's own view on its own data: a model trained
    on the file, its last weeks scored into the store, and the customer
    explorer listing the file's real customers."""
    import pandas as pd

    path = shared_data / "online_retail.csv.gz"
    _, url = build_demo(tmp_path, data=str(path), weeks=2)
    raw = pd.read_csv(path, usecols=["CustomerID"], encoding="latin-1").dropna()
    real = {str(int(c)) for c in raw["CustomerID"].unique()}
    with AlertStore(url) as store:
        shown = store.customer_ids(limit=customers.MAX_CUSTOMERS)
        assert shown and set(shown) <= real
        figure, rows, _ = customers.customer_view(store, shown[0], "Quantity")
        assert rows and len(figure["data"][0]["y"]) == min(10, len(rows))
        stats = store.statistics()
        # cancellations are scored but never alerted: the what-if leaves them out
        histogram = store.score_histogram(bins=model.BINS, labels=False)
        at = model.what_if(histogram, overview.threshold_of(store), store.active_days())
        everything = sum(b["transactions"] for b in histogram if b["lower"] >= 0.98 - 1e-12)
    assert stats["total"] > 0 and at["alerts"] == stats["total"]
    assert everything > at["alerts"], "Online Retail's cancellations should score above it too"
