"""The scoring service fraudcore's replaces, written the usual way: FastAPI,
pandas and scikit-learn, state in memory, nothing stored.

What the projects fraudcore replaces do per request: append the transaction
to its customer's pandas history and build the features from that history
with pandas (count, mean and standard deviation of the earlier amounts, the
amount's z-score and ratio to the mean, hour, day of week, weekend, night,
seconds since the previous transaction, count and amount sum over the
trailing 1 h / 24 h / 7 days, amount x hour, amount at night, a country or
device the customer never used, seconds since signup, and how many customers
used the device and the IP address — the columns of
:func:`fraudcore.build_features`, in its order), then scale them and score
them with scikit-learn's ``IsolationForest`` (200 trees) and
``LocalOutlierFactor(n_neighbors=20, novelty=True)``, both fitted at start-up
on the training transactions' features. Each detector's score becomes its
rank among the training scores; the risk score is their mean, weighted 0.6 /
0.4 as fraudcore's default ensemble; an alert is a risk score at or above
the training set's 99th percentile. The response has the fields of
fraudcore's; ``reasons`` are the three features furthest from their
training mean. Nothing is written anywhere: a restart forgets every customer.

The training features come from ``fraudcore._reference_features`` (the same
features in plain pandas), once at start-up; the per-request path is this
file's own pandas code. A transaction earlier than its customer's last is
refused with 409, as fraudcore refuses it.

Served by uvicorn, configured by environment variables::

    PLAIN_SERVICE_TRAIN=train.pkl PLAIN_SERVICE_KEYS=keys.json \\
        uvicorn --app-dir benchmarks --factory _plain_service:create_app

``train.pkl``: a pickled DataFrame of :func:`fraudcore.datasets.make_transactions`
rows without the label columns; ``keys.json``: fraudcore's API key file
(``{"keys": [{"name", "scopes", "sha256"}]}``), checked against the
``X-API-Key`` header.
"""

# ruff: noqa: FA100 - pydantic and FastAPI evaluate the annotations at run
# time, and Python 3.9 has no X | Y: Optional and Union stay.

import hashlib
import json
import os
from collections import defaultdict
from typing import Optional, Union

import numpy as np
import pandas as pd
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler

from fraudcore import Schema
from fraudcore._reference_features import reference_features

WINDOWS = {"1h": pd.Timedelta("1h"), "24h": pd.Timedelta("24h"), "7d": pd.Timedelta("7D")}
HISTORY = ["timestamp", "amount", "country", "device_id"]
WEIGHTS = {"isolation_forest": 0.6, "lof": 0.4}
MODEL_VERSION = "plain-pandas-sklearn"


class Transaction(BaseModel):
    event_id: str
    customer_id: Union[int, str]
    timestamp: Union[str, float]
    amount: float
    country: Optional[str] = None
    device_id: Optional[str] = None
    ip_address: Optional[str] = None
    merchant: Optional[str] = None
    signup_time: Union[str, float, None] = None
    transaction_id: Optional[int] = None


class Batch(BaseModel):
    transactions: list[Transaction]


def _time(value):
    return pd.Timestamp(value, unit="ns") if isinstance(value, float) else pd.Timestamp(value)


class PlainScorer:
    """Per-customer pandas histories, the features of one transaction from
    them, and the two scikit-learn detectors."""

    def __init__(self, train):
        self.history = {
            customer: rows[HISTORY].reset_index(drop=True)
            for customer, rows in train.sort_values("timestamp", kind="stable").groupby(
                "customer_id"
            )
        }
        self.device_users = defaultdict(set)
        self.ip_users = defaultdict(set)
        for customer, device, ip in zip(
            train["customer_id"], train["device_id"], train["ip_address"]
        ):
            self.device_users[device].add(customer)
            self.ip_users[ip].add(customer)
        features = reference_features(train, Schema.transactions())
        self.names = list(features.columns)
        X = features.to_numpy(dtype=float)
        self.scaler = StandardScaler().fit(X)
        Z = self.scaler.transform(X)
        self.detectors = {
            "isolation_forest": IsolationForest(n_estimators=200, random_state=0).fit(Z),
            "lof": LocalOutlierFactor(n_neighbors=20, novelty=True).fit(Z),
        }
        self.training_scores = {
            name: np.sort(-detector.score_samples(Z)) for name, detector in self.detectors.items()
        }
        self.threshold = float(np.quantile(self._risk(Z)[0], 0.99))

    def _risk(self, Z):
        ranks = {
            name: np.searchsorted(self.training_scores[name], -detector.score_samples(Z))
            / len(self.training_scores[name])
            for name, detector in self.detectors.items()
        }
        return sum(WEIGHTS[name] * rank for name, rank in ranks.items()), ranks

    def features(self, tx):
        """The transaction's features from its customer's history; then appends it."""
        now = _time(tx.timestamp)
        history = self.history.get(tx.customer_id)
        if history is None:
            history = pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY})
            history["timestamp"] = pd.to_datetime(history["timestamp"])
            history["amount"] = history["amount"].astype(float)
        if len(history) and now < history["timestamp"].iloc[-1]:
            raise HTTPException(
                409, f"transaction at {now} is earlier than customer {tx.customer_id}'s last"
            )
        amounts, a = history["amount"], tx.amount
        count = len(history)
        mean = amounts.mean() if count else 0.0
        std = amounts.std(ddof=0) if count else 0.0
        night = now.hour < 6
        row = {
            "amount": a,
            "amount_log1p": np.sign(a) * np.log1p(abs(a)),
            "amount_sqrt": np.sign(a) * np.sqrt(abs(a)),
            "entity_count": count,
            "entity_mean": mean,
            "entity_std": std,
            "amount_zscore": (a - mean) / std if count >= 2 and std > 0 else 0.0,
            "amount_to_mean": a / mean if count and mean > 0 else 1.0,
            "hour": now.hour,
            "day_of_week": now.day_of_week,
            "is_weekend": float(now.day_of_week >= 5),
            "is_night": float(night),
            "seconds_since_prev": (now - history["timestamp"].iloc[-1]).total_seconds()
            if count
            else -1.0,
        }
        for label, width in WINDOWS.items():
            recent = history["timestamp"] > now - width
            row[f"count_{label}"] = recent.sum()
            row[f"amount_sum_{label}"] = amounts[recent].sum()
        row["amount_x_hour"] = a * now.hour
        row["amount_x_night"] = a if night else 0.0
        row["unusual_country"] = float(count > 0 and not (history["country"] == tx.country).any())
        row["new_device"] = float(count > 0 and not (history["device_id"] == tx.device_id).any())
        row["signup_delay_s"] = (
            (now - _time(tx.signup_time)).total_seconds() if tx.signup_time is not None else -1.0
        )
        self.device_users[tx.device_id].add(tx.customer_id)
        self.ip_users[tx.ip_address].add(tx.customer_id)
        row["device_users"] = len(self.device_users[tx.device_id])
        row["ip_users"] = len(self.ip_users[tx.ip_address])
        added = pd.DataFrame(
            [{"timestamp": now, "amount": a, "country": tx.country, "device_id": tx.device_id}]
        )
        self.history[tx.customer_id] = pd.concat([history, added], ignore_index=True)
        return pd.DataFrame([row])[self.names]

    def score(self, tx):
        Z = self.scaler.transform(self.features(tx).to_numpy(dtype=float))
        risk, ranks = self._risk(Z)
        risk = float(risk[0])
        level = "high" if risk >= self.threshold else "medium" if risk >= 0.9 else "low"
        furthest = np.argsort(-np.abs(Z[0]))[:3]
        return {
            "event_id": tx.event_id,
            "risk_score": risk,
            "risk_level": level,
            "priority": {"high": 1, "medium": 2, "low": 3}[level],
            "is_alert": risk >= self.threshold,
            "confidence": abs(risk - self.threshold) / max(self.threshold, 1 - self.threshold),
            "scores": {name: float(rank[0]) for name, rank in ranks.items()},
            "reasons": [
                f"{self.names[i]} is {abs(Z[0, i]):.1f} standard deviations "
                f"{'above' if Z[0, i] > 0 else 'below'} the training mean"
                for i in furthest
            ],
            "model_version": MODEL_VERSION,
        }


def create_app():
    """The app, its detectors fitted on $PLAIN_SERVICE_TRAIN, keys from $PLAIN_SERVICE_KEYS."""
    scorer = PlainScorer(pd.read_pickle(os.environ["PLAIN_SERVICE_TRAIN"]))
    with open(os.environ["PLAIN_SERVICE_KEYS"]) as f:
        key_hashes = {key["sha256"] for key in json.load(f)["keys"]}
    app = FastAPI(title="plain fraud scoring")

    def check(key):
        if key is None or hashlib.sha256(key.encode()).hexdigest() not in key_hashes:
            raise HTTPException(401, "missing or unknown X-API-Key")

    @app.get("/")
    def alive():
        return {"status": "ok"}

    @app.get("/health")
    def health():
        return {"status": "ok", "model_version": MODEL_VERSION, "customers": len(scorer.history)}

    @app.post("/detect")
    def detect(tx: Transaction, x_api_key: Optional[str] = Header(None)):
        check(x_api_key)
        return scorer.score(tx)

    @app.post("/detect/batch")
    def detect_batch(batch: Batch, x_api_key: Optional[str] = Header(None)):
        check(x_api_key)
        return {"results": [scorer.score(tx) for tx in batch.transactions]}

    return app
