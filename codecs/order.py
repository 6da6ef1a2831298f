"""Per-user order for an instance with `ordering = "per_user"` (pure: state and decisions, no I/O).

While a job of a user waits on the instance's retry topic (a retry, or parked while the
circuit is open), that user's later jobs wait behind it: they are written to the retry topic
unsent ("behind"), and the retry agent sends a user's jobs in order, one round at a time.

Order is the order of the user's events on their input partition (a user's events share one:
they are keyed by user), so a job's place is its input (topic, partition, offset): the same for
every copy of it, whatever the retry topic's order (the deliver and retry agents both append
to it, and a crash makes the worker read some records twice). `UserOrder` keeps, per partition
of the jobs and retry topics, the places of each user's records on the retry topic not settled
yet: a user with none flows freely; a job read from the retry topic may go only when no record
of its user with an earlier place is still out there (else it goes behind again, unsent).
`next_round` cuts a user's queued jobs into rounds in which no user has more than one request,
so concurrent requests never reorder a user's events.

A user with more than `max_waiting` records waiting falls back to unordered until they drain
(one hot user must not hold a partition's retry topic), as RudderStack does.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

from .config import Instance
from .plan import batch_bucket
from .records import Job

__all__ = ["MAX_WAITING", "Place", "UserOrder", "next_round", "place", "user_queues"]

MAX_WAITING = 300

Place = tuple[str, int, int]
T = TypeVar("T")


def place(job: Job) -> Place:
    """A job's place in its user's order: its event's input topic, partition and offset."""
    return job.topic, job.partition, job.offset


class UserOrder:
    """Which users of one instance wait, by partition of the jobs and retry topics (co-partitioned:
    a user's jobs and retries share a partition)."""

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self.max_waiting = max_waiting
        #: partition -> user -> the places of its records on the retry topic, sorted
        self.waiting: dict[int, dict[str, list[Place]]] = {}
        self.unordered: set[str] = set()  # users over max_waiting, or lost track of, until they drain
        self._passes: collections.Counter[str] = collections.Counter()  # sent behind since the user moved

    def ordered(self, user: str | None) -> bool:
        """Whether this user's jobs keep their order (not for jobs without a user, or a user fallen back)."""
        return user is not None and user not in self.unordered

    def waits(self, partition: int, user: str | None) -> bool:
        """Whether a new job of this user must go behind its earlier ones."""
        return self.ordered(user) and user in self.waiting.get(partition, {})

    def wrote(self, partition: int, job: Job) -> str | None:
        """A record of `job` was written to the retry topic. Returns a warning the first time the
        user's records there grow past `max_waiting`."""
        user = job.key
        if user is None:
            return None
        places = self.waiting.setdefault(partition, {}).setdefault(user, [])
        bisect.insort(places, place(job))
        if len(places) > self.max_waiting and user not in self.unordered:
            self.unordered.add(user)
            return (f"a user has more than {self.max_waiting} jobs waiting behind a retry; its jobs are delivered "
                    f"unordered until they drain")
        return None

    def done_with(self, partition: int, job: Job) -> None:
        """A record read from the retry topic is done with: delivered, ended, or written again (the
        new record was counted by `wrote`)."""
        users = self.waiting.get(partition, {})
        places = users.get(job.key) if job.key is not None else None
        if not places:
            return
        i = bisect.bisect_left(places, place(job))
        if i < len(places) and places[i] == place(job):
            del places[i]
        if not places:
            assert job.key is not None
            del users[job.key]
            self.unordered.discard(job.key)
            self._passes.pop(job.key, None)

    def sendable(self, partition: int, user: str, jobs: Sequence[Job]) -> int:
        """Of a user's jobs read in one take, sorted by place, how many may go (in that order): those
        no record of the user outside the take precedes."""
        places = self.waiting.get(partition, {}).get(user)
        if not places:
            return len(jobs)
        outside = collections.Counter(places)
        outside.subtract(place(j) for j in jobs)
        first = min((p for p, n in outside.items() if n > 0), default=None)
        if first is None:
            return len(jobs)
        return sum(1 for j in jobs if place(j) <= first)

    def passed(self, user: str, sent_behind: int, moved: bool) -> str | None:
        """Count a user's jobs sent behind again unsent (`moved`: one of its jobs went). A user whose
        earliest record never comes round (more passes than it has records, twice over) falls back
        to unordered, with a warning, instead of cycling."""
        if moved:
            self._passes.pop(user, None)
        self._passes[user] += sent_behind
        records = sum(len(users.get(user, ())) for users in self.waiting.values())
        if self._passes[user] > 2 * records + 10 and user not in self.unordered:
            self.unordered.add(user)
            return "a user's earliest waiting job is not on the retry topic; its jobs are delivered unordered"
        return None

    def load(self, partition: int, places: dict[str, list[Place]]) -> None:
        """A partition's state as read from its retry topic (records past the committed offset, by user)."""
        self.waiting[partition] = {u: sorted(p) for u, p in places.items() if p}

    def keep(self, partitions: Iterable[int]) -> None:
        """Forget partitions this worker no longer holds."""
        held = set(partitions)
        for p in [p for p in self.waiting if p not in held]:
            del self.waiting[p]


def user_queues(items: Iterable[T], job: Callable[[T], Job], order: UserOrder) -> tuple[
        dict[str, collections.deque[T]], list[T]]:
    """Each ordered user's items in order, and the items of no ordered user (no key, or fallen back)."""
    queues: dict[str, collections.deque[T]] = {}
    free: list[T] = []
    for item in items:
        user = job(item).key
        if user is not None and order.ordered(user):
            queues.setdefault(user, collections.deque()).append(item)
        else:
            free.append(item)
    return queues, free


def next_round(instance: Instance, queues: dict[str, collections.deque[T]], job: Callable[[T], Job]) -> list[T]:
    """Take the next round from the users' queues (emptied queues are removed): per user, its next
    job, or its next run of jobs of one request group (`batch_bucket`), cut where the round's
    batch for that group would start a second request (`plan_requests` chunks batches in order),
    so a user's jobs in a round travel in one request, in order."""
    taken: list[T] = []
    filled: collections.Counter[Hashable] = collections.Counter()
    for user in list(queues):
        queue = queues[user]
        taken.extend(_run(instance, queue, job, filled))
        if not queue:
            del queues[user]
    return taken


def _run(instance: Instance, queue: collections.deque[T], job: Callable[[T], Job],
         filled: collections.Counter[Hashable]) -> Iterator[T]:
    first = job(queue[0])
    sub = instance.subscription(first.mapping)
    if sub is None or not (sub.batched and first.batched):
        yield queue.popleft()
        return
    bucket, size = batch_bucket(sub, first)
    room = size - filled[bucket] % size

    def same_request(other: Job) -> bool:
        return other.mapping == first.mapping and other.batched and batch_bucket(sub, other)[0] == bucket

    while queue and room and same_request(job(queue[0])):
        yield queue.popleft()
        filled[bucket] += 1
        room -= 1
