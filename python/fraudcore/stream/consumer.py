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
   (a time earlier than its customer's last, say) is found by scoring the
   batch one message at a time and becomes a poison message too;
3. puts the poison messages on the **dead-letter** stream or topic with
   their error;
4. only then **acknowledges** the batch (``XACK`` / an offset commit).

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

If the store fails, nothing of the batch is acknowledged: the source
delivers it again after a pause (growing to ``MAX_BACKOFF_S``).

:meth:`StreamConsumer.stop` (SIGTERM, Ctrl-C) ends the loop after the
current batch: the batch is stored and acknowledged, the feature state
snapshotted, the source's partitions released.
"""

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
from fraudcore.stream.stats import ConsumerStats

log = logging.getLogger("fraudcore.stream")

MAX_BACKOFF_S = 5.0
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
        for name, value in (("max_batch", max_batch), ("max_deliveries", max_deliveries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.source, self.served, self.store = source, served, store
        self.max_batch, self.max_deliveries = max_batch, max_deliveries
        self.poll_timeout = poll_timeout
        self.reader = TransactionReader(served.detector.schema)
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
        )
        self._stopping = False
        self._failures = 0

    def stop(self):
        """End the loop after the current batch (safe in a signal handler)."""
        self._stopping = True

    def run(self, *, stop_when_idle=None, max_messages=None, report=None, report_every=10.0):
        """Consume until :meth:`stop`, or until no message came for
        ``stop_when_idle`` seconds (not counting up to ASSIGNMENT_WAIT_S
        at start without partitions), or ``max_messages`` were settled; then
        snapshot and release the source. ``report(stats)`` is called every
        ``report_every`` seconds and at the end. Returns the stats."""
        self.pipeline.start()
        settled = 0
        started = idle_since = next_report = time.monotonic()
        try:
            while not self._stopping:
                messages = self.source.poll(self.max_batch, self.poll_timeout)
                now = time.monotonic()
                if messages:
                    settled += self.handle(messages)
                    idle_since = now
                elif not self.source.owned and now - started < ASSIGNMENT_WAIT_S:
                    idle_since = now  # not idle: waiting for partitions (Kafka's group join)
                elif stop_when_idle is not None and now - idle_since >= stop_when_idle:
                    break
                if report is not None and now >= next_report:
                    next_report = now + report_every
                    self.stats.lag = self.source.lag()
                    report(self.stats)
                if max_messages is not None and settled >= max_messages:
                    break
            if report is not None:
                self.stats.lag = self.source.lag()
                report(self.stats)
        finally:
            self.pipeline.stop()
            self.source.close()
        return self.stats

    def handle(self, messages):
        """Process one batch (steps 1-4 of the module doc); the number of
        messages settled (0 when the store failed and they come again)."""
        started = time.monotonic()
        dead, kept, records, times = [], [], [], []
        for message in messages:
            error = self._decode(message, records, times)
            if error is None:
                kept.append(message)
            else:
                dead.append((message, error))
        results = self._score(kept, records, times, dead)
        if results is None:
            self.stats.failed_batches += 1
            self._failures += 1
            self.source.redeliver()
            time.sleep(min(MAX_BACKOFF_S, 0.1 * 2**self._failures))
            return 0
        self._failures = 0
        for message, error in dead:
            log.warning("dead letter %s: %s", message, error)
            self.source.dead_letter(message, error)
        self.source.ack(messages)
        self.stats.dead_letters += len(dead)
        duplicates = sum(r["duplicate"] for r in results)
        alerts = sum(r["is_alert"] and not r["duplicate"] for r in results)
        self.stats.batch_done(
            len(results) - duplicates,
            duplicates,
            alerts,
            [m.timestamp_ms for m in kept],
            time.monotonic() - started,
        )
        return len(messages)

    def _decode(self, message, records, times):
        """None after appending the message's record and time, else the error."""
        if message.deliveries is not None and message.deliveries > self.max_deliveries:
            return (
                f"delivered {message.deliveries} times and never acknowledged "
                f"(more than max_deliveries={self.max_deliveries})"
            )
        try:
            obj = orjson.loads(message.value)
            record, at = self.reader.read(obj)
        except orjson.JSONDecodeError as exc:
            return f"not a JSON transaction: {exc}"
        except ApiError as exc:
            return exc.message
        records.append(record)
        times.append(at)
        return None

    def _score(self, kept, records, times, dead):
        """The pipeline's results for records, or None when the store failed.
        Messages the scorer refuses move from kept to dead."""
        if not records:
            return []
        try:
            return self.pipeline.submit(records, times).result()
        except ServiceUnavailable as exc:
            log.error("the store failed, the batch comes again: %s", exc)
            return None
        except RecordError:
            pass  # one or more refused: the batch is unchanged; find them one by one
        results, accepted = [], []
        for message, record, at in zip(kept, records, times):
            try:
                results.extend(self.pipeline.submit([record], [at]).result())
            except RecordError as exc:
                dead.append((message, str(exc)))
                continue
            except ServiceUnavailable as exc:
                log.error("the store failed, the batch comes again: %s", exc)
                return None
            accepted.append(message)
        kept[:] = accepted
        return results
