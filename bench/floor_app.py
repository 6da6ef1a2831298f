"""The Kafka floor: the worker's Faust settings, reading the same kind of input and writing one
small record per event, with no other work. Used by bench/run.py (env FLOOR_BROKER, FLOOR_INPUT)."""

from __future__ import annotations

import asyncio
import os

import faust

from pushstream.streams.transport import PushstreamApp

app = PushstreamApp(
    "floor", fetch_max_wait=0.05, broker=os.environ.get("FLOOR_BROKER", "kafka://127.0.0.1:9092"), value_serializer="raw",
    key_serializer="raw", store="memory://", autodiscover=False, web_enabled=False, topic_disable_leader=True,
    topic_partitions=8, consumer_auto_offset_reset="earliest", broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0, broker_rebalance_timeout=3.0, broker_commit_interval=0.5,
    table_standby_replicas=0, stream_buffer_maxsize=8192, producer_linger=0.005,
)
source = app.topic(os.environ.get("FLOOR_INPUT", "floor-in"), value_type=bytes, value_serializer="raw")
sink = app.topic("floor.out", value_type=bytes, value_serializer="raw", partitions=8)


@app.agent(source, concurrency=1)
async def floor(stream: faust.StreamT[bytes]) -> None:
    """Same batching and write-then-ack pattern as the route agent."""
    async for events in stream.take_events(500, within=0.05):
        futures = [await sink.send(value=b"1") for _ in events]
        await asyncio.gather(*futures)
