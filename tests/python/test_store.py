"""The alert store on SQLite and on a real PostgreSQL: the write path and its
all-or-nothing batches, the workflow, labels, snapshots, the dashboards'
aggregates (against pandas over the same items) and the migrations."""

import datetime as dt
import itertools

import pandas as pd
import pytest

pytest.importorskip("sqlalchemy", reason="the service extra is not installed")

from sqlalchemy import func, insert, inspect, select, update

from fraudcore.service import migrations
from fraudcore.service import tables as t
from fraudcore.service.engine import connect
from fraudcore.service.store import (
    TRANSITIONS,
    AlertStore,
    DuplicateEvent,
    IllegalTransition,
    NotFound,
    SchemaError,
    VersionConflict,
)

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def make_item(n, *, customer=None, alert=None, minutes=None, **changes):
    """A scored item; every 4th one an alert unless alert is given."""
    alert = n % 4 == 0 if alert is None else alert
    level = ("CRITICAL", "HIGH", "MEDIUM", "LOW")[n % 4] if alert else "LOW"
    item = {
        "event_id": f"e{n}",
        "customer_id": customer or f"c{n % 5}",
        "occurred_at": T0 + dt.timedelta(minutes=n * 37 if minutes is None else minutes),
        "amount": 10.0 + n,
        "transaction": {"id": f"e{n}", "amount": 10.0 + n, "Quantity": n % 7, "note": "ü"},
        "features": {"amount": 10.0 + n, "hist_freq": float(n % 3), "quantity": float(n % 7)},
        "scores": {"isolation_forest": 0.5 + n / 1000, "lof": 0.25},
        "risk_score": 0.9 + (n % 97) / 1000,
        "fraud_probability": None if n % 2 else 0.125,
        "risk_level": level,
        "priority": ("CRITICAL", "HIGH", "MEDIUM", "LOW").index(level) + 1 if alert else 5,
        "confidence": 0.75,
        "is_alert": alert,
        "reasons": [{"feature": "amount", "value": 10.0 + n, "text": "large amount"}],
        "model_version": "m1",
        "country": ("FR", "UK", None)[n % 3],
        "device": f"d{n % 2}",
        "browser": ("Chrome", "Safari")[n % 2],
        "ip": "10.0.0.1",
    }
    item.update(changes)
    return item


@pytest.fixture
def store(store_url):
    with AlertStore(store_url) as opened:
        yield opened


def count(store, table):
    with store._engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar()


def test_url_forms_and_ping(store):
    assert store.ping()
    assert store.dialect in ("sqlite", "postgresql")
    assert store.schema_version == migrations.HEAD
    if store.dialect == "postgresql":
        assert store.url.startswith("postgresql+psycopg://")
        plain = store.url.replace("postgresql+psycopg://", "postgresql://")
        with AlertStore(plain) as again:
            assert again.dialect == "postgresql" and again.ping()
    with pytest.raises(ValueError, match="expected sqlite:///PATH or postgresql"):
        AlertStore("mysql://somewhere/db")


def test_write_scored_round_trip(store):
    items = [make_item(n) for n in range(9)]
    ids = store.write_scored(items)
    assert [i is not None for i in ids] == [item["is_alert"] for item in items]
    assert len({i for i in ids if i is not None}) == 3
    stored = store.existing([f"e{n}" for n in range(12)])
    assert sorted(stored) == [f"e{n}" for n in range(9)]
    for item, alert_id in zip(items, ids):
        assert stored[item["event_id"]] == {**item, "alert_id": alert_id}
    assert stored["e0"]["occurred_at"].tzinfo is not None
    assert store.last_seq() == 9
    seqs = [seq for seq, _ in store.transactions_after(0)]
    assert seqs == sorted(seqs) and len(seqs) == 9
    assert store.transactions_after(0, limit=2) == [(seqs[0], items[0]["transaction"])] + [
        (seqs[1], items[1]["transaction"])
    ]
    assert [raw["id"] for _, raw in store.transactions_after(seqs[6])] == ["e7", "e8"]


def test_occurred_at_forms(store):
    nanoseconds = int(T0.timestamp()) * 10**9 + 123_456_000
    naive = dt.datetime(2024, 3, 1, 9, 30)
    paris = dt.datetime(2024, 3, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    store.write_scored(
        [
            make_item(1, occurred_at=nanoseconds),
            make_item(2, occurred_at=naive),
            make_item(3, occurred_at=paris),
            make_item(5, occurred_at=pd.Timestamp("2024-03-01 09:30", tz="UTC")),
        ]
    )
    stored = store.existing(["e1", "e2", "e3", "e5"])
    assert stored["e1"]["occurred_at"] == T0 + dt.timedelta(microseconds=123_456)
    assert {stored[e]["occurred_at"] for e in ("e2", "e3", "e5")} == {T0}
    with pytest.raises(ValueError, match="occurred_at"):
        store.write_scored([make_item(6, occurred_at="yesterday")])


def test_duplicates_are_refused_and_write_nothing(store):
    store.write_scored([make_item(1)])
    with pytest.raises(DuplicateEvent, match="already stored") as caught:
        store.write_scored([make_item(2), make_item(1), make_item(3)])
    assert caught.value.event_ids == ["e1"]
    with pytest.raises(DuplicateEvent, match="repeated in the batch"):
        store.write_scored([make_item(4), make_item(4)])
    assert store.existing(["e2", "e3", "e4"]) == {}
    assert count(store, t.transactions) == 1


def test_a_batch_failing_midway_leaves_nothing(store):
    store.write_scored([make_item(0)])
    before = {table.name: count(store, table) for table in t.metadata.sorted_tables}
    with pytest.raises(ValueError, match=r"scored item 2 \(event_id 'e3'\): no 'amount'"):
        bad = make_item(3)
        del bad["amount"]
        store.write_scored([make_item(1), make_item(2), bad, make_item(4)])
    # A failure inside the transaction, after transactions, features, scores
    # and alerts were inserted: the last statement (the profiles) fails.
    marks = ", ".join(["?" if store.dialect == "sqlite" else "%s"] * 6)
    store._writer.upsert_profiles = f"INSERT INTO no_such_table VALUES ({marks})"
    with pytest.raises(Exception, match="no_such_table"):
        store.write_scored([make_item(n) for n in range(1, 9)])
    after = {table.name: count(store, table) for table in t.metadata.sorted_tables}
    assert after == before
    assert store.existing([f"e{n}" for n in range(1, 9)]) == {}
    assert store.last_seq() == 1


def test_user_profiles_are_maintained(store):
    items = [make_item(n) for n in range(20)]
    store.write_scored(items[:7])
    store.write_scored(items[7:])
    frame = pd.DataFrame(items)
    for customer, rows in frame.groupby("customer_id"):
        assert store.customer_profile(customer) == {
            "customer_id": customer,
            "first_seen": rows["occurred_at"].min(),
            "last_seen": rows["occurred_at"].max(),
            "n_transactions": len(rows),
            "total_amount": pytest.approx(rows["amount"].sum()),
            "n_alerts": int(rows["is_alert"].sum()),
        }
    with pytest.raises(NotFound):
        store.customer_profile("nobody")
    by_alerts = frame.groupby("customer_id")["is_alert"].sum()
    order = store.customer_ids()
    assert sorted(order) == sorted(by_alerts.index)
    assert list(by_alerts[order]) == sorted(by_alerts, reverse=True)
    assert len(store.customer_ids(limit=2)) == 2


def test_snapshots_keep_the_latest(store):
    assert store.latest_snapshot() is None
    for k in range(5):
        store.save_snapshot(bytes([k]) * 1000, 10 * k, f"m{k}")
    assert store.latest_snapshot() == (bytes([4]) * 1000, 40, "m4")
    assert count(store, t.state_snapshots) == 3


def _alerts(store, n=40):
    items = [make_item(k, alert=k % 3 != 2, minutes=k) for k in range(n)]
    ids = store.write_scored(items)
    return items, [i for i in ids if i is not None]


def test_list_alerts_pages_in_queue_order(store):
    items, ids = _alerts(store)
    everything, cursor = store.list_alerts(limit=1000)
    assert cursor is None and len(everything) == len(ids)
    keys = [(a["priority"], a["created_at"], a["id"]) for a in everything]
    assert keys == sorted(keys)
    pages, cursor = [], None
    for _ in range(100):
        page, cursor = store.list_alerts(limit=4, cursor=cursor)
        pages.extend(page)
        if cursor is None:
            break
    assert [a["id"] for a in pages] == [a["id"] for a in everything]
    first = everything[0]
    assert first["status"] == "OPEN" and first["version"] == 0
    assert first["amount"] == store.existing([first["event_id"]])[first["event_id"]]["amount"]

    store.move_alert(ids[0], "INVESTIGATING", analyst="ana")
    page, _ = store.list_alerts(status="INVESTIGATING")
    assert [a["id"] for a in page] == [ids[0]]
    page, _ = store.list_alerts(status=["OPEN", "INVESTIGATING"], level="HIGH")
    assert {a["risk_level"] for a in page} == {"HIGH"} and len(page) == sum(
        1 for it in items if it["is_alert"] and it["risk_level"] == "HIGH"
    )
    page, _ = store.list_alerts(customer_id="c1")
    assert {a["customer_id"] for a in page} == {"c1"}
    middle = everything[len(everything) // 2]["created_at"]
    early, _ = store.list_alerts(until=middle, limit=1000)
    late, _ = store.list_alerts(since=middle, limit=1000)
    assert len(early) + len(late) == len(everything)
    assert all(a["created_at"] < middle for a in early)
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        store.list_alerts(limit=1001)
    with pytest.raises(ValueError, match="not one list_alerts returned"):
        store.list_alerts(cursor="garbage")
    with pytest.raises(ValueError, match="status 'DONE' is not one of"):
        store.list_alerts(status="DONE")


def test_get_alert(store):
    items, ids = _alerts(store, 4)
    store.move_alert(ids[0], "INVESTIGATING", analyst="ana", note="looking")
    alert = store.get_alert(ids[0])
    item = items[0]
    assert alert["event_id"] == item["event_id"] and alert["status"] == "INVESTIGATING"
    assert alert["transaction"] == item["transaction"]
    assert alert["features"] == item["features"] and alert["scores"] == item["scores"]
    assert alert["reasons"] == item["reasons"]
    assert alert["assigned_to"] == "ana" and alert["version"] == 1
    assert [
        (h["from_status"], h["to_status"], h["analyst"], h["note"]) for h in alert["audit"]
    ] == [("OPEN", "INVESTIGATING", "ana", "looking")]
    with pytest.raises(NotFound, match="no alert 999999"):
        store.get_alert(999999)


def _path_to(status):
    """A legal path of moves from OPEN to status."""
    return {
        "OPEN": [],
        "INVESTIGATING": ["INVESTIGATING"],
        "CONFIRMED_FRAUD": ["INVESTIGATING", "CONFIRMED_FRAUD"],
        "FALSE_POSITIVE": ["FALSE_POSITIVE"],
        "CLOSED": ["CLOSED"],
    }[status]


def test_every_transition_is_allowed_or_refused_as_the_table_says(store):
    pairs = list(itertools.product(TRANSITIONS, TRANSITIONS))
    items = [make_item(k, alert=True) for k in range(len(pairs))]
    ids = store.write_scored(items)
    for alert_id, (start, target) in zip(ids, pairs):
        for step in _path_to(start):
            store.move_alert(alert_id, step, analyst="a")
        version = store.get_alert(alert_id)["version"]
        if target in TRANSITIONS[start]:
            moved = store.move_alert(alert_id, target, analyst="b", expected_version=version)
            assert (moved["status"], moved["version"]) == (target, version + 1)
        else:
            with pytest.raises(IllegalTransition, match=f"from {start} to {target}"):
                store.move_alert(alert_id, target, analyst="b", expected_version=version)
            assert store.get_alert(alert_id)["version"] == version


def test_versions_decisions_and_labels(store):
    _, ids = _alerts(store, 8)
    first, second = ids[0], ids[1]
    moved = store.move_alert(first, "INVESTIGATING", analyst="ana", expected_version=0)
    assert moved["version"] == 1 and moved["assigned_to"] == "ana"
    with pytest.raises(VersionConflict, match="at version 1, not 0"):
        store.move_alert(first, "CONFIRMED_FRAUD", analyst="bob", expected_version=0)
    decided = store.move_alert(first, "CONFIRMED_FRAUD", analyst="bob", expected_version=1)
    assert decided["decision"] == "CONFIRMED_FRAUD" and decided["assigned_to"] == "ana"
    closed = store.move_alert(first, "CLOSED", analyst="bob")
    assert closed["decision"] == "CONFIRMED_FRAUD" and closed["version"] == 3
    store.move_alert(second, "FALSE_POSITIVE", analyst="cy")
    with pytest.raises(NotFound):
        store.move_alert(999999, "CLOSED", analyst="cy")
    with pytest.raises(ValueError, match="status 'DONE'"):
        store.move_alert(second, "DONE", analyst="cy")
    with pytest.raises(ValueError, match="analyst"):
        store.move_alert(second, "CLOSED", analyst=" ")
    frame = store.labels_frame()
    events = {a["id"]: a["event_id"] for a in store.list_alerts(limit=1000)[0]}
    assert dict(zip(frame["event_id"], frame["label"])) == {events[first]: 1, events[second]: 0}
    assert set(frame["source"]) == {"analyst"}
    stats = store.statistics()
    assert stats["by_status"]["CLOSED"] == 1 and stats["by_status"]["FALSE_POSITIVE"] == 1
    assert stats["total"] == len(ids) and sum(stats["by_status"].values()) == len(ids)
    assert stats["confirmed_fraud"] == 1 and stats["false_positive"] == 1
    assert stats["precision"] == 0.5
    assert sum(stats["by_level"].values()) == len(ids)


def test_statistics_without_decisions(store):
    assert store.statistics()["precision"] is None
    assert store.statistics()["total"] == 0


def test_labels_latest_wins(store):
    store.write_scored([make_item(1), make_item(2)])
    added = store.add_labels(
        [
            {"event_id": "e1", "label": 1, "time": "2024-03-02T00:00:00Z", "source": "chargeback"},
            {"event_id": "e1", "label": 0, "time": "2024-03-01T00:00:00Z"},  # older: loses
            {"event_id": "e2", "label": 0},
            {"event_id": "elsewhere", "label": 1, "time": T0},
        ]
    )
    assert added == 4
    store.add_labels([{"event_id": "e2", "label": 1, "time": dt.datetime.now(UTC)}])
    frame = store.labels_frame()
    assert list(frame.columns) == ["event_id", "label", "label_time", "source"]
    assert dict(zip(frame["event_id"], frame["label"])) == {"e1": 1, "e2": 1, "elsewhere": 1}
    assert frame.set_index("event_id").loc["e1", "source"] == "chargeback"
    with pytest.raises(ValueError, match="label must be 0 or 1"):
        store.add_labels([{"event_id": "e1", "label": 2}])
    with pytest.raises(ValueError, match="needs event_id and label"):
        store.add_labels([{"label": 1}])
    assert store.add_labels([]) == 0


def test_models(store):
    assert store.latest_model() is None
    store.record_model("m1", "abc", {"auc": 0.9})
    store.record_model("m2", "def", {"auc": 0.95, "n": 3})
    latest = store.latest_model()
    assert (latest["model_version"], latest["fingerprint"], latest["metrics"]) == (
        "m2",
        "def",
        {"auc": 0.95, "n": 3},
    )
    assert latest["loaded_at"].tzinfo is not None


def test_dashboard_aggregates_match_pandas(store):
    items = [make_item(n, minutes=n * 300) for n in range(60)]
    store.write_scored(items[:30])
    store.write_scored(items[30:])
    store.add_labels([{"event_id": f"e{n}", "label": int(n % 8 == 0)} for n in range(0, 60, 2)])
    frame = pd.DataFrame(items)
    frame["fraud"] = [n % 8 == 0 for n in range(60)]

    summary = store.summary()
    assert summary["transactions"] == 60 and summary["alerts"] == int(frame["is_alert"].sum())
    assert summary["alert_rate"] == pytest.approx(frame["is_alert"].mean())
    assert summary["total_amount"] == pytest.approx(frame["amount"].sum())
    assert summary["alerted_amount"] == pytest.approx(frame.loc[frame["is_alert"], "amount"].sum())
    assert summary["confirmed_fraud"] == int(frame["fraud"].sum())
    levels = frame.groupby("risk_level").agg(
        transactions=("amount", "size"), alerts=("is_alert", "sum")
    )
    assert summary["by_level"] == {
        k: {"transactions": int(r.transactions), "alerts": int(r.alerts)}
        for k, r in levels.iterrows()
    }

    for bucket, freq in (("hour", "h"), ("day", "D"), ("week", "W-MON"), ("month", "MS")):
        if bucket == "week":
            keys = (
                frame["occurred_at"]
                .dt.tz_convert(None)
                .dt.to_period("W-SUN")
                .dt.start_time.dt.tz_localize("UTC")
            )
        else:
            keys = (
                frame["occurred_at"].dt.tz_convert(None).dt.floor(freq)
                if freq != "MS"
                else (frame["occurred_at"].dt.tz_convert(None).dt.to_period("M").dt.start_time)
            )
            keys = keys.dt.tz_localize("UTC")
        expected = frame.groupby(keys).agg(
            transactions=("amount", "size"), alerts=("is_alert", "sum"), confirmed=("fraud", "sum")
        )
        got = store.fraud_trends(bucket)
        assert [r["bucket"] for r in got] == list(expected.index.to_pydatetime())
        assert [(r["transactions"], r["alerts"], r["confirmed"]) for r in got] == [
            tuple(int(v) for v in row) for row in expected.itertuples(index=False)
        ]
    with pytest.raises(ValueError, match="bucket must be one of"):
        store.fraud_trends("year")

    for method, column in (
        (store.fraud_geography, "country"),
        (store.fraud_devices, "device"),
        (store.fraud_browsers, "browser"),
    ):
        expected = frame.groupby(frame[column].fillna("?")).agg(
            transactions=("amount", "size"), alerts=("is_alert", "sum"), confirmed=("fraud", "sum")
        )
        got = {(r[column] or "?"): r for r in method()}
        assert sorted(got) == sorted(expected.index)
        for key, row in expected.iterrows():
            assert (got[key]["transactions"], got[key]["alerts"], got[key]["confirmed"]) == tuple(
                int(v) for v in row
            )
            assert got[key]["alert_rate"] == pytest.approx(row.alerts / row.transactions)


def test_customer_anomalies(store):
    items = [make_item(n, minutes=-n) for n in range(40)]
    store.write_scored(items)
    mine = pd.DataFrame([it for it in items if it["customer_id"] == "c2"])
    mine = mine.sort_values("occurred_at")
    for metric, expected in (
        ("TotalSpent", mine["amount"]),
        ("HistFreq", mine["features"].map(lambda f: f["hist_freq"])),
        ("Quantity", mine["features"].map(lambda f: f["quantity"])),
        ("risk_score", mine["risk_score"]),
    ):
        view = store.customer_anomalies("c2", metric)
        assert [p["value"] for p in view["chart_data"]] == pytest.approx(list(expected))
        times = [p["occurred_at"] for p in view["chart_data"]]
        assert times == sorted(times) == list(mine["occurred_at"])
        assert [r["event_id"] for r in view["drill_down_data"]] == list(mine["event_id"])
    top = mine.sort_values("risk_score", ascending=False, kind="stable").head(10)
    view = store.customer_anomalies("c2", "risk_score")
    assert [r["risk_score"] for r in view["anomaly_list"]] == list(top["risk_score"])
    assert len(view["anomaly_list"]) == min(10, len(mine))
    assert view["n_transactions"] == len(mine)
    # limited: the latest transactions, still in time order; the top 10 of all of them
    latest = store.customer_anomalies("c2", "risk_score", limit=3)
    assert [r["event_id"] for r in latest["drill_down_data"]] == list(mine["event_id"][-3:])
    assert latest["anomaly_list"] == view["anomaly_list"]
    assert latest["n_transactions"] == len(mine)
    with pytest.raises(ValueError, match="limit"):
        store.customer_anomalies("c2", "risk_score", limit=0)
    with pytest.raises(ValueError, match=r"metric 'Nope' is not one of \[.*'HistFreq'"):
        store.customer_anomalies("c2", "Nope")
    with pytest.raises(NotFound):
        store.customer_anomalies("nobody", "TotalSpent")


def test_upgrade_from_version_1_keeps_the_data(store_url):
    engine, _ = connect(store_url)
    assert migrations.upgrade(engine, target=1) == 1
    assert not inspect(engine).has_table("user_profiles")
    items = [make_item(n) for n in range(12)]
    now = dt.datetime.now(UTC)
    with engine.begin() as connection:
        for item in items:
            connection.execute(
                insert(t.transactions).values(
                    event_id=item["event_id"],
                    customer_id=item["customer_id"],
                    occurred_at=item["occurred_at"],
                    amount=item["amount"],
                    raw=item["transaction"],
                    model_version="m1",
                )
            )
            if item["is_alert"]:
                connection.execute(
                    insert(t.alerts).values(
                        event_id=item["event_id"],
                        customer_id=item["customer_id"],
                        status="OPEN",
                        risk_level=item["risk_level"],
                        priority=item["priority"],
                        risk_score=item["risk_score"],
                        created_at=now,
                        updated_at=now,
                        version=0,
                    )
                )
    engine.dispose()

    with AlertStore(store_url) as store:
        assert store.schema_version == migrations.HEAD == 3
        assert store.last_seq() == 12
        assert [raw for _, raw in store.transactions_after(0)] == [i["transaction"] for i in items]
        assert store.list_alerts()[0][0]["event_id"] == "e0"
        frame = pd.DataFrame(items)
        for customer, rows in frame.groupby("customer_id"):
            profile = store.customer_profile(customer)
            assert profile["n_transactions"] == len(rows)
            assert profile["n_alerts"] == int(rows["is_alert"].sum())
            assert profile["first_seen"] == rows["occurred_at"].min()
            assert profile["total_amount"] == pytest.approx(rows["amount"].sum())
        indexes = {ix["name"] for ix in inspect(store._engine).get_indexes("alerts")}
        assert {"ix_alerts_queue", "ix_alerts_customer"} <= indexes
        # A later write still maintains the backfilled profiles.
        store.write_scored([make_item(100, customer="c0")])
        assert store.customer_profile("c0")["n_transactions"] == int(
            (frame["customer_id"] == "c0").sum() + 1
        )
        with store._engine.begin() as connection:
            connection.execute(update(t.schema_version).values(version=99))
    with pytest.raises(SchemaError, match="schema version 99, newer than this fraudcore's 3"):
        AlertStore(store_url)


def test_reopening_runs_nothing_twice(store_url):
    with AlertStore(store_url) as first:
        first.write_scored([make_item(1)])
    with AlertStore(store_url) as second:
        assert second.schema_version == migrations.HEAD
        assert second.existing(["e1"])["e1"]["amount"] == 11.0
