"""Every record the pipeline writes (jobs, outcomes, retries, dead letters, dedup changelog)
goes through one confluent-kafka producer, and a batch is acked only after `write` returns.

Why not Faust's `topic.send`: measured on the bench floor, a Faust send costs ~100-130 us of
the worker's one Python core per record, and the pipeline writes about three records per
event; librdkafka batches and waits for acks in its own threads, so a record costs the event
loop only the `produce()` call. Faust still consumes and commits; its commit happens after
`write` has returned for every record a batch produced, so nothing is committed unwritten.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

import mode
from confluent_kafka import KafkaError, Message, Producer

from .kafka import make_producer

__all__ = ["Record", "WriteError", "Writer"]

log = logging.getLogger(__name__)


class WriteError(Exception):
    """The broker did not take some records of a write (after librdkafka's own retries)."""


class Record(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


class _Pending:
    """One `write` call: resolves its future from librdkafka's delivery-report thread."""

    __slots__ = ("loop", "future", "left", "errors")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.left = count
        self.errors: list[str] = []

    def report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err.str()}")
        self.left -= 1
        if self.left == 0:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if self.future.done():
            return
        if self.errors:
            self.future.set_exception(WriteError(f"{len(self.errors)} records not written, e.g. {self.errors[0]}"))
        else:
            self.future.set_result(None)


REACH_TIMEOUT = 3.0  # seconds a readiness probe waits for the broker's metadata
REACH_CACHE = 1.0  # seconds one broker check answers repeated probes


class Writer(mode.Service):
    """One producer per worker; `write(records)` returns once the broker has acked all of them."""

    def __init__(self, broker_url: str, producer_config: dict[str, object] | None = None, **kwargs: object) -> None:
        self.broker_url = broker_url
        self.producer_config = producer_config or {}
        self._producer: Producer | None = None
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._partitions: dict[str, int] = {}
        self._reached: tuple[float, str] = (0.0, "not checked yet")
        super().__init__(**kwargs)

    @property
    def producer(self) -> Producer:
        # Created on first use: agents may start writing before this service's on_start.
        if self._producer is None:
            self._producer = make_producer(self.broker_url, **self.producer_config)
            # Delivery reports are served by this thread, so the event loop never blocks in poll().
            self._poller = threading.Thread(target=self._poll, args=(self._producer,), name="pushstream-writer",
                                            daemon=True)
            self._poller.start()
        return self._producer

    def _poll(self, producer: Producer) -> None:
        while not self._stopping.is_set():
            producer.poll(0.05)

    async def unreachable(self) -> str | None:
        """Why the broker cannot be reached (a metadata request failing within REACH_TIMEOUT), or
        None. An answer younger than REACH_CACHE is reused, so health probes never pile up."""
        checked_at, problem = self._reached
        if time.monotonic() - checked_at > REACH_CACHE:
            try:
                await asyncio.to_thread(self.producer.list_topics, timeout=REACH_TIMEOUT)
                problem = ""
            except Exception as exc:  # KafkaException: its text names the transport failure
                problem = f"cannot reach Kafka at {self.broker_url}: {exc}"
            self._reached = (time.monotonic(), problem)
        return problem or None

    async def partitions(self, topics: Sequence[str]) -> dict[str, int]:
        """Partition counts of `topics`, from the broker's metadata (looked up once per topic)."""
        missing = [t for t in topics if t not in self._partitions]
        if missing:
            metadata = await asyncio.to_thread(self.producer.list_topics, timeout=30)
            for topic in missing:
                found = metadata.topics.get(topic)
                if found is None or found.error is not None or not found.partitions:
                    raise WriteError(f"topic {topic!r} has no partitions in the broker's metadata"
                                     f"{f' ({found.error})' if found is not None and found.error else ''}")
                self._partitions[topic] = len(found.partitions)
        return {t: self._partitions[t] for t in topics}

    async def write(self, records: Sequence[Record]) -> None:
        """Produce `records`; return when all are acknowledged, raise `WriteError` if any is not."""
        if not records:
            return
        pending = _Pending(asyncio.get_running_loop(), len(records))
        produce = self.producer.produce
        report = pending.report
        for r in records:
            while True:
                try:
                    produce(r.topic, value=r.value, key=r.key, partition=-1 if r.partition is None else r.partition,
                            on_delivery=report)
                    break
                except BufferError:  # librdkafka's queue is full: let it drain
                    await asyncio.sleep(0.005)
        await pending.future

    async def on_stop(self) -> None:
        if self._producer is None or self._poller is None:
            return
        self._stopping.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._poller.join)
        await loop.run_in_executor(None, self._producer.flush, 30)
