"""faust_compat.py's seeks on a real broker: no record may be skipped when Faust recovers a table
(the crash-recovery reproducer) or when an agent holds and resumes its partitions.

Recovery: records prefetched while Faust recovers a table must all reach the agent once Faust
seeks the partitions back to their committed offsets.

Faust's `Recovery.on_recovery_completed` resumes the stream partitions, seeks them to their
committed offsets (one OffsetFetch each) and then resumes flow control, which empties the
agents' queues. On a restarted worker with a table to recover, flow control is already on, so
before the fix the fetch loop handed prefetched records to the agent while the seek ran; those
still queued were dropped, and the seek rewound the read offsets below them, so they were
never read again. Here that sequence runs on a real broker, with each OffsetFetch slowed the
way a busy machine slows it, while the agent is busy with an earlier batch.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiokafka
import pytest

from pushstream.streams.kafka.admin import create_topics, make_producer
from pushstream.streams.kafka.faust_app import PushstreamApp
from pushstream.streams.kafka.faust_compat import resume_where_read
from pushstream.streams.local.broker import LocalBroker

PARTITIONS = 2
BEFORE, AFTER = 40, 60  # records per partition before the "crash" (processed, committed) and after


def _produce(broker: str, topic: str, start: int, count: int) -> None:
    producer = make_producer(broker)
    for p in range(PARTITIONS):
        for i in range(start, start + count):
            producer.produce(topic, value=b"%d:%d" % (p, i), partition=p)
    assert producer.flush(10) == 0


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _app(broker: LocalBroker, topic: str, seen: dict[int, set[int]], gate: asyncio.Event,
         datadir: Path) -> PushstreamApp:
    """An app whose agent records the offsets it gets (while `gate` is open) and acks them."""
    app = PushstreamApp(f"seeks-{uuid.uuid4().hex[:8]}", broker=broker.url, value_serializer="raw",
                        store="memory://", datadir=str(datadir), web_enabled=False, topic_disable_leader=True,
                        broker_session_timeout=3.0, broker_heartbeat_interval=1.0,
                        broker_rebalance_timeout=3.0, broker_commit_interval=0.2,
                        consumer_auto_offset_reset="earliest", table_standby_replicas=0,
                        fetch_max_wait=0.02)

    @app.agent(app.topic(topic, value_type=bytes, value_serializer="raw"), concurrency=1)
    async def record(stream: Any) -> None:
        async for events in stream.noack_take(10, within=0.05):
            await gate.wait()
            for event in events:
                seen[event.message.partition].add(event.message.offset)
                await stream.ack(event)

    return app


def test_records_fetched_while_recovery_seeks_all_reach_the_agent(broker: LocalBroker, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    topic = f"recovery-seek-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [topic], PARTITIONS)
    _produce(broker.url, topic, 0, BEFORE)
    seen: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
    gate = asyncio.Event()

    async def main() -> None:
        gate.set()
        app = _app(broker, topic, seen, gate, tmp_path)
        await app.start()
        consumer = app.consumer
        try:
            await _until(lambda: all(len(s) == BEFORE for s in seen.values()), 60, "the first records")
            tps = {tp for tp in consumer.assignment() if tp.topic == topic}
            await _until(lambda: all(consumer._committed_offset.get(tp) == BEFORE for tp in tps), 30,
                         "the first commits")
            # The restart: partitions paused while the table recovers, records arriving and
            # prefetched meanwhile, the agent busy.
            gate.clear()
            consumer.pause_partitions(tps)
            _produce(broker.url, topic, BEFORE, AFTER)
            await asyncio.sleep(1.0)

            committed = aiokafka.AIOKafkaConsumer.committed

            async def slow_committed(self: Any, tp: Any) -> Any:
                await asyncio.sleep(0.3)
                return await committed(self, tp)

            monkeypatch.setattr(aiokafka.AIOKafkaConsumer, "committed", slow_committed)
            await app.tables.recovery.on_recovery_completed(app.consumer_generation_id)
            monkeypatch.setattr(aiokafka.AIOKafkaConsumer, "committed", committed)
            gate.set()
            await _until(lambda: all(len(s) == BEFORE + AFTER for s in seen.values()), 30,
                         f"every record (seen {[len(s) for s in seen.values()]} of {BEFORE + AFTER} per partition)")
            await _until(lambda: all(consumer._committed_offset.get(tp) == BEFORE + AFTER for tp in tps), 30,
                         "the last commits")
        finally:
            gate.set()
            await app.stop()

    asyncio.run(main())
    assert all(s == set(range(BEFORE + AFTER)) for s in seen.values())


def test_holding_twice_in_a_row_skips_nothing(broker: LocalBroker, tmp_path: Path) -> None:
    """A retry agent pauses its partitions while it holds a take and resumes them where their
    stream stopped; twice in a row with nothing read between, the second resume used to start
    one record later (Faust's seek leaves the read offset at the next record, read as the last)."""
    topic = f"hold-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [topic], PARTITIONS)
    _produce(broker.url, topic, 0, BEFORE)
    seen: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
    gate = asyncio.Event()

    async def main() -> None:
        gate.set()
        app = _app(broker, topic, seen, gate, tmp_path)
        await app.start()
        consumer = app.consumer
        try:
            await _until(lambda: all(len(s) == BEFORE for s in seen.values()), 60, "the first records")
            tps = {tp for tp in consumer.assignment() if tp.topic == topic}
            for _ in range(3):  # holds in a row, nothing read between them
                consumer.pause_partitions(tps)
                await asyncio.sleep(0.2)
                await resume_where_read(consumer, tps)
            _produce(broker.url, topic, BEFORE, AFTER)
            await _until(lambda: all(len(s) == BEFORE + AFTER for s in seen.values()), 30,
                         f"every record (seen {[len(s) for s in seen.values()]} of {BEFORE + AFTER} per partition)")
        finally:
            await app.stop()

    asyncio.run(main())
    assert all(s == set(range(BEFORE + AFTER)) for s in seen.values())


def test_the_livelock_check_skips_a_partition_whose_position_is_being_reset(broker: LocalBroker,
                                                                          tmp_path: Path) -> None:
    """Faust's livelock detector reads aiokafka's position, which asserts one exists: a partition
    sent back to its beginning (being reset) crashed the consumer, and so the worker."""
    topic = f"reset-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [topic], PARTITIONS)
    _produce(broker.url, topic, 0, BEFORE)
    seen: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
    gate = asyncio.Event()

    async def main() -> None:
        gate.set()
        app = _app(broker, topic, seen, gate, tmp_path)
        await app.start()
        consumer = app.consumer
        try:
            await _until(lambda: all(len(s) == BEFORE for s in seen.values()), 60, "the first records")
            tp = next(tp for tp in consumer.assignment() if tp.topic == topic)
            thread_consumer = consumer._thread._consumer
            thread_consumer._subscription.subscription.assignment.state_value(
                aiokafka.TopicPartition(tp.topic, tp.partition)).await_reset(1)  # as seek_to_beginning leaves it
            consumer.verify_event_path(time.monotonic(), tp)  # raised AssertionError before
        finally:
            await app.stop()

    asyncio.run(main())
