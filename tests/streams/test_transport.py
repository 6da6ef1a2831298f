"""StallWatch: which partitions count as stalled, and what it does about them."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

from pushstream.streams.transport import StallWatch

TP = namedtuple("TP", "topic partition")


class FakeConsumer:
    def __init__(self) -> None:
        self.tps = [TP("in", 0), TP("in", 1), TP("other", 0)]
        self._committed_offset: dict[Any, int | None] = {tp: 10 for tp in self.tps}
        self._read_offset: dict[Any, int | None] = {tp: 9 for tp in self.tps}
        self.highwaters = {tp: 10 for tp in self.tps}
        self.seeks: list[tuple[Any, int]] = []

    def assignment(self) -> list[Any]:
        return self.tps

    def highwater(self, tp: Any) -> int:
        return self.highwaters[tp]

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))


class FakeApp:
    rebalancing = False
    in_recovery = False

    def __init__(self) -> None:
        self.consumer = FakeConsumer()


def test_only_a_partition_with_waiting_records_and_no_progress_is_re_read() -> None:
    app = FakeApp()
    c = app.consumer
    watch = StallWatch(app, {"in"}, after=30)  # type: ignore[arg-type]
    c.highwaters[TP("in", 0)] = 50  # records wait, nothing moves: stalled
    c.highwaters[TP("in", 1)] = 50  # records wait, but it is moving
    c.highwaters[TP("other", 0)] = 50  # not a watched topic
    run = asyncio.run
    assert run(watch.check(0.0)) == []
    c._read_offset[TP("in", 1)] = 20
    assert run(watch.check(20.0)) == []
    c._read_offset[TP("in", 1)] = 30
    assert run(watch.check(31.0)) == [TP("in", 0)]
    assert c.seeks == [(TP("in", 0), 10)]
    assert run(watch.check(40.0)) == []  # the clock starts again after a re-read


def test_caught_up_idle_or_rebalancing_partitions_are_left_alone() -> None:
    app = FakeApp()
    watch = StallWatch(app, {"in", "other"}, after=30)  # type: ignore[arg-type]
    assert asyncio.run(watch.check(0.0)) == [] and asyncio.run(watch.check(100.0)) == []  # caught up
    app.consumer.highwaters[TP("in", 0)] = 50
    app.rebalancing = True
    assert asyncio.run(watch.check(200.0)) == [] and asyncio.run(watch.check(300.0)) == []
    assert app.consumer.seeks == []
