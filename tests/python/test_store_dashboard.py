"""The alert store's queries for the analyst dashboard, on SQLite and on a
real PostgreSQL: the queue (filters, sorts, paging, total) against pandas
over list_alerts; the overview's aggregates (served from the rollups) against
pandas over the items and the raw labels, after analysts' decisions and late
labels; the alert page's lookups; and schema step 3 on a database with data,
whose backfilled rollups must equal the write path's."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sqlalchemy", reason="the service extra is not installed")

from sqlalchemy import inspect, select

from fraudcore.service import batch as b
from fraudcore.service import migrations, rollups
from fraudcore.service import tables as t
from fraudcore.service.engine import connect
from fraudcore.service.queries import LEVELS
from fraudcore.service.store import QUEUE_SORTS, STATUSES, AlertStore, NotFound

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 5, 6, 22, 10, tzinfo=UTC)
# Scores on and next to the bins' edges.
SCORES = (0.0, 0.02, 0.0199999, 0.5, 0.95, 0.99, 0.999, 0.9995, 1.0, 0.123456)


def item(n, *, customer=None, alert=None):
    """A scored item; one in three an alert; devices and IPs shared across
    customers; some events without a country, device or browser."""
    alert = n % 3 == 0 if alert is None else alert
    level = LEVELS[n % 4]
    return {
        "event_id": f"e{n:04d}",
        "customer_id": customer or f"c{n % 7}",
        "occurred_at": T0 + dt.timedelta(minutes=41 * n),
        "amount": round(5.0 + (n * 37) % 101 + n / 100, 2),
        "transaction": {"id": f"e{n:04d}"},
        "features": {"amount": float(n), "hist_freq": float(n % 5)},
        "scores": {"isolation_forest": 0.5},
        "risk_score": SCORES[n % len(SCORES)],
        "fraud_probability": None,
        "risk_level": level,
        "priority": LEVELS.index(level) + 1 if alert else 5,
        "confidence": 0.5,
        "is_alert": alert,
        "reasons": [],
        "model_version": "m1",
        "country": (None, "FR", "UK", "DE", "FR")[n % 5],
        "device": None if n % 11 == 0 else f"d{n % 4}",
        "browser": None if n % 13 == 0 else ("Chrome", "Safari", "Firefox")[n % 3],
        "ip": None if n % 9 == 0 else f"10.0.0.{n % 5}",
        # a cancellation the model does not alert on, now and then
        "alertable": alert or n % 8 != 2,
    }


@pytest.fixture
def store(store_url):
    with AlertStore(store_url) as opened:
        yield opened


def fill(store, n=120, batches=4):
    items = [item(k) for k in range(n)]
    ids = []
    size = -(-n // batches)
    for start in range(0, n, size):
        ids.extend(store.write_scored(items[start : start + size]))
    frame = pd.DataFrame(items)
    frame["alert_id"] = ids
    return frame


def decide(store, frame):
    """Analysts decide alerts, late labels overrule some and label others."""
    alerts = frame.dropna(subset=["alert_id"])
    ids = [int(i) for i in alerts["alert_id"]]
    for k, alert_id in enumerate(ids[:24]):
        if k % 3 == 0:
            store.move_alert(alert_id, "INVESTIGATING", analyst="ana")
        store.move_alert(alert_id, "CONFIRMED_FRAUD" if k % 2 else "FALSE_POSITIVE", analyst="bob")
        if k % 4 == 0:
            store.move_alert(alert_id, "CLOSED", analyst="bob")
    later = dt.datetime.now(UTC) + dt.timedelta(days=1)
    decided = list(alerts["event_id"][:24])
    store.add_labels(
        # chargebacks after the decisions: fraud after all, and not fraud
        [{"event_id": e, "label": 1, "time": later} for e in decided[0:6:2]]
        + [{"event_id": e, "label": 0, "time": later} for e in decided[1:6:2]]
        # older than the decisions: they lose
        + [{"event_id": e, "label": 1, "time": T0} for e in decided[6:10]]
        # events nobody decided, and one scored elsewhere
        + [{"event_id": f"e{n:04d}", "label": int(n % 4 == 1), "time": T0} for n in range(1, 90, 5)]
        + [{"event_id": "elsewhere", "label": 1}]
    )


def winning_labels(store):
    """event_id -> winning label, from the raw labels table (pandas)."""
    with store._engine.connect() as connection:
        raw = pd.DataFrame(connection.execute(select(t.labels)).mappings().all())
    raw = raw.sort_values(["label_time", "id"])
    return raw.groupby("event_id")["label"].last()


def test_alert_queue_filters_sorts_and_pages_like_pandas(store):
    frame = fill(store)
    decide(store, frame)
    everything = pd.DataFrame(store.list_alerts(limit=1000)[0])
    assert len(everything) == frame["is_alert"].sum()
    countries = {i["event_id"]: i["country"] for i in map(item, range(len(frame)))}
    everything["country"] = everything["event_id"].map(countries)
    customer = everything["customer_id"].iloc[0]
    some_day = everything["created_at"].sort_values().iloc[len(everything) // 2]
    cases = [
        ({}, None),
        ({"status": "OPEN"}, None),
        ({"status": ["FALSE_POSITIVE", "CLOSED"]}, [("amount", "desc")]),
        ({"level": "HIGH"}, [("risk_score", "asc")]),
        ({"level": ["LOW", "CRITICAL"], "country": "FR"}, [("occurred_at", "desc")]),
        ({"customer_id": customer}, [("status", "asc"), ("amount", "asc")]),
        ({"since": some_day}, [("customer_id", "desc"), ("risk_level", "asc")]),
        ({"until": some_day.isoformat()}, [("created_at", "desc")]),
        ({"country": "UK"}, [("priority", "desc")]),
        ({}, [("risk_level", "asc"), ("id", "desc")]),
        ({}, [("status", "desc")]),
    ]
    for filters, sort in cases:
        expected = everything
        for name, column in (("status", "status"), ("level", "risk_level")):
            if name in filters:
                wanted = filters[name]
                expected = expected[
                    expected[column].isin([wanted] if isinstance(wanted, str) else wanted)
                ]
        if "customer_id" in filters:
            expected = expected[expected["customer_id"] == filters["customer_id"]]
        if "country" in filters:
            expected = expected[expected["country"] == filters["country"]]
        if "since" in filters:
            expected = expected[expected["created_at"] >= filters["since"]]
        if "until" in filters:
            expected = expected[expected["created_at"] < some_day]
        keys = sort or [("priority", "asc"), ("created_at", "asc")]
        ranked = expected.assign(
            status=expected["status"].map(STATUSES.index),
            risk_level=expected["risk_level"].map(LEVELS.index),
        )
        ranked = ranked.sort_values(
            [c for c, _ in keys] + ["id"], ascending=[d == "asc" for _, d in keys] + [True]
        )
        expected = expected.loc[ranked.index]
        for offset, limit in ((0, 25), (3, 5), (len(expected) - 2, 10)):
            rows, total = store.alert_queue(
                **filters, sort=sort, offset=max(0, offset), limit=limit
            )
            assert total == len(expected), filters
            part = expected.iloc[max(0, offset) : max(0, offset) + limit]
            assert [r["id"] for r in rows] == list(part["id"]), (filters, sort, offset)
    rows, _ = store.alert_queue(limit=1000)
    full = {r["id"]: r for r in store.list_alerts(limit=1000)[0]}
    for row in rows:
        assert row == {**full[row["id"]], "country": countries[row["event_id"]]}
        assert row["amount"] == frame.set_index("event_id").loc[row["event_id"], "amount"]
    assert set(QUEUE_SORTS) == {
        "id",
        "priority",
        "created_at",
        "risk_score",
        "amount",
        "occurred_at",
        "customer_id",
        "status",
        "risk_level",
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"limit": 1001}, "limit must be between 1 and 1000"),
        ({"offset": -1}, "offset must be an integer >= 0"),
        ({"offset": 2.5}, "offset must be an integer >= 0"),
        ({"status": "DONE"}, "status 'DONE' is not one of"),
        ({"level": ["HIGH", "huge"]}, "risk_level 'huge' is not one of"),
        ({"since": "yesterday"}, "since 'yesterday' is not an ISO 8601 time"),
        ({"sort": [("amount", "up")]}, "sort direction 'up' of 'amount'"),
        ({"sort": [("ip", "asc")]}, "sort column 'ip' is not one of"),
        ({"sort": [("amount", "asc"), ("amount", "desc")]}, "sort column 'amount' is given twice"),
        ({"sort": ["amount"]}, "sort entry 'amount' is not a"),
        ({"sort": "amount"}, "sort must be a list of"),
    ],
)
def test_alert_queue_refuses_bad_arguments(store, arguments, message):
    with pytest.raises(ValueError, match=message):
        store.alert_queue(**arguments)


def test_overview_aggregates_match_pandas_after_decisions_and_late_labels(store):
    frame = fill(store)
    decide(store, frame)
    store.write_scored([item(k) for k in range(120, 150)])  # after the labels
    frame = pd.concat([frame, pd.DataFrame([item(k) for k in range(120, 150)])])
    winners = winning_labels(store)
    kept = store.labels_frame()
    assert dict(zip(kept["event_id"], kept["label"])) == winners.to_dict()
    frame["label"] = frame["event_id"].map(winners)
    frame["fraud"] = frame["label"] == 1
    assert 0 < frame["fraud"].sum() < frame["label"].notna().sum()

    summary = store.summary()
    assert summary["transactions"] == len(frame)
    assert summary["alerts"] == frame["is_alert"].sum()
    assert summary["total_amount"] == pytest.approx(frame["amount"].sum())
    assert summary["mean_amount"] == pytest.approx(frame["amount"].mean())
    assert summary["alerted_amount"] == pytest.approx(frame.loc[frame["is_alert"], "amount"].sum())
    assert summary["confirmed_fraud"] == frame["fraud"].sum()
    levels = frame.groupby("risk_level").agg(
        transactions=("amount", "size"), alerts=("is_alert", "sum")
    )
    assert summary["by_level"] == {
        level: {"transactions": int(row.transactions), "alerts": int(row.alerts)}
        for level, row in levels.loc[[lv for lv in LEVELS if lv in levels.index]].iterrows()
    }

    stats = store.statistics()
    with store._engine.connect() as connection:
        alerts = pd.DataFrame(connection.execute(select(t.alerts)).mappings().all())
    assert stats["by_status"] == {s: int((alerts["status"] == s).sum()) for s in stats["by_status"]}
    confirmed = int((alerts["decision"] == "CONFIRMED_FRAUD").sum())
    false_positive = int((alerts["decision"] == "FALSE_POSITIVE").sum())
    assert (stats["confirmed_fraud"], stats["false_positive"]) == (confirmed, false_positive)
    assert stats["precision"] == pytest.approx(confirmed / (confirmed + false_positive))

    naive = frame["occurred_at"].dt.tz_convert(None)
    for bucket, keys in (
        ("hour", naive.dt.floor("h")),
        ("day", naive.dt.floor("D")),
        ("week", naive.dt.to_period("W-SUN").dt.start_time),
        ("month", naive.dt.to_period("M").dt.start_time),
    ):
        expected = frame.groupby(keys.dt.tz_localize("UTC")).agg(
            transactions=("amount", "size"), alerts=("is_alert", "sum"), confirmed=("fraud", "sum")
        )
        got = store.fraud_trends(bucket)
        assert [r["bucket"] for r in got] == list(expected.index.to_pydatetime()), bucket
        assert [(r["transactions"], r["alerts"], r["confirmed"]) for r in got] == [
            tuple(int(v) for v in row) for row in expected.itertuples(index=False)
        ], bucket

    for method, column in (
        (store.fraud_geography, "country"),
        (store.fraud_devices, "device"),
        (store.fraud_browsers, "browser"),
    ):
        expected = frame.groupby(frame[column].fillna("<none>")).agg(
            transactions=("amount", "size"), alerts=("is_alert", "sum"), confirmed=("fraud", "sum")
        )
        rows = method()
        got = {(r[column] or "<none>"): r for r in rows}
        assert len(got) == len(rows) == len(expected)
        for key, row in expected.iterrows():
            assert (got[key]["transactions"], got[key]["alerts"], got[key]["confirmed"]) == tuple(
                int(v) for v in row
            ), (column, key)
        assert [r["transactions"] for r in rows] == sorted(expected["transactions"], reverse=True)
        # most first (transactions or alerts, the other count then the key breaking ties), limited
        for by, other in (("transactions", "alerts"), ("alerts", "transactions")):
            ranked = [(-r[by], -r[other]) for r in method(by=by)]
            assert ranked == sorted(ranked), (column, by)
            top = method(limit=3, by=by)
            assert top == [r for r in method(by=by) if r[column] is not None][:3], (column, by)
    with pytest.raises(ValueError, match="by must be"):
        store.fraud_devices(by="amount")
    with pytest.raises(ValueError, match="limit"):
        store.fraud_devices(limit=0)

    scores = frame["risk_score"].to_numpy()
    fine = np.minimum((scores * rollups.SCORE_RESOLUTION).astype(int), rollups.SCORE_RESOLUTION - 1)
    for bins in (10, 50, 1000):
        got = store.score_histogram(bins)
        assert len(got) == bins
        assert got[0]["lower"] == 0.0 and got[-1]["upper"] == 1.0
        coarse = fine // (rollups.SCORE_RESOLUTION // bins)
        for name, mask in (
            ("transactions", np.ones(len(frame), bool)),
            ("alertable", frame["alertable"].to_numpy()),
            ("fraud", (frame["label"] == 1).to_numpy()),
            ("legit", (frame["label"] == 0).to_numpy()),
        ):
            expected = np.bincount(coarse[mask], minlength=bins)
            assert [row[name] for row in got] == list(expected), (bins, name)
    assert store.score_histogram(10)[9]["transactions"] == int((scores >= 0.9).sum())
    # without labels: the same transactions, from the rollups alone
    unlabelled = store.score_histogram(50, labels=False)
    assert [r["transactions"] for r in unlabelled] == [
        r["transactions"] for r in store.score_histogram(50)
    ]
    assert {r["fraud"] for r in unlabelled} == {r["legit"] for r in unlabelled} == {None}
    for bad in (0, 7, 2000, True, 2.5):
        with pytest.raises(ValueError, match="bins must be a divisor of 1000"):
            store.score_histogram(bad)


def test_rollups_are_the_write_paths_counts(store):
    frame = fill(store, n=60, batches=7)
    frame["hour"] = frame["occurred_at"].dt.strftime("%Y-%m-%d %H:00:00")
    frame["score_bin"] = frame["risk_score"].map(lambda s: str(rollups.score_bin(s)))
    assert frame["score_bin"].tolist()[:10] == [
        "0",
        "20",
        "19",
        "500",
        "950",
        "990",
        "999",
        "999",
        "999",
        "123",
    ]
    frame["alerted_amount"] = frame["amount"].where(frame["is_alert"], 0.0)
    expected = []
    frame["alertable_bin"] = frame["score_bin"].where(frame["alertable"])
    for dimension in rollups.DIMENSIONS:
        rows_of = frame if dimension != "alertable_bin" else frame[frame["alertable"]]
        values = rows_of[dimension]
        groups = rows_of.groupby([values.notna().astype(int), values.fillna("")])
        for (known, value), rows in groups:
            expected.append(
                (
                    dimension,
                    known,
                    value,
                    len(rows),
                    int(rows["is_alert"].sum()),
                    rows["amount"].sum(),
                    rows["alerted_amount"].sum(),
                )
            )
    assert_same_rollups(stored_rollups(store), expected)


def stored_rollups(store):
    with store._engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(t.rollups))]


def assert_same_rollups(got, expected):
    """Keys and counts equal, amounts equal but for float rounding."""
    got, expected = sorted(got), sorted(expected)
    assert [row[:5] for row in got] == [tuple(row[:5]) for row in expected]
    amounts = [float(v) for row in expected for v in row[5:]]
    assert [v for row in got for v in row[5:]] == pytest.approx(amounts)


def test_related_and_customer_history(store):
    frame = fill(store)
    event = frame.iloc[16]  # device d0, IP 10.0.0.1, customer c2
    got = store.related(event["event_id"])
    others = frame[frame["customer_id"] != event["customer_id"]]
    same_device = others["device"] == event["device"]
    same_ip = others["ip"] == event["ip"]
    expected = others[same_device | same_ip].sort_values("occurred_at", ascending=False)
    assert [r["event_id"] for r in got] == list(expected["event_id"])
    shared = {
        e: "device+ip" if d and i else "device" if d else "ip"
        for e, d, i in zip(others["event_id"], same_device, same_ip)
    }
    alert_ids = frame.set_index("event_id")["alert_id"]
    for row in got:
        assert row["shared"] == shared[row["event_id"]]
        expected_alert = alert_ids[row["event_id"]]
        assert row["alert_id"] == (None if pd.isna(expected_alert) else int(expected_alert))
        assert set(row) == {
            "event_id",
            "customer_id",
            "occurred_at",
            "amount",
            "device",
            "ip",
            "shared",
            "alert_id",
        }
    assert {r["shared"] for r in got} == {"device", "ip", "device+ip"}
    assert [r["event_id"] for r in store.related(event["event_id"], limit=3)] == list(
        expected["event_id"][:3]
    )
    lonely = frame.iloc[0]["event_id"]  # no device, IP 10.0.0.0 shared
    assert all(r["shared"] == "ip" for r in store.related(lonely))
    with pytest.raises(NotFound, match="no transaction 'nope'"):
        store.related("nope")
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        store.related(event["event_id"], limit=0)

    mine = frame[frame["customer_id"] == "c3"].sort_values("occurred_at")
    history = store.customer_history("c3")
    assert [h["event_id"] for h in history] == list(mine["event_id"])
    assert [h["features"] for h in history] == list(mine["features"])
    assert [h["is_alert"] for h in history] == list(mine["is_alert"])
    assert [h["alert_id"] for h in history] == [
        None if pd.isna(a) else int(a) for a in mine["alert_id"]
    ]
    assert set(history[0]) == {
        "occurred_at",
        "event_id",
        "amount",
        "risk_score",
        "risk_level",
        "is_alert",
        "alert_id",
        "features",
    }
    latest = store.customer_history("c3", limit=4)
    assert [h["event_id"] for h in latest] == list(mine["event_id"][-4:])
    with pytest.raises(NotFound):
        store.customer_history("nobody")


def test_upgrade_from_version_2_copies_alert_fields_and_fills_rollups(store_url, tmp_path):
    """A version-2 database with rows the version-2 write path would have
    stored; step 3 must fill alerts' copies and the rollups exactly as the
    new write path fills them for the same items (checked against a fresh
    store)."""
    items = [item(k) for k in range(80)]
    engine, dialect = connect(store_url)
    assert migrations.upgrade(engine, target=2) == 2
    rows = b.ScoredBatch(items, dt.datetime.now(UTC), dialect)
    with engine.begin() as connection:
        cursor = connection.connection.cursor()
        for table, columns, values in (
            (t.transactions, b.TRANSACTION_COLUMNS, rows.transactions),
            (t.transaction_features, b.FEATURE_COLUMNS, rows.features),
            (t.anomaly_scores, b.SCORE_COLUMNS, rows.scores),
            (t.alerts, b.ALERT_COLUMNS[:9], [r[:9] for r in rows.alerts]),
            (t.user_profiles, b.PROFILE_COLUMNS, rows.profiles),
        ):
            cursor.executemany(b.insert_sql(table, columns, dialect), values)
        # Labels stored at version 2: several for one event, the latest wins.
        connection.execute(
            t.labels.insert(),
            [
                {"event_id": e, "label": v, "label_time": T0 + dt.timedelta(days=d)}
                | {"source": "chargeback", "received_at": T0}
                for e, v, d in (("e0003", 1, 2), ("e0003", 0, 1), ("e0006", 0, 1), ("e0006", 1, 1))
            ],
        )
    engine.dispose()

    with AlertStore(store_url) as upgraded:
        assert upgraded.schema_version == migrations.HEAD == 3
        frame = upgraded.labels_frame()
        assert dict(zip(frame["event_id"], frame["label"])) == {"e0003": 1, "e0006": 1}
        assert upgraded.summary()["confirmed_fraud"] == 2
        indexes = {ix["name"] for ix in inspect(upgraded._engine).get_indexes("transactions")}
        assert {"ix_transactions_device", "ix_transactions_ip"} <= indexes
        with AlertStore(f"sqlite:///{tmp_path / 'fresh.db'}") as fresh:
            # schema 2 kept no cancellation flag: step 3 counts every event alertable
            fresh.write_scored([{**i, "alertable": True} for i in items])
            assert_same_rollups(stored_rollups(upgraded), stored_rollups(fresh))
            queue, total = upgraded.alert_queue(limit=1000, sort=[("occurred_at", "asc")])
            expected, _ = fresh.alert_queue(limit=1000, sort=[("occurred_at", "asc")])
            assert total == len(expected) == sum(i["is_alert"] for i in items)
            fields = ("event_id", "amount", "occurred_at", "country")
            assert [[r[k] for k in fields] for r in queue] == [
                [r[k] for k in fields] for r in expected
            ]
        assert upgraded.alert_queue(country="FR")[1] == sum(
            1 for i in items if i["is_alert"] and i["country"] == "FR"
        )
        # The write path keeps the backfilled rollups going.
        upgraded.write_scored([item(500, customer="c1")])
        summary = upgraded.summary()
        assert summary["transactions"] == 81
        assert summary["total_amount"] == pytest.approx(
            sum(i["amount"] for i in items) + item(500)["amount"]
        )
