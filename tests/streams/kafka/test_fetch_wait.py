"""Fetch waits: the policy (pure), and the local broker's empty answers it works around (real
broker, plain aiokafka consumers)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiokafka

from pushstream.streams.kafka.admin import bootstrap, create_topics, make_producer
from pushstream.streams.kafka.faust_compat import adapt_fetch_waits
from pushstream.streams.kafka.fetch_wait import FetchWaits
from pushstream.streams.local.broker import LocalBroker


def test_a_request_waits_base_unless_a_partition_came_back_empty_with_records_waiting() -> None:
    waits = FetchWaits(0.02, cap=0.3)
    assert waits.for_request([("a", 10, 10), ("b", 5, 9)]) == 0.02
    waits.observe("b", 5, 9, got_records=False)  # empty, though records 5..8 wait
    assert waits.needed("b") == 0.04
    assert waits.for_request([("a", 10, 10), ("b", 5, 9)]) == 0.04
    assert waits.for_request([("b", 9, 9)]) == 0.02  # caught up: its need does not count
    for _ in range(10):
        waits.observe("b", 5, 9, got_records=False)
    assert waits.needed("b") == 0.3  # doubled up to the cap
    waits.observe("b", 5, 9, got_records=True)
    assert waits.needed("b") == 0.3 * 0.75  # eased back, kept near what the partition needs
    for _ in range(20):
        waits.observe("b", 9, 20, got_records=True)
    assert waits.needed("b") == 0.02


def test_an_empty_answer_on_a_caught_up_partition_changes_nothing() -> None:
    waits = FetchWaits(0.02)
    waits.observe("a", 10, 10, got_records=False)
    waits.observe("a", 10, None, got_records=False)
    assert waits.needed("a") == 0.02


BATCHES = 20_000


def _deep_partition(broker: LocalBroker) -> str:
    """A one-partition topic of BATCHES record batches of one record each (as a steady trickle writes them)."""
    topic = f"deep-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [topic], 1)
    producer = make_producer(broker.url, **{"linger.ms": 0, "batch.num.messages": 1})
    for i in range(BATCHES):
        while True:
            try:
                producer.produce(topic, value=b"%d" % i, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(30) == 0
    return topic


async def _read(broker: LocalBroker, topic: str, seconds: float, adapt: bool) -> tuple[int, int | None]:
    """Records a consumer with a 1 ms fetch wait reads from the start in `seconds`, and the high watermark it saw."""
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap(broker.url), enable_auto_commit=False,
                                         fetch_max_wait_ms=1)
    await consumer.start()
    try:
        if adapt:
            adapt_fetch_waits(consumer, FetchWaits(0.001))
        tp = aiokafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        read, deadline = 0, time.monotonic() + seconds
        while read < BATCHES and time.monotonic() < deadline:
            read += len((await consumer.getmany(tp, timeout_ms=200)).get(tp, []))
        return read, consumer.highwater(tp)
    finally:
        await consumer.stop()


def test_the_local_broker_answers_a_deep_partition_empty_and_longer_waits_read_it(broker: LocalBroker) -> None:
    """Tansu lists a partition's batches on every fetch and answers empty, without an error, when
    the wait runs out first: a consumer with a short wait never reads this partition, although
    every answer gives the high watermark. (Should a broker upgrade fix this, the first assertion
    fails: then the adaptive wait can go.) With the adaptive waits the same consumer reads it."""
    topic = _deep_partition(broker)
    read, highwater = asyncio.run(_read(broker, topic, 3.0, adapt=False))
    assert read == 0 and highwater == BATCHES
    read, _ = asyncio.run(_read(broker, topic, 60.0, adapt=True))
    assert read == BATCHES
