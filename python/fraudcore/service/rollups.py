"""The ``rollups`` table: the dashboard's counts per dimension value, kept by
the write path.

Every scored event adds to one row per dimension of :data:`DIMENSIONS`:
``transactions`` + 1, ``alerts`` + 1 when it raised one, ``amount`` and
``alerted_amount`` + its amount. The write path (:mod:`fraudcore.service.batch`)
adds a batch's counts in the batch's own transaction, so the rollups always
agree with the rows; schema step 3 fills them from the rows already stored.
Nothing else writes them: transactions and alerts are never deleted, and
the label-dependent counts ("confirmed" fraud) are not rolled up (labels
and decisions change them after the fact; the queries count them from the
labels).

A dimension's value is text, with ``known`` 0 (and ``value`` '') for events
without one:

============ ==================================================================
hour         the UTC hour of occurred_at, ``YYYY-MM-DD HH:00:00``
country      the transaction's country
device       the transaction's device
browser      the transaction's browser
risk_level   the event's risk level
score_bin    the bin of risk_score among SCORE_RESOLUTION equal-width bins of
             [0, 1], as decimal text (:func:`score_bin`)
alertable_   score_bin, of the events that could raise an alert (not a
bin          cancellation the model does not alert on: write_scored's item
             ``alertable``); a threshold what-if counts these. Filled from
             every stored event by schema step 3: schema 2 kept no
             cancellation flag.
============ ==================================================================

:func:`score_bin` and :func:`hour` say it in Python (the write path),
:func:`score_bin_sql` and :func:`hour_sql` in SQL (the backfill and the
queries); the tests hold them equal.
"""

import datetime as dt

from sqlalchemy import Integer, case, cast, func, literal, select

from fraudcore.service import tables as t

DIMENSIONS = ("hour", "country", "device", "browser", "risk_level", "score_bin", "alertable_bin")
# score_bin's bins; score_histogram's bin counts divide it.
SCORE_RESOLUTION = 1000
HOUR_FORMAT = "%Y-%m-%d %H:00:00"


def score_bin(score):
    """The bin of a risk score: floor(score * SCORE_RESOLUTION) kept within
    0 .. SCORE_RESOLUTION - 1 (1.0 is in the last bin, below 0 in the first)."""
    if score < 0:
        return 0
    return min(int(score * SCORE_RESOLUTION), SCORE_RESOLUTION - 1)


def score_bin_sql(score, dialect):
    """SQL: score_bin of a risk_score column (an integer)."""
    scaled = score * SCORE_RESOLUTION
    if dialect == "postgresql":
        return func.greatest(0, func.least(SCORE_RESOLUTION - 1, cast(func.floor(scaled), Integer)))
    # CAST truncates, which is floor from 0 up; below 0 the bin is 0 anyway.
    return func.max(0, func.min(SCORE_RESOLUTION - 1, cast(scaled, Integer)))


def hour(occurred_at):
    """The hour value of an aware UTC datetime."""
    return occurred_at.astimezone(dt.timezone.utc).strftime(HOUR_FORMAT)


def hour_sql(occurred_at, dialect):
    """SQL: the hour value of a UtcDateTime column."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", occurred_at), "YYYY-MM-DD HH24:00:00")
    return func.strftime(HOUR_FORMAT, occurred_at)


def backfill(connection):
    """Fill the rollups from the stored transactions, scores and alerts (the
    table must be empty)."""
    dialect = connection.dialect.name
    tx, s, a = t.transactions, t.anomaly_scores, t.alerts
    values = {
        "hour": hour_sql(tx.c.occurred_at, dialect),
        "country": tx.c.country,
        "device": tx.c.device,
        "browser": tx.c.browser,
        "risk_level": s.c.risk_level,
        "score_bin": cast(score_bin_sql(s.c.risk_score, dialect), t.rollups.c.value.type),
    }
    values["alertable_bin"] = values["score_bin"]
    for dimension in DIMENSIONS:
        events = select(
            values[dimension].label("value"),
            tx.c.amount,
            a.c.id.is_not(None).label("alerted"),
        ).select_from(tx.outerjoin(a, a.c.event_id == tx.c.event_id))
        if dimension in ("risk_level", "score_bin", "alertable_bin"):
            events = events.join(s, s.c.event_id == tx.c.event_id)
        events = events.subquery()
        rows = select(
            literal(dimension, t.rollups.c.dimension.type),
            case((events.c.value.is_(None), 0), else_=1),
            func.coalesce(events.c.value, ""),
            func.count(),
            func.count(case((events.c.alerted, 1))),
            func.sum(events.c.amount),
            func.coalesce(func.sum(case((events.c.alerted, events.c.amount))), 0.0),
        ).group_by(events.c.value)
        connection.execute(t.rollups.insert().from_select(list(t.rollups.c), rows))
