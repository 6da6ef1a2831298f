"""The retry agent of one instance: jobs whose due time has come are delivered again.

Reads:  `<prefix>.retry.<instance>` (single jobs with a due time).
Writes: jobs not due yet back to the same topic (after holding a batch at most
        `RETRY_HOLD_MAX` seconds for its earliest due time); due jobs through
        `Pipeline.deliver` (outcomes, further retries, dead letters), then their dedup entries.
        While the instance's circuit is open, a batch is held with its partitions paused: no
        rewrites while the destination is down or refuses the key (see circuit.py).
Acks:   a batch once all of that is written (Faust's `take_events` acks it when the loop asks
        for the next batch; the body never raises, see `or_exit`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
import msgspec

from pushstream.codecs.config import Instance
from pushstream.codecs.records import Job

from ..deliver import Writes
from .pipeline import Agent, Pipeline, or_exit, record_jobs

__all__ = ["RETRY_HOLD_MAX", "RetryAgent"]

RETRY_HOLD_MAX = 5.0  # seconds a retry batch waits for its due time before going back on the topic


class RetryAgent(Agent):
    """Re-delivers due jobs of one instance; puts the others back on its retry topic."""

    def __init__(self, pipeline: Pipeline, instance: Instance) -> None:
        self.pipeline = pipeline
        self.instance = instance
        self.name = f"retry-{instance.name}"

    def _window_end(self, job: Job) -> float:
        return (job.first_attempt_at or job.received_at) + self.pipeline.deliverers[self.instance.name].retry_window

    async def _hold_while_open(self, stream: faust.StreamT[bytes], batch: list[tuple[Job, int]]) -> None:
        """While the instance's circuit is open, hold this batch, unwritten: its retry partitions
        are paused (nothing more is fetched, so the consumer never blocks on this agent) until the
        circuit closes or a job's retry window ends (that job then fails). Without a credential
        check the probe is a real request: the batch's first job, alone; the rest stay held."""
        deliverer = self.pipeline.deliverers[self.instance.name]
        circuit = deliverer.circuit
        if not circuit.open:
            return
        consumer = stream.app.consumer
        topic = self.pipeline.topics.retry[self.instance.name]
        paused = {tp for tp in consumer.assignment() if tp.topic == topic}
        consumer.pause_partitions(paused)
        can_ping = deliverer.instance.destination.ping is not None
        try:
            while circuit.open and batch:
                until = min(self._window_end(j) for j, _ in batch)
                if time.time() >= until:
                    return
                if circuit.probe_due() and not can_ping:
                    probe, partition = batch.pop(0)
                    probe = msgspec.structs.replace(probe, due_at=None)
                    await self.pipeline.writer.write(await self.pipeline.deliver(self.instance, [(probe, partition)]))
                    continue
                await circuit.wait_closed(timeout=max(0.25, min(circuit.probe_at, until) - time.time()))
        finally:
            await _resume(consumer, paused & consumer.assignment())

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        take = self.pipeline.config.pipeline.deliver_batch  # a backlog drains in steps, as the deliver agent's
        async for events in stream.take_events(take, within=0.5):
            async with or_exit(self.name):
                batch = [pair for pairs in record_jobs(events) for pair in pairs]
                await self._hold_while_open(stream, batch)  # an outage or a refused key: no rewrites meanwhile
                if not batch:
                    continue
                wait = min(j.due_at or 0.0 for j, _ in batch) - time.time()
                if wait > 0:
                    await asyncio.sleep(min(wait, RETRY_HOLD_MAX))
                now = time.time()
                later = [j for j, _ in batch if (j.due_at or 0.0) > now]
                if later:  # not due yet: back on the retry topic, written before this batch is acked
                    await self.pipeline.write_delivery(self.instance, Writes(retries=later))
                ready = [(msgspec.structs.replace(j, due_at=None), p) for j, p in batch if (j.due_at or 0.0) <= now]
                if ready:
                    await self.pipeline.writer.write(await self.pipeline.deliver(self.instance, ready))


async def _resume(consumer: Any, tps: set[Any]) -> None:
    """Resume paused partitions where their stream stopped. Faust drops the records of a fetch
    that was in flight when the partition was paused (they are filtered out, though the fetch
    position moved past them), so each is sought back to just after the last record delivered
    to its stream (or its committed offset)."""
    consumer.resume_partitions(tps)
    for tp in tps:
        read = consumer._read_offset.get(tp)
        offset = read + 1 if read is not None else consumer._committed_offset.get(tp)
        if offset is not None:
            await consumer.seek(tp, offset)
