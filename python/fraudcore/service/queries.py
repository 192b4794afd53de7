"""The alert store's read-only queries for dashboards, and the joins the
store shares with them.

:class:`DashboardQueries` is a mixin of :class:`fraudcore.service.store.AlertStore`
(it needs ``_engine`` and ``dialect``): summary cards, fraud over time, by
country, device and browser, and a customer's view. Every aggregate is one
SQL statement (GROUP BY, window functions) whatever the number of rows;
Python only shapes the few result rows. "Confirmed" fraud is an event whose
winning label is 1 (:func:`latest_labels`: chargebacks and analysts'
decisions alike).
"""

import datetime as dt

from sqlalchemy import Integer, case, cast, func, literal_column, select

from fraudcore.service import tables as t
from fraudcore.service.errors import NotFound

UTC = dt.timezone.utc
LEVELS = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
BUCKETS = ("hour", "day", "week", "month")
# score_histogram's finest bins: its bins must divide this.
SCORE_RESOLUTION = 1000


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


def latest_labels():
    """SELECT event_id, label, label_time, source: each labelled event's
    winning label (the latest label_time, then the last received)."""
    lb = t.labels
    rank = func.row_number().over(
        partition_by=lb.c.event_id, order_by=(lb.c.label_time.desc(), lb.c.id.desc())
    )
    ranked = select(lb.c.event_id, lb.c.label, lb.c.label_time, lb.c.source, rank.label("rank"))
    ranked = ranked.subquery()
    return select(ranked.c.event_id, ranked.c.label, ranked.c.label_time, ranked.c.source).where(
        ranked.c.rank == 1
    )


def rate(part, whole):
    """part / whole, None when whole is 0."""
    return part / whole if whole else None


class DashboardQueries:
    """The dashboards' queries (a mixin of AlertStore)."""

    def summary(self):
        """Totals: transactions, alerts, alert rate, amounts, confirmed fraud,
        and per risk level the transactions and alerts."""
        tx, s, a = t.transactions, t.anomaly_scores, t.alerts
        fraud = self._fraud_events()
        totals = (
            select(
                func.count(),
                func.coalesce(func.sum(tx.c.amount), 0.0),
                func.avg(tx.c.amount),
                func.count(a.c.id),
                func.coalesce(func.sum(case((a.c.id.is_not(None), tx.c.amount))), 0.0),
                func.count(fraud.c.event_id),
            )
            .select_from(tx)
            .outerjoin(a, a.c.event_id == tx.c.event_id)
            .outerjoin(fraud, fraud.c.event_id == tx.c.event_id)
        )
        levels = select(s.c.risk_level, func.count(), func.sum(s.c.is_alert)).group_by(
            s.c.risk_level
        )
        with self._engine.connect() as connection:
            n, total, mean, n_alerts, alerted, confirmed = connection.execute(totals).one()
            by_level = connection.execute(levels).all()
        return {
            "transactions": n,
            "alerts": n_alerts,
            "alert_rate": rate(n_alerts, n),
            "total_amount": float(total),
            "mean_amount": None if mean is None else float(mean),
            "alerted_amount": float(alerted),
            "confirmed_fraud": confirmed,
            "by_level": {
                level: {"transactions": count, "alerts": int(alerts or 0)}
                for level, count, alerts in sorted(by_level, key=lambda r: level_order(r[0]))
            },
        }

    def _fraud_events(self):
        """Subquery of the event ids whose winning label is 1."""
        latest = latest_labels().subquery()
        return select(latest.c.event_id).where(latest.c.label == 1).subquery()

    def _per_transaction_counts(self, key):
        """SELECT key, transactions, alerts, confirmed over all transactions, grouped by key."""
        tx, a = t.transactions, t.alerts
        fraud = self._fraud_events()
        return (
            select(
                key.label("key"),
                func.count().label("transactions"),
                func.count(a.c.id).label("alerts"),
                func.count(fraud.c.event_id).label("confirmed"),
            )
            .select_from(tx)
            .outerjoin(a, a.c.event_id == tx.c.event_id)
            .outerjoin(fraud, fraud.c.event_id == tx.c.event_id)
            .group_by(key)
        )

    def fraud_trends(self, bucket="day"):
        """Per time bucket of occurred_at (hour, day, week from Monday, month;
        UTC), in time order: bucket (aware datetime of its start),
        transactions, alerts, confirmed."""
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}, got {bucket!r}")
        column = t.transactions.c.occurred_at
        if self.dialect == "postgresql":
            key = func.date_trunc(literal_column(f"'{bucket}'"), func.timezone("UTC", column))
        else:
            form = {
                "hour": "'%Y-%m-%d %H:00:00'",
                "day": "'%Y-%m-%d 00:00:00'",
                "week": "'%Y-%m-%d 00:00:00'",
                "month": "'%Y-%m-01 00:00:00'",
            }[bucket]
            shift = (literal_column("'-6 days'"), literal_column("'weekday 1'"))
            key = func.strftime(literal_column(form), column, *(shift if bucket == "week" else ()))
        query = self._per_transaction_counts(key).order_by(key)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                "bucket": _bucket_start(row.key),
                "transactions": row.transactions,
                "alerts": row.alerts,
                "confirmed": row.confirmed,
            }
            for row in rows
        ]

    def _by_dimension(self, name):
        column = t.transactions.c[name]
        query = self._per_transaction_counts(column).order_by(
            literal_column("transactions").desc(), column
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

    def fraud_geography(self):
        """Per country (None: unknown), most transactions first: transactions,
        alerts, alert_rate, confirmed."""
        return self._by_dimension("country")

    def fraud_devices(self):
        """As fraud_geography, per device."""
        return self._by_dimension("device")

    def fraud_browsers(self):
        """As fraud_geography, per browser."""
        return self._by_dimension("browser")

    def score_histogram(self, bins=50):
        """The distribution of risk_score over [0, 1] in ``bins`` equal-width
        bins (bins divides :data:`SCORE_RESOLUTION`); per bin, lowest first:
        lower, upper, transactions, and of those whose winning label is 1
        (fraud) or 0 (legit) the counts.

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
        s = t.anomaly_scores
        width = SCORE_RESOLUTION // int(bins)
        key = (score_bin(s.c.risk_score, self.dialect) // width).label("key")
        latest = latest_labels().subquery()
        counts = (
            select(
                key,
                func.count().label("transactions"),
                func.count(case((latest.c.label == 1, 1))).label("fraud"),
                func.count(case((latest.c.label == 0, 1))).label("legit"),
            )
            .select_from(s)
            .outerjoin(latest, latest.c.event_id == s.c.event_id)
            .group_by(key)
        )
        with self._engine.connect() as connection:
            found = {row.key: row for row in connection.execute(counts)}
        histogram = []
        for index in range(int(bins)):
            row = found.get(index)
            histogram.append(
                {
                    "lower": index / bins,
                    "upper": (index + 1) / bins,
                    "transactions": row.transactions if row else 0,
                    "fraud": row.fraud if row else 0,
                    "legit": row.legit if row else 0,
                }
            )
        return histogram

    def related(self, event_id, limit=50):
        """Transactions of OTHER customers sharing event_id's device or IP,
        newest first, at most limit: event_id, customer_id, occurred_at,
        amount, device, ip, shared ("device", "ip" or "device+ip") and
        alert_id (None when it raised no alert). NotFound for an event the
        store does not have."""
        limit = _positive(limit, "limit")
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
        limit = _positive(limit, "limit")
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

    def customer_anomalies(self, customer_id, metric):
        """One customer's transactions for the dashboard's customer view.

        metric is one of :data:`METRICS`. Returns {"anomaly_list": the 10
        riskiest transactions, riskiest first; "chart_data": [{occurred_at,
        value}] in time order; "drill_down_data": every transaction in time
        order}, each transaction a dict of event_id, occurred_at, amount,
        value (the metric), risk_score, risk_level, is_alert, alert_id.
        NotFound for a customer the store never saw.
        """
        if metric not in METRICS:
            raise ValueError(f"metric {metric!r} is not one of {sorted(METRICS)}")
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
            rows = connection.execute(query.order_by(tx.c.occurred_at, tx.c.seq)).all()
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


def score_bin(score, dialect):
    """SQL: the bin of score among SCORE_RESOLUTION equal-width bins of [0, 1]
    (floor(score * R) kept within 0 .. R - 1)."""
    scaled = score * SCORE_RESOLUTION
    if dialect == "postgresql":
        return func.greatest(0, func.least(SCORE_RESOLUTION - 1, cast(func.floor(scaled), Integer)))
    # CAST truncates, which is floor from 0 up; below 0 the bin is 0 anyway.
    return func.max(0, func.min(SCORE_RESOLUTION - 1, cast(scaled, Integer)))


def _positive(value, name):
    if isinstance(value, bool) or not hasattr(value, "__index__") or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def level_order(level):
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def _bucket_start(value):
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
