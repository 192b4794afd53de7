"""The scoring service: ``create_app`` builds the FastAPI application.

Every error is JSON ``{"error": {"status", "code", "message", "field"?,
"index"?}}``: bad input is a 4xx naming the field (and, in a batch, the
transaction's index), never a 500, and a refused request writes nothing.

The hot path (``POST /detect``, ``/detect/batch``) parses JSON with orjson
and checks fields by hand instead of through pydantic models, which would
cost more than the scoring; the models in :mod:`fraudcore.service.models`
still document both routes in the OpenAPI schema (``/docs``).

Reads of the alert store run in FastAPI's thread pool; scoring and its
writes run on the scoring worker (:mod:`fraudcore.service.pipeline`).
"""

import asyncio
import datetime as dt
import hashlib
import logging
import math
import os
import signal
import time
import types
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Optional

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import fraudcore
from fraudcore._persistence import dumps, loads
from fraudcore.detector import RISK_LEVELS, FraudDetector
from fraudcore.online import OnlineScorer
from fraudcore.service import models, tables
from fraudcore.service.auth import KeyRing, allows
from fraudcore.service.metrics import MetricsMiddleware, RequestMetrics, gauge
from fraudcore.service.pipeline import (
    RecordError,
    ScoringPipeline,
    ServiceUnavailable,
    occurred_at,
    restore_scorer,
)
from fraudcore.service.store import (
    STATUSES,
    AlertStore,
    IllegalTransition,
    NotFound,
    VersionConflict,
)

log = logging.getLogger("fraudcore.service")

MAX_BATCH = 5000
MAX_BODY_BYTES = 16 * 1024 * 1024
LEVELS = tuple(level for level, _ in RISK_LEVELS)
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class ApiError(Exception):
    """An error answered as JSON with ``status``; ``field`` / ``index`` name the culprit."""

    def __init__(self, status, code, message, field=None, index=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.index = field, index

    def body(self):
        error = {"status": self.status, "code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.index is not None:
            error["index"] = self.index
        return {"error": error}


def _json(content, status=200, headers=None):
    return Response(
        orjson.dumps(content, option=_JSON_OPTIONS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


# -- the model being served ---------------------------------------------------------


class ServedModel:
    """A fitted FraudDetector with its version (file stem @ content hash)."""

    def __init__(self, detector, path=None, data=None):
        if not isinstance(detector, FraudDetector) or not detector.__sklearn_is_fitted__():
            raise ValueError("the service needs a fitted FraudDetector")
        self.detector, self.path = detector, path
        digest = hashlib.sha256(data if data is not None else dumps(detector))
        self.fingerprint = digest.hexdigest()[:16]
        stem = os.path.splitext(os.path.basename(path))[0] if path else "model"
        self.version = f"{stem}@{self.fingerprint[:12]}"

    @classmethod
    def from_file(cls, path):
        with open(path, "rb") as f:
            data = f.read()
        model = loads(data)
        if not isinstance(model, FraudDetector):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a FraudDetector")
        return cls(model, path, data)


# -- request checks -------------------------------------------------------------------


class TransactionReader:
    """Checks a JSON transaction against the model's schema and keeps its fields.

    Required: the entity, the timestamp (ISO-8601 string or a number in the
    schema's time unit), the amount (or quantity and unit price: finite
    numbers) and the passthrough columns. The other columns the schema names
    may be absent or null. ``event_id`` (a string or an integer) makes a
    retry idempotent; without it the schema's transaction id is used, else
    a random id (no idempotency).
    """

    def __init__(self, schema):
        self.schema = schema
        self.numbers, self.optional = models.transaction_fields(schema)
        # the store's column sizes: a longer value would fail the write, not the request
        stored = tables.transactions.c
        self.event_id_length = stored.event_id.type.length
        self.lengths = {
            column: stored[name].type.length
            for column, name in (
                (schema.entity, "customer_id"),
                (schema.country, "country"),
                (schema.device_id, "device"),
                (schema.browser, "browser"),
                (schema.ip_address, "ip"),
            )
            if column is not None
        }

    def _check_text(self, column, value, index):
        """ApiError 422 for a text the store cannot keep: too long, or a NUL."""
        if not isinstance(value, str):
            return
        if "\x00" in value:
            raise ApiError(
                422, "invalid_field", f"{column} contains a NUL character", column, index
            )
        limit = self.lengths.get(column)
        if limit is not None and len(value) > limit:
            raise ApiError(
                422, "invalid_field", f"{column} is longer than {limit} characters", column, index
            )

    def read(self, obj, index=None):
        """(record, occurred_at) or ApiError 422."""
        s = self.schema
        if not isinstance(obj, dict):
            raise ApiError(
                422, "invalid_transaction", "a transaction must be a JSON object", index=index
            )
        record = {}
        eid = obj.get("event_id")
        if eid is None and s.transaction_id is not None:
            eid = obj.get(s.transaction_id)
        if eid is None:
            eid = uuid.uuid4().hex
        elif isinstance(eid, bool) or not isinstance(eid, (str, int)) or eid == "":
            raise ApiError(
                422,
                "invalid_field",
                "event_id must be a non-empty string or an integer",
                "event_id",
                index,
            )
        record["event_id"] = str(eid)
        if len(record["event_id"]) > self.event_id_length:
            raise ApiError(
                422,
                "invalid_field",
                f"event_id is longer than {self.event_id_length} characters",
                "event_id",
                index,
            )
        if "\x00" in record["event_id"]:
            raise ApiError(
                422, "invalid_field", "event_id contains a NUL character", "event_id", index
            )
        if s.entity is not None:
            entity = obj.get(s.entity)
            if (
                entity is None
                or isinstance(entity, bool)
                or not isinstance(entity, (str, int, float))
            ):
                raise ApiError(
                    422,
                    "invalid_field",
                    f"{s.entity} (the customer) must be a string or a number",
                    s.entity,
                    index,
                )
            if isinstance(entity, float) and not math.isfinite(entity):
                raise ApiError(422, "invalid_field", f"{s.entity} must be finite", s.entity, index)
            self._check_text(s.entity, entity, index)
            record[s.entity] = entity
        when = obj.get(s.timestamp)
        try:
            if when is None or isinstance(when, bool) or not isinstance(when, (str, int, float)):
                raise ValueError("missing")
            at = occurred_at(when, s.time_unit)
        except (ValueError, TypeError, OverflowError):
            raise ApiError(
                422,
                "invalid_field",
                f"{s.timestamp} must be an ISO-8601 time or a number of {s.time_unit} since 1970, "
                f"got {when!r}",
                s.timestamp,
                index,
            ) from None
        record[s.timestamp] = when
        for column in self.numbers:
            value = obj.get(column)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ApiError(
                    422,
                    "invalid_field",
                    f"{column} must be a finite number, got {value!r}",
                    column,
                    index,
                )
            record[column] = value
        for column in self.optional:
            value = obj.get(column)
            if value is None:
                record[column] = None  # missing: the features treat it so
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise ApiError(
                    422, "invalid_field", f"{column} must be finite or null", column, index
                )
            if not isinstance(value, (str, int, float)):
                raise ApiError(
                    422,
                    "invalid_field",
                    f"{column} must be a string, a number or null",
                    column,
                    index,
                )
            self._check_text(column, value, index)
            record[column] = value
        return record, at


# -- the application ------------------------------------------------------------------


def create_app(
    model=None,
    *,
    db="sqlite:///fraudcore.db",
    api_keys=None,
    max_batch=MAX_BATCH,
    max_body_bytes=MAX_BODY_BYTES,
    snapshot_every=50_000,
    store_options=None,
    history=None,
    dashboard=False,
):
    """The FastAPI app serving ``model`` (a path to a ``.fc`` file or a fitted
    FraudDetector) with the alert store at ``db`` (a URL or an AlertStore).

    ``api_keys``: a key file path or a KeyRing; None serves without keys
    (``fraudcore serve`` then binds to loopback only). ``history``: a
    DataFrame of earlier transactions (the model's columns) that seeds the
    customers' history of an empty store, so their first transactions here
    are not scored as their first ever; it is kept as the store's first
    snapshot, and ignored (with a warning) when the store holds any.
    ``dashboard``: mount the analyst's desk at ``/dashboard/`` (needs
    ``fraudcore[dashboard]``), sharing the store and the keys.
    """
    keys = KeyRing.from_file(api_keys) if isinstance(api_keys, (str, os.PathLike)) else api_keys
    served = (
        ServedModel.from_file(os.fspath(model))
        if isinstance(model, (str, os.PathLike))
        else ServedModel(model)
    )
    reader = TransactionReader(served.detector.schema)
    request_metrics = RequestMetrics()
    started = time.time()
    service = {"served": served, "reader": reader, "pipeline": None, "store": None}

    @asynccontextmanager
    async def lifespan(app):
        store = db if isinstance(db, AlertStore) else AlertStore(db, **(store_options or {}))
        service["store"] = store
        if history is not None:
            await run_in_threadpool(_seed_history, served, store, history)
        scorer = await run_in_threadpool(restore_scorer, served.detector, store)
        store.record_model(served.version, served.fingerprint, model_description(served.detector))
        pipeline = ScoringPipeline(
            scorer, store, served.version, max_batch=max_batch, snapshot_every=snapshot_every
        ).start()
        service["pipeline"] = pipeline
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload_on_hup()))
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
            pass
        try:
            yield
        finally:
            await run_in_threadpool(pipeline.stop)
            if not isinstance(db, AlertStore):
                store.close()

    app = ServiceApp(
        title="fraudcore",
        version=fraudcore.__version__,
        summary="Fraud scoring with each customer's history, alerts and their workflow.",
        lifespan=lifespan,
    )
    app.add_middleware(MetricsMiddleware, metrics=request_metrics)
    app.add_middleware(BodyLimitMiddleware, limit=max_body_bytes)
    app.request_metrics, app.max_body_bytes = request_metrics, max_body_bytes
    app.state.service = service

    # -- errors ----------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(request, exc):
        return _json(exc.body(), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = [
            str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")
        ]
        field = ".".join(where) or None
        message = (
            f"{field}: {first.get('msg', 'invalid')}"
            if field
            else first.get("msg", "invalid request")
        )
        return _json(ApiError(422, "invalid_field", message, field).body(), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "error"
        )
        return _json(ApiError(exc.status_code, code, str(exc.detail)).body(), exc.status_code)

    @app.exception_handler(NotFound)
    async def _not_found(request, exc):
        return _json(ApiError(404, "not_found", str(exc)).body(), 404)

    @app.exception_handler(IllegalTransition)
    async def _illegal(request, exc):
        return _json(ApiError(409, "illegal_transition", str(exc), "status").body(), 409)

    @app.exception_handler(VersionConflict)
    async def _conflict(request, exc):
        return _json(ApiError(409, "version_conflict", str(exc), "version").body(), 409)

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request, exc):
        return _json(ApiError(503, "unavailable", str(exc)).body(), 503)

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):  # a bug: logged, answered without details
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _json(ApiError(500, "internal", "internal error; see the server log").body(), 500)

    # -- auth ------------------------------------------------------------------------

    def identify(header, scope):
        """The key's name, if it may act in ``scope``; ``header(name)`` reads a
        request header (lower-case name) or gives None."""
        if keys is None:
            return "local"
        key = header("x-api-key")
        if key is None:
            bearer = header("authorization") or ""
            key = bearer[7:] if bearer[:7].lower() == "bearer " else None
        identity = keys.identify(key) if key else None
        if identity is None:
            raise ApiError(401, "unauthorized", "a valid API key is required (header X-API-Key)")
        name, scopes = identity
        if not allows(scopes, scope):
            raise ApiError(403, "forbidden", f"the key {name!r} lacks the scope {scope!r}")
        return name

    def needs(scope):
        def check(request: Request):
            return identify(request.headers.get, scope)

        return check

    # Who is asking (the key's name), for each scope; None: any valid key.
    Scorer = Annotated[str, Depends(needs("score"))]
    Reviewer = Annotated[str, Depends(needs("review"))]
    Admin = Annotated[str, Depends(needs("admin"))]
    Reader = Annotated[str, Depends(needs(None))]

    # -- scoring -----------------------------------------------------------------------

    async def _score(records, times):
        try:
            loop = asyncio.get_running_loop()
            return await service["pipeline"].submit(records, times, loop)
        except RecordError as exc:
            field = _field_of(str(exc), service["reader"])
            raise ApiError(422, "refused_transaction", str(exc), field) from None

    def _parsed(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None

    async def score_one(raw):
        """POST /detect's answer to a body."""
        record, at = service["reader"].read(_parsed(raw))
        return (await _score([record], [at]))[0]

    async def score_batch(raw):
        """POST /detect/batch's answer to a body."""
        body = _parsed(raw)
        items = body.get("transactions") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ApiError(
                422, "invalid_field", 'the body must be {"transactions": [...]}', "transactions"
            )
        if len(items) > max_batch:
            raise ApiError(
                413,
                "too_large",
                f"a batch holds at most {max_batch:,} transactions, got {len(items):,}",
                "transactions",
            )
        read = [service["reader"].read(item, k) for k, item in enumerate(items)]
        results = await _score([r for r, _ in read], [t for _, t in read]) if read else []
        return {"results": results}

    # ServiceApp answers these two paths itself, before FastAPI's routing;
    # the routes below give them their /docs, and answer the same way should
    # a request reach them (an ASGI wrapper that rewrites paths, say).
    app.fast_routes = {"/detect": score_one, "/detect/batch": score_batch}
    app.fast_identify = identify

    @app.post(
        "/detect",
        summary="Score one transaction with its customer's history",
        openapi_extra=models.detect_request_doc(served.detector.schema),
        responses={200: {"model": models.DetectResult}},
        tags=["scoring"],
    )
    async def detect(request: Request, who: Scorer):
        return _json(await score_one(await request.body()))

    @app.post(
        "/detect/batch",
        summary=f"Score up to {max_batch:,} transactions in one call",
        openapi_extra=models.batch_request_doc(served.detector.schema),
        responses={200: {"model": models.BatchResult}},
        tags=["scoring"],
    )
    async def detect_batch(request: Request, who: Scorer):
        return _json(await score_batch(await request.body()))

    # -- health and metrics ---------------------------------------------------------------

    @app.get("/", summary="Liveness", tags=["health"])
    async def liveness():
        return _json({"status": "ok", "service": "fraudcore"})

    @app.get("/health", summary="Model, database and queue", tags=["health"])
    async def health():
        store, pipeline = service["store"], service["pipeline"]
        database = await run_in_threadpool(store.ping)
        ok = database and pipeline is not None and pipeline.running
        return _json(
            {
                "status": "ok" if ok else "degraded",
                "model_version": service["served"].version,
                "model_fingerprint": service["served"].fingerprint,
                "database": {"reachable": database, "dialect": store.dialect},
                "uptime_s": round(time.time() - started, 3),
                "queue_depth": pipeline.queue_depth if pipeline else 0,
                "auth": "api keys" if keys is not None else "none (loopback only)",
            },
            200 if ok else 503,
        )

    @app.get("/metrics", summary="Prometheus metrics", tags=["health"])
    async def metrics():
        pipeline, current = service["pipeline"], service["served"]
        lines = request_metrics.render()
        lines += gauge(
            "fraudcore_alerts_opened_total",
            "Alerts opened since start.",
            pipeline.alerts_opened,
            "counter",
        )
        lines += gauge(
            "fraudcore_transactions_scored_total",
            "Transactions scored since start.",
            pipeline.transactions_scored,
            "counter",
        )
        lines += gauge(
            "fraudcore_queue_depth",
            "Transactions waiting for the scoring worker.",
            pipeline.queue_depth,
        )
        lines += gauge(
            "fraudcore_model_info",
            "The model being served.",
            1,
            labels={"version": current.version, "fingerprint": current.fingerprint},
        )
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    # -- alerts -------------------------------------------------------------------------

    @app.get("/alerts", summary="Alerts by priority then time", tags=["alerts"])
    def list_alerts(
        who: Reader,
        status: Annotated[Optional[str], Query(description=f"One of {', '.join(STATUSES)}")] = None,
        level: Annotated[Optional[str], Query(description=f"One of {', '.join(LEVELS)}")] = None,
        customer_id: Optional[str] = None,
        since: Optional[dt.datetime] = None,
        until: Optional[dt.datetime] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Optional[str] = None,
    ):
        if status is not None and status not in STATUSES:
            raise ApiError(
                422, "invalid_field", f"status must be one of {', '.join(STATUSES)}", "status"
            )
        if level is not None and level not in LEVELS:
            raise ApiError(
                422, "invalid_field", f"level must be one of {', '.join(LEVELS)}", "level"
            )
        try:
            rows, next_cursor = service["store"].list_alerts(
                status=status,
                level=level,
                customer_id=customer_id,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        except ValueError as exc:
            raise ApiError(422, "invalid_field", str(exc), "cursor" if cursor else None) from None
        return _json({"alerts": rows, "next_cursor": next_cursor})

    @app.get(
        "/alerts/statistics",
        summary="Counts by status and level; precision of decisions",
        tags=["alerts"],
    )
    def alert_statistics(who: Reader):
        return _json(service["store"].statistics())

    @app.get(
        "/alerts/{alert_id}",
        summary="One alert with its transaction and audit trail",
        tags=["alerts"],
    )
    def get_alert(alert_id: int, who: Reader):
        alert = service["store"].get_alert(alert_id)
        return _json(alert, headers={"ETag": f'"{alert["version"]}"'})

    @app.put("/alerts/{alert_id}", summary="Move an alert through the workflow", tags=["alerts"])
    def move_alert(alert_id: int, move: models.AlertMove, request: Request, who: Reviewer):
        expected = move.version
        match = request.headers.get("if-match")
        if match is not None:
            try:
                expected = int(match.strip().strip("W/").strip('"'))
            except ValueError:
                raise ApiError(
                    422, "invalid_field", "If-Match must be an alert version", "If-Match"
                ) from None
        try:
            alert = service["store"].move_alert(
                alert_id,
                move.status,
                analyst=move.analyst or who,
                note=move.note,
                expected_version=expected,
            )
        except ValueError as exc:
            field = "status" if "status" in str(exc) else "analyst"
            raise ApiError(422, "invalid_field", str(exc), field) from None
        return _json(alert, headers={"ETag": f'"{alert["version"]}"'})

    @app.post("/labels", summary="Labels that arrive later (chargebacks)", tags=["alerts"])
    def add_labels(body: models.LabelsIn, who: Reviewer):
        rows = [
            {
                "event_id": item.event_id,
                "label": item.label,
                "time": item.time,
                "source": item.source or who,
            }
            for item in body.labels
        ]
        return _json({"stored": service["store"].add_labels(rows)})

    # -- models -------------------------------------------------------------------------

    @app.get("/models/info", summary="The model being served", tags=["models"])
    def model_info(who: Reader):
        current = service["served"]
        return _json(
            {
                "version": current.version,
                "fingerprint": current.fingerprint,
                "path": current.path,
                **model_description(current.detector),
            }
        )

    async def _reload(path):
        current = service["served"]
        path = path or current.path
        if not path:
            raise ApiError(422, "invalid_field", "no model file to reload: give a path", "path")
        try:
            candidate = await run_in_threadpool(ServedModel.from_file, path)
        except (OSError, ValueError) as exc:
            raise ApiError(
                422,
                "invalid_model",
                f"the model was refused, the old one keeps serving: {exc}",
                "path",
            ) from None
        pipeline = service["pipeline"]
        try:  # the history being served, read by the new model
            scorer = OnlineScorer(candidate.detector, pipeline.scorer.state)
        except ValueError as exc:
            raise ApiError(
                409, "incompatible_model", f"{exc}; restart the service with it", "path"
            ) from None
        try:
            await run_in_threadpool(_warm, candidate, service["store"])
        except Exception as exc:  # noqa: BLE001 - any failure refuses the model
            raise ApiError(
                422, "invalid_model", f"the model failed on recent transactions: {exc}", "path"
            ) from None
        await asyncio.wrap_future(pipeline.swap(scorer, candidate.version))
        service["served"] = candidate
        service["reader"] = TransactionReader(candidate.detector.schema)
        await run_in_threadpool(
            service["store"].record_model,
            candidate.version,
            candidate.fingerprint,
            model_description(candidate.detector),
        )
        log.info("now serving %s", candidate.version)
        return {"previous": current.version, "version": candidate.version}

    async def _reload_on_hup():
        try:
            await _reload(None)
        except ApiError as exc:  # the old model keeps serving; say why in the log
            log.warning("SIGHUP: %s", exc.message)

    @app.post("/models/reload", summary="Swap in a new model file", tags=["models"])
    async def reload_model(who: Admin, body: Optional[models.ReloadIn] = None):
        return _json(await _reload(body.path if body else None))

    # -- the Online Retail project's endpoints and the dashboards' aggregates -----------

    @app.get("/customer_ids", summary="Customers with stored transactions", tags=["reports"])
    def customer_ids(who: Reader, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000):
        return _json({"customer_ids": service["store"].customer_ids(limit=limit)})

    @app.post("/api/anomalies", summary="A customer's anomalies by a metric", tags=["reports"])
    def anomalies(body: models.AnomaliesIn, who: Reader):
        try:
            return _json(service["store"].customer_anomalies(body.customer_id, body.filter_metric))
        except ValueError as exc:
            raise ApiError(422, "invalid_field", str(exc), "filter_metric") from None

    def aggregate(path, method_name, summary):
        def route(who: Reader):
            return _json(getattr(service["store"], method_name)())

        app.get(path, summary=summary, tags=["reports"], name=method_name)(route)

    def by_dimension(path, method_name, summary):
        def route(
            who: Reader,
            limit: Annotated[Optional[int], Query(ge=1, le=100_000)] = None,
            by: Annotated[str, Query(pattern="^(transactions|alerts)$")] = "transactions",
        ):
            return _json(getattr(service["store"], method_name)(limit=limit, by=by))

        app.get(path, summary=summary, tags=["reports"], name=method_name)(route)

    aggregate("/summary", "summary", "Transactions, alerts and amounts")
    by_dimension("/fraud_devices", "fraud_devices", "Alerts and fraud by device (most first)")
    by_dimension("/fraud_browsers", "fraud_browsers", "Alerts and fraud by browser (most first)")
    by_dimension("/fraud_geography", "fraud_geography", "Alerts and fraud by country (most first)")

    @app.get("/fraud_trends", summary="Alerts and fraud over time", tags=["reports"])
    def fraud_trends(
        who: Reader, bucket: Annotated[str, Query(pattern="^(hour|day|week|month)$")] = "day"
    ):
        return _json(service["store"].fraud_trends(bucket))

    if dashboard:
        try:
            from fraudcore.dashboard import Desk, mount_dashboard
        except ImportError as exc:
            raise ImportError(
                f"the dashboard needs the dashboard extra ({exc}): "
                "pip install 'fraudcore[dashboard]'"
            ) from None
        mount_dashboard(app, Desk(lambda: service["store"], keys=keys))
    return app


def _seed_history(served, store, history):
    if store.last_seq() > 0 or store.latest_snapshot() is not None:
        log.warning("the store already holds transactions: --history is ignored")
        return
    scorer = OnlineScorer.from_history(served.detector, history)
    store.save_snapshot(dumps(scorer.state), 0, served.version)


def _warm(candidate, store):
    """Score up to 200 recent stored transactions with ``candidate`` (its own
    batch path, the history untouched): a model that fails on them is refused."""
    last = store.last_seq()
    rows = store.transactions_after(max(0, last - 200), limit=200)
    if rows:
        import pandas as pd

        frame = pd.DataFrame([record for _, record in rows]).drop(columns=["event_id"])
        candidate.detector.score(frame, reasons=None)


def model_description(detector):
    """What /models/info says of a fitted FraudDetector besides its version;
    also recorded in the store's model_metrics (the dashboard's model page)."""
    return {
        "schema": {k: v for k, v in vars(detector.schema).items() if v not in (None, ())},
        "features": list(detector.feature_names_),
        "detectors": list(detector.models_),
        "weights": dict(detector.weights_),
        "threshold": detector.threshold_,
        "supervised": detector.supervised_ is not None,
        "training_metrics": detector.training_metrics_,
        "n_training_rows": detector.n_training_rows_,
    }


def _field_of(message, reader):
    """The schema column a refusal's message names first (None if none)."""
    s = reader.schema
    columns = [c for c in (s.timestamp, s.entity, *reader.numbers, *reader.optional) if c]
    found = [(message.find(c), c) for c in columns if c in message]
    return min(found)[1] if found else None


class ServiceApp(FastAPI):
    """FastAPI, plus a fast path for the scoring routes.

    ``POST /detect`` and ``/detect/batch`` are answered here, without
    FastAPI's routing, dependency solving and middleware stack, which cost
    more than the scoring itself (measured with py-spy under load). They keep
    what the stack gives the other routes: the key check, the body limit, the
    JSON errors and the request metrics.
    """

    fast_routes = types.MappingProxyType({})  # create_app sets the app's own

    async def __call__(self, scope, receive, send):
        handler = None
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast_routes.get(scope["path"])
        if handler is None:
            await super().__call__(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])

        def header(name):
            value = headers.get(name.encode("latin-1"))
            return None if value is None else value.decode("latin-1")

        try:
            self.fast_identify(header, "score")
            raw = await _read_body(receive, header("content-length"), self.max_body_bytes)
            status, payload = 200, await handler(raw)
        except ApiError as exc:
            status, payload = exc.status, exc.body()
        except ServiceUnavailable as exc:
            status, payload = 503, ApiError(503, "unavailable", str(exc)).body()
        except _Disconnected:
            return
        except Exception:  # a bug: logged, answered without details
            log.exception("unexpected error on POST %s", scope["path"])
            status, payload = (
                500,
                ApiError(500, "internal", "internal error; see the server log").body(),
            )
        await _send_json(send, status, payload)
        self.request_metrics.observe(scope["path"], "POST", status, time.perf_counter() - start)


class _Disconnected(Exception):
    """The client went away before its body arrived."""


def _too_large(limit):
    return ApiError(413, "too_large", f"the body is larger than {limit:,} bytes")


def _declares_too_much(content_length, limit):
    """Whether a Content-Length header value (bytes or str, or None) is over ``limit``."""
    return content_length is not None and content_length.isdigit() and int(content_length) > limit


async def _read_body(receive, content_length, limit):
    if _declares_too_much(content_length, limit):
        raise _too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send, status, payload):
    """An HTTP response of ``payload`` as JSON, straight on the ASGI channel."""
    body = orjson.dumps(payload, option=_JSON_OPTIONS)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for a body over ``limit`` bytes on the routes behind FastAPI (the
    scoring routes' fast path reads with the same rules, _read_body): by
    Content-Length before reading, and while reading a body sent without one."""

    def __init__(self, app, limit):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declares_too_much(dict(scope.get("headers", ())).get(b"content-length"), self.limit):
            await _send_json(send, 413, _too_large(self.limit).body())
            return
        seen = [0]

        async def counting():
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.limit:
                    raise _too_large(self.limit)
            return message

        await self.app(scope, counting, send)


__all__ = ["ApiError", "ServedModel", "ServiceApp", "TransactionReader", "create_app"]
