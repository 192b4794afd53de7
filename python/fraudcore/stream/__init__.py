"""fraudcore.stream: score a live stream into the alert store (extra ``fraudcore[stream]``).

- :class:`~fraudcore.stream.consumer.StreamConsumer`: the consumer loop,
  from a source's micro-batches to stored, acknowledged results (module doc:
  the guarantees);
- :mod:`~fraudcore.stream.redis_streams` (Redis Streams: partitions,
  leases, consumer groups) and :mod:`~fraudcore.stream.kafka_topics`
  (Kafka), each a source and a sink; :mod:`~fraudcore.stream.urls` picks
  one from a URL;
- :mod:`~fraudcore.stream.replaying`: a transaction file onto a stream.

Command line: ``fraudcore stream`` and ``fraudcore replay``
(:mod:`~fraudcore.stream.command`). Importing this package imports none of
the extra's dependencies (the command line imports it to list its
commands); the names below load their modules on first use.
"""

import importlib

_HOMES = {
    "Message": "messages",
    "StreamConsumer": "consumer",
    "open_sink": "urls",
    "open_source": "urls",
    "partition_of": "messages",
    "replay": "replaying",
    "stream_pairs": "replaying",
}

__all__ = [
    "Message",
    "StreamConsumer",
    "open_sink",
    "open_source",
    "partition_of",
    "replay",
    "stream_pairs",
]


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'fraudcore.stream' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fraudcore.stream.{_HOMES[name]}"), name)
