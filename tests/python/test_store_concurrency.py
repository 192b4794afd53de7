"""50 analysts at once on the same 20 alerts, on SQLite and PostgreSQL: no
move lost, none recorded twice, no "database is locked"."""

import collections
import datetime as dt
import random
import threading

import pytest
from _scored import scored_item

pytest.importorskip("sqlalchemy", reason="the service extra is not installed")

from sqlalchemy import select

from fraudcore.service import migrations
from fraudcore.service import tables as t
from fraudcore.service.store import (
    DECISIONS,
    TRANSITIONS,
    AlertStore,
    IllegalTransition,
    VersionConflict,
)

N_ALERTS, N_THREADS, MOVES_PER_THREAD = 20, 50, 20
# Mostly back and forth between OPEN and INVESTIGATING, so the alerts stay
# movable for long; decisions and closing now and then. One move in five
# picks any status (often illegal), the others a legal one from what the
# analyst read (which a concurrent move may have made stale).
WEIGHTS = {"OPEN": 20, "INVESTIGATING": 20, "CONFIRMED_FRAUD": 0.3, "FALSE_POSITIVE": 0.3}
ANY_STATUS = 0.2
# One move in four gives no expected_version: a move that loses a race is
# then judged again against the alert's new status.
UNVERSIONED = 0.25


def _target(rng, status):
    choices = list(TRANSITIONS) if rng.random() < ANY_STATUS else TRANSITIONS[status]
    if not choices:
        return "CLOSED"
    return rng.choices(choices, [WEIGHTS.get(c, 0.1) for c in choices])[0]


def _item(k):
    when = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=k)
    return scored_item(f"race-{k}", f"c{k % 3}", when, 100.0 + k)


def test_concurrent_moves_are_never_lost(store_url):
    shared = AlertStore(store_url)
    own = [AlertStore(store_url) for _ in range(4)]  # other processes, as it were
    stores = [shared, *own]
    try:
        ids = shared.write_scored([_item(k) for k in range(N_ALERTS)])
        accepted, refused, errors = [], collections.Counter(), []
        lock = threading.Lock()
        start = threading.Barrier(N_THREADS)

        def analyst(number):
            rng = random.Random(number)
            store = stores[number % len(stores)]
            start.wait()
            for _ in range(MOVES_PER_THREAD):
                alert_id = rng.choice(ids)
                try:
                    seen = store.get_alert(alert_id)
                    target = _target(rng, seen["status"])
                    versioned = rng.random() >= UNVERSIONED
                    moved = store.move_alert(
                        alert_id,
                        target,
                        analyst=f"analyst{number}",
                        expected_version=seen["version"] if versioned else None,
                    )
                    outcome = ("ok", (alert_id, moved["version"], target))
                except (IllegalTransition, VersionConflict) as error:
                    outcome = ("refused", type(error).__name__)
                except Exception as error:  # noqa: BLE001 - any other error fails the test below
                    outcome = ("error", repr(error))
                with lock:
                    if outcome[0] == "ok":
                        accepted.append(outcome[1])
                    elif outcome[0] == "refused":
                        refused[outcome[1]] += 1
                    else:
                        errors.append(outcome[1])

        threads = [threading.Thread(target=analyst, args=(n,)) for n in range(N_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert len(accepted) + sum(refused.values()) == N_THREADS * MOVES_PER_THREAD
        # The race happened: moves were accepted, and stale versions refused.
        assert len(accepted) > 10 * N_ALERTS
        assert refused["VersionConflict"] > 0 and refused["IllegalTransition"] > 0

        audit = t.alert_audit
        with shared._engine.connect() as connection:
            trail = connection.execute(
                select(
                    audit.c.alert_id, audit.c.version, audit.c.to_status, audit.c.from_status
                ).order_by(audit.c.id)
            ).all()
            analyst_labels = connection.execute(
                select(t.labels.c.event_id).where(t.labels.c.source == "analyst")
            ).all()
        # Every accepted move is in the audit log exactly once, and nothing else is.
        assert sorted(accepted) == sorted((r.alert_id, r.version, r.to_status) for r in trail)
        per_alert = collections.defaultdict(list)
        for row in trail:
            per_alert[row.alert_id].append(row)
        for alert_id in ids:
            moves = per_alert[alert_id]
            final = shared.get_alert(alert_id)
            assert final["version"] == len(moves)
            assert [m.version for m in moves] == list(range(1, len(moves) + 1))
            chain = ["OPEN"] + [m.to_status for m in moves]
            assert [m.from_status for m in moves] == chain[:-1]
            assert final["status"] == chain[-1]
            assert len(final["audit"]) == len(moves)
        assert len(analyst_labels) == sum(1 for a in accepted if a[2] in DECISIONS)
    finally:
        for store in stores:
            store.close()


def test_stores_opening_a_new_database_together_migrate_it_once(store_url):
    opened, errors = [], []
    start = threading.Barrier(8)

    def open_store():
        start.wait()
        try:
            opened.append(AlertStore(store_url))
        except Exception as error:  # noqa: BLE001 - any error fails the test below
            errors.append(repr(error))

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert {store.schema_version for store in opened} == {migrations.HEAD}
        opened[0].write_scored([_item(0)])
        assert opened[-1].existing(["race-0"])["race-0"]["alert_id"] is not None
        with opened[0]._engine.connect() as connection:
            assert connection.execute(select(t.schema_version.c.version)).scalars().all() == [
                migrations.HEAD
            ]
    finally:
        for store in opened:
            store.close()
