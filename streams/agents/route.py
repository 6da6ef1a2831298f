"""The route agent: input records -> jobs (in packs) and outcomes.

Reads:  the input topics (raw bytes; a record that is not a Segment event gets an `invalid` outcome).
Writes: `<prefix>.jobs.<instance>` in packs (one record per run of up to 20 jobs bound for the
        same partition, the partition of the job's user key, so per-user order and dedup's
        co-partitioning hold as for single-job records), and `<prefix>.outcomes` for events it
        settles itself (invalid, skipped, filtered, rejected by field validation), and one record
        per batch on `<prefix>.samples` counting, per instance, the events no mapping took.
Acks:   a batch once everything it produced is acknowledged by the broker. A batch's records are
        written while the next batch is routed (routing is a fraction of the broker's round trip).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust

from pushstream.codecs.records import Job, Outcome, Unmatched, encode, pack_jobs
from pushstream.codecs.route import Routed, route_record
from pushstream.streams.agents.base import TAKE_WITHIN, Agent, or_exit
from pushstream.streams.agents.pipeline import Pipeline
from pushstream.streams.kafka.admin import key_partition
from pushstream.streams.kafka.take import batches
from pushstream.streams.kafka.writer import Record

__all__ = ["RouteAgent"]

log = logging.getLogger(__name__)


class RouteAgent(Agent):
    """Decode, filter and map input records into jobs and outcomes."""

    name = "route"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config
        self.job_partitions: dict[str, int] = {}  # partition count of each jobs topic, read at start
        self.in_flight: asyncio.Future[None] | None = None  # the previous batch's write and ack

    async def run(self, stream: faust.Stream[bytes]) -> None:
        self.in_flight = None
        async with or_exit(self.name):  # an agent that raised here would be gone, the worker still up
            self.job_partitions = await self.pipeline.writer.partitions(list(self.pipeline.topics.jobs.values()))
        try:
            async for events in batches(stream, self.config.pipeline.route_batch, TAKE_WITHIN):
                async with or_exit(self.name):
                    records, outcomes = self.route(events, time.time())
                if self.in_flight is not None:
                    await self.in_flight
                self.in_flight = asyncio.ensure_future(self._write_then_ack(stream, list(events), records, outcomes))
        finally:
            if self.in_flight is not None and not self.in_flight.done():
                self.in_flight.cancel()  # unacked: its events are read again after the restart

    def route(self, events: Sequence[Any], now: float) -> tuple[list[Record], list[Outcome]]:
        """The records a batch of input events produces (outcomes, then packs of jobs), and the outcomes."""
        jobs: list[tuple[str, Job]] = []
        outcomes: list[Outcome] = []
        unmatched: collections.Counter[str] = collections.Counter()
        job_topics = self.pipeline.topics.jobs
        for ev in events:
            routed = self._route_one(ev, now)
            jobs += [(job_topics[name], job) for name, job in routed.jobs]
            outcomes += routed.outcomes
            unmatched.update(routed.unmatched)
        records = [self.pipeline.outcome_record(o) for o in outcomes]
        records += [Record(t, None, value, p) for t, p, value in pack_jobs(jobs, self._partition_of)]
        if unmatched:
            tally = Unmatched(at=now, counts=dict(unmatched))
            records.append(Record(self.pipeline.topics.samples, None, encode(tally)))
        return records, outcomes

    def _partition_of(self, topic: str, job: Job) -> int | None:
        return key_partition(job.key.encode(), self.job_partitions[topic]) if job.key else None

    def _route_one(self, ev: Any, now: float) -> Routed:
        msg = ev.message
        try:
            return route_record(ev.value or b"", msg.topic, msg.partition, msg.offset, self.config, now)
        except Exception as exc:  # a bug in routing must cost one outcome, not the stream
            log.exception("routing failed topic=%s partition=%s offset=%s", msg.topic, msg.partition, msg.offset)
            return Routed(outcomes=[Outcome(message_id=None, status="invalid", error_code="ROUTE_FAILED",
                                            reason=f"internal error while routing: {type(exc).__name__}", at=now,
                                            topic=msg.topic, partition=msg.partition, offset=msg.offset)])

    async def _write_then_ack(self, stream: faust.Stream[bytes], events: list[Any], records: list[Record],
                              outcomes: list[Outcome]) -> None:
        async with or_exit(self.name):
            await self.pipeline.writer.write(records)
            for event in events:
                await stream.ack(event)
            self.pipeline.metrics.read(ev.message.topic for ev in events)
            self.pipeline.metrics.outcomes(outcomes)
