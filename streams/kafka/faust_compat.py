"""Where pushstream touches Faust's and aiokafka's insides: the only module that reads their
private attributes or replaces their behaviour (take.py, Faust's take without its idle clock,
reads the stream's through `drain_passively` and `remove_processor`). Read from faust-streaming
0.15.3 and aiokafka 0.14.0; `TOUCHED` lists every name relied on, and tests/streams/kafka/test_faust_compat.py fails
naming the one an upgrade removes.

What is changed, and why (each in its docstring):
- the worker consumer's fetch wait is `kafka.fetch_max_wait` (Faust hard-codes 1.5 s; a broker
  that holds every fetch for the full wait, as the local one does, adds it to every hop), and
  each request's wait adapts to what the broker answers, and retry partitions that stay empty
  are named only at peeks (fetch_wait.py);
- the fetch loop hands records to the streams per batch, and sets a read offset only for a
  record that reached its stream (`_Consumer._drain_messages`);
- the consumer's assignment is converted to Faust's partitions once per rebalance, not on each
  call (`AIOKafkaConsumerThread.assignment`: Faust's commit called it once per offset);
- the seek to committed offsets runs with the flow stopped (`_Consumer.perform_seek`): after
  a table recovery Faust's own order lost records;
- the monitor keeps only what Faust's consumer reads back (`LeanMonitor`);
- what other modules need to know: a partition's offsets, a stream resumed where it stopped,
  a table partition's database, its files and the changelog offset Faust's RocksDB store
  persisted in them, the bytes its table recovery reads back, whether an agent's actor
  crashed, the line Faust's worker logs when it is ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiokafka
import faust
import msgspec
from faust.sensors import Monitor
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.consumer import CONSUMER_FETCHING, ensure_TPset
from faust.transport.drivers import aiokafka as driver
from rocksdict import AccessType, Options, Rdict

from pushstream.streams.kafka.fetch_wait import FetchWaits, QuietPartitions

__all__ = ["READY_LINE", "TOUCHED", "CompatApp", "LeanMonitor", "actor_crashed", "adapt_fetch_waits", "drain_passively",
           "partition_offsets", "persisted_offset", "remove_processor", "resume_where_read", "seek_to", "table_bytes",
           "table_database", "table_files"]

#: The end of the line Faust's worker logs once it is ready ("[^Worker]: Ready", from faust.Worker).
READY_LINE = "Worker]: Ready"

log = logging.getLogger(__name__)

#: (owner, attribute) for every private name used here, checked by the tests against the installed versions.
TOUCHED: tuple[tuple[str, str], ...] = (
    ("faust.App", "_new_transport"),
    ("faust.transport.drivers.aiokafka.AIOKafkaConsumerThread", "_create_worker_consumer"),
    ("faust.transport.drivers.aiokafka.AIOKafkaConsumerThread", "verify_event_path"),
    ("faust.transport.drivers.aiokafka.AIOKafkaConsumerThread", "_consumer"),
    ("faust.transport.drivers.aiokafka.AIOKafkaConsumerThread", "_ensure_consumer"),
    ("faust.transport.drivers.aiokafka.Consumer", "_new_consumer_thread"),
    ("faust.transport.drivers.aiokafka.Consumer", "_thread"),
    ("faust.transport.consumer.Consumer", "_drain_messages"),
    ("faust.transport.consumer.Consumer", "_add_gap"),
    ("faust.transport.consumer.Consumer", "_is_changelog_tp"),
    ("faust.transport.consumer.Consumer", "_read_offset"),
    ("faust.transport.consumer.Consumer", "_committed_offset"),
    ("faust.transport.consumer.Consumer", "_commit_every"),
    ("faust.transport.consumer.Consumer", "_n_acked"),
    ("faust.transport.consumer.Consumer", "_stopped"),
    ("faust.agents.Agent", "_actors"),
    ("faust.Stream", "_enable_passive"),  # drain_passively
    ("faust.Stream", "_processors"),  # remove_processor
    ("faust.stores.rocksdb.Store", "_dbs"),
    ("faust.stores.rocksdb.Store", "offset_key"),
    ("faust.stores.rocksdb.Store", "partition_path"),
    ("faust.sensors.Monitor", "stream_inbound_time"),
    ("faust.sensors.Monitor", "on_message_in"),
    ("faust.sensors.Monitor", "on_stream_event_in"),
    ("faust.sensors.Monitor", "on_stream_event_out"),
    ("faust.sensors.Monitor", "on_message_out"),
    ("aiokafka.AIOKafkaConsumer", "_fetch_max_wait_ms"),
    ("aiokafka.AIOKafkaConsumer", "_fetcher"),
    ("aiokafka.consumer.fetcher.Fetcher", "_proc_fetch_request"),
    ("aiokafka.consumer.fetcher.Fetcher", "_records"),
    ("aiokafka.consumer.fetcher.Fetcher", "_subscriptions"),
    ("faust.transport.consumer.Fetcher", "_stopped"),  # a mode Service's: the fetcher `_drain_messages` gets
    ("aiokafka.protocol.fetch.FetchRequest", "_max_wait_ms"),
    ("aiokafka.protocol.fetch.FetchRequest", "_topics"),
)


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka consumer takes `app.fetch_max_wait` and the adaptive
    waits, and whose assignment is converted once per rebalance."""

    _assigned_from: Any = None  # aiokafka's assignment (a frozenset, replaced by each rebalance)...
    _assigned: frozenset[Any] = frozenset()  # ...and the same partitions as Faust's TPs

    def assignment(self) -> frozenset[Any]:  # type: ignore[override]  # a set its callers cannot change
        """The assigned partitions as Faust's TPs. Faust converts aiokafka's set on every call, and
        its `_commit` calls this once per offset it commits: O(partitions²) per commit, ~14 ms
        at 328 partitions (20 instances' jobs and retry topics), twice a second. aiokafka keeps
        one frozenset per assignment, so the conversion is redone only when that object changes.
        A frozenset, because every caller shares it (none in Faust 0.15.3 changes it)."""
        tps = self._ensure_consumer().assignment()
        if tps is not self._assigned_from:
            self._assigned, self._assigned_from = frozenset(ensure_TPset(tps)), tps
        return self._assigned

    async def on_start(self) -> None:
        await super().on_start()
        wait = getattr(self.app, "fetch_max_wait", None)
        if wait is not None:
            adapt_fetch_waits(self._consumer, FetchWaits(wait), getattr(self.app, "quiet_partitions", None))

    def verify_event_path(self, now: float, tp: Any) -> None:
        """Faust's check that a partition's stream keeps up (its livelock detector, every 2.5 commit
        intervals), skipped while aiokafka resets the partition's position: Faust reads
        `TopicPartitionState.position`, which asserts there is one, and the assertion crashed the
        consumer, and so the worker (seen after a restart, a partition sent back to its beginning)."""
        consumer = self._consumer
        if consumer is not None:
            subscription = consumer._fetcher._subscriptions.subscription
            state = subscription.assignment.state_value(aiokafka.TopicPartition(tp.topic, tp.partition)) \
                if subscription is not None and subscription.assignment is not None else None
            if state is None or not state.has_valid_position:
                return None
        return super().verify_event_path(now, tp)

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


def adapt_fetch_waits(consumer: aiokafka.AIOKafkaConsumer, waits: FetchWaits,
                      quiet: QuietPartitions | None = None) -> None:
    """Give each of a started consumer's fetch requests the wait `waits` names for it, leave out
    the partitions `quiet` finds quiet (see fetch_wait.py), and tell both how each partition
    answered. aiokafka 0.14: its fetcher builds one request per broker with `_fetch_max_wait_ms`
    and sends it in `Fetcher._proc_fetch_request`, which reads the partitions to answer from the
    request and leaves the records it got in `Fetcher._records`."""
    fetcher = consumer._fetcher
    send = fetcher._proc_fetch_request
    records = fetcher._records
    partition = aiokafka.TopicPartition

    async def proc_fetch_request(assignment: Any, node_id: int, request: Any) -> bool:
        if quiet is not None:
            request._topics = quiet.select(request._topics, time.monotonic())
        if not assignment.active:
            return bool(await send(assignment, node_id, request))
        state = assignment.state_value
        asked = [(tp, offset, state(tp).highwater) for topic, parts in request._topics
                 for p, offset, _ in parts for tp in (partition(topic, p),)]
        request._max_wait_ms = int(1000 * waits.for_request(asked))
        fresh = await send(assignment, node_id, request)
        if assignment.active:
            for tp, offset, _ in asked:
                highwater = state(tp).highwater
                got = tp in records
                waits.observe(tp, offset, highwater, got)
                if quiet is not None:
                    quiet.observe(tp.topic, tp.partition, got, highwater is not None and highwater > offset)
        return bool(fresh)

    fetcher._proc_fetch_request = proc_fetch_request


class _Consumer(driver.Consumer):
    """Faust's aiokafka consumer with our fetch loop, and its seek to committed offsets made safe."""

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
        # Faust leaves a partition's read offset at its committed offset, the next record to read;
        # everywhere else (the fetch loop, `seek_to`) it is the last record handed to a stream. One
        # meaning: a resume from it would otherwise skip the record at the committed offset.
        for tp, committed in list(self._committed_offset.items()):
            if committed and self._read_offset.get(tp) == committed:
                self._read_offset[tp] = committed - 1

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


class CompatApp(faust.App):
    """A Faust app whose transport is the one above; `fetch_max_wait` (seconds) is its fetch wait."""

    fetch_max_wait: float | None = None

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)


def partition_offsets(consumer: Any, tp: Any) -> tuple[int | None, int | None, int | None]:
    """A partition's (committed, read, high watermark) as Faust's consumer knows them: the offset
    it committed (the next to read), the last one its fetch loop handed to a stream, and the high
    watermark of the last fetch response (faust 0.15.3 `Consumer._committed_offset`, `_read_offset`)."""
    return consumer._committed_offset.get(tp), consumer._read_offset.get(tp), consumer.highwater(tp)


async def seek_to(consumer: Any, tp: Any, offset: int) -> None:
    """Fetch `tp` from `offset` on, its read offset just before it. (Faust's own `seek` sets the
    read offset to `offset` itself, the next record to read: a resume from there skipped that
    record, one per partition per hold in a row: 4 of 60 parked jobs never delivered, measured.)"""
    consumer._thread.seek(tp, offset)
    consumer._read_offset[tp] = offset - 1 if offset > 0 else None


async def resume_where_read(consumer: Any, tps: set[Any]) -> None:
    """Resume paused partitions where their stream stopped. Faust drops the records of a fetch
    that was in flight when the partition was paused (they are filtered out, though the fetch
    position moved past them), so each is sought back to just after the last record delivered
    to its stream (or to its committed offset, or its beginning when nothing was committed)."""
    consumer.resume_partitions(tps)
    for tp in tps:
        read = consumer._read_offset.get(tp)
        await seek_to(consumer, tp, read + 1 if read is not None else consumer._committed_offset.get(tp) or 0)


def table_database(table: Any, partition: int) -> Any:
    """The RocksDB database of a table partition this worker holds, else None. Faust's store opens
    one when its partition is assigned (and recovered) and forgets it when it is revoked; `_dbs`
    is read, not `_db_for_partition`, which would open (and lock) the files of a partition
    another worker now owns."""
    return table.data._dbs.get(partition)


def table_files(table: Any, partition: int) -> Path:
    """Where Faust's RocksDB store keeps a table partition's files: `<tabledir>/<name>-<p>.db`, as
    `faust.stores.rocksdb.Store.partition_path` names them (for a table whose store URL's path is
    its name). Computed, not asked of `table.data`: that creates the store, and created before the
    app started (from the thread that prepares it) the worker no longer stopped on SIGTERM."""
    return Path(table.app.conf.tabledir) / f"{table.name}-{partition}.db"


def table_bytes(text: str) -> bytes:
    """The bytes a `key_type=str`/`value_type=str` table's changelog records hold, which Faust's
    recovery writes to RocksDB as they are: the text as a JSON string. msgspec, not the topic's
    `prepare_key` (Faust's serializers cost ~20 us a record); our reads encode the same way."""
    return msgspec.json.encode(text)


def persisted_offset(path: Path) -> int | None:
    """The changelog offset Faust's RocksDB store last applied to a partition's files (None: none
    recorded; a huge number for files that cannot be read, so that they are rebuilt)."""
    try:
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
    except Exception:
        return 1 << 62
    try:
        value = db.get(RocksDBStore.offset_key)
    finally:
        db.close()
    if value is None:
        return None
    # Opened without TTL (read-only), a TTL database's values show RocksDB's 4-byte timestamp suffix.
    try:
        return int(value[:-4] if not value.isdigit() else value)
    except ValueError:
        return 1 << 62


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


def drain_passively(stream: Any) -> None:
    """Have Faust drain `stream` in the background, its processors run on each event (what its take does)."""
    stream._enable_passive(aiter(stream.channel))


def remove_processor(stream: Any, processor: Any) -> None:
    """Take a processor added with `stream.add_processor` off the stream (Faust has no public way)."""
    stream._processors.remove(processor)


def actor_crashed(agent: Any) -> bool:
    """Whether any actor of a Faust agent has crashed (the agent's own flag misses a crashed actor)."""
    return any(actor.crashed for actor in list(agent._actors))
