"""The retry agent of one instance: jobs whose due time has come are delivered again.

Reads:  `<prefix>.retry.<instance>` (single jobs with a due time).
Writes: due jobs through `Pipeline.handle_jobs` (outcomes, further retries, dead letters), then
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
from typing import cast

import faust
import msgspec

from pushstream.codecs.records import Job
from pushstream.streams.agents.pipeline import InstanceAgent, or_exit, record_jobs
from pushstream.streams.kafka.faust_app import PushstreamApp
from pushstream.streams.kafka.faust_compat import resume_where_read

__all__ = ["RetryAgent"]


class RetryAgent(InstanceAgent):
    """Re-delivers jobs of one instance as they fall due; never writes a waiting job back."""

    kind = "retry"

    def _window_end(self, job: Job) -> float:
        return (job.first_attempt_at or job.received_at) + self.deliverer.policy.window

    async def _hold_while_open(self, stream: faust.Stream[bytes], batch: list[tuple[Job, int]]) -> None:
        """While the instance's circuit is open, hold this take, unwritten, with its partitions paused,
        until the circuit closes or a job's retry window ends (that job then fails). Without a
        credential check the probe is a real request: the take's first job, alone."""
        circuit = self.deliverer.circuit
        if not circuit.open:
            return
        async with self._paused(stream, f"circuit open: {circuit.reason}"):
            while circuit.open and batch:
                until = min(self._window_end(j) for j, _ in batch)
                if time.time() >= until:
                    return
                if circuit.probe_by_request():
                    probe, partition = batch.pop(0)
                    probe = msgspec.structs.replace(probe, due_at=None)
                    await self._handle([(probe, partition)])
                    continue
                await circuit.wait_closed(timeout=max(0.25, min(circuit.probe_at, until) - time.time()))

    async def run(self, stream: faust.Stream[bytes]) -> None:
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
                    await self._handle(ready)

    async def _handle(self, pairs: list[tuple[Job, int]]) -> None:
        """Deliver and record jobs, then their dedup entries (nothing else waits on this agent's step)."""
        await self.pipeline.writer.write(await self.pipeline.handle_jobs(self.deliverer, pairs))

    async def _hold_until(self, stream: faust.Stream[bytes], due: float) -> None:
        """Wait for `due` with this instance's retry partitions paused (or until its circuit opens)."""
        circuit = self.deliverer.circuit
        async with self._paused(stream, f"the retry agent holds a take until a job falls due at {due:.0f}"):
            while time.time() < due and not circuit.open:
                await asyncio.sleep(min(1.0, max(0.0, due - time.time())))

    @contextlib.asynccontextmanager
    async def _paused(self, stream: faust.Stream[bytes], why: str) -> AsyncIterator[None]:
        """This instance's retry partitions paused (nothing more fetched for them, so the shared
        consumer never blocks on this agent's full queue), resumed where their stream stopped."""
        app = cast(PushstreamApp, stream.app)
        consumer = app.consumer
        topic = self.pipeline.topics.retry[self.instance.name]
        paused = {tp for tp in consumer.assignment() if tp.topic == topic}
        held = app.held_partitions
        consumer.pause_partitions(paused)
        held.update(dict.fromkeys(paused, why))
        try:
            yield
        finally:
            for tp in paused:
                held.pop(tp, None)
            await resume_where_read(consumer, paused & consumer.assignment())
