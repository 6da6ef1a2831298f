"""How long each fetch request may wait at the broker (pure policy; the consumer applies it).

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

__all__ = ["FetchWaits"]


class FetchWaits:
    """Per-partition fetch waits, in seconds."""

    def __init__(self, base: float, cap: float = 10.0) -> None:
        self.base = base
        self.cap = max(cap, base)
        self._needed: dict[Hashable, float] = {}

    def for_request(self, partitions: Iterable[tuple[Hashable, int, int | None]]) -> float:
        """The wait for one request of (partition, fetch offset, last known high watermark)."""
        wait = self.base
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
