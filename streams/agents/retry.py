"""The retry agent of one instance: jobs whose due time has come are delivered again.

Reads:  `<prefix>.retry.<instance>` (single jobs with a due time).
Writes: due jobs through `Pipeline.handle_jobs` (outcomes, further retries, dead letters), then
        their dedup entries. Nothing is written back while a job waits: the agent holds its
        take, with the topic's partitions paused, until the earliest job is due ("pause the
        partition until its head is due"), so a job costs one retry record per attempt, never
        one per few seconds of waiting. While the instance's circuit is open the whole take is
        held the same way (see circuit.py). Records behind a held take wait for it (at most
        `backoff_max`, or the outage). A held take is written back as it is (same due times) when
        the worker stops or a rebalance begins: Faust waits for every record a stream holds to be
        acked before it lets a stop or a rebalance go on, and an open circuit holds for as long as
        the outage lasts. With per-user order (ordering.py) a user's jobs go in the
        order of its events, one round at a time; a job that an earlier one of its user (retried
        again, or elsewhere on the topic) precedes is written back behind it, unsent.
Acks:   a take once all of its jobs are written (Faust's `take_events` acks it when the loop asks
        for the next one; the body never raises, see `or_exit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import faust
import msgspec

from pushstream.codecs.records import Job
from pushstream.codecs.settle import Writes
from pushstream.streams.agents.base import InstanceAgent, or_exit, record_jobs
from pushstream.streams.agents.ordering import Ordering, Pairs
from pushstream.streams.agents.pipeline import Pipeline
from pushstream.streams.delivery.deliverer import Deliverer
from pushstream.streams.kafka.faust_app import PushstreamApp
from pushstream.streams.kafka.faust_compat import resume_where_read

__all__ = ["RetryAgent"]

log = logging.getLogger(__name__)


class RetryAgent(InstanceAgent):
    """Re-delivers jobs of one instance as they fall due; never writes a waiting job back."""

    kind = "retry"

    def __init__(self, pipeline: Pipeline, deliverer: Deliverer, ordering: Ordering | None = None) -> None:
        super().__init__(pipeline, deliverer)
        self.ordering = ordering

    def _window_end(self, job: Job) -> float:
        return (job.first_attempt_at or job.received_at) + self.deliverer.policy.window

    async def _hold_while_open(self, stream: faust.Stream[bytes], batch: Pairs) -> None:
        """While the instance's circuit is open, hold this take, unwritten, with its partitions paused,
        until the circuit closes; a job whose retry window ends meanwhile is settled then (it
        fails). Without a credential check the probe is a real request: the take's first job
        (with per-user order, the head of its user), alone."""
        circuit = self.deliverer.circuit
        if not circuit.open:
            return
        log.info("instance=%s holds %d jobs while its circuit is open", self.instance.name, len(batch))
        async with self._paused(stream, f"circuit open: {circuit.reason}"):
            while circuit.open and batch and not self._releasing(stream):
                now = time.time()
                expired = [pair for pair in batch if self._window_end(pair[0]) <= now]
                if expired:
                    batch[:] = [pair for pair in batch if self._window_end(pair[0]) > now]
                    await self._handle([(msgspec.structs.replace(j, due_at=None), p) for j, p in expired], batch)
                    continue
                if circuit.probe_by_request():
                    probe, partition = batch.pop(0)
                    await self._handle([(msgspec.structs.replace(probe, due_at=None), partition)], batch)
                    continue
                until = min(self._window_end(j) for j, _ in batch)
                await circuit.wait_closed(timeout=min(1.0, max(0.25, min(circuit.probe_at, until) - time.time())))

    async def run(self, stream: faust.Stream[bytes]) -> None:
        take = self.pipeline.config.pipeline.deliver_batch  # a backlog drains in steps, as the deliver agent's
        async for events in stream.take_events(take, within=0.5):
            async with or_exit(self.name):
                batch = [pair for pairs in record_jobs(events) for pair in pairs]
                if self.ordering is not None:
                    await self._admit(batch)
                while batch:
                    await self._hold_while_open(stream, batch)  # an outage or a refused key: held, not rewritten
                    if batch and self._releasing(stream):
                        await self._write_back(batch)
                    if not batch:
                        break
                    now = time.time()
                    earliest = self.ordering.heads_due(batch) if self.ordering else min(j.due_at or 0.0
                                                                                         for j, _ in batch)
                    if earliest > now:
                        await self._hold_until(stream, earliest)
                        continue
                    if self.ordering is not None:
                        ready = self.ordering.due_round(batch, now)
                    else:
                        ready = [pair for pair in batch if (pair[0].due_at or 0.0) <= now]
                        batch[:] = [pair for pair in batch if (pair[0].due_at or 0.0) > now]
                    await self._handle([(msgspec.structs.replace(j, due_at=None), p) for j, p in ready], batch)

    @staticmethod
    def _releasing(stream: faust.Stream[bytes]) -> bool:
        """The worker is stopping or a rebalance began: a held take must not keep them waiting."""
        app = stream.app
        return bool(app.should_stop or app.rebalancing)

    async def _write_back(self, batch: Pairs) -> None:
        """A held take back on the retry topic, unsent, as it was; then its records may be acked."""
        log.info("instance=%s %d held jobs written back to the retry topic (stopping or rebalancing)",
                 self.instance.name, len(batch))
        await self.pipeline.write_delivery(self.instance, Writes(retries=[job for job, _ in batch]))
        batch.clear()

    async def _admit(self, batch: Pairs) -> None:
        """Per-user order: each user's jobs in the order of its events; those an earlier record of
        their user elsewhere on the topic precedes go behind again, unsent."""
        assert self.ordering is not None
        ordering = self.ordering
        await ordering.ready()
        batch[:], again = ordering.admit(batch)
        if again:
            await self.pipeline.handle_jobs(self.deliverer, [], lambda w: ordering.queue_behind(
                w, [], again, lambda _: [], from_retry=True))

    async def _handle(self, pairs: Pairs, batch: Pairs) -> None:
        """Deliver and record jobs, then their dedup entries (nothing else waits on this agent's step).
        Per-user order: the jobs left in `batch` of a user whose job is retried go behind it."""
        queue_behind: Callable[[Writes], None] | None = None
        if self.ordering is not None:
            ordering = self.ordering

            def followers(users: set[tuple[int, str]]) -> Pairs:
                taken = [pair for pair in batch if (pair[1], pair[0].key) in users]
                batch[:] = [pair for pair in batch if (pair[1], pair[0].key) not in users]
                return taken

            def queue_behind(writes: Writes) -> None:
                ordering.queue_behind(writes, pairs, [], followers, from_retry=True)

        await self.pipeline.writer.write(await self.pipeline.handle_jobs(self.deliverer, pairs, queue_behind))

    async def _hold_until(self, stream: faust.Stream[bytes], due: float) -> None:
        """Wait for `due` with this instance's retry partitions paused (or until its circuit opens)."""
        circuit = self.deliverer.circuit
        async with self._paused(stream, f"the retry agent holds a take until a job falls due at {due:.0f}"):
            while time.time() < due and not circuit.open and not self._releasing(stream):
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
