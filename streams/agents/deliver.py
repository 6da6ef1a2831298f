"""The deliver agent of one instance: jobs -> HTTP requests -> outcomes, retries, dead letters.

Reads:  `<prefix>.jobs.<instance>` (packs of jobs, or single jobs from replays).
Writes: through `Pipeline.handle_jobs`: outcomes, retries on `<prefix>.retry.<instance>`, dead
        letters; then the dedup entries of the terminal outcomes.
Acks:   a record once the outcomes and retries of all of its jobs are written. Dedup entries
        are written while the next step's requests are out, after their jobs are acked: a
        crash before they land loses only entries, and the start-up read of recent outcomes
        stands in for those (see dedup.py).

One delivery is in flight at a time (dedup and per-user order see them in sequence), in steps
of up to `deliver_batch` jobs sent as requests of up to each mapping's batch size. When a
delivery starts is `Pending`'s rule (steps.py): a full request waiting, the batch window over,
or `deliver_batch` jobs waiting. Records are read while a delivery is out. With per-user order
(ordering.py) a step goes out in rounds, a user's jobs in order, and a user's jobs that must
wait behind its retried one are written to the retry topic unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import faust

from pushstream.codecs.records import Job
from pushstream.codecs.settle import Writes
from pushstream.streams.agents.base import InstanceAgent, or_exit, record_jobs
from pushstream.streams.agents.ordering import Ordering, Pairs
from pushstream.streams.agents.pipeline import Pipeline
from pushstream.streams.delivery.deliverer import Deliverer
from pushstream.streams.delivery.steps import Pending, delivery_steps
from pushstream.streams.kafka.take import batches
from pushstream.streams.kafka.writer import Record

__all__ = ["DeliverAgent"]


class DeliverAgent(InstanceAgent):
    """Delivers fresh jobs of one instance, one delivery at a time."""

    kind = "deliver"

    def __init__(self, pipeline: Pipeline, deliverer: Deliverer, ordering: Ordering | None = None) -> None:
        super().__init__(pipeline, deliverer)
        self.ordering = ordering
        self.steps = pipeline.config.pipeline.deliver_batch
        self.pending = self._new_pending()
        self.in_flight: asyncio.Future[None] | None = None  # the delivery out now
        self.entries_written: asyncio.Future[None] | None = None  # the last step's dedup entries
        self.wake = asyncio.Event()  # something was read, or the delivery in flight is done

    def _new_pending(self) -> Pending[Any, tuple[Job, int]]:
        p = self.pipeline.config.pipeline
        return Pending(p.batch_window, self.instance.request_size, p.deliver_batch)

    async def run(self, stream: faust.Stream[bytes]) -> None:
        self.pending, self.in_flight, self.entries_written = self._new_pending(), None, None
        self.wake = asyncio.Event()
        starter = asyncio.ensure_future(self._start_when_due(stream))
        try:
            # No take window: `Pending` decides when a delivery starts, so a record read waits for
            # nothing more before it joins (a 20 ms window here was 20-30 ms of p50 at half load).
            async for events in batches(stream, self.steps, 0.0):
                async with or_exit(self.name):
                    self.pending.add(events, record_jobs(events), time.monotonic())
                if not self.pending.full():
                    self.wake.set()
                    continue
                while not self._idle():  # not taking meanwhile bounds what this agent holds (take.py)
                    assert self.in_flight is not None
                    await self.in_flight
                if self.pending:  # `_start_when_due` may have started it as the one in flight ended
                    self._start_delivery(stream)
        finally:
            starter.cancel()
            if self.in_flight is not None and not self.in_flight.done():
                self.in_flight.cancel()  # unacked: its events are read again after the restart

    def _idle(self) -> bool:
        return self.in_flight is None or self.in_flight.done()

    def _start_delivery(self, stream: faust.Stream[bytes]) -> None:
        self.in_flight = asyncio.ensure_future(self._deliver_then_ack(stream, *self.pending.take()))
        self.in_flight.add_done_callback(lambda _: self.wake.set())

    async def _start_when_due(self, stream: faust.Stream[bytes]) -> None:
        """Starts a delivery when one is due and none is in flight (the read loop starts one
        itself only when `deliver_batch` jobs wait)."""
        async with or_exit(self.name):
            while True:
                timeout = self.pending.wait(time.monotonic()) if self._idle() else None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
                self.wake.clear()
                if self._idle() and self.pending.due(time.monotonic()):
                    self._start_delivery(stream)

    async def _deliver_then_ack(self, stream: faust.Stream[bytes], events: list[Any],
                                jobs: list[list[tuple[Job, int]]]) -> None:
        async with or_exit(self.name):
            # A record is one job or a pack of them: deliver in steps of `deliver_batch` jobs
            # and ack each record once all of its jobs are written.
            acked = 0
            for pairs, done in delivery_steps(jobs, self.steps):
                entries = await self._deliver(pairs)
                for event in events[acked:done]:
                    await stream.ack(event)
                acked = done
                if self.entries_written is not None:
                    await self.entries_written  # one at a time: a slow broker holds the next step
                self.entries_written = asyncio.ensure_future(self._write_entries(entries)) if entries else None

    async def _deliver(self, pairs: Pairs) -> list[Record]:
        """One step's jobs delivered and written; per-user order sends them in rounds (ordering.py)."""
        if self.ordering is None:
            return await self.pipeline.handle_jobs(self.deliverer, pairs) if pairs else []
        ordering = self.ordering
        await ordering.ready()
        now, behind = ordering.split_fresh(pairs)
        entries: list[Record] = []
        for sent in ordering.rounds(now):
            def queue_behind(writes: Writes, sent: Pairs = sent, behind: Pairs = behind) -> None:
                ordering.queue_behind(writes, sent, behind, ordering.from_queues, from_retry=False)

            entries += await self.pipeline.handle_jobs(self.deliverer, sent, queue_behind)
            behind = []
        if behind:  # every job of the step waits behind a job of its user
            await self.pipeline.handle_jobs(self.deliverer, [], lambda w: ordering.queue_behind(
                w, [], behind, ordering.from_queues, from_retry=False))
        return entries

    async def _write_entries(self, entries: list[Record]) -> None:
        async with or_exit(self.name):
            await self.pipeline.writer.write(entries)
