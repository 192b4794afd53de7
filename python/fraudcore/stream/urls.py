"""Stream URLs: which source or sink a command line names.

- ``redis://[:PASSWORD@]HOST[:PORT][/DB]/STREAM`` (also ``rediss://``): the
  partitioned Redis stream STREAM (:mod:`fraudcore.stream.redis_streams`);
  DB is a database number (default 0).
- ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC``: the Kafka topic TOPIC
  (:mod:`fraudcore.stream.kafka_topics`).

Anything else is a ValueError naming both forms.
"""

from urllib.parse import urlsplit

FORMS = "redis://HOST:PORT/STREAM or kafka://HOST:PORT/TOPIC"


def parse(url):
    """(kind, address, name): kind "redis" (address: a redis URL without the
    stream) or "kafka" (address: the bootstrap servers)."""
    text = str(url)
    parts = urlsplit(text)
    path = [p for p in parts.path.split("/") if p]
    if parts.scheme in ("redis", "rediss") and path:
        if len(path) > 2 or (len(path) == 2 and not path[0].isdigit()):
            raise ValueError(f"stream url {text!r}: expected {FORMS}")
        db = path[0] if len(path) == 2 else "0"
        return "redis", f"{parts.scheme}://{parts.netloc}/{db}", path[-1]
    if parts.scheme == "kafka" and parts.netloc and len(path) == 1:
        return "kafka", parts.netloc, path[0]
    raise ValueError(f"stream url {text!r}: expected {FORMS}")


def _redis_client(address):
    try:
        import redis
    except ImportError as exc:
        raise ImportError(
            f"Redis streams need redis-py ({exc}): pip install 'fraudcore[stream]'"
        ) from None
    return redis.Redis.from_url(address, socket_timeout=60, socket_connect_timeout=10)


def open_source(url, group, consumer=None, *, partitions=None, lease_ms=10_000):
    """The consumer-side source a URL names."""
    kind, address, name = parse(url)
    if kind == "redis":
        from fraudcore.stream.redis_streams import RedisStreamSource

        return RedisStreamSource(
            _redis_client(address),
            name,
            group,
            consumer,
            partitions=partitions,
            lease_ms=lease_ms,
        )
    from fraudcore.stream.kafka_topics import KafkaSource

    return KafkaSource(address, name, group, consumer)


def open_sink(url, *, partitions=None):
    """The producer-side sink a URL names."""
    kind, address, name = parse(url)
    if kind == "redis":
        from fraudcore.stream.redis_streams import RedisStreamSink

        return RedisStreamSink(_redis_client(address), name, partitions=partitions)
    from fraudcore.stream.kafka_topics import KafkaSink

    return KafkaSink(address, name, partitions=partitions)
