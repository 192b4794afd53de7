"""The alert store's read-only queries for dashboards, and the joins the
store shares with them.

:class:`DashboardQueries` is a mixin of :class:`fraudcore.service.store.AlertStore`
(it needs ``_engine`` and ``dialect``): summary cards, fraud over time, by
country, device and browser, the score distribution, a customer's view and
history, the transactions related to an event. Every aggregate is one SQL
statement (GROUP BY, window functions) whatever the number of rows; Python
only shapes the few result rows. "Confirmed" fraud is an event whose
winning label is 1 (:func:`latest_labels`: chargebacks and analysts'
decisions alike).

The counts of transactions and alerts come from the rollups the write path
keeps (:mod:`fraudcore.service.rollups`; a few thousand rows instead of
every transaction), the label-dependent counts from the labels joined to
their events (as many rows as labels), the two summed in one statement
(:func:`_summed`). Measured at 1,000,000 transactions (benchmarks/
bench_dashboard.py): GROUP BY over the transactions took 1 to 3 s.
"""

import datetime as dt

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    case,
    cast,
    func,
    literal_column,
    select,
    union_all,
)

from fraudcore.service import tables as t
from fraudcore.service.errors import NotFound
from fraudcore.service.rollups import SCORE_RESOLUTION, score_bin_sql

UTC = dt.timezone.utc
LEVELS = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
BUCKETS = ("hour", "day", "week", "month")


def scored_events(*columns):
    """SELECT columns FROM transactions, their features and scores, and
    their alerts (outer join)."""
    tx = t.transactions
    return (
        select(*columns)
        .select_from(tx)
        .join(t.transaction_features, t.transaction_features.c.event_id == tx.c.event_id)
        .join(t.anomaly_scores, t.anomaly_scores.c.event_id == tx.c.event_id)
        .outerjoin(t.alerts, t.alerts.c.event_id == tx.c.event_id)
    )


def ranked_winners(*conditions):
    """SELECT event_id, label, label_time, id, source: the winning label (the
    latest label_time, then the last received) of each event among the
    labels meeting conditions, ranked from the labels table (what
    label_winners keeps)."""
    lb = t.labels
    rank = func.row_number().over(
        partition_by=lb.c.event_id, order_by=(lb.c.label_time.desc(), lb.c.id.desc())
    )
    columns = (lb.c.event_id, lb.c.label, lb.c.label_time, lb.c.id, lb.c.source)
    ranked = select(*columns, rank.label("rank")).where(*conditions).subquery()
    return select(*(ranked.c[c.name] for c in columns)).where(ranked.c.rank == 1)


def latest_labels():
    """SELECT event_id, label, label_time, source: each labelled event's
    winning label (the latest label_time, then the last received), from
    the label_winners table the store keeps with every label. Measured:
    ranking 25,600 labels with a window took 120 ms on SQLite."""
    w = t.label_winners
    return select(w.c.event_id, w.c.label, w.c.label_time, w.c.source)


def rate(part, whole):
    """part / whole, None when whole is 0."""
    return part / whole if whole else None


class DashboardQueries:
    """The dashboards' queries (a mixin of AlertStore)."""

    def summary(self):
        """Totals: transactions, alerts, alert rate, amounts, confirmed fraud,
        and per risk level the transactions and alerts."""
        r, tx = t.rollups, t.transactions
        fraud = self._fraud_events()
        levels = select(
            r.c.value, r.c.transactions, r.c.alerts, r.c.amount, r.c.alerted_amount
        ).where(r.c.dimension == "risk_level")
        confirmed = select(func.count()).select_from(
            fraud.join(tx, tx.c.event_id == fraud.c.event_id)
        )
        with self._engine.connect() as connection:
            by_level = sorted(connection.execute(levels).all(), key=lambda r: level_order(r[0]))
            n_confirmed = connection.execute(confirmed).scalar()
        n = sum(row.transactions for row in by_level)
        n_alerts = sum(row.alerts for row in by_level)
        total = sum(row.amount for row in by_level)
        return {
            "transactions": n,
            "alerts": n_alerts,
            "alert_rate": rate(n_alerts, n),
            "total_amount": float(total),
            "mean_amount": rate(total, n),
            "alerted_amount": float(sum(row.alerted_amount for row in by_level)),
            "confirmed_fraud": n_confirmed,
            "by_level": {
                row.value: {"transactions": row.transactions, "alerts": row.alerts}
                for row in by_level
            },
        }

    def _fraud_events(self):
        """Subquery of the event ids whose winning label is 1."""
        latest = latest_labels().subquery()
        return select(latest.c.event_id).where(latest.c.label == 1).subquery()

    def _rolled_up(self, dimension, key, event_key, only=None):
        """SELECT key, transactions, alerts, confirmed: the rollups of
        dimension, grouped by key (an expression of the rollups' value),
        with the confirmed events grouped by event_key (the same, of their
        transaction); ``only``: a SELECT of the rollup values to keep."""
        r, tx = t.rollups, t.transactions
        fraud = self._fraud_events()
        rolled = select(
            key.label("key"),
            r.c.transactions,
            r.c.alerts,
            literal_column("0").label("confirmed"),
        ).where(r.c.dimension == dimension)
        confirmed = select(
            event_key.label("key"),
            literal_column("0").label("transactions"),
            literal_column("0").label("alerts"),
            literal_column("1").label("confirmed"),
        ).select_from(fraud.join(tx, tx.c.event_id == fraud.c.event_id))
        if only is not None:
            rolled = rolled.where(r.c.known == 1, r.c.value.in_(only))
            confirmed = confirmed.where(event_key.in_(only))
        return _summed(rolled, confirmed)

    def fraud_trends(self, bucket="day"):
        """Per time bucket of occurred_at (hour, day, week from Monday, month;
        UTC), in time order: bucket (aware datetime of its start),
        transactions, alerts, confirmed."""
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}, got {bucket!r}")
        column = t.transactions.c.occurred_at
        if self.dialect == "postgresql":
            hour = cast(t.rollups.c.value, DateTime)
            column = func.timezone("UTC", column)
        else:
            hour = t.rollups.c.value
        query = self._rolled_up(
            "hour", _bucket(hour, bucket, self.dialect), _bucket(column, bucket, self.dialect)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(literal_column("key"))).all()
        return [
            {
                "bucket": _bucket_start(row.key),
                "transactions": row.transactions,
                "alerts": row.alerts,
                "confirmed": row.confirmed,
            }
            for row in rows
        ]

    def _by_dimension(self, name, limit=None, by="transactions"):
        if by not in ("transactions", "alerts"):
            raise ValueError(f"by must be 'transactions' or 'alerts', got {by!r}")
        r = t.rollups
        other = "alerts" if by == "transactions" else "transactions"
        only = None
        if limit is not None:
            # The order needs no labels: pick the values from the rollups
            # alone, then count the confirmed events of those only.
            only = (
                select(r.c.value)
                .where(r.c.dimension == name, r.c.known == 1)
                .order_by(r.c[by].desc(), r.c[other].desc(), r.c.value)
                .limit(checked_int(limit, "limit"))
            )
        query = self._rolled_up(
            name, case((r.c.known == 1, r.c.value)), t.transactions.c[name], only
        )
        query = query.order_by(
            literal_column(by).desc(), literal_column(other).desc(), literal_column("key")
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                name: row.key,
                "transactions": row.transactions,
                "alerts": row.alerts,
                "alert_rate": rate(row.alerts, row.transactions),
                "confirmed": row.confirmed,
            }
            for row in rows
        ]

    def fraud_geography(self, limit=None, by="transactions"):
        """Per country (None: unknown), most transactions (or, by="alerts",
        most alerts) first: transactions, alerts, alert_rate, confirmed.
        With ``limit``: the limit first of the known countries (no None)."""
        return self._by_dimension("country", limit, by)

    def fraud_devices(self, limit=None, by="transactions"):
        """As fraud_geography, per device."""
        return self._by_dimension("device", limit, by)

    def fraud_browsers(self, limit=None, by="transactions"):
        """As fraud_geography, per browser."""
        return self._by_dimension("browser", limit, by)

    def active_days(self):
        """The number of UTC days with a stored transaction (from the rollups)."""
        r = t.rollups
        query = select(func.count(func.distinct(func.substr(r.c.value, 1, 10)))).where(
            r.c.dimension == "hour"
        )
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar())

    def score_histogram(self, bins=50, labels=True):
        """The distribution of risk_score over [0, 1] in ``bins`` equal-width
        bins (bins divides :data:`SCORE_RESOLUTION`); per bin, lowest first:
        lower, upper, transactions, alertable (those of them that could
        raise an alert: not cancellations the model never alerts on), and
        of the transactions whose winning label is 1
        (fraud) or 0 (legit) the counts (None with ``labels=False``, which
        reads the rollups alone: counting the labelled events scans their
        scores, ~190 ms at 25,000 labels on PostgreSQL).

        A score's bin is ``min(floor(score * R), R - 1) // (R // bins)`` with
        R = SCORE_RESOLUTION (scores below 0 count in the first bin), so 1.0
        is in the last bin.
        """
        if (
            isinstance(bins, bool)
            or not hasattr(bins, "__index__")
            or not 1 <= bins <= SCORE_RESOLUTION
            or SCORE_RESOLUTION % bins
        ):
            raise ValueError(
                f"bins must be a divisor of {SCORE_RESOLUTION} (10, 20, 25, 50, 100, ...), "
                f"got {bins!r}"
            )
        r, s = t.rollups, t.anomaly_scores
        width = SCORE_RESOLUTION // int(bins)
        latest = latest_labels().subquery()
        rolled = select(
            (cast(r.c.value, Integer) // width).label("key"),
            case((r.c.dimension == "score_bin", r.c.transactions), else_=0).label("transactions"),
            case((r.c.dimension == "alertable_bin", r.c.transactions), else_=0).label("alertable"),
            literal_column("0").label("fraud"),
            literal_column("0").label("legit"),
        ).where(r.c.dimension.in_(("score_bin", "alertable_bin")))
        labelled = select(
            (score_bin_sql(s.c.risk_score, self.dialect) // width).label("key"),
            literal_column("0").label("transactions"),
            literal_column("0").label("alertable"),
            case((latest.c.label == 1, 1), else_=0).label("fraud"),
            case((latest.c.label == 0, 1), else_=0).label("legit"),
        ).select_from(latest.join(s, s.c.event_id == latest.c.event_id))
        query = _summed(rolled, labelled) if labels else _summed(rolled)
        with self._engine.connect() as connection:
            found = {row.key: row for row in connection.execute(query)}
        histogram = []
        for index in range(int(bins)):
            row = found.get(index)
            histogram.append(
                {
                    "lower": index / bins,
                    "upper": (index + 1) / bins,
                    "transactions": row.transactions if row else 0,
                    "alertable": row.alertable if row else 0,
                    "fraud": (row.fraud if row else 0) if labels else None,
                    "legit": (row.legit if row else 0) if labels else None,
                }
            )
        return histogram

    def related(self, event_id, limit=50):
        """Transactions of OTHER customers sharing event_id's device or IP,
        newest first, at most limit: event_id, customer_id, occurred_at,
        amount, device, ip, shared ("device", "ip" or "device+ip") and
        alert_id (None when it raised no alert). NotFound for an event the
        store does not have."""
        limit = checked_int(limit, "limit")
        tx, a = t.transactions, t.alerts
        with self._engine.connect() as connection:
            own = connection.execute(
                select(tx.c.customer_id, tx.c.device, tx.c.ip).where(tx.c.event_id == event_id)
            ).first()
            if own is None:
                raise NotFound(f"no transaction {event_id!r}")
            columns = (
                tx.c.seq,
                tx.c.event_id,
                tx.c.customer_id,
                tx.c.occurred_at,
                tx.c.amount,
                tx.c.device,
                tx.c.ip,
                a.c.id.label("alert_id"),
            )
            found = {}
            for name in ("device", "ip"):
                value = getattr(own, name)
                if value is None:
                    continue
                query = (
                    select(*columns)
                    .select_from(tx)
                    .outerjoin(a, a.c.event_id == tx.c.event_id)
                    .where(tx.c[name] == value, tx.c.customer_id != own.customer_id)
                    .order_by(tx.c.occurred_at.desc(), tx.c.seq.desc())
                    .limit(limit)
                )
                for row in connection.execute(query):
                    found[row.seq] = row
        newest = sorted(found.values(), key=lambda r: (r.occurred_at, r.seq), reverse=True)
        out = []
        for row in newest[:limit]:
            shared = [name for name in ("device", "ip") if row._mapping[name] == getattr(own, name)]
            item = dict(row._mapping)
            del item["seq"]
            item["shared"] = "+".join(shared)
            out.append(item)
        return out

    def customer_history(self, customer_id, limit=500):
        """The customer's latest limit transactions, oldest first: occurred_at,
        event_id, amount, risk_score, risk_level, is_alert, alert_id and
        features (dict). NotFound for a customer the store never saw."""
        limit = checked_int(limit, "limit")
        tx, f, s, a = t.transactions, t.transaction_features, t.anomaly_scores, t.alerts
        query = (
            scored_events(
                tx.c.occurred_at,
                tx.c.event_id,
                tx.c.amount,
                s.c.risk_score,
                s.c.risk_level,
                s.c.is_alert,
                a.c.id.label("alert_id"),
                f.c.features,
            )
            .where(tx.c.customer_id == str(customer_id))
            .order_by(tx.c.occurred_at.desc(), tx.c.seq.desc())
            .limit(limit)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        if not rows:
            raise NotFound(f"no transactions of customer {customer_id!r}")
        history = []
        for row in reversed(rows):
            item = dict(row._mapping)
            item["is_alert"] = bool(item["is_alert"])
            history.append(item)
        return history

    def customer_profile(self, customer_id):
        """{customer_id, first_seen, last_seen, n_transactions, total_amount,
        n_alerts} of a customer; NotFound for one the store never saw."""
        up = t.user_profiles
        with self._engine.connect() as connection:
            row = connection.execute(select(up).where(up.c.customer_id == str(customer_id))).first()
        if row is None:
            raise NotFound(f"no customer {customer_id!r}")
        return dict(row._mapping)

    def customer_ids(self, limit=1000):
        """Up to limit customer ids, those with the most alerts (then the most
        transactions) first."""
        up = t.user_profiles
        query = (
            select(up.c.customer_id)
            .order_by(up.c.n_alerts.desc(), up.c.n_transactions.desc(), up.c.customer_id)
            .limit(int(limit))
        )
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def customer_anomalies(self, customer_id, metric, limit=None):
        """One customer's transactions for the dashboard's customer view.

        metric is one of :data:`METRICS`. Returns {"anomaly_list": the 10
        riskiest transactions, riskiest first; "chart_data": [{occurred_at,
        value}] in time order; "drill_down_data": every transaction (or, with
        ``limit``, the latest limit) in time order; "n_transactions": how
        many the customer has}, each transaction a dict of event_id,
        occurred_at, amount, value (the metric), risk_score, risk_level,
        is_alert, alert_id. NotFound for a customer the store never saw.
        """
        if metric not in METRICS:
            raise ValueError(f"metric {metric!r} is not one of {sorted(METRICS)}")
        if limit is not None:
            limit = checked_int(limit, "limit")
        tx, f, s, a = t.transactions, t.transaction_features, t.anomaly_scores, t.alerts
        query = scored_events(
            tx.c.event_id,
            tx.c.occurred_at,
            tx.c.amount,
            METRICS[metric](tx, f, s).label("value"),
            s.c.risk_score,
            s.c.risk_level,
            s.c.is_alert,
            a.c.id.label("alert_id"),
        ).where(tx.c.customer_id == str(customer_id))
        with self._engine.connect() as connection:
            if limit is None:
                rows = connection.execute(query.order_by(tx.c.occurred_at, tx.c.seq)).all()
                n = len(rows)
            else:
                latest = query.order_by(tx.c.occurred_at.desc(), tx.c.seq.desc()).limit(limit)
                rows = connection.execute(latest).all()[::-1]
                n = connection.execute(
                    select(func.count()).where(tx.c.customer_id == str(customer_id))
                ).scalar()
            top = connection.execute(
                query.order_by(s.c.risk_score.desc(), tx.c.seq).limit(10)
            ).all()
        if not rows:
            raise NotFound(f"no transactions of customer {customer_id!r}")

        def as_dict(row):
            out = dict(row._mapping)
            out["is_alert"] = bool(out["is_alert"])
            return out

        drill_down = [as_dict(r) for r in rows]
        return {
            "metric": metric,
            "anomaly_list": [as_dict(r) for r in top],
            "chart_data": [
                {"occurred_at": r["occurred_at"], "value": r["value"]} for r in drill_down
            ],
            "drill_down_data": drill_down,
            "n_transactions": n,
        }


def _feature(name):
    return lambda tx, f, s: f.c.features[name].as_float()


# customer_anomalies' metrics: name -> SQL expression over (transactions,
# transaction_features, anomaly_scores). The Online Retail names first.
METRICS = {
    "TotalSpent": lambda tx, f, s: tx.c.amount,
    "HistFreq": _feature("hist_freq"),
    "Quantity": _feature("quantity"),
    "risk_score": lambda tx, f, s: s.c.risk_score,
    "fraud_probability": lambda tx, f, s: s.c.fraud_probability,
    "amount": lambda tx, f, s: tx.c.amount,
    "amount_zscore": _feature("amount_zscore"),
    "entity_count": _feature("entity_count"),
}


def _summed(*selects):
    """SELECT key, then the sum of each other column, over the UNION ALL of
    selects (the same columns, key first), grouped by key."""
    both = union_all(*selects).subquery()
    key, *counts = both.c
    return select(key, *(cast(func.sum(c), BigInteger).label(c.name) for c in counts)).group_by(key)


def _bucket(time, bucket, dialect):
    """SQL: the start of time's bucket; time is UTC text on SQLite, a
    timestamp without time zone (in UTC) on PostgreSQL."""
    if dialect == "postgresql":
        return func.date_trunc(literal_column(f"'{bucket}'"), time)
    form = {
        "hour": "'%Y-%m-%d %H:00:00'",
        "day": "'%Y-%m-%d 00:00:00'",
        "week": "'%Y-%m-%d 00:00:00'",
        "month": "'%Y-%m-01 00:00:00'",
    }[bucket]
    shift = (literal_column("'-6 days'"), literal_column("'weekday 1'"))
    return func.strftime(literal_column(form), time, *(shift if bucket == "week" else ()))


def checked_int(value, name, minimum=1, maximum=None):
    """value as an int when it is an integer (not a bool) from minimum to
    maximum (None: no bound); else a ValueError naming it."""
    integer = not isinstance(value, bool) and hasattr(value, "__index__")
    if not integer or value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            bound = f"between {minimum} and {maximum}"
        elif minimum == 1:
            bound = "a positive integer"
        else:
            bound = f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def level_order(level):
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def _bucket_start(value):
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
