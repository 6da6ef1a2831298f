"""The consumer's fetch loop: records reach streams; read offsets only for records that did. And
every private name of Faust's and aiokafka's that pushstream relies on is still there."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections import namedtuple
from typing import Any

import aiokafka
import pytest
from faust.types import TP as FaustTP

from pushstream.streams.kafka.faust_app import PushstreamApp
from pushstream.streams.kafka.faust_compat import TOUCHED, LeanMonitor

TP = namedtuple("TP", "topic partition")


class Msg:
    topic = "in"

    def __init__(self, offset: int, generation_id: int = 0) -> None:
        self.offset = offset
        self.generation_id = generation_id


@pytest.mark.parametrize(("owner", "name"), TOUCHED, ids=[f"{o}.{n}" for o, n in TOUCHED])
def test_every_private_name_relied_on_is_in_the_installed_versions(owner: str, name: str) -> None:
    module, _, qualname = owner.rpartition(".")
    cls = getattr(importlib.import_module(module), qualname)
    # An attribute set on instances only shows in the source of the class or a base.
    sources = "".join(inspect.getsource(k) for k in cls.__mro__ if k.__module__.split(".")[0] in ("faust", "aiokafka",
                                                                                                 "mode"))
    assert hasattr(cls, name) or f"self.{name} " in sources or f"self.{name}:" in sources, f"{owner} has no {name}"


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


def test_table_files_are_where_faust_s_rocksdb_store_puts_them(tmp_path: Any) -> None:
    """dedup reads a partition's files before the app starts, without creating the store (that left
    the worker unable to stop on SIGTERM), so the path is computed: it must be the store's own."""
    from pushstream.streams.kafka.dedup import Dedup
    from pushstream.streams.kafka.faust_compat import table_files

    app = PushstreamApp("t", broker="kafka://127.0.0.1:1", autodiscover=False, web_enabled=False,
                        store="memory://", datadir=str(tmp_path))
    dedup = Dedup(app, 60.0, 4)
    assert [table_files(dedup.table, p) for p in range(4)] == [dedup.table.data.partition_path(p) for p in range(4)]


def test_the_assignment_is_converted_once_per_rebalance() -> None:
    class Assigned:  # aiokafka's consumer: one frozenset per assignment
        tps: frozenset[Any] = frozenset({aiokafka.TopicPartition("jobs", 0), aiokafka.TopicPartition("jobs", 1)})

        def assignment(self) -> frozenset[Any]:
            return self.tps

    app = PushstreamApp("t", broker="kafka://127.0.0.1:1", autodiscover=False, web_enabled=False, store="memory://")
    thread = app.consumer._thread  # built, not started
    aio = Assigned()
    thread._consumer = aio
    first = thread.assignment()
    assert first == {FaustTP("jobs", 0), FaustTP("jobs", 1)} and all(type(tp) is FaustTP for tp in first)
    assert thread.assignment() is first  # Faust's commit asks once per offset: no conversion each time
    aio.tps = frozenset({aiokafka.TopicPartition("jobs", 2)})  # a rebalance
    assert thread.assignment() == {FaustTP("jobs", 2)}
