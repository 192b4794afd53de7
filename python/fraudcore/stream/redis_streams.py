"""Redis Streams: the partitioned layout, its producer and its consumer (leases, groups).

Layout of a stream named S with P partitions (``S:meta`` holds P; with one
partition S itself is the stream):

- ``S:0`` .. ``S:{P-1}``: the partitions, each a Redis stream whose entries
  have one field, ``tx`` (the encoded transaction). A producer puts a
  customer's transactions on ``partition_of(customer, P)``.
- ``S:dead``: the dead-letter stream (fields ``tx``, ``error``,
  ``partition``, ``position``, ``deliveries`` (-1: not counted), ``group``).
- per consumer group G, ``S:G:members`` (who is alive: a sorted set of
  consumer names scored by the time their heartbeat expires) and
  ``S:G:lease:{p}`` (the consumer that owns partition p, with a time to live).

Why leases: a Redis consumer group hands each entry to any of its
consumers, which would split one customer's transactions between two
consumers. Here each partition is owned by one consumer of the group at a
time (a lease it renews; ``lease_ms`` after a consumer stops renewing,
another may take the partition), and each consumer reads only the
partitions it owns, with ``XREADGROUP`` in the group. The live consumers
share the partitions evenly: each takes up to ceil(P / live) and releases
what it holds beyond that, between two batches (after acknowledging). A
consumer that restarts under the same name keeps its leases at once;
names must be unique among running consumers.

Recovery: when a consumer takes a partition, it first takes over every
entry of the partition still pending in the group, its own from before a
crash and those of the consumer that had it, with ``XAUTOCLAIM``
(min-idle 0: the lease makes it the only reader), and delivers those
before new ones. Their delivery counts (``XPENDING``) go with them, so the
consumer can dead-letter an entry that never gets through.
"""

import logging
import math
import os
import socket
import time

import redis

from fraudcore.service.queries import checked_int
from fraudcore.stream.messages import Message, partition_of

log = logging.getLogger("fraudcore.stream")

FIELD = b"tx"
DEAD_SUFFIX = ":dead"

# KEYS[1] the lease; ARGV[1] the consumer, ARGV[2] milliseconds: renew if ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] the lease; ARGV[1] the consumer: release if ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def partition_key(stream, partition, partitions):
    """The Redis key of one partition of stream."""
    return stream if partitions == 1 else f"{stream}:{partition}"


def default_consumer_name():
    return f"{socket.gethostname()}-{os.getpid()}"


def stream_partitions(client, stream, partitions=None):
    """The partition count of stream: what ``S:meta`` says; when it says
    nothing, ``partitions`` is recorded there (None: 1). A different
    ``partitions`` than the recorded one is a ValueError."""
    meta = f"{stream}:meta"
    if partitions is not None:
        partitions = checked_int(partitions, "partitions")
        client.hsetnx(meta, "partitions", partitions)
    recorded = client.hget(meta, "partitions")
    if recorded is None:
        client.hsetnx(meta, "partitions", 1)
        recorded = client.hget(meta, "partitions")
    recorded = int(recorded)
    if partitions is not None and partitions != recorded:
        raise ValueError(
            f"stream {stream!r} has {recorded} partitions (recorded in {meta}), not {partitions}"
        )
    return recorded


class RedisStreamSource:
    """Messages of a partitioned Redis stream for one consumer of a group.

    Parameters
    ----------
    client : redis.Redis
        Without ``decode_responses``.
    stream : str
    group : str
    consumer : str or None
        This consumer's name, unique among the group's running consumers
        (None: host name and process id).
    partitions : int or None
        The stream's partition count when ``S:meta`` records none yet.
    lease_ms : int
        How long a partition stays with a consumer that stopped renewing.
    """

    def __init__(self, client, stream, group, consumer=None, *, partitions=None, lease_ms=10_000):
        self.client, self.stream, self.group = client, stream, group
        self.consumer = consumer or default_consumer_name()
        self.partitions = stream_partitions(client, stream, partitions)
        self.lease_ms = checked_int(lease_ms, "lease_ms", minimum=100)
        self.name = stream
        self.dead_letter_stream = stream + DEAD_SUFFIX
        self._members = f"{stream}:{group}:members"
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self.owned = set()
        self.release_wanted = False  # see maintain
        self._recovering = {}  # partition -> XAUTOCLAIM cursor
        self._next_maintenance = 0.0
        self._groups_made = set()

    def __repr__(self):
        return (
            f"RedisStreamSource({self.stream!r}, group={self.group!r}, "
            f"consumer={self.consumer!r}, partitions={self.partitions})"
        )

    def _key(self, partition):
        return partition_key(self.stream, partition, self.partitions)

    def _lease(self, partition):
        return f"{self.stream}:{self.group}:lease:{partition}"

    # -- ownership ---------------------------------------------------------------

    def maintain(self, force=False, *, release=True):
        """Heartbeat, renew the leases, take or (with release) release
        partitions to hold a fair share (every lease_ms / 3, or now with force)."""
        now = time.monotonic()
        if not force and now < self._next_maintenance:
            return
        self._next_maintenance = now + self.lease_ms / 3000
        wall_ms = int(time.time() * 1000)
        pipe = self.client.pipeline()
        pipe.zadd(self._members, {self.consumer: wall_ms + self.lease_ms})
        pipe.zremrangebyscore(self._members, "-inf", wall_ms)
        pipe.zcard(self._members)
        live = max(1, pipe.execute()[-1])
        for partition in sorted(self.owned):
            if not self._renew(keys=[self._lease(partition)], args=[self.consumer, self.lease_ms]):
                log.warning("%s lost partition %d (its lease expired)", self.consumer, partition)
                self._drop(partition)
        share = math.ceil(self.partitions / live)
        extra = max(0, len(self.owned) - share)
        # owed to others but batches are in flight: the consumer settles them first
        self.release_wanted = bool(extra) and not release
        for partition in sorted(self.owned, reverse=True)[: extra if release else 0]:
            self._release(keys=[self._lease(partition)], args=[self.consumer])
            self._drop(partition)
            log.info("%s released partition %d (%d consumers)", self.consumer, partition, live)
        if len(self.owned) < share:
            self._take(share)

    def _take(self, share):
        start = partition_of(self.consumer, self.partitions)  # spread the consumers' first picks
        for k in range(self.partitions):
            if len(self.owned) >= share:
                break
            partition = (start + k) % self.partitions
            if partition in self.owned:
                continue
            lease = self._lease(partition)
            mine = self.client.set(lease, self.consumer, nx=True, px=self.lease_ms)
            if not mine and self.client.get(lease) == self.consumer.encode():
                mine = bool(self._renew(keys=[lease], args=[self.consumer, self.lease_ms]))
            if mine:
                self._make_group(partition)
                self.owned.add(partition)
                self._recovering[partition] = "0-0"
                log.info("%s took partition %d", self.consumer, partition)

    def _drop(self, partition):
        self.owned.discard(partition)
        self._recovering.pop(partition, None)

    def _make_group(self, partition):
        if partition in self._groups_made:
            return
        try:
            self.client.xgroup_create(self._key(partition), self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_made.add(partition)

    # -- reading -----------------------------------------------------------------

    def poll(self, max_messages, timeout, *, in_flight=False):
        """Up to max_messages messages, waiting up to timeout seconds for one:
        first what is pending in partitions just taken, then new entries.
        ``in_flight``: batches polled earlier are not yet acknowledged, so no
        partition is released now (only renewed or taken); when one is owed
        to another consumer, ``release_wanted`` says so, and the next poll
        without batches in flight releases it."""
        self.maintain(release=not in_flight)
        if not self.owned:
            time.sleep(timeout)
            return []
        for partition in sorted(self._recovering):
            messages = self._claim(partition, max_messages)
            if messages:
                return messages
        streams = {self._key(p): ">" for p in sorted(self.owned)}
        reply = self.client.xreadgroup(
            self.group,
            self.consumer,
            streams,
            count=max(1, max_messages // len(streams)),
            block=max(1, int(timeout * 1000)),
        )
        index = {self._key(p): p for p in self.owned}
        out = []
        for key, entries in reply or []:
            partition = index[key.decode() if isinstance(key, bytes) else key]
            out.extend(_message(partition, entry_id, fields, 1) for entry_id, fields in entries)
        return out

    def _claim(self, partition, max_messages):
        """Pending entries of partition, taken over by this consumer."""
        key = self._key(partition)
        cursor = self._recovering[partition]
        while True:
            next_cursor, entries, *_ = self.client.xautoclaim(
                key, self.group, self.consumer, 0, start_id=cursor, count=max_messages
            )
            cursor = next_cursor.decode() if isinstance(next_cursor, bytes) else next_cursor
            entries = [(entry_id, fields) for entry_id, fields in entries if fields]
            if entries or cursor == "0-0":
                break
        if cursor == "0-0":
            del self._recovering[partition]
        else:
            self._recovering[partition] = cursor
        if not entries:
            return []
        first, last = entries[0][0], entries[-1][0]
        counts = {
            row["message_id"]: row["times_delivered"]
            for row in self.client.xpending_range(key, self.group, first, last, len(entries))
        }
        return [
            _message(partition, entry_id, fields, counts.get(entry_id, 1))
            for entry_id, fields in entries
        ]

    # -- settling ----------------------------------------------------------------

    def ack(self, messages):
        """Acknowledge messages (their effects are stored)."""
        by_key = {}
        for message in messages:
            by_key.setdefault(self._key(message.partition), []).append(message.position)
        if by_key:
            pipe = self.client.pipeline(transaction=False)
            for key, ids in by_key.items():
                pipe.xack(key, self.group, *ids)
            pipe.execute()

    def dead_letter(self, message, error):
        """Put message on the dead-letter stream with error; the consumer
        acknowledges it with its batch (a crash in between dead-letters it
        twice, never loses it)."""
        self.client.xadd(
            self.dead_letter_stream,
            {
                FIELD: message.value,
                b"error": str(error),
                b"partition": message.partition,
                b"position": message.position,
                b"deliveries": -1 if message.deliveries is None else message.deliveries,
                b"group": self.group,
            },
        )

    def lag(self):
        """Entries of the owned partitions not yet delivered to the group
        (Redis' own count; None when it cannot tell)."""
        total = 0
        for partition in sorted(self.owned):
            try:
                groups = self.client.xinfo_groups(self._key(partition))
            except redis.ResponseError:  # the stream went away
                return None
            for group in groups:
                if _text(group.get("name")) == self.group:
                    if group.get("lag") is None:
                        return None
                    total += int(group["lag"])
        return total

    def close(self):
        """Release every lease and leave the group's members (a clean stop:
        another consumer takes the partitions at once)."""
        for partition in sorted(self.owned):
            try:
                self._release(keys=[self._lease(partition)], args=[self.consumer])
            except redis.RedisError as exc:  # it expires after lease_ms anyway
                log.warning("could not release partition %d: %s", partition, exc)
        self.owned.clear()
        self._recovering.clear()
        try:
            self.client.zrem(self._members, self.consumer)
        finally:
            self.client.close()


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _message(partition, entry_id, fields, deliveries):
    position = _text(entry_id)
    return Message(
        fields.get(FIELD, b""),
        partition,
        position,
        timestamp_ms=int(position.split("-", 1)[0]),
        deliveries=deliveries,
    )


class RedisStreamSink:
    """Puts encoded transactions on a partitioned Redis stream (the producer
    side of the layout above): ``send`` pipelines the XADDs of a list of
    (key, value) in one round trip."""

    def __init__(self, client, stream, *, partitions=None, maxlen=None):
        self.client, self.stream = client, stream
        self.partitions = stream_partitions(client, stream, partitions)
        self.maxlen = maxlen

    def send(self, pairs):
        pipe = self.client.pipeline(transaction=False)
        for key, value in pairs:
            partition = partition_of(key, self.partitions)
            pipe.xadd(
                partition_key(self.stream, partition, self.partitions),
                {FIELD: value},
                maxlen=self.maxlen,
                approximate=True,
            )
        pipe.execute()

    def close(self):
        self.client.close()
