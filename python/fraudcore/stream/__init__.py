"""fraudcore.stream: score a live stream into the alert store (extra ``fraudcore[stream]``).

- :class:`~fraudcore.stream.consumer.StreamConsumer`: the consumer loop,
  from a source's micro-batches to stored, acknowledged results (module doc:
  the guarantees);
- :mod:`~fraudcore.stream.redis_streams` (Redis Streams: partitions,
  leases, consumer groups) and :mod:`~fraudcore.stream.kafka_topics`
  (Kafka), each a source and a sink; :mod:`~fraudcore.stream.urls` picks
  one from a URL;
- :mod:`~fraudcore.stream.replay`: a transaction file onto a stream.

Command line: ``fraudcore stream`` and ``fraudcore replay``.
"""

from fraudcore.stream.consumer import StreamConsumer
from fraudcore.stream.messages import Message, partition_of
from fraudcore.stream.replay import replay, stream_pairs
from fraudcore.stream.urls import open_sink, open_source

__all__ = [
    "Message",
    "StreamConsumer",
    "open_sink",
    "open_source",
    "partition_of",
    "replay",
    "stream_pairs",
]
