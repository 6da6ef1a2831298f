"""Kafka helpers built on confluent-kafka: topic creation, producing and reading records.

Faust (aiokafka) runs the agents; these helpers serve the CLI commands, the demo and tests.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from typing import Any

from aiokafka.partitioner import murmur2

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pushstream.codecs.config import Config

__all__ = ["bootstrap", "create_topics", "ensure_topics", "key_partition", "make_producer", "make_reader",
           "pipeline_topics", "read_since", "read_topic"]


def bootstrap(broker_url: str) -> str:
    """`kafka://host:port;kafka://host2:port` (Faust style) -> `host:port,host2:port`."""
    parts = [p.strip() for p in broker_url.replace(";", ",").split(",") if p.strip()]
    return ",".join(p.split("://", 1)[-1] for p in parts)


def pipeline_topics(config: Config) -> list[str]:
    """Every topic the worker reads or writes."""
    names = list(config.kafka.input_topics) + [config.topic("outcomes"), config.topic("deadletter")]
    for inst in config.instances:
        names += [config.topic("jobs", inst.name), config.topic("retry", inst.name)]
    return names


def ensure_topics(config: Config, timeout: float = 30.0) -> list[str]:
    """Create the pipeline's missing topics with the configured partition count; returns those created."""
    return create_topics(config.kafka.broker, pipeline_topics(config), config.kafka.partitions, timeout)


def create_topics(broker_url: str, names: list[str], partitions: int, timeout: float = 30.0) -> list[str]:
    """Create the topics in `names` that do not exist yet; returns the ones created."""
    admin = AdminClient({"bootstrap.servers": bootstrap(broker_url)})
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    missing = [t for t in names if t not in existing]
    if missing:
        futures = admin.create_topics([NewTopic(t, partitions, 1) for t in missing])
        for fut in futures.values():
            try:
                fut.result(timeout)
            except KafkaException as exc:
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    return missing


def make_producer(broker_url: str, **extra: object) -> Producer:
    # murmur2_random: the Java client's (and aiokafka's) partitioner, so a key lands on the
    # same partition whoever writes it.
    conf: dict[str, object] = {"bootstrap.servers": bootstrap(broker_url), "linger.ms": 5,
                               "enable.idempotence": False, "acks": "all", "partitioner": "murmur2_random"}
    conf.update(extra)
    return Producer(conf)


@functools.lru_cache(maxsize=1 << 16)
def key_partition(key: bytes, partitions: int) -> int:
    """The partition `make_producer`'s partitioner (murmur2, as the Java client and aiokafka)
    gives a record keyed `key` on a topic of `partitions` partitions. Cached: keys are user
    ids, which repeat, and the pure-Python hash costs ~3 us."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def read_topic(broker_url: str, topics: Iterable[str], *, idle_timeout: float = 2.0,
               max_wait: float = 60.0) -> Iterator[tuple[str, int, int, bytes | None, bytes]]:
    """Yield (topic, partition, offset, key, value) from the beginning of `topics` until no record
    arrives for `idle_timeout` seconds (or `max_wait` passes).

    Partitions are assigned directly, not through a consumer group: a reader never waits for a
    group join and never moves anyone's committed offsets.
    """
    consumer = _reader(broker_url)
    try:
        metadata = consumer.list_topics(timeout=10)
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                         for t in topics if t in metadata.topics for p in metadata.topics[t].partitions])
        for msg in _until_quiet(consumer, idle_timeout, max_wait):
            yield msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()
    finally:
        consumer.close()


def read_since(broker_url: str, topic: str, since_ms: int, timeout: float = 60.0) -> Iterator[bytes]:
    """Values of `topic` written at or after `since_ms` (unix ms), up to the end of every partition.

    The end is where the broker's fetch responses put it (librdkafka's partition EOF), not the
    ListOffsets answer: the local broker (Tansu) answers that with the start of the last
    record batch, below records it has already served.
    """
    consumer = _reader(broker_url, eof=True)
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        if topic not in metadata.topics:
            return
        parts = [TopicPartition(topic, p, since_ms) for p in metadata.topics[topic].partitions]
        starts = consumer.offsets_for_times(parts, timeout=10)
        consumer.assign([tp if tp.offset >= 0 else TopicPartition(topic, tp.partition, OFFSET_END)
                         for tp in starts])
        open_partitions = {tp.partition for tp in starts}
        deadline = time.monotonic() + timeout
        while open_partitions and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(msg.partition())
                continue
            yield msg.value()
    finally:
        consumer.close()


def make_reader(broker_url: str, group_id: str = "pushstream-reader", **extra: object) -> Consumer:
    """A consumer for reading topics by assignment: no auto commit, and short fetch waits.

    fetch.wait.max.ms: Kafka answers a fetch as soon as records arrive, but the local broker
    (Tansu) holds every fetch for the full wait (500 ms by default), which a reader would add
    to everything it reads or measures.
    """
    conf: dict[str, object] = {"bootstrap.servers": bootstrap(broker_url), "group.id": group_id,
                               "enable.auto.commit": False, "fetch.wait.max.ms": 50}
    conf.update(extra)
    return Consumer(conf)


def _reader(broker_url: str, eof: bool = False) -> Consumer:
    return make_reader(broker_url, **{"enable.partition.eof": eof})


def _until_quiet(consumer: Consumer, idle: float, max_wait: float) -> Iterator[Any]:
    """Records from an assigned consumer until none arrives for `idle` seconds (or `max_wait` passes)."""
    deadline = time.monotonic() + max_wait
    last = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last < idle:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        last = time.monotonic()
        yield msg
