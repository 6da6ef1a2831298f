"""The consumer's fetch loop (records reach streams; read offsets only for records that did) and
StallWatch (which partitions count as stalled, and what it does about them)."""

from __future__ import annotations

import asyncio
import time
from collections import namedtuple
from typing import Any

import pytest
from faust.types import TP as FaustTP

from pushstream.streams.transport import LeanMonitor, PushstreamApp, StallWatch

TP = namedtuple("TP", "topic partition")


class FakeConsumer:
    def __init__(self) -> None:
        self.tps = [TP("in", 0), TP("in", 1), TP("other", 0)]
        self._committed_offset: dict[Any, int | None] = {tp: 10 for tp in self.tps}
        self._read_offset: dict[Any, int | None] = {tp: 9 for tp in self.tps}
        self.fetched = {tp: 10 for tp in self.tps}  # the high watermark of the last fetch response
        self.ends = {tp: 10 for tp in self.tps}  # what the broker answers now
        self.seeks: list[tuple[Any, int]] = []

    def assignment(self) -> list[Any]:
        return self.tps

    def highwater(self, tp: Any) -> int:
        return self.fetched[tp]

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))


class FakeApp:
    rebalancing = False
    in_recovery = False

    def __init__(self) -> None:
        self.consumer = FakeConsumer()
        self.held_partitions: set[Any] = set()


def test_only_a_partition_with_waiting_records_and_no_progress_is_re_read() -> None:
    app = FakeApp()
    c = app.consumer
    watch = StallWatch(app, {"in"}, after=30)  # type: ignore[arg-type]
    c.fetched[TP("in", 0)] = 50  # records wait, nothing moves: stalled
    c.fetched[TP("in", 1)] = 50  # records wait, but it is moving
    c.fetched[TP("other", 0)] = 50  # not a watched topic
    run = asyncio.run
    assert run(watch.check(0.0)) == []
    c._read_offset[TP("in", 1)] = 20
    assert run(watch.check(20.0)) == []
    c._read_offset[TP("in", 1)] = 30
    assert run(watch.check(31.0)) == [TP("in", 0)]
    assert c.seeks == [(TP("in", 0), 10)]
    assert run(watch.check(40.0)) == []  # the clock starts again after a re-read


def test_a_partition_whose_fetches_stopped_is_re_read_when_the_broker_has_records_past_it() -> None:
    """The last fetch response says nothing waits (its high watermark is stale); the broker says
    records do: stalled. With nothing past the committed offset there either, it is idle."""
    app = FakeApp()
    c = app.consumer
    watch = StallWatch(app, {"in"}, after=30)  # type: ignore[arg-type]
    c.ends[TP("in", 0)] = 50
    run = asyncio.run
    assert run(watch.check(0.0)) == [] and run(watch.check(20.0)) == []
    assert run(watch.check(31.0)) == [TP("in", 0)] and c.seeks == [(TP("in", 0), 10)]


def test_a_partition_paused_on_purpose_is_not_stalled() -> None:
    """A retry agent holding a batch while its instance's circuit is open pauses its partitions."""
    app = FakeApp()
    c = app.consumer
    watch = StallWatch(app, {"in"}, after=30)  # type: ignore[arg-type]
    c.fetched[TP("in", 0)] = 50
    app.held_partitions.add(TP("in", 0))
    assert asyncio.run(watch.check(0.0)) == [] and asyncio.run(watch.check(100.0)) == []
    app.held_partitions.clear()  # resumed: its clock starts then
    assert asyncio.run(watch.check(101.0)) == [] and asyncio.run(watch.check(140.0)) == [TP("in", 0)]


def test_caught_up_idle_or_rebalancing_partitions_are_left_alone() -> None:
    app = FakeApp()
    watch = StallWatch(app, {"in", "other"}, after=30)  # type: ignore[arg-type]
    assert asyncio.run(watch.check(0.0)) == [] and asyncio.run(watch.check(100.0)) == []  # caught up
    app.consumer.fetched[TP("in", 0)] = 50
    app.rebalancing = True
    assert asyncio.run(watch.check(200.0)) == [] and asyncio.run(watch.check(300.0)) == []
    assert app.consumer.seeks == []


class Msg:
    topic = "in"

    def __init__(self, offset: int, generation_id: int = 0) -> None:
        self.offset = offset
        self.generation_id = generation_id


def _recording_consumer(stuck_at: int | None = None) -> tuple[Any, list[int]]:
    """A built (never started) consumer whose streams record the offsets they receive; the record
    at `stuck_at` never gets in, as when a stream's buffer stays full."""
    got: list[int] = []

    async def deliver(message: Msg) -> None:
        if message.offset == stuck_at:
            await asyncio.Event().wait()
        got.append(message.offset)

    app = PushstreamApp("t", broker="kafka://127.0.0.1:1", autodiscover=False, web_enabled=False, store="memory://")
    consumer = app.consumer  # built, not started: nothing connects
    consumer.callback = deliver
    return consumer, got


def test_a_fetched_batch_reaches_the_stream_in_order_and_moves_the_read_offset() -> None:
    async def main() -> None:
        consumer, got = _recording_consumer()
        tp = FaustTP("in", 0)
        consumer._read_offset[tp] = 5  # 3 and 4 were read before a seek back: not delivered again
        await consumer._deliver_batch([(tp, Msg(o)) for o in range(3, 260)])
        assert got == list(range(5, 260)) and consumer._read_offset[tp] == 259

    asyncio.run(main())


def test_a_flow_stop_mid_batch_leaves_the_read_offset_at_the_last_record_delivered() -> None:
    """Faust's own loop sets the read offset of the record whose delivery the flow stop cut
    short; after the rebalance's seek, that record would be dropped as already read."""

    async def main() -> None:
        consumer, got = _recording_consumer(stuck_at=11)
        tp = FaustTP("in", 0)
        race = asyncio.ensure_future(consumer.wait_first(
            consumer._deliver_batch([(tp, Msg(o)) for o in (10, 11, 12)]), consumer.suspend_flow.wait()))
        await asyncio.sleep(0.05)
        consumer.stop_flow()  # a rebalance starts
        await race
        assert got == [10] and consumer._read_offset[tp] == 10

    asyncio.run(main())


def test_records_fetched_before_a_rebalance_are_not_delivered_and_leave_the_read_offset() -> None:
    async def main() -> None:
        consumer, got = _recording_consumer()
        consumer.app.consumer_generation_id = 7
        tp = FaustTP("in", 0)
        await consumer._deliver_batch([(tp, Msg(20, 7)), (tp, Msg(21, 6)), (tp, Msg(22, 7))])
        assert got == [20] and consumer._read_offset[tp] == 20

    asyncio.run(main())


def test_the_monitor_keeps_no_per_record_statistics_but_the_stream_idle_clock() -> None:
    """Faust's consumer warns when a partition's stream stops taking events; it reads the time
    of the last one from the monitor, so that must still move."""
    app = PushstreamApp("t", broker="kafka://127.0.0.1:1", autodiscover=False, web_enabled=False, store="memory://")
    monitor = app.monitor
    assert isinstance(monitor, LeanMonitor)
    tp = FaustTP("in", 0)
    monitor.on_message_in(tp, 3, object())
    state = monitor.on_stream_event_in(tp, 3, object(), object())
    monitor.on_stream_event_out(tp, 3, object(), object(), state)
    monitor.on_message_out(tp, 3, object())
    assert monitor.stream_inbound_time[tp] == pytest.approx(time.monotonic(), abs=5)
    assert monitor.messages_received_total == 0 and monitor.events_total == 0 and not monitor.stream_lookup


def test_a_rebalance_that_does_not_finish_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    app = FakeApp()
    app.rebalancing = True
    watch = StallWatch(app, {"in"}, after=30)  # type: ignore[arg-type]
    for now in (0.0, 10.0, 29.0):
        assert asyncio.run(watch.check(now)) == []
    assert "rebalance" not in caplog.text
    asyncio.run(watch.check(31.0))
    assert "a rebalance has not finished for 31 s" in caplog.text
