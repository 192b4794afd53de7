"""``fraudcore replay``: a transaction file onto a stream, at a chosen rate.

:func:`stream_pairs` turns a DataFrame into (customer key, encoded
transaction) pairs in time order (ties in file order), each with an
``event_id``: the schema's transaction id when it has one, else
``row-<the file's row number>``, so replaying the same file twice puts the
same events on the stream again and the consumer stores each once.
:func:`replay` sends them through a sink (Redis or Kafka), paced to
``rate`` transactions per second when given.
"""

import time

from fraudcore.service.demo import json_records
from fraudcore.service.engine import dumps

__all__ = ["replay", "stream_pairs"]


def stream_pairs(frame, schema):
    """[(key, value bytes)] of frame's transactions, in time order."""
    if schema.entity is None:
        raise ValueError("replay needs a schema with a customer (entity) column")
    ordered = frame.sort_values(schema.timestamp, kind="stable")
    if schema.transaction_id is not None and schema.transaction_id in ordered.columns:
        event_ids = ordered[schema.transaction_id].astype(str)
    else:
        event_ids = "row-" + ordered.index.astype(str)
    records = json_records(ordered, event_ids)
    return [(str(record[schema.entity]), dumps(record).encode()) for record in records]


def replay(pairs, sink, *, rate=None, chunk=1000, progress=None):
    """Send pairs through sink, at most ``rate`` per second (None: as fast
    as the sink takes them); ``progress(n_sent)`` after each chunk. Returns
    the seconds it took."""
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be a positive number of transactions per second, got {rate!r}")
    if rate is not None:  # small chunks: a steady stream, not bursts
        chunk = max(1, min(chunk, int(rate // 100) or 1))
    started = time.monotonic()
    for start in range(0, len(pairs), chunk):
        if rate is not None:
            wait = started + start / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        sink.send(pairs[start : start + chunk])
        if progress is not None:
            progress(min(len(pairs), start + chunk))
    sink.close()
    return time.monotonic() - started
