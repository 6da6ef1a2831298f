"""The retry agent of one instance: jobs whose due time has come are delivered again.

Reads:  `<prefix>.retry.<instance>` (single jobs with a due time).
Writes: due jobs through `Pipeline.deliver` (outcomes, further retries, dead letters), then
        their dedup entries. Nothing is written back while a job waits: the agent holds its
        take, with the topic's partitions paused, until the earliest job is due ("pause the
        partition until its head is due"), so a job costs one retry record per attempt, never
        one per few seconds of waiting. While the instance's circuit is open the whole take is
        held the same way (see circuit.py). Records behind a held take wait for it (at most
        `backoff_max`, or the outage).
Acks:   a take once all of its jobs are written (Faust's `take_events` acks it when the loop asks
        for the next one; the body never raises, see `or_exit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import faust
import msgspec

from pushstream.codecs.records import Job

from .pipeline import InstanceAgent, or_exit, record_jobs

__all__ = ["RetryAgent"]


class RetryAgent(InstanceAgent):
    """Re-delivers jobs of one instance as they fall due; never writes a waiting job back."""

    kind = "retry"

    def _window_end(self, job: Job) -> float:
        return (job.first_attempt_at or job.received_at) + self.pipeline.deliverers[self.instance.name].retry_window

    async def _hold_while_open(self, stream: faust.StreamT[bytes], batch: list[tuple[Job, int]]) -> None:
        """While the instance's circuit is open, hold this take, unwritten, with its partitions paused,
        until the circuit closes or a job's retry window ends (that job then fails). Without a
        credential check the probe is a real request: the take's first job, alone."""
        deliverer = self.pipeline.deliverers[self.instance.name]
        circuit = deliverer.circuit
        if not circuit.open:
            return
        can_ping = deliverer.instance.destination.ping is not None
        async with self._paused(stream, f"circuit open: {circuit.reason}"):
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

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        take = self.pipeline.config.pipeline.deliver_batch  # a backlog drains in steps, as the deliver agent's
        async for events in stream.take_events(take, within=0.5):
            async with or_exit(self.name):
                batch = [pair for pairs in record_jobs(events) for pair in pairs]
                while batch:
                    await self._hold_while_open(stream, batch)  # an outage or a refused key: held, not rewritten
                    if not batch:
                        break
                    now = time.time()
                    earliest = min(j.due_at or 0.0 for j, _ in batch)
                    if earliest > now:
                        await self._hold_until(stream, earliest)
                        continue
                    ready = [(msgspec.structs.replace(j, due_at=None), p) for j, p in batch if (j.due_at or 0.0) <= now]
                    batch = [(j, p) for j, p in batch if (j.due_at or 0.0) > now]
                    await self.pipeline.writer.write(await self.pipeline.deliver(self.instance, ready))

    async def _hold_until(self, stream: faust.StreamT[bytes], due: float) -> None:
        """Wait for `due` with this instance's retry partitions paused (or until its circuit opens)."""
        circuit = self.pipeline.deliverers[self.instance.name].circuit
        async with self._paused(stream, f"the retry agent holds a take until a job falls due at {due:.0f}"):
            while time.time() < due and not circuit.open:
                await asyncio.sleep(min(1.0, max(0.0, due - time.time())))

    @contextlib.asynccontextmanager
    async def _paused(self, stream: faust.StreamT[bytes], why: str) -> AsyncIterator[None]:
        """This instance's retry partitions paused (nothing more fetched for them, so the shared
        consumer never blocks on this agent's full queue), resumed where their stream stopped."""
        consumer = stream.app.consumer
        topic = self.pipeline.topics.retry[self.instance.name]
        paused = {tp for tp in consumer.assignment() if tp.topic == topic}
        held = stream.app.held_partitions
        consumer.pause_partitions(paused)
        held.update(dict.fromkeys(paused, why))
        try:
            yield
        finally:
            for tp in paused:
                held.pop(tp, None)
            await _resume(consumer, paused & consumer.assignment())

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
