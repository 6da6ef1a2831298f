"""Faust's aiokafka transport with two changes: the consumer's fetch wait is a setting, and its
fetch loop hands records to the streams per batch (see `_Consumer._drain_messages`); and a
monitor that keeps no per-event statistics (see `LeanMonitor`).

Faust hard-codes `fetch_max_wait_ms=1500` for its worker consumer. A broker that honours
`fetch.min.bytes` answers as soon as a record arrives, so the wait only bounds idle polls;
a broker that holds every fetch for the full wait (Tansu, the local broker: measured p50
~480 ms per hop at 1.5 s, ~16 ms at 0.1 s) adds that wait to every hop of the pipeline.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import aiokafka
import faust
from faust.sensors import Monitor
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver

from pushstream.codecs.config import Config

from .fetch_wait import FetchWaits

__all__ = ["LeanMonitor", "PushstreamApp", "adapt_fetch_waits", "app_settings", "broker_ends", "partition_offsets",
           "tune_gc"]

log = logging.getLogger(__name__)


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    async def on_start(self) -> None:
        await super().on_start()
        wait = getattr(self.app, "fetch_max_wait", None)
        if wait is not None:
            adapt_fetch_waits(self._consumer, FetchWaits(wait))

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait", None)
        if wait is not None:
            if hasattr(consumer, "_fetch_max_wait_ms"):
                # Read by AIOKafkaConsumer.start() when it builds its fetcher (aiokafka 0.10-0.14).
                consumer._fetch_max_wait_ms = int(wait * 1000)
            else:
                log.warning("this aiokafka has no _fetch_max_wait_ms; kafka.fetch_max_wait is ignored")
        return consumer


def adapt_fetch_waits(consumer: aiokafka.AIOKafkaConsumer, waits: FetchWaits) -> None:
    """Give each of a started consumer's fetch requests the wait `waits` names for it (see
    fetch_wait.py), and tell `waits` how each partition answered. aiokafka 0.14: its fetcher
    builds one request per broker with `_fetch_max_wait_ms` and sends it in
    `Fetcher._proc_fetch_request`, which leaves the records it got in `Fetcher._records`."""
    fetcher = consumer._fetcher
    send = fetcher._proc_fetch_request

    async def proc_fetch_request(assignment: Any, node_id: int, request: Any) -> bool:
        asked = [(aiokafka.TopicPartition(topic, p), offset) for topic, parts in request.topics
                 for p, offset, _ in parts]
        if assignment.active:
            request._max_wait_ms = int(1000 * waits.for_request(
                (tp, offset, assignment.state_value(tp).highwater) for tp, offset in asked))
        fresh = await send(assignment, node_id, request)
        if assignment.active:
            for tp, offset in asked:
                waits.observe(tp, offset, assignment.state_value(tp).highwater, tp in fetcher._records)
        return bool(fresh)

    fetcher._proc_fetch_request = proc_fetch_request


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Faust's seek of every partition to its committed offset, with the flow stopped.

        After a table recovery, Faust (0.15.3 `Recovery.on_recovery_completed`) resumes the
        stream partitions, then seeks them (one OffsetFetch per partition, ~0.5 s for 28),
        then resumes flow control, which empties the agents' queues; flow control has been on
        since the recovery began. Records prefetched from the committed offsets were handed to
        the agents during the seek: those still queued at its end were dropped unacked, and
        the seek's end rewound the read offsets below them, so the fetch loop took the next
        records for a gap and the consumer counted the dropped ones as done. Every caller
        resumes the flow afterwards. A partition without a committed offset is not sought by
        aiokafka, so it is sent back to its beginning here (the `earliest` reset it started from).
        """
        self.stop_flow()
        await super().perform_seek()
        unsought = [tp for tp in self.assignment() if not self._committed_offset.get(tp)
                    and not self._is_changelog_tp(tp)]
        if unsought:
            await self._thread.seek_to_beginning(*driver.ensure_aiokafka_TPset(unsought))

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop (faust 0.15.3 `Consumer._drain_messages`) with three changes.

        1. A fetched batch is handed to the streams by one task raced against a flow stop,
           where Faust races four tasks per record (`wait_first` per record was ~15% of the
           worker's CPU in a profile of the end-to-end bench).
        2. A record's read offset is set only after the record reached its stream. Faust sets
           it even when a rebalance's flow stop won the race, so that record is skipped and,
           once the read offset has moved past it, re-fetched copies are dropped as "already
           read": the partition's committed offset then never moves again.
        3. Delivery stops at a record fetched in an earlier generation (see `_deliver_batch`).
        """
        stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        try:
            while not (stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                batch = [item async for item in self.getmany(timeout=1.0)]
                await self.sleep(0)  # getmany may not have yielded to the loop
                if batch and not self.should_stop:
                    await self.wait_first(self._deliver_batch(batch), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception:
            self.log.exception("Drain messages raised")
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver_batch(self, batch: list[tuple[Any, Any]]) -> None:
        app, callback, read_offset = self.app, self.callback, self._read_offset
        commit_every, acks_enabled_for = self._commit_every, self.app.topics.acks_enabled_for
        for n, (tp, message) in enumerate(batch, 1):
            if n % 100 == 0:
                await asyncio.sleep(0)
            if message.generation_id != app.consumer_generation_id:
                # Fetched before a rebalance: the stream would skip it unacked, and a read offset
                # set for it would drop the copy re-fetched from the committed offset. (Faust's
                # getmany checks this while its loop iterates; here the batch is fetched first.)
                break
            offset, r_offset = message.offset, read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # already read (Faust logs these as dropped)
            if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            await callback(message)
            read_offset[tp] = offset


class _Transport(driver.Transport):
    Consumer = _Consumer


class LeanMonitor(Monitor):
    """Faust's monitor without its per-record statistics.

    Faust's `Monitor` counts and times every message and stream event (for its web view and
    metrics, both off here): four calls per record, ~5% of the worker's CPU in the end-to-end
    bench's profile. Kept: the stream's last-event time per partition, which the consumer's
    "stream stopped processing" warning reads, and everything not per record.
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = time.monotonic()  # as Monitor: the warning compares monotonic times

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass


class PushstreamApp(faust.App):
    """A Faust app whose Kafka consumer waits at most `fetch_max_wait` seconds per fetch and
    uses the fetch loop above, with the lean monitor."""

    def __init__(self, *args: Any, fetch_max_wait: float | None = None,
                 prepare: Callable[[], object] | None = None, **kwargs: Any) -> None:
        self.fetch_max_wait = fetch_max_wait
        self.prepare = prepare
        #: Partitions an agent holds on purpose, and why (PartitionWatch reports them as held).
        self.held_partitions: dict[Any, str] = {}
        kwargs.setdefault("Monitor", LeanMonitor)
        super().__init__(*args, **kwargs)

    async def on_first_start(self) -> None:
        """Runs `prepare` (e.g. creating topics) in a thread before the consumer starts, so that
        building or importing the app touches no network."""
        if self.prepare is not None:
            await asyncio.to_thread(self.prepare)
        await super().on_first_start()

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)


def tune_gc() -> None:
    """Call once the app is built, before it runs.

    Nearly everything a worker allocates per event is freed by reference counting, yet with
    Python's default thresholds (a young collection every 700 net allocations, full ones over
    the whole heap) collections took ~10% of the worker's CPU in the end-to-end bench (0.69 s
    of a 40k-event run, and most of what a profile put on msgspec's job decoding). Objects
    alive now (modules, config, compiled mappings) are frozen out of collections, and young
    collections run every 10,000 net allocations (0.17 s of GC, 25 collections, in the same run)."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def partition_offsets(consumer: Any, tp: Any) -> tuple[int | None, int | None, int | None]:
    """A partition's (committed, read, high watermark) as Faust's consumer knows them: the offset
    it committed (the next to read), the last one its fetch loop handed to a stream, and the high
    watermark of the last fetch response (faust 0.15.3 `Consumer._committed_offset`, `_read_offset`)."""
    return consumer._committed_offset.get(tp), consumer._read_offset.get(tp), consumer.highwater(tp)


async def broker_ends(consumer: Any, tps: list[Any]) -> dict[Any, int | None]:
    """The broker's end offsets of `tps` (ListOffsets; the local broker's may lag, never lead);
    empty when the broker does not answer within 10 s."""
    try:
        return dict(await asyncio.wait_for(consumer.highwaters(*tps), timeout=10))
    except Exception as exc:  # noqa: BLE001 - a watch must not stop the timer that runs it
        log.debug("end offsets for %s: %r", tps, exc)
        return {}


def app_settings(config: Config) -> dict[str, object]:
    """Faust's settings for this config: raw bytes everywhere (agents decode with msgspec), web off
    (ops.py serves health and metrics), the group timings and commit interval from [kafka]."""
    k = config.kafka
    return dict(
        broker=k.broker, value_serializer="raw", key_serializer="raw", store="memory://",
        datadir=config.pipeline.state_dir, autodiscover=False, web_enabled=False, topic_disable_leader=True,
        topic_partitions=k.partitions, topic_replication_factor=k.replication_factor,
        consumer_auto_offset_reset="earliest", broker_session_timeout=k.session_timeout,
        broker_heartbeat_interval=k.heartbeat_interval, broker_rebalance_timeout=k.rebalance_timeout,
        broker_request_timeout=max(90.0, k.session_timeout + 5), broker_commit_interval=k.commit_interval,
        table_standby_replicas=0, stream_buffer_maxsize=8192, producer_linger=0.005,
        # Dedup.reconcile does this check before Faust's, and rebuilds instead of stopping.
        recovery_consistency_check=False)
