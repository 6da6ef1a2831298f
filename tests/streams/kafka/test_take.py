"""take.py's batches on a real broker: every record reaches the body once and in order, batches
stay within their size while the body is busy, a full batch does not wait for its window, and an
idle stream does not wake its agent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pushstream.streams.kafka.admin import create_topics, make_producer
from pushstream.streams.kafka.faust_app import PushstreamApp
from pushstream.streams.kafka.take import batches
from pushstream.streams.local.broker import LocalBroker

PARTITIONS = 2


def _produce(broker: str, topic: str, start: int, count: int) -> None:
    producer = make_producer(broker)
    for p in range(PARTITIONS):
        for i in range(start, start + count):
            producer.produce(topic, value=b"%d" % i, partition=p)
    assert producer.flush(10) == 0


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _app(broker: LocalBroker, topic: str, datadir: Path, size: int, within: float,
         body: Callable[[Any, list[Any]], Awaitable[None]]) -> PushstreamApp:
    """An app whose one agent hands each batch to `body`, then acks it."""
    app = PushstreamApp(f"take-{uuid.uuid4().hex[:8]}", broker=broker.url, value_serializer="raw",
                        store="memory://", datadir=str(datadir), web_enabled=False, topic_disable_leader=True,
                        broker_session_timeout=3.0, broker_heartbeat_interval=1.0, broker_rebalance_timeout=3.0,
                        broker_commit_interval=0.2, consumer_auto_offset_reset="earliest",
                        table_standby_replicas=0, fetch_max_wait=0.02)

    @app.agent(app.topic(topic, value_type=bytes, value_serializer="raw"), concurrency=1)
    async def agent(stream: Any) -> None:
        async for events in batches(stream, size, within):
            await body(stream, events)
            for event in events:
                await stream.ack(event)

    return app


def test_every_record_reaches_the_body_once_in_order_in_batches_of_at_most_size(broker: LocalBroker,
                                                                                 tmp_path: Path) -> None:
    topic = f"take-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [topic], PARTITIONS)
    seen: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    sizes: list[int] = []

    async def body(stream: Any, events: list[Any]) -> None:
        sizes.append(len(events))
        for event in events:
            seen[event.message.partition].append(event.message.offset)
        await asyncio.sleep(0.01)  # records read meanwhile wait in the next batch

    async def main() -> None:
        app = _app(broker, topic, tmp_path, 7, 0.05, body)
        await app.start()
        try:
            _produce(broker.url, topic, 0, 150)
            await _until(lambda: sum(sizes) >= 2 * 150, 60, "every record")
            await asyncio.sleep(0.3)  # nothing more may come
        finally:
            await app.stop()

    asyncio.run(main())
    assert seen == {p: list(range(150)) for p in range(PARTITIONS)}
    assert max(sizes) == 7  # the size caps a batch, and a busy body lets batches fill


def test_a_full_batch_does_not_wait_for_its_window(broker: LocalBroker, tmp_path: Path) -> None:
    topic = f"take-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [topic], PARTITIONS)
    got: list[int] = []

    async def body(stream: Any, events: list[Any]) -> None:
        got.append(len(events))

    async def main() -> None:
        app = _app(broker, topic, tmp_path, 4, 3600.0, body)  # a window no test outlives
        await app.start()
        try:
            _produce(broker.url, topic, 0, 6)
            await _until(lambda: sum(got) == 12, 60, f"three full batches (got {got})")
        finally:
            await app.stop()

    asyncio.run(main())
    assert got == [4, 4, 4]


def test_an_idle_stream_does_not_wake_its_agent(broker: LocalBroker, tmp_path: Path) -> None:
    """Faust's own take wakes every `within` seconds, read or not (here 40 times in 2 s)."""
    topic = f"take-{uuid.uuid4().hex[:8]}"
    create_topics(broker.url, [topic], PARTITIONS)
    waits: list[float] = []
    got: list[int] = []

    async def body(stream: Any, events: list[Any]) -> None:
        if not hasattr(stream, "counted"):
            wait = stream.wait_for_stopped

            async def counted(*args: Any, **kwargs: Any) -> bool:
                waits.append(time.monotonic())
                return bool(await wait(*args, **kwargs))

            stream.wait_for_stopped = stream.counted = counted
        got.append(len(events))

    async def main() -> None:
        app = _app(broker, topic, tmp_path, 100, 0.05, body)
        await app.start()
        try:
            _produce(broker.url, topic, 0, 1)
            await _until(lambda: sum(got) == 2, 60, "the first records")
            before = len(waits)
            await asyncio.sleep(2.0)
            idle = len(waits) - before
            _produce(broker.url, topic, 1, 1)
            await _until(lambda: sum(got) == 4, 60, "the records after the pause")
        finally:
            await app.stop()
        assert idle == 0, f"{idle} wake-ups of an idle take"

    asyncio.run(main())
