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
import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import mode
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pushstream.codecs.records import Job, encode
from pushstream.streams.kafka.admin import make_producer
from pushstream.streams.kafka.fetch_wait import QuietPartitions
from pushstream.streams.kafka.security import Cluster, as_kafka, explain

__all__ = ["Record", "WriteError", "Writer", "job_record"]

log = logging.getLogger(__name__)


class WriteError(Exception):
    """The broker did not take some records of a write (after librdkafka's own retries), or a topic
    to write is missing. `failed` holds (index in the write, reason) per record not written, the
    index None when not asked for."""

    def __init__(self, message: str, failed: list[tuple[int | None, str]] | None = None) -> None:
        super().__init__(message)
        self.failed = failed or []


class Record(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


def job_record(topic: str, job: Job) -> Record:
    """A job (or its retry or replay) as a record keyed by its user: per-user order, and a stable dedup partition."""
    return Record(topic, job.key.encode() if job.key else None, encode(job))


class _Acks:
    """One `write` call's delivery reports, resolved from librdkafka's delivery-report thread."""

    __slots__ = ("loop", "future", "left", "total", "failed", "written")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.left = self.total = count
        self.failed: list[tuple[int | None, str]] = []
        self.written: list[tuple[int, int] | None] = []

    def report(self, err: KafkaError | None, msg: Message, index: int | None = None) -> None:
        if err is not None:
            self.failed.append((index, f"{msg.topic()}: {err.str()}"))
        elif index is not None:
            partition, offset = msg.partition(), msg.offset()
            self.written[index] = (partition, offset) if partition is not None and offset is not None else None
        self._done()

    def report_for(self, index: int) -> Callable[[KafkaError | None, Message], None]:
        return lambda err, msg: self.report(err, msg, index)

    def refused(self, index: int, reason: str) -> None:
        """produce() refused the record itself (e.g. over the broker's size limit): no report will come."""
        self.failed.append((index, reason))
        self._done()

    def _done(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if self.future.done():
            return
        if self.failed:
            failed = sorted(self.failed, key=lambda f: f[0] or 0)
            self.future.set_exception(WriteError(f"{len(failed)} of {self.total} records not written, e.g. "
                                                 f"{failed[0][1]}", failed))
        else:
            self.future.set_result(None)


REACH_TIMEOUT = 3.0  # seconds a readiness probe waits for the broker's metadata
REACH_CACHE = 1.0  # seconds one broker check answers repeated probes


class Writer(mode.Service):
    """One producer per worker; `write(records)` returns once the broker has acked all of them."""

    def __init__(self, cluster: Cluster, producer_config: dict[str, object] | None = None,
                 quiet: QuietPartitions | None = None, **kwargs: Any) -> None:
        self.kafka = as_kafka(cluster)
        self.producer_config = producer_config or {}
        #: The worker consumer's quiet partitions: a topic written here is fetched again at once.
        self.quiet = quiet
        self._producer: Producer | None = None
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._partitions: dict[str, int] = {}
        self._reached: tuple[float, str] = (0.0, "not checked yet")
        #: librdkafka's latest connection errors (TLS, SASL, transport): what `unreachable` explains.
        self._reports: collections.deque[str] = collections.deque(maxlen=8)
        super().__init__(**kwargs)

    @property
    def producer(self) -> Producer:
        # Created on first use: agents may start writing before this service's on_start.
        if self._producer is None:
            self._producer = make_producer(self.kafka, error_cb=lambda err: self._reports.append(err.str()),
                                           **self.producer_config)
            self._stopping = threading.Event()
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
            problem = await asyncio.to_thread(self._reach, self.producer)
            self._reached = (time.monotonic(), problem)
        return problem or None

    def _reach(self, producer: Producer) -> str:
        """"" when the broker answers a metadata request, else why. Runs in a thread: explaining a
        failure may probe the broker's port (`security.speaks_tls`), which must not block the loop."""
        try:
            producer.list_topics(timeout=REACH_TIMEOUT)
            return ""
        except Exception as exc:  # KafkaException: its text names the transport failure
            cause = explain([str(exc), *self._reports], self.kafka)
            return (f"Kafka at {self.kafka.broker} ({self.kafka.security_protocol}): {cause}" if cause
                    else f"cannot reach Kafka at {self.kafka.broker}: {exc}")

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

    async def write(self, records: Sequence[Record], indexed: bool = False) -> list[tuple[int, int] | None]:
        """Produce `records`; return when all are acknowledged, raise `WriteError` if any is not.
        With `indexed` (a callback per record: for commands, not the agents) the error names each
        failed record's index, and each record's (partition, offset) is returned."""
        if not records:
            return []
        acks = _Acks(asyncio.get_running_loop(), len(records))
        if indexed:
            acks.written = [None] * len(records)
        produce = self.producer.produce
        for i, r in enumerate(records):
            while True:
                try:
                    produce(r.topic, value=r.value, key=r.key, partition=-1 if r.partition is None else r.partition,
                            on_delivery=acks.report_for(i) if indexed else acks.report)
                    break
                except BufferError:  # librdkafka's queue is full: let it drain
                    await asyncio.sleep(0.005)
                except KafkaException as exc:
                    acks.refused(i, exc.args[0].str() if exc.args else str(exc))
                    break
        await acks.future
        if self.quiet is not None:
            now = time.monotonic()
            for topic in {r.topic for r in records}:  # `wake` passes over topics it does not watch
                self.quiet.wake(topic, now)
        return acks.written

    async def on_stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush (up to 30 s) and stop the delivery-report thread; for writers used outside an app."""
        if self._producer is None or self._poller is None:
            return
        self._stopping.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._poller.join)
        await loop.run_in_executor(None, self._producer.flush, 30)
        self._producer = self._poller = None
