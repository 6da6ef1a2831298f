"""The Kafka floor: the worker's Faust app and consumer, reading the same kind of input and
writing one small record per event through the pipeline's own writer, with no other work.
Used by bench/run.py (env FLOOR_BROKER, FLOOR_INPUT, FLOOR_OUTPUT, FLOOR_APP).

The floor writes the way the pipeline writes (`Writer`, one confluent-kafka producer, batch
acked after the broker acked its records), so end-to-end / floor compares the pipeline's work
with the cheapest Kafka I/O the same machinery can do, not with a slower write path.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import faust

from pushstream.streams.kafka.faust_app import PushstreamApp, tune_gc
from pushstream.streams.kafka.writer import Record, Writer

BROKER = os.environ.get("FLOOR_BROKER", "kafka://127.0.0.1:9092")
app = PushstreamApp(
    os.environ.get("FLOOR_APP", "floor"), fetch_max_wait=0.02, broker=BROKER, value_serializer="raw",
    key_serializer="raw", store="memory://", autodiscover=False, web_enabled=False, topic_disable_leader=True,
    topic_partitions=8, consumer_auto_offset_reset="earliest", broker_session_timeout=3.0,
    broker_heartbeat_interval=1.0, broker_rebalance_timeout=3.0, broker_commit_interval=0.5,
    table_standby_replicas=0, stream_buffer_maxsize=8192, producer_linger=0.005,
)
OUTPUT = os.environ.get("FLOOR_OUTPUT", "floor.out")
source = app.topic(os.environ.get("FLOOR_INPUT", "floor-in"), value_type=bytes, value_serializer="raw")
writer = Writer(BROKER)
app.add_dependency(writer)
tune_gc()  # as the worker does


@app.agent(source, concurrency=1)
async def floor(stream: faust.StreamT[bytes]) -> None:
    """The route agent's batching and write pattern: a batch is written while the next one is
    taken, and its events are acked once the write is acknowledged."""
    in_flight: asyncio.Future[None] | None = None

    async def write_then_ack(events: list[Any]) -> None:
        await writer.write([Record(OUTPUT, None, b"1") for _ in events])
        for event in events:
            await stream.ack(event)

    async for events in stream.noack_take(500, within=0.02):
        if in_flight is not None:
            await in_flight
        in_flight = asyncio.ensure_future(write_then_ack(list(events)))
