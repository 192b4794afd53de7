"""What travels on the stream: one JSON transaction per message, keyed by customer.

A message's value is a JSON object: the transaction's fields as
``POST /detect`` takes them (the model's schema names them), with an
``event_id`` that makes it idempotent (without one, the schema's
transaction id). Its key is the customer, and :func:`partition_of` maps the
key to one of the stream's partitions, the same way for every producer and
consumer (CRC-32, not Python's salted ``hash``): all of a customer's
transactions go to one partition, in the order they were put there, so one
consumer at a time sees that customer, in time order.

:class:`Message` is what a source hands the consumer: the value, where it
came from (partition and position, for acknowledging it) and how often it
was delivered (None where the source cannot say: Kafka).
"""

import zlib

__all__ = ["Message", "partition_of"]


def partition_of(key, partitions):
    """The partition (0 .. partitions - 1) of a customer key (text or bytes)."""
    data = key if isinstance(key, bytes) else str(key).encode()
    return zlib.crc32(data) % partitions


class Message:
    """One message as a source delivered it.

    Attributes
    ----------
    value : bytes
        The encoded transaction.
    partition : int
    position : str
        The source's id of the message within its partition (a Redis entry
        id, a Kafka offset), what acknowledging it refers to.
    timestamp_ms : int or None
        When it was put on the stream (milliseconds since the epoch): the
        start of the event-to-stored-alert latency.
    deliveries : int or None
        How many times it has been delivered, this time included; None when
        the source does not count (Kafka).
    """

    __slots__ = ("deliveries", "partition", "position", "timestamp_ms", "value")

    def __init__(self, value, partition, position, timestamp_ms=None, deliveries=None):
        self.value, self.partition, self.position = value, partition, position
        self.timestamp_ms, self.deliveries = timestamp_ms, deliveries

    def __repr__(self):
        return f"Message(partition={self.partition}, position={self.position!r})"
