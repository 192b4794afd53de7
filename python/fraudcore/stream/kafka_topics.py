"""Kafka: the consumer's source (a consumer group, offsets committed by hand)
and the producer the replay uses (confluent-kafka).

A topic's partitions are the stream's partitions: the producer puts each
customer's transactions on ``partition_of(customer, partitions)`` (given
explicitly, so every producer maps keys as the Redis layout does), and
Kafka's group protocol gives each partition to one consumer of the group at
a time; a consumer that joins or leaves makes Kafka rebalance between two
polls. Offsets are committed only by :meth:`KafkaSource.ack`, after the
batch's effects are stored, synchronously; auto-commit is off (a commit
refused because the partition moved is logged: its new owner gets the
messages again and finds them stored).

Dead letters go to the topic ``TOPIC.dead`` (created like any topic by the
broker's auto-creation, or beforehand), with headers ``error``,
``partition`` and ``offset``. Kafka does not count deliveries, so a
message that stops the consumer every time it is processed is not caught
by ``--max-deliveries`` here (Redis counts them).
"""

import logging

from fraudcore.stream.messages import Message, partition_of

log = logging.getLogger("fraudcore.stream")

DEAD_SUFFIX = ".dead"


def _kafka():
    try:
        import confluent_kafka
    except ImportError as exc:
        raise ImportError(
            f"Kafka needs confluent-kafka ({exc}): pip install 'fraudcore[stream]'"
        ) from None
    return confluent_kafka


def topic_partitions(bootstrap, topic, *, partitions=None, config=None, timeout=30.0):
    """The partition count of topic, creating it with ``partitions`` (None:
    1) when it does not exist."""
    kafka = _kafka()
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **(config or {})})
    metadata = admin.list_topics(timeout=timeout)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions or 1, replication_factor=1)]
        )
        try:
            futures[topic].result(timeout)
        except kafka.KafkaException as exc:
            if exc.args[0].code() != kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        metadata = admin.list_topics(topic, timeout=timeout)
    found = len(metadata.topics[topic].partitions)
    if partitions is not None and found != partitions:
        raise ValueError(f"topic {topic!r} has {found} partitions, not {partitions}")
    return found


class KafkaSource:
    """Messages of a Kafka topic for one consumer of a group.

    Parameters
    ----------
    bootstrap : str
        ``host:port[,host:port...]``.
    topic, group : str
    consumer : str or None
        The client id (None: librdkafka's).
    config : dict or None
        More librdkafka settings, for consumer and producer.
    """

    def __init__(self, bootstrap, topic, group, consumer=None, *, config=None):
        kafka = _kafka()
        self._kafka = kafka
        self.topic, self.group = topic, group
        self.name = topic
        self.dead_letter_topic = topic + DEAD_SUFFIX
        self._config = {"bootstrap.servers": bootstrap, **(config or {})}
        settings = {
            # a crashed consumer's partitions move after 10 s (librdkafka: 45 s)
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            **self._config,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        if consumer:
            settings["client.id"] = consumer
        self.consumer = kafka.Consumer(settings)
        self.consumer.subscribe([topic])
        self._producer = None
        self.release_wanted = False  # Kafka moves partitions itself

    def __repr__(self):
        return f"KafkaSource({self.topic!r}, group={self.group!r})"

    def maintain(self, force=False):
        """Kafka's group protocol keeps the assignment (nothing to do)."""

    @property
    def owned(self):
        return {tp.partition for tp in self.consumer.assignment()}

    def poll(self, max_messages, timeout, *, in_flight=False):
        """Up to max_messages messages, waiting up to timeout seconds
        (Kafka's group protocol moves partitions between polls: in_flight
        changes nothing)."""
        out = []
        for record in self.consumer.consume(max_messages, timeout):
            error = record.error()
            if error is not None:
                if error.code() == self._kafka.KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise self._kafka.KafkaException(error)
                log.warning("kafka: %s", error)
                continue
            kind, stamp = record.timestamp()
            out.append(
                Message(
                    record.value() or b"",
                    record.partition(),
                    str(record.offset()),
                    timestamp_ms=stamp if kind != self._kafka.TIMESTAMP_NOT_AVAILABLE else None,
                )
            )
        return out

    def ack(self, messages):
        """Commit, per partition, the offset after the last of messages."""
        last = {}
        for message in messages:
            offset = int(message.position)
            if offset >= last.get(message.partition, -1):
                last[message.partition] = offset
        if last:
            offsets = [self._kafka.TopicPartition(self.topic, p, o + 1) for p, o in last.items()]
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except self._kafka.KafkaException as exc:
                # a partition moved (a rebalance): its new owner gets these again
                # and finds them stored
                log.warning("kafka: offsets not committed (%s)", exc)

    def dead_letter(self, message, error):
        if self._producer is None:
            self._producer = self._kafka.Producer(self._config)
        self._producer.produce(
            self.dead_letter_topic,
            value=message.value,
            headers=[
                ("error", str(error).encode()),
                ("partition", str(message.partition).encode()),
                ("offset", message.position.encode()),
            ],
        )
        if self._producer.flush(30) != 0:
            raise RuntimeError(f"the dead-letter topic {self.dead_letter_topic!r} took no message")

    def lag(self):
        """Messages of the assigned partitions after this consumer's position."""
        assignment = self.consumer.assignment()
        if not assignment:
            return 0
        total = 0
        for tp in self.consumer.position(assignment):
            _low, high = self.consumer.get_watermark_offsets(tp, timeout=5)
            if tp.offset < 0:  # nothing consumed yet: all of it
                tp.offset = _low
            total += max(0, high - tp.offset)
        return total

    def close(self):
        try:
            if self._producer is not None:
                self._producer.flush(30)
        finally:
            self.consumer.close()  # leaves the group: its partitions move now


class KafkaSink:
    """Puts encoded transactions on a topic, each customer on its partition."""

    def __init__(self, bootstrap, topic, *, partitions=None, config=None):
        kafka = _kafka()
        self.topic = topic
        self.partitions = topic_partitions(bootstrap, topic, partitions=partitions, config=config)
        self.producer = kafka.Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, **(config or {})}
        )

    def send(self, pairs):
        for key, value in pairs:
            partition = partition_of(key, self.partitions)
            while True:
                try:
                    self.producer.produce(
                        self.topic, value=value, key=str(key).encode(), partition=partition
                    )
                    break
                except BufferError:  # the local queue is full: let it drain
                    self.producer.poll(0.1)
        self.producer.poll(0)

    def close(self):
        left = self.producer.flush(60)
        if left:
            raise RuntimeError(f"{left} messages were not delivered to {self.topic!r}")
