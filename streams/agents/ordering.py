"""Per-user order of one instance (`ordering = "per_user"`): the deliver and retry agents' shared state.

The decisions are codecs/order.py's; this unit owns the instance's `UserOrder`, rebuilds it from
the retry topic when the worker gains partitions (so order survives restarts and takeovers:
what waits is what lies on the retry topic past the group's committed offset), and writes the
jobs that go behind their user's waiting one. The jobs and retry topics are co-partitioned (a
user's jobs and retries share a partition number, and Faust assigns equal-sized topics of the
group together), so the worker that delivers a user's fresh jobs also holds its retries.

Reads:  the retry topic from the committed offsets, to its end, when partitions are gained.
Writes: nothing itself; it adds "behind" copies to the `Writes` a delivery is about to write.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable

import msgspec

from pushstream.codecs.config import Config, Instance
from pushstream.codecs.order import Place, UserOrder, next_round, place, user_queues
from pushstream.codecs.records import Job, decode_jobs
from pushstream.codecs.settle import Writes
from pushstream.streams.kafka.admin import read_uncommitted

__all__ = ["Ordering", "Pairs"]

log = logging.getLogger(__name__)

Pairs = list[tuple[Job, int]]  # (job, partition of the jobs / retry topic)


def _job(pair: tuple[Job, int]) -> Job:
    return pair[0]


class Ordering:
    """One per-user-ordered instance's waiting users, and the rounds its agents send."""

    def __init__(self, config: Config, instance: Instance, retry_topic: str) -> None:
        self.config = config
        self.instance = instance
        self.retry_topic = retry_topic
        self.order = UserOrder()
        self.queues: dict[str, collections.deque[tuple[Job, int]]] = {}  # the deliver agent's rounds
        self._held: set[int] = set()
        self._rebuild: asyncio.Future[None] | None = None

    # State -------------------------------------------------------------------------------
    def assigned(self, held: set[int]) -> None:
        """The worker now holds these partitions of the retry topic: the state of those new to it is
        read from the topic before the agents' next delivery (they await `ready`)."""
        new, self._held = held - self._held, set(held)
        self.order.keep(held)
        if new:
            previous = self._rebuild
            self._rebuild = asyncio.ensure_future(self._load(sorted(new), previous))

    async def ready(self) -> None:
        """Returns once the state of every held partition is known."""
        if self._rebuild is not None:
            await self._rebuild

    async def _load(self, partitions: list[int], previous: asyncio.Future[None] | None) -> None:
        if previous is not None:
            await previous
        started = time.monotonic()
        k = self.config.kafka
        records = await asyncio.to_thread(read_uncommitted, k.broker, k.app_id, self.retry_topic, partitions)
        places: dict[int, dict[str, list[Place]]] = {p: collections.defaultdict(list) for p in partitions}
        for partition, value in records:
            try:
                jobs = decode_jobs(value)
            except (msgspec.DecodeError, TypeError):
                continue  # the retry agent drops it too (pipeline.record_jobs)
            for job in jobs:
                if job.key is not None:
                    places[partition][job.key].append(place(job))
        for partition, by_user in places.items():
            self.order.load(partition, by_user)
        log.info("instance=%s per-user order: %d users wait on retry partitions %s (read in %.2f s)",
                 self.instance.name, sum(len(u) for u in places.values()), partitions, time.monotonic() - started)

    # The deliver agent -------------------------------------------------------------------
    def split_fresh(self, pairs: Pairs) -> tuple[Pairs, Pairs]:
        """Fresh jobs: (those that may be sent now, those that go behind a waiting job of their user)."""
        behind = [pair for pair in pairs if self.order.waits(pair[1], pair[0].key)]
        if not behind:
            return pairs, []
        waiting = {id(pair) for pair in behind}
        return [pair for pair in pairs if id(pair) not in waiting], behind

    def rounds(self, pairs: Pairs) -> Iterable[Pairs]:
        """The rounds to send `pairs` in (users' order kept); the queues shrink as `queue_behind` moves
        the rest of a user's jobs behind the one that has to wait."""
        self.queues, free = user_queues(pairs, _job, self.order)
        if free:
            yield free
        while self.queues:
            yield next_round(self.instance, self.queues, _job)

    def from_queues(self, users: set[tuple[int, str]]) -> Pairs:
        """The queued jobs of `users`, taken out of the deliver agent's rounds."""
        taken: Pairs = []
        for _, user in users:
            taken.extend(self.queues.pop(user, ()))
        return taken

    # Both agents -------------------------------------------------------------------------
    def queue_behind(self, writes: Writes, sent: Pairs, behind: Pairs,
                     followers: Callable[[set[tuple[int, str]]], Pairs],
                     from_retry: bool) -> None:
        """Before `writes` (a delivery of `sent`) is written: a user with a job retried or parked in
        it now waits, so its jobs still queued (`followers`) and `behind` are appended as behind
        copies after it. With `from_retry`, `sent` and `followers` were read from the retry topic:
        each of them is done with (a rewritten record is counted again by its new copy)."""
        partition = {place(j): p for j, p in sent}
        retried: set[tuple[int, str]] = set()
        for job in writes.retries:
            p = partition.get(place(job))
            if p is None or not self.order.ordered(job.key):
                continue
            assert job.key is not None
            self._warn(self.order.wrote(p, job))
            retried.add((p, job.key))
        moved = [*behind, *followers(retried)] if retried else behind
        now = time.time()
        for job, p in moved:
            writes.retries.append(msgspec.structs.replace(job, due_at=now))
            self._warn(self.order.wrote(p, job))
        if from_retry:
            for job, p in (*sent, *moved):
                self.order.done_with(p, job)
            for user in {j.key for j, _ in sent if j.key is not None}:
                self.order.passed(user, 0, moved=True)

    def _warn(self, warning: str | None) -> None:
        if warning:
            log.warning("instance=%s %s", self.instance.name, warning)

    # The retry agent ---------------------------------------------------------------------
    def admit(self, batch: Pairs) -> tuple[Pairs, Pairs]:
        """A take read from the retry topic: (the jobs that may go, each user's in order; the jobs an
        earlier record of their user, elsewhere on the topic, precedes: they go behind again, unsent)."""
        queues, free = user_queues(batch, _job, self.order)
        kept, again = list(free), []
        for user, queue in queues.items():
            p = queue[0][1]
            jobs = sorted(queue, key=lambda pair: place(pair[0]))
            n = self.order.sendable(p, user, [j for j, _ in jobs])
            kept += jobs[:n]
            again += jobs[n:]
            if n < len(jobs):
                self._warn(self.order.passed(user, len(jobs) - n, moved=False))
        return kept, again

    def due_round(self, batch: Pairs, now: float) -> Pairs:
        """The next round out of `batch` (which it shrinks): users whose head is due, and due jobs of no
        ordered user."""
        queues, free = user_queues(batch, _job, self.order)
        ready = [pair for pair in free if (pair[0].due_at or 0.0) <= now]
        due = {u: q for u, q in queues.items() if (q[0][0].due_at or 0.0) <= now}
        ready += next_round(self.instance, due, _job)
        taken = {id(pair) for pair in ready}
        batch[:] = [pair for pair in batch if id(pair) not in taken]
        return ready

    def heads_due(self, batch: Pairs) -> float:
        """When the earliest head (each ordered user's first job, or a job of no ordered user) is due."""
        firsts: dict[object, float] = {}
        for job, p in batch:
            user: object = (p, job.key) if self.order.ordered(job.key) else id(job)
            firsts.setdefault(user, job.due_at or 0.0)
        return min(firsts.values(), default=0.0)
