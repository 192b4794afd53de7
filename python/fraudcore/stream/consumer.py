"""The stream consumer: one loop from a source's messages to stored alerts.

Each turn of :meth:`StreamConsumer.run` takes a micro-batch from the source
(:mod:`fraudcore.stream.redis_streams`, :mod:`fraudcore.stream.kafka_topics`)
and, in this order:

1. **decodes** each message (JSON) and checks it against the model's
   schema with the service's :class:`~fraudcore.service.app.TransactionReader`;
   a message that fails, or that was delivered more than ``max_deliveries``
   times without being acknowledged, is a poison message;
2. **scores and stores** the rest through the service's
   :class:`~fraudcore.service.pipeline.ScoringPipeline`: event ids already
   stored are not scored again (they answer with the stored result), the
   others are featurized with the customers' history, scored, and written
   in one database transaction; a transaction the online scorer refuses
   (a time earlier than its customer's last, say) is found by the
   pipeline scoring that batch one message at a time, in order, and
   becomes a poison message too;
3. puts the poison messages on the **dead-letter** stream or topic with
   their error;
4. only then **acknowledges** the batch (``XACK`` / an offset commit).

Up to IN_FLIGHT batches are in the pipeline at once (one polled and
decoded while another is scored and a third written); each is settled
(steps 3 and 4) in order, once stored.

So delivery is at least once and the effects exactly once: a crash before
the commit leaves the messages unacknowledged and stores nothing; a crash
between the commit and the acknowledgement delivers them again, and they
are recognised by their event ids. The customers' history is rebuilt at
start from the store (:func:`~fraudcore.service.pipeline.restore_state`:
the latest snapshot of the feature state, which records the store seq it
holds, then the transactions stored after it), so after a crash it holds
each stored transaction exactly once; the pipeline follows the store
(``follow_store``), so what other consumers of the group stored (a
partition that moved here) is in it before the next batch is scored.

If the store fails, nothing of the batch is acknowledged, nor of the
batches after it (the pipeline halts until the consumer resumes it): the
consumer submits them again, in order, after a pause (growing to
``MAX_BACKOFF_S``). A message without an event id (and without the
schema's transaction id) is given its place on the stream
(``stream:partition:position``), so its deliveries share one id.

:meth:`StreamConsumer.stop` (SIGTERM, Ctrl-C) ends the loop after the
current batch: the batch is stored and acknowledged, the feature state
snapshotted, the source's partitions released.
"""

import collections
import concurrent.futures
import logging
import time

import orjson

from fraudcore.service.app import ApiError, TransactionReader, model_description
from fraudcore.service.pipeline import (
    RecordError,
    ScoringPipeline,
    ServiceUnavailable,
    restore_state,
)
from fraudcore.service.queries import checked_int
from fraudcore.stream.stats import ConsumerStats

log = logging.getLogger("fraudcore.stream")

MAX_BACKOFF_S = 5.0
# Batches submitted before the oldest is settled: polling and decoding one,
# scoring another, writing a third overlap (the pipeline scores and writes
# on two threads).
IN_FLIGHT = 3
# stop_when_idle does not count the first seconds without partitions.
ASSIGNMENT_WAIT_S = 60.0


class StreamConsumer:
    """Scores a source's messages into an alert store (see the module doc).

    Parameters
    ----------
    source : RedisStreamSource or KafkaSource
    served : fraudcore.service.app.ServedModel
        The model and its version.
    store : AlertStore
    max_batch : int
        Most messages taken, scored and stored together.
    max_deliveries : int
        A message delivered more often than this without being acknowledged
        goes to the dead letters (sources that count deliveries: Redis).
    snapshot_every : int
        Transactions between two snapshots of the feature state.
    poll_timeout : float
        Seconds a poll waits for a message.
    """

    def __init__(
        self,
        source,
        served,
        store,
        *,
        max_batch=2000,
        max_deliveries=5,
        snapshot_every=50_000,
        poll_timeout=0.2,
    ):
        self.source, self.served, self.store = source, served, store
        self.max_batch = checked_int(max_batch, "max_batch")
        self.max_deliveries = checked_int(max_deliveries, "max_deliveries")
        self.poll_timeout = poll_timeout
        self.reader = TransactionReader(served.detector.schema)
        self._transaction_id = served.detector.schema.transaction_id
        self.stats = ConsumerStats()
        scorer, seq = restore_state(served.detector, store)
        store.record_model(served.version, served.fingerprint, model_description(served.detector))
        self.pipeline = ScoringPipeline(
            scorer,
            store,
            served.version,
            max_batch=max_batch,
            snapshot_every=snapshot_every,
            follow_store=True,
            seq=seq,
            halt_on_failure=True,
        )
        self._stopping = False
        self._failures = 0
        self._retry = collections.deque()  # batches the store refused, to submit again

    def stop(self):
        """End the loop once the batches in flight are settled (safe in a signal handler)."""
        self._stopping = True

    def run(self, *, stop_when_idle=None, max_messages=None, report=None, report_every=10.0):
        """Consume until :meth:`stop`, or until no message came for
        ``stop_when_idle`` seconds (not counting up to ASSIGNMENT_WAIT_S
        at start without partitions), or ``max_messages`` were settled; then
        snapshot and release the source. ``report(stats)`` is called every
        ``report_every`` seconds and at the end. Returns the stats."""
        self.pipeline.start()
        window = collections.deque()  # batches submitted, oldest first
        settled = 0
        started = idle_since = next_report = time.monotonic()
        try:
            while True:
                messages = []
                if not self._stopping and len(window) < IN_FLIGHT:
                    messages = self._next(window)
                now = time.monotonic()
                if messages:
                    window.append(self._submit(messages))
                    idle_since = now
                # the oldest batch: settled when the window is full, nothing came, or it is done
                while window and (
                    len(window) >= IN_FLIGHT or not messages or window[0].future.done()
                ):
                    settled += self._settle(window)
                if self._stopping and not window:
                    break
                if not messages and not window:
                    if not self.source.owned and now - started < ASSIGNMENT_WAIT_S:
                        idle_since = now  # not idle: waiting for partitions (Kafka's group join)
                    elif stop_when_idle is not None and now - idle_since >= stop_when_idle:
                        break
                if report is not None and now >= next_report:
                    next_report = now + report_every
                    self.stats.lag = self.source.lag()
                    report(self.stats)
                if max_messages is not None and settled >= max_messages:
                    self._stopping = True
            if report is not None:
                self.stats.lag = self.source.lag()
                report(self.stats)
        finally:
            self.pipeline.stop()
            self.source.close()
        return self.stats

    def _next(self, window):
        """The next batch: one that failed to store, else a poll (with
        batches in flight, a short one: they are settled as they finish)."""
        if self._retry:
            return self._retry.popleft()
        if window and self.source.release_wanted:
            return []  # settle what is in flight, then the source hands a partition over
        wait = self.poll_timeout if not window else min(self.poll_timeout, 0.005)
        return self.source.poll(self.max_batch, wait, in_flight=bool(window))

    def _submit(self, messages):
        """Decode a batch and hand its transactions to the pipeline."""
        batch = _Batch(messages)
        for message in messages:
            error = self._decode(message, batch.records, batch.times)
            if error is None:
                batch.kept.append(message)
            else:
                batch.dead.append((message, error))
        batch.future = self.pipeline.submit(batch.records, batch.times, partial=True)
        return batch

    def _settle(self, window):
        """Wait for the oldest batch of window; store failed: every batch of
        the window comes again, else dead letters and acknowledgement."""
        batch = window.popleft()
        try:
            results = batch.future.result()
        except ServiceUnavailable as exc:
            log.error("the store failed, the batch comes again: %s", exc)
            # halted: the later batches fail too; all come again, in order, from
            # memory (not the source: that would count as deliveries)
            self._retry.extend([batch.messages] + [later.messages for later in window])
            for later in window:
                concurrent.futures.wait([later.future])
            window.clear()
            self.stats.failed_batches += 1
            self._failures += 1
            time.sleep(min(MAX_BACKOFF_S, 0.1 * 2 ** min(self._failures, 8)))
            self.pipeline.resume()
            return 0
        self._failures = 0
        scored, stamps = [], []
        for message, result in zip(batch.kept, results):
            if isinstance(result, RecordError):
                batch.dead.append((message, str(result)))
            else:
                scored.append(result)
                stamps.append(message.timestamp_ms)
        for message, error in batch.dead:
            log.warning("dead letter %s: %s", message, error)
            self.source.dead_letter(message, error)
        self.source.ack(batch.messages)
        self.stats.dead_letters += len(batch.dead)
        duplicates = sum(r["duplicate"] for r in scored)
        alerts = sum(r["is_alert"] and not r["duplicate"] for r in scored)
        self.stats.batch_done(
            len(scored) - duplicates,
            duplicates,
            alerts,
            stamps,
            batch.started,
        )
        return len(batch.messages)

    def _decode(self, message, records, times):
        """None after appending the message's record and time, else the error."""
        if message.deliveries is not None and message.deliveries > self.max_deliveries:
            return (
                f"delivered {message.deliveries} times and never acknowledged "
                f"(more than max_deliveries={self.max_deliveries})"
            )
        try:
            obj = orjson.loads(message.value)
            if (
                isinstance(obj, dict)
                and obj.get("event_id") is None
                and (self._transaction_id is None or obj.get(self._transaction_id) is None)
            ):  # no id of its own: where it is on the stream, the same at every delivery
                obj["event_id"] = f"{self.source.name}:{message.partition}:{message.position}"
            record, at = self.reader.read(obj)
        except orjson.JSONDecodeError as exc:
            return f"not a JSON transaction: {exc}"
        except ApiError as exc:
            return exc.message
        records.append(record)
        times.append(at)
        return None


class _Batch:
    """One polled batch: its messages, those decoded (kept, with their
    records and times) and the poison ones, the pipeline's Future."""

    __slots__ = ("dead", "future", "kept", "messages", "records", "started", "times")

    def __init__(self, messages):
        self.messages, self.started = messages, time.monotonic()
        self.kept, self.dead, self.records, self.times = [], [], [], []
        self.future = None
