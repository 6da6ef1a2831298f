"""A deliver agent's deliveries: when the next one starts, and which records each step may ack (pure).

A deliver agent has one delivery in flight at a time (dedup and per-user order see them in
sequence); a delivery sends its jobs in steps of at most `step_size`. Records wait in `Pending`
until a delivery takes them all. The next delivery starts, once the one in flight is done, as
soon as

  - a full request is waiting (`request_size` jobs: one batch of the instance's largest
    batched mapping): holding a full batch for the rest of the window only adds latency;
  - or the oldest waiting record has waited `window` seconds (partial batches go out);

and, after waiting for the one in flight, when `step_size` jobs are waiting (the agent stops
reading until then, which bounds what it holds).

Under light load a delivery is one window of records, as with a plain windowed batch; under
load each delivery takes what arrived while the previous one was out, so a record waits about
one delivery instead of a window plus a delivery. The cost: at middling rates deliveries are
smaller, so a mapping's last request in each is partial more often (more requests per event).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Pending", "delivery_steps"]

E = TypeVar("E")
J = TypeVar("J")


class Pending(Generic[E, J]):
    """Records (with their decoded jobs) read by a deliver agent and not yet in a delivery."""

    def __init__(self, window: float, request_size: int, step_size: int) -> None:
        self.window = window
        self.request_size = min(request_size, step_size)
        self.step_size = step_size
        self.events: list[E] = []
        self.jobs: list[list[J]] = []
        self.count = 0
        self.oldest = 0.0  # when the oldest waiting record was added (monotonic seconds)

    def __bool__(self) -> bool:
        return bool(self.events)

    def add(self, events: Iterable[E], jobs: Iterable[list[J]], now: float) -> None:
        """Add records and each one's jobs (in the same order), read at `now`."""
        if not self.events:
            self.oldest = now
        self.events.extend(events)
        for record_jobs in jobs:
            self.jobs.append(record_jobs)
            self.count += len(record_jobs)

    def due(self, now: float) -> bool:
        """Whether a delivery should start now, if none is in flight."""
        return bool(self.events) and (self.count >= self.request_size or now - self.oldest >= self.window)

    def full(self) -> bool:
        """Whether a delivery should start as soon as the one in flight is done (stop reading until then)."""
        return self.count >= self.step_size

    def wait(self, now: float) -> float | None:
        """Seconds until the oldest record's window is over; None when nothing waits."""
        return max(0.0, self.oldest + self.window - now) if self.events else None

    def take(self) -> tuple[list[E], list[list[J]]]:
        """Everything waiting, for the next delivery (which splits it with `delivery_steps`)."""
        events, jobs = self.events, self.jobs
        self.events, self.jobs, self.count = [], [], 0
        return events, jobs


def delivery_steps(records: Iterable[list[J]], size: int) -> Iterator[tuple[list[J], int]]:
    """Jobs in steps of at most `size`, in record order: yields (jobs, done), where `done` counts
    the leading records whose jobs are all in this step or earlier ones (once the step is
    written, they may be acked). The last step acks every record, even if it has no jobs.
    An iterator of records is read only as far as the step being yielded needs."""
    pending: list[J] = []
    owners: list[int] = []  # the record of each pending job
    count = done = 0
    for count, jobs in enumerate(records, 1):
        pending += jobs
        owners += [count - 1] * len(jobs)
        while len(pending) >= size:
            step, pending, owners = pending[:size], pending[size:], owners[size:]
            done = owners[0] if owners else count
            yield step, done
    if pending or done < count:
        yield pending, count
