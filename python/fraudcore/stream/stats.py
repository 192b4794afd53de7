"""What a stream consumer reports: counts, throughput, lag and latency.

:class:`ConsumerStats` is updated by the consumer after each batch and read
by its progress line, its log lines and ``--stats-json``. Latency is
event-to-stored-alert: from the time the message was put on the stream
(the source's timestamp) to the commit of the batch that stored it, kept
for the last ``LATENCY_WINDOW`` messages.
"""

import collections
import time

import numpy as np

LATENCY_WINDOW = 200_000


class ConsumerStats:
    def __init__(self):
        self.started = time.monotonic()
        self.scored = 0  # transactions stored by this consumer
        self.duplicates = 0  # delivered again, already stored: acknowledged only
        self.alerts = 0
        self.dead_letters = 0
        self.batches = 0
        self.failed_batches = 0  # the store refused: delivered again
        self.lag = None
        self.busy_seconds = 0.0  # wall time with a batch between its poll and its acknowledgement
        self._busy_until = 0.0
        self._latencies_ms = collections.deque(maxlen=LATENCY_WINDOW)

    def batch_done(self, scored, duplicates, alerts, stamps_ms, polled_at):
        """One batch acknowledged (batches in poll order): counts, its
        messages' stream timestamps, when it was polled (time.monotonic)."""
        now_ms = time.time() * 1000
        now = time.monotonic()
        self.batches += 1
        self.scored += scored
        self.duplicates += duplicates
        self.alerts += alerts
        # batches overlap: count the wall time once
        self.busy_seconds += max(0.0, now - max(polled_at, self._busy_until))
        self._busy_until = now
        self._latencies_ms.extend(now_ms - s for s in stamps_ms if s is not None)

    def latency_ms(self, q):
        """The q-quantile (0..1) of the recent latencies, None without any."""
        if not self._latencies_ms:
            return None
        return float(np.quantile(np.fromiter(self._latencies_ms, float), q))

    def as_dict(self):
        elapsed = time.monotonic() - self.started
        return {
            "scored": self.scored,
            "duplicates": self.duplicates,
            "alerts": self.alerts,
            "dead_letters": self.dead_letters,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "lag": self.lag,
            "elapsed_s": elapsed,
            "busy_s": self.busy_seconds,
            "transactions_per_s": self.scored / elapsed if elapsed > 0 else 0.0,
            "busy_transactions_per_s": (
                self.scored / self.busy_seconds if self.busy_seconds > 0 else 0.0
            ),
            "latency_ms": {
                "p50": self.latency_ms(0.5),
                "p95": self.latency_ms(0.95),
                "p99": self.latency_ms(0.99),
                "n": len(self._latencies_ms),
            },
        }

    def line(self):
        """One line for a terminal or a log."""
        d = self.as_dict()
        p99 = d["latency_ms"]["p99"]
        return (
            f"{d['scored']:,} scored ({d['transactions_per_s']:,.0f}/s), "
            f"{d['alerts']:,} alerts, {d['dead_letters']} dead letters, "
            f"lag {'?' if d['lag'] is None else format(d['lag'], ',')}, "
            f"latency p99 {'-' if p99 is None else f'{p99:.0f} ms'}"
        )
