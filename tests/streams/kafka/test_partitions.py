"""PartitionWatch: which source partitions count as caught up, flowing, held or stalled, and what it
does about the stalled ones (pure: the consumer's offsets come from a fake)."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

import pytest

from pushstream.streams.kafka.partitions import PartitionWatch

TP = namedtuple("TP", "topic partition")
IN0, IN1, OTHER = TP("in", 0), TP("in", 1), TP("other", 0)


class Consumer:
    """Offsets as the consumer knows them: committed 10, read 9, caught up, unless a test says otherwise."""

    def __init__(self) -> None:
        self.committed: dict[Any, int | None] = dict.fromkeys((IN0, IN1, OTHER), 10)
        self.read: dict[Any, int | None] = dict.fromkeys((IN0, IN1, OTHER), 9)
        self.fetched: dict[Any, int | None] = dict.fromkeys((IN0, IN1, OTHER), 10)  # the last fetch's high watermark
        self.ends: dict[Any, int | None] = dict.fromkeys((IN0, IN1, OTHER), 10)  # what the broker answers now
        self.held: dict[Any, str] = {}
        self.seeks: list[tuple[Any, int]] = []

    def watch(self, reread: bool = False) -> PartitionWatch:
        async def ends(tps: list[Any]) -> dict[Any, int | None]:
            return {tp: self.ends[tp] for tp in tps}

        async def seek(tp: Any, offset: int) -> None:
            self.seeks.append((tp, offset))

        return PartitionWatch({"in"}, offsets=lambda tp: (self.committed[tp], self.read[tp], self.fetched[tp]),
                              held=self.held.get, ends=ends, after=30, reread=reread, seek=seek)


def check(watch: PartitionWatch, now: float, rebalancing: bool = False) -> list[Any]:
    return [(s.topic, s.partition) for s in asyncio.run(watch.check(now, [IN0, IN1, OTHER], rebalancing))]


def test_only_a_partition_with_waiting_records_and_no_progress_is_stalled() -> None:
    c = Consumer()
    watch = c.watch()
    c.fetched[IN0] = 50  # records wait, nothing moves: stalled
    c.fetched[IN1] = 50  # records wait, but it is moving
    c.fetched[OTHER] = 50  # not a watched topic
    assert check(watch, 0.0) == []
    c.read[IN1] = 20
    assert check(watch, 20.0) == [] and watch.states[IN0].state == "flowing"
    c.read[IN1] = 30
    assert check(watch, 31.0) == [("in", 0)]
    assert watch.states[IN1].state == "flowing" and OTHER not in watch.states
    assert [s.describe() for s in watch.stalled()] == [
        "partition in:0 stalled for 31 s (committed=10 read=9 highwater=50)"]
    assert c.seeks == []  # reported, not re-read


def test_with_reread_a_stalled_partition_is_sought_back_to_its_committed_offset() -> None:
    c = Consumer()
    watch = c.watch(reread=True)
    c.fetched[IN0] = 50
    assert check(watch, 0.0) == [] and check(watch, 31.0) == [("in", 0)]
    assert c.seeks == [(IN0, 10)]
    assert check(watch, 40.0) == []  # its clock starts again after a re-read


def test_a_partition_whose_fetches_stopped_is_stalled_when_the_broker_has_records_past_it() -> None:
    """The last fetch response says nothing waits (its high watermark is stale); the broker says
    records do: stalled. With nothing past the committed offset there either, it is caught up."""
    c = Consumer()
    watch = c.watch()
    assert check(watch, 0.0) == [] and check(watch, 31.0) == [] and watch.states[IN0].state == "caught_up"
    c.ends[IN0] = 50
    assert check(watch, 40.0) == [("in", 0)] and watch.states[IN0].highwater == 50


def test_a_partition_held_on_purpose_is_held_not_stalled() -> None:
    """A retry agent holding a take until a job falls due (or its circuit closes) pauses its partitions."""
    c = Consumer()
    watch = c.watch()
    c.fetched[IN0] = 50
    c.held[IN0] = "circuit open: credentials refused"
    assert check(watch, 0.0) == [] and check(watch, 100.0) == []
    assert watch.states[IN0].state == "held" and watch.states[IN0].held == "circuit open: credentials refused"
    del c.held[IN0]  # resumed; it has not moved for 100 s, and nothing holds it now
    assert check(watch, 101.0) == [("in", 0)]


def test_caught_up_or_rebalancing_partitions_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    c = Consumer()
    watch = c.watch()
    assert check(watch, 0.0) == [] and check(watch, 100.0) == []  # caught up
    c.fetched[IN0] = 50
    assert check(watch, 200.0, rebalancing=True) == [] and check(watch, 300.0, rebalancing=True) == []
    assert watch.states[IN0].state == "rebalancing" and c.seeks == []
    assert "has not finished for 100 s" in caplog.text  # nothing is read while it lasts: said once per 30 s
    assert check(watch, 301.0) == [] and watch.states[IN0].state == "flowing"  # its clock starts after it


def test_a_stall_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    c = Consumer()
    watch = c.watch()
    c.fetched[IN0] = 50
    for now in (0.0, 31.0, 36.0, 41.0):
        check(watch, now)
    assert caplog.text.count("partition in:0 stalled") == 1
    c.committed[IN0] = 50
    check(watch, 46.0)
    assert "partition in:0 moves again after 41 s" in caplog.text and watch.states[IN0].state == "caught_up"
