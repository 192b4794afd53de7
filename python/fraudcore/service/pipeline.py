"""The scoring worker: one thread scores transactions, another commits them.

Requests (``submit``) queue their transactions; a single worker thread takes
whatever is queued (up to ``max_batch`` transactions), and for that group:

1. asks the store which event ids it already holds (one query), and which
   are in a group scored but not yet committed — those answer with that
   result and are neither scored nor folded into a customer's history
   again (a checkout's retry is idempotent);
2. scores each request's new transactions with the online scorer, which
   folds them into the customers' history; a request whose transactions
   are refused (a time earlier than the customer's last, say) fails alone,
   and leaves the history as it was (``partial``: only the refused
   transactions fail, the others are scored one by one, in order);
3. hands the group to the writer thread, which writes every scored
   transaction of it in **one** database transaction (group commit) and
   only then answers its requests; the worker scores the next group
   meanwhile (at most two wait for the writer). A group with nothing to
   overlap (the writer idle, no request queued) is written by the worker
   itself: a lone request pays no thread hand-off.

So a response is sent only after its transaction (and alert) is committed,
groups are committed in the order they were scored, and one commit serves
every request that arrived meanwhile: throughput grows with concurrency
instead of paying a commit per request. A failure (a write, or anything
while scoring) leaves the history holding transactions the store does not:
the groups scored after it fail too (a new failure generation), and the
history is rebuilt from the store before the next group.

History survives restarts: every ``snapshot_every`` transactions (and on a
clean stop) the feature state is saved in the store with the sequence
number of the last transaction it folded in. :func:`restore_scorer` loads
the latest snapshot and folds in the transactions stored after it, so a
``kill -9`` loses nothing that was answered. Snapshots are taken with no
group waiting for the writer.

Other writers of the same store (a second stream consumer, a service):
with ``follow_store`` the worker, before each group and each snapshot,
folds into its history the transactions others stored since it last
looked (:meth:`AlertStore.events_after`: ids first, then only the raw
transactions it did not write itself). So its history is always the
store's, whoever wrote it: a customer whose stream partition moves to
this consumer arrives with every transaction the previous one stored, and
a snapshot holds exactly the transactions up to the seq it records.
Without it (the service's default) the worker must be the store's only
writer.

The worker is the only user of the feature state, so the state needs no
locking of its own. Model swaps
(``swap``) run on the worker between two groups: no request sees half of a
swap.
"""

import concurrent.futures
import datetime as dt
import logging
import queue
import threading

import pandas as pd

from fraudcore._persistence import dumps, loads
from fraudcore.online import OnlineScorer

log = logging.getLogger("fraudcore.service")

_STOP = object()


class RecordError(ValueError):
    """The online scorer refused a transaction of a request (its message says
    which and why); the history is as it was."""


class ServiceUnavailable(RuntimeError):
    """The store failed; nothing of the request was written."""


class _Job:
    """Transactions waiting for the worker, and where their answer goes: a
    concurrent Future, or an asyncio Future of ``loop`` (resolved through
    the loop's call_soon_threadsafe directly, without wrap_future's chain of
    callbacks, which cost 7% of the service's CPU under load)."""

    __slots__ = ("answered", "future", "loop", "partial", "records", "times")

    def __init__(self, records, times, loop=None, partial=False):
        self.records, self.times, self.loop, self.partial = records, times, loop, partial
        self.future = concurrent.futures.Future() if loop is None else loop.create_future()
        self.answered = False  # by the worker (an asyncio Future is settled later, on its loop)

    def done(self):
        return self.answered

    def set_result(self, value):
        self._answer(value, None)

    def set_exception(self, exc):
        self._answer(None, exc)

    def _answer(self, value, exc):
        self.answered = True
        if self.loop is None:
            _settle(self.future, value, exc)
            return
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, value, exc)
        except RuntimeError:  # the loop is closed: nobody waits for the answer
            pass


def _settle(future, value, exc):
    """A Future's outcome (an asyncio one: on its loop), unless it is done
    already (an asyncio request cancelled: the client went away)."""
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


class _Group:
    """A scored group on its way to the writer: per job the answer's slots,
    the new items, the failure generation it was scored in, its size."""

    __slots__ = ("answered", "generation", "items", "n")

    def __init__(self, answered, items, generation, n):
        self.answered, self.items, self.generation, self.n = answered, items, generation, n


def _fail(jobs, exc):
    for job in jobs:
        if not job.done():
            job.set_exception(exc)


class _Swap:
    __slots__ = ("future", "scorer", "version")

    def __init__(self, scorer, version):
        self.scorer, self.version = scorer, version
        self.future = concurrent.futures.Future()


class ScoringPipeline:
    """Batches scoring requests onto one worker thread (see the module doc).

    Parameters
    ----------
    scorer : OnlineScorer
        Its state must hold every transaction the store holds (see
        :func:`restore_scorer`).
    store : AlertStore
    model_version : str
    max_batch : int
        Most transactions scored and committed together.
    snapshot_every : int
        Transactions between two snapshots of the feature state.
    follow_store : bool
        Fold in what other writers store (see the module doc).
    seq : int or None
        With follow_store: the store seq the scorer's history is complete up
        to (:func:`restore_state` gives it); None asks the store for its last.
    halt_on_failure : bool
        After a failed write, fail every group until :meth:`resume` (a
        stream consumer: what it submitted after the failed batch must come
        again after it, not be scored before it on the rebuilt history).
    """

    def __init__(
        self,
        scorer,
        store,
        model_version,
        *,
        max_batch=5000,
        snapshot_every=50_000,
        follow_store=False,
        seq=None,
        halt_on_failure=False,
    ):
        self.scorer = scorer
        self.store = store
        self.model_version = model_version
        self.max_batch = max_batch
        self.snapshot_every = snapshot_every
        self._queue = queue.SimpleQueue()
        self._pending = 0  # transactions queued, not yet answered (under _pending_lock)
        self._pending_lock = threading.Lock()
        self._since_snapshot = 0
        self._needs_rebuild = False
        self._generation = 0  # +1 at each failed write: later groups were scored on its history
        self._failure_lock = threading.Lock()
        self.halt_on_failure = halt_on_failure
        self._halted = False
        self._writes = queue.Queue(maxsize=2)  # scored groups for the writer thread
        self._inflight = {}  # event id -> item: scored, not yet committed
        self.follow_store = follow_store
        self._seq = store.last_seq() if follow_store and seq is None else seq
        self._mine = set()  # event ids this worker stored after _seq
        self._thread = None
        self.alerts_opened = 0
        self.transactions_scored = 0

    # -- life cycle ------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, name="fraudcore-scoring", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=30.0):
        """Answer what is queued, snapshot the state, stop the worker."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    @property
    def queue_depth(self):
        return self._pending

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    # -- requests --------------------------------------------------------------

    def submit(self, records, times, loop=None, *, partial=False):
        """Queue transactions (dicts with an ``event_id``, checked by the
        caller) and their times (aware UTC datetimes); a Future of their
        results, in order, or of RecordError / ServiceUnavailable: an
        asyncio Future of ``loop`` (call from its thread), else a
        concurrent.futures.Future.

        ``partial``: a transaction the scorer refuses does not fail the
        others; its result is a RecordError (the others are scored one by
        one, in order, on the worker, so the history stays in stream order).
        """
        job = _Job(records, times, loop, partial)
        if not self.running:
            job.set_exception(ServiceUnavailable("the scoring worker is not running"))
            return job.future
        with self._pending_lock:
            self._pending += len(records)
        self._queue.put(job)
        return job.future

    def resume(self):
        """Score again after a failed write halted the pipeline (halt_on_failure)."""
        with self._failure_lock:
            self._halted = False

    def swap(self, scorer, model_version):
        """Serve ``scorer`` from the next group on; a Future done once it does."""
        order = _Swap(scorer, model_version)
        self._queue.put(order)
        return order.future

    # -- the worker ------------------------------------------------------------

    def _run(self):
        writer = threading.Thread(target=self._write_loop, name="fraudcore-writer", daemon=True)
        writer.start()
        carry = None
        while True:
            item = carry if carry is not None else self._queue.get()
            carry = None
            if item is _STOP:
                break
            if isinstance(item, _Swap):
                self._apply_swap(item)
                continue
            jobs, n = [item], len(item.records)
            while n < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(more, _Job):
                    carry = more  # a swap or a stop: after this group
                    break
                jobs.append(more)
                n += len(more.records)
            try:
                group = self._score_group(jobs, n)
            except ServiceUnavailable as exc:  # halted
                _fail(jobs, exc)
                self._settled(n)
                continue
            except BaseException as exc:  # never leave a request waiting
                log.exception("scoring group failed; the history is rebuilt from the store")
                self._history_failed()  # it may hold some of the group, not stored
                _fail(jobs, ServiceUnavailable(str(exc)))
                self._settled(n)
                continue
            if self._writes.unfinished_tasks == 0 and self._queue.empty():
                # nothing to overlap with: written here, without a thread hand-off
                # (a single request's latency); only this thread adds groups, so
                # the writer stays idle meanwhile and the order holds
                self._write(group)
            else:
                self._writes.put(group)
            if self._since_snapshot >= self.snapshot_every:
                self._writes.join()
                self._snapshot()
        self._writes.put(_STOP)
        writer.join()
        self._snapshot()

    def _apply_swap(self, order):
        self.scorer, self.model_version = order.scorer, order.version
        order.future.set_result(order.version)

    def _history_failed(self):
        """The history may hold transactions the store does not: rebuild it
        before the next group, fail the groups scored on it (a new failure
        generation) and, with halt_on_failure, halt until resume()."""
        with self._failure_lock:
            self._needs_rebuild = True
            self._generation += 1
            self._halted = self.halt_on_failure

    def _settled(self, n):
        with self._pending_lock:
            self._pending -= n

    def _score_group(self, jobs, n):
        """Score a group on the worker (the history changes here only) and
        return it for the writer: its jobs' answer slots and its new items."""
        with self._failure_lock:
            generation = self._generation
            rebuild = self._needs_rebuild
            if self._halted:
                raise ServiceUnavailable("halted after a failed write (resume() goes on)")
        if rebuild:  # a write failed: its transactions are in the history, not the store
            self._writes.join()
            with self._failure_lock:
                self.scorer, self._seq = restore_state(self.scorer.detector, self.store)
                self._mine.clear()
                self._inflight.clear()
                self._needs_rebuild = False
                generation = self._generation
        if self.follow_store:
            self._follow()
        inflight = dict(self._inflight)  # one view: the writer removes what it commits
        ids = [r["event_id"] for job in jobs for r in job.records]
        stored = self.store.existing([eid for eid in ids if eid not in inflight])
        fresh_items, answered = [], []
        scored_here = {}  # event id -> its position in fresh_items
        for job in jobs:
            slots, new, times, local = [], [], [], {}
            for record, at in zip(job.records, job.times):
                eid = record["event_id"]
                earlier = stored.get(eid) or inflight.get(eid)
                if earlier is not None:  # stored, or scored in a group not yet committed
                    slots.append(("stored", earlier))
                elif eid in scored_here:
                    slots.append(("same", scored_here[eid]))
                elif eid in local:  # twice in one request: scored once
                    slots.append(("repeat", local[eid]))
                else:
                    local[eid] = len(new)
                    slots.append(("new", len(new)))
                    new.append(record)
                    times.append(at)
            try:
                results = self.scorer.score_many(new) if new else []
            except ValueError as exc:  # the scorer left the history as it was
                if not job.partial:
                    job.set_exception(RecordError(str(exc)))
                    continue
                results = self._score_each(new)
            position = []
            for record, at, result in zip(new, times, results):
                if isinstance(result, RecordError):
                    position.append(result)
                else:
                    position.append(len(fresh_items))
                    fresh_items.append(self._item(record, at, result))
            for eid, k in local.items():
                if not isinstance(position[k], RecordError):
                    scored_here[eid] = position[k]
            answered.append(
                (
                    job,
                    [
                        (kind, position[p]) if kind in ("new", "repeat") else (kind, p)
                        for kind, p in slots
                    ],
                )
            )
        for item in fresh_items:
            self._inflight[item["event_id"]] = item
        if self.follow_store:
            self._mine.update(scored_here)
        return _Group(answered, fresh_items, generation, n)

    def _score_each(self, records):
        """score_many of each record alone, in order: its result, or the
        RecordError of a record the scorer refuses."""
        results = []
        for record in records:
            try:
                results.append(self.scorer.score_many([record])[0])
            except ValueError as exc:
                results.append(RecordError(str(exc)))
        return results

    def _write_loop(self):
        """The writer: commits the scored groups in order and answers them."""
        while True:
            group = self._writes.get()
            try:
                if group is _STOP:
                    return
                self._write(group)
            finally:
                self._writes.task_done()

    def _write(self, group):
        """Commit a group and answer its jobs (whatever happens)."""
        try:
            self._commit(group)
        except BaseException as exc:  # never leave a request waiting
            log.exception("writing a group failed")
            _fail([job for job, _ in group.answered], ServiceUnavailable(str(exc)))
        finally:
            for item in group.items:
                self._inflight.pop(item["event_id"], None)
            self._settled(group.n)

    def _commit(self, group):
        jobs = [job for job, _ in group.answered]
        if group.generation != self._generation:  # scored on a history a failed write left
            _fail(jobs, ServiceUnavailable("an earlier write failed; nothing was written"))
            return
        fresh_items = group.items
        if fresh_items:
            try:
                alert_ids = self.store.write_scored(fresh_items)
            except Exception as exc:
                self._history_failed()  # folded in, not stored
                log.exception("store write failed; the history is rebuilt from the store")
                _fail(
                    jobs,
                    ServiceUnavailable(f"the store refused the write ({exc}); nothing was written"),
                )
                return
            for item, alert_id in zip(fresh_items, alert_ids):
                item["alert_id"] = alert_id
                self.alerts_opened += alert_id is not None
            self.transactions_scored += len(fresh_items)
            self._since_snapshot += len(fresh_items)
        for job, slots in group.answered:
            job.set_result(
                [
                    payload
                    if isinstance(payload, RecordError)
                    else response(payload, duplicate=True)
                    if kind == "stored"
                    else response(fresh_items[payload], duplicate=kind != "new")
                    for kind, payload in slots
                ]
            )

    def _item(self, record, at, result):
        """The store's row of one scored transaction."""
        schema = self.scorer.detector.schema
        detectors = self.scorer.detector.models_
        return {
            "event_id": record["event_id"],
            "customer_id": None if schema.entity is None else str(record[schema.entity]),
            "occurred_at": at,
            "amount": _amount(record, schema),
            "transaction": record,
            "features": result["features"],
            "scores": {name: result[f"score_{name}"] for name in detectors},
            "risk_score": result["risk_score"],
            "fraud_probability": result.get("fraud_probability"),
            "risk_level": result["risk_level"],
            "priority": int(result["priority"]),
            "confidence": result["confidence"],
            "is_alert": bool(result["is_alert"]),
            "is_cancellation": bool(result.get("is_cancellation", False)),
            # whether any threshold could make it an alert (the what-if counts these)
            "alertable": self.scorer.detector.alert_cancellations
            or not result.get("is_cancellation", False),
            "reasons": result["reason_details"],
            "model_version": self.model_version,
            # the dashboards' dimensions, when the schema has them
            "country": _get(record, schema.country),
            "device": _get(record, schema.device_id),
            "browser": _get(record, schema.browser),
            "ip": _get(record, schema.ip_address),
        }

    def _follow(self, chunk=20_000):
        """Fold in the transactions other writers stored after _seq."""
        while True:
            rows = self.store.events_after(self._seq, limit=chunk)
            if not rows:
                break
            theirs = [seq for seq, event_id in rows if event_id not in self._mine]
            if theirs:
                self.scorer.warm(self.store.transactions_at(theirs))
            self._mine.difference_update(event_id for _, event_id in rows)
            self._seq = rows[-1][0]
            if len(rows) < chunk:
                break

    def _snapshot(self):
        """Save the feature state with the last stored transaction's number."""
        if self._since_snapshot == 0 or self._needs_rebuild:
            return
        try:
            if self.follow_store:
                self._follow()
                last_seq = self._seq
            else:
                last_seq = self.store.last_seq()
            self.store.save_snapshot(dumps(self.scorer.state), last_seq, self.model_version)
            self._since_snapshot = 0
        except Exception:
            log.exception("snapshot failed; the next one retries (restarts replay more)")


def response(item, duplicate=False):
    """The API's answer for one scored (or already stored) transaction."""
    out = {
        "event_id": item["event_id"],
        "risk_score": item["risk_score"],
        "risk_level": item["risk_level"],
        "priority": item["priority"],
        "is_alert": item["is_alert"],
        "confidence": item["confidence"],
        "scores": item["scores"],
        "reasons": item["reasons"],
        "model_version": item["model_version"],
        "duplicate": duplicate,
    }
    if item.get("fraud_probability") is not None:
        out["fraud_probability"] = item["fraud_probability"]
    if item.get("alert_id") is not None:
        out["alert_id"] = item["alert_id"]
    return out


def occurred_at(value, time_unit):
    """A transaction time as an aware UTC datetime (naive times are UTC)."""
    if type(value) is str:  # the common case, without pandas (its parse costs 10 µs)
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            pass  # other forms pandas reads
        else:
            if when.tzinfo is None:
                return when.replace(tzinfo=dt.timezone.utc)
            return when.astimezone(dt.timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = pd.Timestamp(value, unit=time_unit)
    else:
        stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert("UTC").to_pydatetime()


def _get(record, column):
    return None if column is None else record.get(column)


def _amount(record, schema):
    if schema.amount is not None:
        return float(record[schema.amount])
    return float(record[schema.quantity]) * float(record[schema.unit_price])


# -- the history at start -------------------------------------------------------


def restore_scorer(detector, store, *, chunk=20_000):
    """An OnlineScorer whose history holds every transaction in ``store``:
    the latest usable snapshot, then the transactions stored after it."""
    return restore_state(detector, store, chunk=chunk)[0]


def restore_state(detector, store, *, chunk=20_000):
    """(scorer, seq) as :func:`restore_scorer`, with the seq of the last
    transaction its history holds."""
    scorer, seq = None, 0
    snapshot = store.latest_snapshot()
    if snapshot is not None:
        blob, last_seq, _version = snapshot
        try:  # OnlineScorer refuses a state that computes other features
            scorer, seq = OnlineScorer(detector, loads(blob)), last_seq
        except ValueError as exc:
            log.warning("the stored snapshot is not usable (%s); replaying every transaction", exc)
    if scorer is None:
        scorer = OnlineScorer(detector)
    while True:
        rows = store.transactions_after(seq, limit=chunk)
        if not rows:
            return scorer, seq
        scorer.warm([record for _, record in rows])
        seq = rows[-1][0]
