"""Every source partition's state, explained: caught up, flowing, held on purpose, or stalled.

A partition this worker reads (input, jobs, retry topics) is, at each check:

- `caught_up`: nothing waits past its committed offset: by the high watermark its last fetch
  answered, or, once it has been still for `after` seconds (fetches that stopped answering
  leave that watermark stale), by the broker's end offset (ListOffsets: the local broker's
  lags the records, never leads them);
- `flowing`: records wait, and its committed or read offset moved within `after` seconds;
- `held`: records wait and it does not move on purpose: a retry agent holds its take until a
  job falls due or the instance's circuit closes, or the instance waits out a Retry-After
  (`held` says why);
- `rebalancing`: the group is rebalancing or the dedup table recovering (nothing is read);
- `stalled`: records wait, nothing moved for `after` seconds and nothing holds it.

A stalled partition is a bug somewhere below the agents: it is logged once when it stalls
(and once when it moves again), exported (`pushstream_partition_state`,
`pushstream_partition_stalled_seconds`) and named in /readyz. With `reread` (the
`kafka.stall_reread` setting, off by default) it is also sought back to its committed offset,
a net for brokers that misbehave in ways not yet known; dedup absorbs what is read twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["STATES", "PartitionState", "PartitionWatch"]

log = logging.getLogger(__name__)

STATES = ("caught_up", "flowing", "held", "rebalancing", "stalled")


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition at one check."""

    topic: str
    partition: int
    state: str
    committed: int | None
    read: int | None
    highwater: int | None
    still_for: float  # seconds since its committed or read offset last moved
    held: str | None = None  # why it is held

    def describe(self) -> str:
        why = f" ({self.held})" if self.held else ""
        return (f"partition {self.topic}:{self.partition} {self.state}{why} for {self.still_for:.0f} s "
                f"(committed={self.committed} read={self.read} highwater={self.highwater})")


class PartitionWatch:
    """Classifies the source partitions of one worker's consumer; `check(now)` once every few seconds.

    `offsets(tp)` gives a partition's (committed, read, highwater) as the consumer knows them;
    `held(tp)` why it is held on purpose, or None; `ends(tps)` the broker's end offsets;
    `seek(tp, offset)` re-reads (with `reread`).
    """

    def __init__(self, topics: Iterable[str], offsets: Callable[[Any], tuple[int | None, int | None, int | None]],
                 held: Callable[[Any], str | None], ends: Callable[[list[Any]], Awaitable[dict[Any, int | None]]],
                 after: float = 30.0, reread: bool = False,
                 seek: Callable[[Any, int], Awaitable[None]] | None = None) -> None:
        self.topics = set(topics)
        self.offsets = offsets
        self.held = held
        self.ends = ends
        self.after = after
        self.reread = reread
        self.seek = seek
        self.states: dict[Any, PartitionState] = {}
        self._moved: dict[Any, tuple[tuple[int | None, int | None], float]] = {}
        self._rebalancing_since: float | None = None
        self._warned_at = 0.0

    async def check(self, now: float, assignment: Iterable[Any], rebalancing: bool) -> list[PartitionState]:
        """Classify the assigned partitions; returns the stalled ones (re-read first with `reread`)."""
        if rebalancing:
            if self._rebalancing_since is None:
                self._rebalancing_since = self._warned_at = now
            elif now - self._warned_at >= self.after:  # nothing is read meanwhile: say so
                log.warning("a rebalance or the dedup table's recovery has not finished for %.0f s; no partition "
                            "is read meanwhile", now - self._rebalancing_since)
                self._warned_at = now
            self._moved.clear()
            self.states = {tp: PartitionState(tp.topic, tp.partition, "rebalancing", None, None, None,
                                              now - self._rebalancing_since)
                           for tp in assignment if tp.topic in self.topics}
            return []
        self._rebalancing_since = None
        previous, self.states = self.states, {}
        ours = [tp for tp in assignment if tp.topic in self.topics]
        for tp in ours:
            self.states[tp] = self._classify(tp, now, None)
        unsure = [tp for tp in ours if self.states[tp].state == "caught_up" and self.states[tp].still_for >= self.after]
        if unsure:
            ends = await self.ends(unsure)
            for tp in unsure:
                self.states[tp] = self._classify(tp, now, ends.get(tp))
        stalled = []
        for tp in ours:
            state = self.states[tp]
            was = previous.get(tp)
            if state.state == "stalled":
                stalled.append((tp, state))
                if was is None or was.state != "stalled":
                    log.warning("%s%s", state.describe(), "; re-reading from the committed offset" if self.reread else
                                "; nothing holds it on purpose (kafka.stall_reread would re-read it)")
            elif was is not None and was.state == "stalled":
                log.warning("partition %s:%s moves again after %.0f s (committed=%s read=%s)", tp.topic, tp.partition,
                            was.still_for, state.committed, state.read)
        if self.reread and self.seek is not None:
            for tp, state in stalled:
                await self.seek(tp, state.committed or 0)
                self._moved[tp] = ((state.committed, None), now)
        self._moved = {tp: v for tp, v in self._moved.items() if tp in self.states}
        return [state for _, state in stalled]

    def _classify(self, tp: Any, now: float, end: int | None) -> PartitionState:
        committed, read, highwater = self.offsets(tp)
        if end is not None and (highwater is None or end > highwater):
            highwater = end
        mark = (committed, read)
        moved = self._moved.get(tp)
        if moved is None or moved[0] != mark:
            self._moved[tp] = moved = (mark, now)
        still = now - moved[1]
        waiting = highwater is not None and highwater > (committed or 0)
        held = self.held(tp) if waiting else None
        if not waiting:
            name = "caught_up"
        elif held is not None:
            name = "held"
        elif still < self.after:
            name = "flowing"
        else:
            name = "stalled"
        return PartitionState(tp.topic, tp.partition, name, committed, read, highwater, still, held)

    def stalled(self) -> list[PartitionState]:
        """The partitions stalled at the last check."""
        return [s for s in self.states.values() if s.state == "stalled"]
