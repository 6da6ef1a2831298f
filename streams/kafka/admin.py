"""Kafka helpers built on confluent-kafka: topic creation, producing and reading records.

Faust (aiokafka) runs the agents; these helpers serve the CLI commands, the demo and tests.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

from aiokafka.partitioner import murmur2
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # not in its __all__

from pushstream.codecs.config import Config
from pushstream.streams.kafka.security import Cluster, as_kafka, bootstrap, client_config, explain

__all__ = ["BrokerRefused", "BrokerUnreachable", "Cluster", "bootstrap", "changelog_ends", "check_broker",
           "create_topics", "ensure_topics", "key_partition", "make_producer", "make_reader", "pipeline_topics",
           "quiet", "read_since", "read_topic"]

BROKER_CHECK_TIMEOUT = 8.0  # seconds a command waits for the broker before saying it cannot reach it


class BrokerUnreachable(Exception):
    """Kafka did not answer; the message is one line for people (no librdkafka log spam)."""


class BrokerRefused(BrokerUnreachable):
    """Kafka answered but the connection's security failed (TLS, SASL): the line names the cause."""


def quiet(conf: dict[str, object]) -> Any:
    """A librdkafka config that logs nothing to stderr: failures reach us as exceptions and error
    callbacks instead of a "Connection refused" line per retry (588 lines in 33 s). (Typed Any:
    librdkafka takes callables such as `error_cb`, which confluent-kafka's hints do not allow.)"""
    return {"log_level": 0, "error_cb": lambda err: None, **conf}


def check_broker(cluster: Cluster, timeout: float = BROKER_CHECK_TIMEOUT) -> None:
    """Raise `BrokerUnreachable` with one line saying why unless the broker answers within `timeout`
    (`BrokerRefused` when it answers but TLS or SASL fails: the line names the cause, not the secret).

    A TCP connect to each bootstrap address first: librdkafka only says "transport failure",
    while the socket says refused, unresolvable or silent, and a refusal is known at once."""
    kafka = as_kafka(cluster)
    broker_url = kafka.broker
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    for address in bootstrap(broker_url).split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=max(0.5, timeout / 2)):
                problems = []
                break
        except socket.gaierror:
            problems.append("cannot resolve the host name")
        except ConnectionRefusedError:
            problems.append("connection refused")
        except TimeoutError:
            problems.append("no answer (connect timed out)")
        except (OSError, ValueError) as exc:
            problems.append(str(exc) or type(exc).__name__)
    if problems:
        raise BrokerUnreachable(f"cannot reach Kafka at {broker_url}: {problems[0]} — is the broker running?")
    reports: list[str] = []
    admin: AdminClient | None = None
    try:
        admin = AdminClient(quiet({**client_config(kafka), "error_cb": lambda err: reports.append(err.str())}))
        admin.list_topics(timeout=max(0.5, deadline - time.monotonic()))
    except KafkaException as exc:
        why = exc.args[0].str() if exc.args else str(exc)
        if admin is not None:
            admin.poll(0.2)  # serves the error callback, which holds the connection's own reasons
        cause = explain([why, *reports], kafka)
        if cause is not None:
            raise BrokerRefused(f"Kafka at {broker_url} ({kafka.security_protocol}): {cause}") from None
        raise BrokerUnreachable(f"cannot reach Kafka at {broker_url}: it accepts connections but does not answer "
                                f"as Kafka ({why})") from None


def pipeline_topics(config: Config) -> list[str]:
    """Every topic the worker reads or writes."""
    names = list(config.kafka.input_topics) + [config.topic(t) for t in ("outcomes", "deadletter", "samples")]
    for inst in config.instances:
        names += [config.topic("jobs", inst.name), config.topic("retry", inst.name)]
    return names


def ensure_topics(config: Config, timeout: float = 30.0) -> list[str]:
    """Create the pipeline's missing topics with the configured partition count; returns those created."""
    return create_topics(config.kafka, pipeline_topics(config), config.kafka.partitions, timeout,
                         config.kafka.replication_factor)


def create_topics(cluster: Cluster, names: list[str], partitions: int, timeout: float = 30.0,
                  replication_factor: int = 1) -> list[str]:
    """Create the topics in `names` that do not exist yet; returns the ones created."""
    admin = AdminClient(quiet(client_config(cluster)))
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
        futures = admin.create_topics([NewTopic(t, partitions, replication_factor) for t in missing])
        for fut in futures.values():
            try:
                fut.result(timeout)
            except KafkaException as exc:
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    return missing


def make_producer(cluster: Cluster, **extra: object) -> Producer:
    """A producer acked by all replicas. murmur2_random: the Java client's (and aiokafka's)
    partitioner, so a key lands on the same partition whoever writes it."""
    conf: dict[str, object] = {**client_config(cluster), "linger.ms": 5,
                               "enable.idempotence": False, "acks": "all", "partitioner": "murmur2_random"}
    conf.update(extra)
    return Producer(quiet(conf))


@functools.lru_cache(maxsize=1 << 16)
def key_partition(key: bytes, partitions: int) -> int:
    """The partition `make_producer`'s partitioner (murmur2, as the Java client and aiokafka)
    gives a record keyed `key` on a topic of `partitions` partitions. Cached: keys are user
    ids, which repeat, and the pure-Python hash costs ~3 us."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def read_topic(cluster: Cluster, topics: Iterable[str], *, idle_timeout: float = 2.0,
               max_wait: float = 60.0) -> Iterator[tuple[str, int, int, bytes | None, bytes]]:
    """Yield (topic, partition, offset, key, value) from the beginning of `topics` until no record
    arrives for `idle_timeout` seconds (or `max_wait` passes).

    Partitions are assigned directly, not through a consumer group: a reader never waits for a
    group join and never moves anyone's committed offsets.
    """
    consumer = _reader(cluster)
    try:
        metadata = consumer.list_topics(timeout=10)
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                         for t in topics if t in metadata.topics for p in metadata.topics[t].partitions])
        for msg in _until_quiet(consumer, idle_timeout, max_wait):
            yield msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()
    finally:
        consumer.close()


def read_since(cluster: Cluster, topic: str, since_ms: int, timeout: float = 60.0) -> Iterator[bytes]:
    """Values of `topic` written at or after `since_ms` (unix ms), up to the end of every partition.

    The end is where the broker's fetch responses put it (librdkafka's partition EOF), not the
    ListOffsets answer: the local broker (Tansu) answers that with the start of the last
    record batch, below records it has already served.
    """
    consumer = _reader(cluster, eof=True)
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
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(msg.partition())
                continue
            value = msg.value()
            if value is not None:
                yield value
    finally:
        consumer.close()


def read_uncommitted(cluster: Cluster, group_id: str, topic: str, partitions: list[int],
                     timeout: float = 60.0) -> list[tuple[int, bytes]]:
    """The (partition, value) of each record of `partitions` past `group_id`'s committed offset (what
    its consumer has still to read), up to the end the fetch responses give (partition EOF; see
    `read_since`). A partition without a committed offset is read from its start."""
    if not partitions:
        return []
    committed_by = make_reader(cluster, group_id)
    try:
        committed = committed_by.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    finally:
        committed_by.close()
    consumer = _reader(cluster, eof=True)
    records: list[tuple[int, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                         for tp in committed])
        open_partitions = set(partitions)
        deadline = time.monotonic() + timeout
        while open_partitions and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error, partition, value = msg.error(), msg.partition(), msg.value()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(partition)
            elif partition is not None and value is not None:
                records.append((partition, value))
        if open_partitions:
            raise TimeoutError(f"{topic}: partitions {sorted(open_partitions)} not read to their end "
                               f"in {timeout:.0f} s")
    finally:
        consumer.close()
    return records


def changelog_ends(cluster: Cluster, topic: str, partitions: list[int]) -> dict[int, int]:
    """Each partition's end offset (the next offset to be written); 0 for a missing topic."""
    consumer = _reader(cluster)
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        held = set(found.partitions) if found is not None and found.error is None else set()
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] if p in held else 0
                for p in partitions}
    finally:
        consumer.close()


def make_reader(cluster: Cluster, group_id: str = "pushstream-reader", **extra: object) -> Consumer:
    """A consumer for reading topics by assignment: no auto commit, and short fetch waits.

    fetch.wait.max.ms: Kafka answers a fetch as soon as records arrive, but the local broker
    (Tansu) holds every fetch for the full wait (500 ms by default), which a reader would add
    to everything it reads or measures.
    """
    conf: dict[str, object] = {**client_config(cluster), "group.id": group_id,
                               "enable.auto.commit": False, "fetch.wait.max.ms": 50}
    conf.update(extra)
    return Consumer(quiet(conf))


def _reader(cluster: Cluster, eof: bool = False) -> Consumer:
    return make_reader(cluster, "pushstream-reader", **{"enable.partition.eof": eof})


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
