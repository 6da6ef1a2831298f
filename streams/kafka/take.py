"""Batches of a Faust stream's events, unacked, with no clock running while nothing is buffered.

Faust's `noack_take(n, within=s)` wakes its agent every `s` seconds whether or not a record came,
and each wake-up is a `wait_first` (three tasks and an `asyncio.wait`). One worker runs a take per
agent, two agents per destination instance: with 20 instances and `within` 0.02 s that was ~2,000
wake-ups a second and 17 us of the worker's CPU per event in a 20-instance profile, paid as much
by an instance that had nothing to read. Here the window starts with the first record buffered:
an idle agent sleeps until a record comes, then waits at most `within` for the batch to fill.

Like Faust's take, a processor on the stream buffers each event, and the stream is drained in
the background. Unlike it, the body gets the buffer itself (a new one starts), so records read
while the body runs are buffered, up to `n`; the processor waits once `n` are. Faust's private
names are read in faust_compat (`drain_passively`, `remove_processor`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import faust
from mode.utils.locks import Event

from pushstream.streams.kafka.faust_compat import drain_passively, remove_processor

__all__ = ["batches"]


class _Buffer:
    """The events read and not yet taken, and the events the loop waits on."""

    def __init__(self, stream: faust.Stream[Any], size: int) -> None:
        self.stream = stream
        self.size = size
        self.events: list[Any] = []
        self.first_at = 0.0  # when the first event of the batch was buffered (monotonic)
        self.started = Event()  # the first event of a batch is here (mode's: what `wait_for_stopped` takes)
        self.full = Event()  # `size` events are here
        self.room = asyncio.Event()  # fewer than `size`: the processor may add one
        self.room.set()

    async def add(self, value: Any) -> Any:
        """The stream's processor: buffers the event being processed (waits while the buffer is full)."""
        while len(self.events) >= self.size:
            self.room.clear()
            await self.room.wait()
        event = self.stream.current_event
        if event is None:
            raise RuntimeError("a take found the stream's current_event None")
        self.events.append(event)
        if len(self.events) == 1:
            self.first_at = time.monotonic()
            self.started.set()
        if len(self.events) >= self.size:
            self.full.set()
        return value

    def take(self) -> list[Any]:
        """The events buffered; a new batch starts."""
        events, self.events = self.events, []
        self.started.clear()
        self.full.clear()
        self.room.set()
        return events


async def batches(stream: faust.Stream[Any], size: int, within: float) -> AsyncIterator[list[Any]]:
    """Lists of up to `size` events of `stream`, each once its first event has waited `within`
    seconds or `size` events are read; none of them acked (the caller acks each)."""
    buffer = _Buffer(stream, size)
    acks = stream.enable_acks
    stream.enable_acks = False
    stream.add_processor(buffer.add)
    drain_passively(stream)
    try:
        # (`wait_for_stopped` says "stopped" on a timeout too: `should_stop` is what is asked.)
        while not stream.should_stop:
            if not buffer.events:
                await stream.wait_for_stopped(buffer.started)
            left = buffer.first_at + within - time.monotonic()
            if left > 0 and not buffer.full.is_set():
                await stream.wait_for_stopped(buffer.full, timeout=left)
            if buffer.events and not stream.should_stop:
                yield buffer.take()
    finally:
        stream.enable_acks = acks
        remove_processor(stream, buffer.add)
