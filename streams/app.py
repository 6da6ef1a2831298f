"""The Faust app: topics, the route agent, and one deliver + one retry agent per instance.

    input topics --route--> <prefix>.jobs.<instance> --deliver-<instance>--> HTTP
                      \\                                   |  \\--> <prefix>.retry.<instance> --retry-<instance>--> HTTP
                       \\--> <prefix>.outcomes <-----------+------------------------------------+
                                                           \\--> <prefix>.deadletter

Route writes jobs in packs (see `pack_jobs`): one record per run of up to 20 jobs bound for
the same jobs-topic partition, which is the partition each job's user key hashes to, so
per-user order and dedup's co-partitioning hold as for single-job records (retries, replays).

Every agent reads raw bytes (a decoding codec would crash the agent on a bad record) with
`concurrency=1` (faust #606) and never lets an exception escape its body: Faust acks a
batch whose body raised. A batch is acked only after what it produced (jobs, outcomes,
retries, dead letters) has been acknowledged by the broker; if that write, or anything else
in a batch, fails unexpectedly the worker exits at once, so the batch is not committed and is
read again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

import faust
import httpx
import msgspec

from pushstream.codecs.config import Config, Instance
from pushstream.codecs.records import Job, Outcome, decode_jobs, encode, pack_jobs
from pushstream.codecs.route import Routed, route_record

from .dedup import Dedup
from .deliver import Deliverer, Writes
from .kafka import key_partition
from .steps import Pending, delivery_steps
from .transport import PushstreamApp, StallWatch
from .writer import Record, Writer

__all__ = ["create_app"]

log = logging.getLogger(__name__)
RETRY_HOLD_MAX = 5.0  # seconds a retry batch waits for its due time before going back on the topic
TAKE_WITHIN = 0.02  # seconds a read record may wait for others before its agent sees it


def create_app(config: Config, transport: httpx.AsyncBaseTransport | None = None) -> faust.App:
    """Build the app for `config`. `transport` replaces the network for every instance (tests)."""
    k = config.kafka
    app = PushstreamApp(
        k.app_id, fetch_max_wait=k.fetch_max_wait, broker=k.broker, value_serializer="raw", key_serializer="raw",
        store="memory://", datadir=config.pipeline.state_dir, autodiscover=False, web_enabled=False,
        topic_disable_leader=True, topic_partitions=k.partitions,
        consumer_auto_offset_reset="earliest", broker_session_timeout=k.session_timeout,
        broker_heartbeat_interval=k.heartbeat_interval, broker_rebalance_timeout=k.rebalance_timeout,
        broker_request_timeout=max(90.0, k.session_timeout + 5), broker_commit_interval=k.commit_interval,
        table_standby_replicas=0, stream_buffer_maxsize=8192, producer_linger=0.005,
    )

    def topic(name: str, maxsize: int | None = None) -> faust.TopicT:
        # The Topic class, not app.topic(): faust 0.15.3's app.topic() drops `maxsize`.
        return app.conf.Topic(app, topics=[name], value_type=bytes, key_type=bytes, value_serializer="raw",
                              key_serializer="raw", maxsize=maxsize)

    inputs = app.topic(*k.input_topics, value_type=bytes, value_serializer="raw", key_serializer="raw")
    outcomes_topic, dead_letter_topic = config.topic("outcomes"), config.topic("deadletter")
    job_topics = {i.name: config.topic("jobs", i.name) for i in config.instances}
    retry_topics = {i.name: config.topic("retry", i.name) for i in config.instances}
    writer = Writer(k.broker)
    deliverers = {i.name: Deliverer(config, i, transport) for i in config.instances}
    dedup = Dedup(app, config.pipeline.dedup_window, k.partitions)
    for service in (writer, *deliverers.values()):
        app.add_dependency(service)

    def outcome_record(o: Outcome) -> Record:
        return Record(outcomes_topic, (o.message_id or "").encode(), encode(o))

    async def write_delivery(instance: Instance, w: Writes) -> None:
        records = [outcome_record(o) for o in w.outcomes]
        records += [_job_record(retry_topics[instance.name], j) for j in w.retries]
        records += [Record(dead_letter_topic, d.job.message_id.encode(), encode(d)) for d in w.dead_letters]
        await writer.write(records)

    async def deliver_pairs(instance: Instance, pairs: list[tuple[Job, int]]) -> list[Record]:
        """Deliver fresh jobs, report duplicates, write what happened; returns the dedup entries
        of the terminal outcomes, for the caller to write now that their outcomes are safe (an
        entry without its outcome would turn a redelivered job into a `duplicate` that never
        had a terminal outcome). They are in the table already."""
        await dedup.warm_up(k.broker, outcomes_topic, config.pipeline.dedup_lookback)
        now = time.time()
        fresh, partitions, duplicates = dedup.split(pairs, now)
        writes = await deliverers[instance.name].deliver(fresh)
        writes.outcomes.extend(duplicates)
        await write_delivery(instance, writes)
        return dedup.remember(writes.outcomes, partitions, time.time())

    @app.task
    async def warm_dedup() -> None:
        """Start reading recent outcomes at once, not when the first batch is waiting for them."""
        await dedup.warm_up(k.broker, outcomes_topic, config.pipeline.dedup_lookback)

    watch = StallWatch(app, {*k.input_topics, *job_topics.values(), *retry_topics.values()})

    @app.timer(interval=5.0)
    async def watch_partitions() -> None:
        await watch.check(time.time())

    @app.timer(interval=60.0)
    async def expire_dedup() -> None:
        dedup.expire(time.time())

    # Agents -------------------------------------------------------------------------------

    @app.agent(inputs, name="route", concurrency=1)
    async def route(stream: faust.StreamT[bytes]) -> None:
        """Decode, filter and map input records into jobs and outcomes.

        A batch's records are written while the next batch is routed (routing is a fraction of
        the broker's round trip); its events are acked once they are written."""
        in_flight: asyncio.Future[None] | None = None
        async with _or_exit("route"):  # an agent that raised here would be gone, the worker still up
            job_partitions = await writer.partitions(list(job_topics.values()))

        def partition_of(topic: str, job: Job) -> int | None:
            return key_partition(job.key.encode(), job_partitions[topic]) if job.key else None

        async def write_then_ack(events: list[Any], records: list[Record]) -> None:
            async with _or_exit("route"):
                await writer.write(records)
                for event in events:
                    await stream.ack(event)

        try:
            async for events in stream.noack_take(config.pipeline.route_batch, within=TAKE_WITHIN):
                async with _or_exit("route"):
                    now = time.time()
                    jobs: list[tuple[str, Job]] = []
                    records: list[Record] = []
                    for ev in events:
                        routed = _route_one(ev, config, now)
                        jobs += [(job_topics[name], job) for name, job in routed.jobs]
                        records += [outcome_record(o) for o in routed.outcomes]
                    records += [Record(t, None, value, p) for t, p, value in pack_jobs(jobs, partition_of)]
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.ensure_future(write_then_ack(list(events), records))
        finally:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()  # unacked: its events are read again after the restart

    async def deliver(instance: Instance, stream: faust.StreamT[bytes]) -> None:
        """Deliver fresh jobs of one instance, one delivery at a time, each in steps of up to
        `deliver_batch` jobs sent as requests of up to each mapping's batch size. When a
        delivery starts (a full request waiting, the batch window over, or `deliver_batch` jobs
        waiting) is `Pending`'s rule, see steps.py. Records are read while a delivery is out;
        each is acked only after its outcomes or retries are written."""
        name = f"deliver-{instance.name}"
        pending: Pending[Any, tuple[Job, int]] = Pending(config.pipeline.batch_window, instance.request_size,
                                                         config.pipeline.deliver_batch)
        in_flight: asyncio.Future[None] | None = None
        entries_written: asyncio.Future[None] | None = None
        wake = asyncio.Event()  # something was read, or the delivery in flight is done

        async def write_entries(entries: list[Record]) -> None:
            async with _or_exit(name):
                await writer.write(entries)

        async def deliver_then_ack(events: list[Any], jobs: list[list[tuple[Job, int]]]) -> None:
            nonlocal entries_written
            async with _or_exit(name):
                # A record is one job or a pack of them: deliver in steps of `deliver_batch` jobs
                # and ack each record once all of its jobs are written.
                acked = 0
                for pairs, done in delivery_steps(jobs, config.pipeline.deliver_batch):
                    entries = await deliver_pairs(instance, pairs) if pairs else []
                    for event in events[acked:done]:
                        await stream.ack(event)
                    acked = done
                    # Dedup entries are written while the next step's requests are out. Their
                    # jobs are acked already: a crash before they land loses only entries, and
                    # the start-up read of recent outcomes stands in for those (see dedup.py).
                    if entries_written is not None:
                        await entries_written  # one at a time: a slow broker holds the next step
                    entries_written = asyncio.ensure_future(write_entries(entries)) if entries else None

        def idle() -> bool:
            return in_flight is None or in_flight.done()

        def start_delivery() -> None:
            nonlocal in_flight
            in_flight = asyncio.ensure_future(deliver_then_ack(*pending.take()))
            in_flight.add_done_callback(lambda _: wake.set())

        async def start_when_due() -> None:
            """Starts a delivery when one is due and none is in flight (the read loop below
            starts one itself only when `deliver_batch` jobs wait)."""
            async with _or_exit(name):
                while True:
                    timeout = pending.wait(time.monotonic()) if idle() else None
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout)
                    wake.clear()
                    if idle() and pending.due(time.monotonic()):
                        start_delivery()

        starter = asyncio.ensure_future(start_when_due())
        try:
            async for events in stream.noack_take(config.pipeline.deliver_batch, within=TAKE_WITHIN):
                async with _or_exit(name):
                    pending.add(events, _record_jobs(events), time.monotonic())
                if not pending.full():
                    wake.set()
                    continue
                while not idle():  # not reading meanwhile bounds what this agent holds
                    assert in_flight is not None
                    await in_flight
                if pending:  # `start_when_due` may have started it as the one in flight ended
                    start_delivery()
        finally:
            starter.cancel()
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()  # unacked: its events are read again after the restart

    async def retry(instance: Instance, stream: faust.StreamT[bytes]) -> None:
        """Re-deliver jobs whose due time has come; put the others back on the retry topic."""
        async for events in stream.take_events(100, within=0.5):
            async with _or_exit(f"retry-{instance.name}"):
                batch = [pair for pairs in _record_jobs(events) for pair in pairs]
                if not batch:
                    continue
                wait = min(j.due_at or 0.0 for j, _ in batch) - time.time()
                if wait > 0:
                    await asyncio.sleep(min(wait, RETRY_HOLD_MAX))
                now = time.time()
                later = [j for j, _ in batch if (j.due_at or 0.0) > now]
                if later:  # not due yet: back on the retry topic, written before this batch is acked
                    await write_delivery(instance, Writes(retries=later))
                ready = [(msgspec.structs.replace(j, due_at=None), p) for j, p in batch if (j.due_at or 0.0) <= now]
                if ready:
                    await writer.write(await deliver_pairs(instance, ready))

    for inst in config.instances:
        # A jobs record is a pack: its queue holds one take, not the app's default 8,192 records.
        jobs_in = topic(job_topics[inst.name], maxsize=config.pipeline.deliver_batch)
        app.agent(jobs_in, name=f"deliver-{inst.name}", concurrency=1)(
            _named(partial(deliver, inst), f"deliver_{inst.name}"))
        app.agent(topic(retry_topics[inst.name]), name=f"retry-{inst.name}", concurrency=1)(
            _named(partial(retry, inst), f"retry_{inst.name}"))
    return app


def _route_one(ev: Any, config: Config, now: float) -> Routed:
    msg = ev.message
    try:
        return route_record(ev.value or b"", msg.topic, msg.partition, msg.offset, config, now)
    except Exception as exc:  # a bug in routing must cost one outcome, not the stream
        log.exception("routing failed topic=%s partition=%s offset=%s", msg.topic, msg.partition, msg.offset)
        return Routed(outcomes=[Outcome(message_id=None, status="invalid", error_code="ROUTE_FAILED",
                                        reason=f"internal error while routing: {type(exc).__name__}", at=now,
                                        topic=msg.topic, partition=msg.partition, offset=msg.offset)])


@contextlib.asynccontextmanager
async def _or_exit(agent: str) -> AsyncIterator[None]:
    """Around one batch: anything escaping it would make Faust ack the batch unprocessed, so the
    worker exits instead (nothing is committed; the batch is read again after the restart)."""
    try:
        yield
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.critical("agent %s failed on a batch; exiting so the batch is read again", agent, exc_info=True)
        logging.shutdown()
        os._exit(70)


def _job_record(topic: str, job: Job) -> Record:
    """Jobs and their retries are keyed by user: per-user order, and a stable dedup partition."""
    return Record(topic, job.key.encode() if job.key else None, encode(job))


def _record_jobs(events: list[Any]) -> Iterator[list[tuple[Job, int]]]:
    """Each record's (job, partition) pairs; none for a record that is not a job or a pack."""
    for ev in events:
        msg = ev.message
        try:
            yield [(job, msg.partition) for job in decode_jobs(ev.value)]
        except (msgspec.DecodeError, TypeError):
            log.error("dropping an unreadable job record topic=%s partition=%s offset=%s", msg.topic, msg.partition,
                      msg.offset)
            yield []


def _named(fn: partial[Any], name: str) -> Callable[..., Any]:
    """Faust names agents after their function; give each per-instance partial its own name."""

    async def agent(stream: faust.StreamT[bytes]) -> None:
        await fn(stream)

    agent.__name__ = agent.__qualname__ = name
    agent.__module__ = __name__
    return agent
