"""Kafka helpers against the real local broker: where keyed records land, topic metadata, and the
quiet partitions a write wakes."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from pushstream.streams.kafka.admin import create_topics, key_partition, make_producer
from pushstream.streams.kafka.fetch_wait import QuietPartitions
from pushstream.streams.kafka.writer import Record, WriteError, Writer
from pushstream.streams.local.broker import LocalBroker


def test_key_partition_is_where_the_producer_puts_a_keyed_record(broker: LocalBroker) -> None:
    """Route packs jobs by this function; retries and replays are keyed records placed by the
    producer. Both must agree, or a user's retries would meet another partition's dedup state."""
    topic = f"keys-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [topic], 7)
    keys = [f"user-{i}".encode() for i in range(300)] + ["ünïcödé-✓".encode(), b"a", b"ab", b"abc", b"x" * 101]
    placed: dict[bytes, int] = {}
    producer = make_producer(broker.url)
    for key in keys:
        producer.produce(topic, key=key, value=b"v", on_delivery=lambda err, msg: placed.__setitem__(msg.key(),
                                                                                                     msg.partition()))
    assert producer.flush(30) == 0
    assert placed == {k: key_partition(k, 7) for k in keys}
    assert len(set(placed.values())) == 7


def test_writer_reads_partition_counts_and_names_a_missing_topic(broker: LocalBroker) -> None:
    topics = [f"parts-{uuid.uuid4().hex[:8]}-{n}" for n in (1, 5)]
    create_topics(broker.url, topics[:1], 1)
    create_topics(broker.url, topics[1:], 5)

    async def main() -> None:
        writer = Writer(broker.url)
        try:
            assert await writer.partitions(topics) == {topics[0]: 1, topics[1]: 5}
            with pytest.raises(WriteError, match="no-such-topic-"):
                await writer.partitions([f"no-such-topic-{uuid.uuid4().hex[:8]}"])
        finally:
            await writer.on_stop()

    asyncio.run(main())


def test_a_write_wakes_the_quiet_partitions_of_its_topics_once_acked(broker: LocalBroker) -> None:
    retry, other = f"retry-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [retry, other], 2)
    quiet = QuietPartitions([retry, other], after=1, peek=3600.0)
    request = [(retry, [(0, 0, 1), (1, 0, 1)]), (other, [(0, 0, 1)]), ("in", [(0, 0, 1)])]
    quiet.select(request, time.monotonic())  # the first peek
    for topic, partition in ((retry, 0), (retry, 1), (other, 0)):
        quiet.observe(topic, partition, got_records=False, waiting=False)

    async def main() -> list[tuple[str, list[tuple[int, int, int]]]]:
        writer = Writer(broker.url, quiet=quiet)
        try:
            await writer.write([Record(retry, b"user", b"a retry")])
            return quiet.select(request, time.monotonic())
        finally:
            await writer.on_stop()

    assert [topic for topic, _ in asyncio.run(main())] == [retry, "in"]  # `other` stays quiet
