"""How long each fetch request may wait at the broker, and which partitions it names (pure
policy; the consumer applies it).

A fetch names a wait: the longest the broker may hold it when it has nothing to return. Kafka
answers as soon as records are there, so the wait only bounds idle polls and a short one costs
nothing. The local broker (Tansu 0.6, memory storage) reads a partition by listing every record
batch it holds, on every fetch, and gives up when the wait runs out: it then answers with no
records, no error and the true high watermark. Once listing a partition takes longer than the
wait (~0.5 us a batch on a quiet machine: 20 ms is ~40,000 batches; far fewer under CPU load),
every fetch of it comes back empty and the partition never moves again.

So a partition that came back empty although the broker says records wait past its position
is fetched with a longer wait: doubled at each such answer, up to `cap`, and eased back by a
quarter whenever records come, so a deep partition keeps the wait it needs and a passing
hiccup fades. A request's wait is the longest that any of its partitions with records waiting
needs; partitions caught up ask only for `base`, so idle polls stay as short as configured.
On Kafka no partition ever answers empty with records waiting, so every request asks `base`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

__all__ = ["FetchWaits", "QuietPartitions"]


class FetchWaits:
    """Per-partition fetch waits, in seconds."""

    def __init__(self, base: float, cap: float = 10.0) -> None:
        self.base = base
        self.cap = max(cap, base)
        self._needed: dict[Hashable, float] = {}

    def for_request(self, partitions: Iterable[tuple[Hashable, int, int | None]]) -> float:
        """The wait for one request of (partition, fetch offset, last known high watermark)."""
        wait = self.base
        if not self._needed:  # the usual case: no partition needs more than base
            return wait
        for tp, offset, highwater in partitions:
            if highwater is not None and highwater > offset:
                wait = max(wait, self._needed.get(tp, self.base))
        return wait

    def observe(self, tp: Hashable, offset: int, highwater: int | None, got_records: bool) -> None:
        """What one partition's answer was: records, or none (and the high watermark it gave)."""
        needed = self._needed.get(tp, self.base)
        if got_records:
            eased = max(self.base, needed * 0.75)
            if eased > self.base:
                self._needed[tp] = eased
            else:
                self._needed.pop(tp, None)
        elif highwater is not None and highwater > offset:
            self._needed[tp] = min(self.cap, max(needed * 2, self.base * 2))

    def needed(self, tp: Hashable) -> float:
        """The wait a partition needs now (`base` unless it came back empty with records waiting)."""
        return self._needed.get(tp, self.base)


class QuietPartitions:
    """Which partitions of some topics a fetch request names: those that answered records lately.

    Every fetch names every fetchable partition, and the cost of a fetch grows with them on both
    ends (aiokafka encodes and decodes each in Python; the local broker lists each one's batches):
    a 20-instance worker names 328 partitions, 160 of them retry partitions that are nearly
    always empty. A partition of `topics` that answered `after` fetches in a row with no records
    (and none waiting past its position) is quiet: it is left out of requests, except at a peek,
    every `peek` seconds, when every partition is named. So a record written to a quiet
    partition by another worker is read within `peek` seconds; one this worker writes wakes its
    topic at once (`wake`), and the topic's partitions are named for `hold` seconds after it.
    Meant for topics whose records wait anyway: a retry is due after a backoff.
    """

    def __init__(self, topics: Iterable[str], after: int = 25, peek: float = 0.5, hold: float = 1.0) -> None:
        self.topics = frozenset(topics)
        self.after = after
        self.peek = peek
        self.hold = hold
        self._empty: dict[tuple[str, int], int] = {}  # consecutive empty answers, per partition of `topics`
        self._woken: dict[str, float] = {}  # topic -> when this worker last wrote it (set from the loop thread)
        self._next_peek = 0.0

    def wake(self, topic: str, now: float) -> None:
        """This worker just wrote records to `topic` (a monotonic `now`): name all its partitions again."""
        if topic in self.topics:
            self._woken[topic] = now

    def select(self, topics: list[tuple[str, list[Any]]], now: float) -> list[tuple[str, list[Any]]]:
        """A request's (topic, [(partition, ...), ...]) with the quiet partitions left out, unless a
        peek is due. A request would never be left empty: it is then sent whole."""
        if now >= self._next_peek:
            self._next_peek = now + self.peek
            return topics
        kept = []
        for topic, parts in topics:
            if topic in self.topics and self._woken.get(topic, -self.hold) + self.hold < now:
                parts = [p for p in parts if not self.quiet(topic, p[0])]
                if not parts:
                    continue
            kept.append((topic, parts))
        return kept or topics

    def observe(self, topic: str, partition: int, got_records: bool, waiting: bool) -> None:
        """One partition's answer: records or not, and whether records wait past its position."""
        if topic not in self.topics:
            return
        if got_records or waiting:
            self._empty.pop((topic, partition), None)
        else:
            key = (topic, partition)
            self._empty[key] = self._empty.get(key, 0) + 1

    def quiet(self, topic: str, partition: int) -> bool:
        """Whether the partition is left out of requests between peeks."""
        return self._empty.get((topic, partition), 0) >= self.after
