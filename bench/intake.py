"""The intake's row of `make bench`: events/s through `POST /v1/batch` against a bare producer.

All write the same records (the same events, enriched once up front for the bare producers)
to fresh topics of the same broker in the same run:
- bare, acked per batch: the intake's discipline without HTTP or JSON: `clients` writers on one
  confluent-kafka producer (the pipeline's Writer), each writing 100 records and waiting for the
  broker's acks before its next 100. The like-for-like reference;
- bare, unbounded: produce everything, then one flush (librdkafka's own ceiling);
- intake: one `pushstream intake` process; `clients` concurrent HTTP clients post batches of
  100 events (Segment's SDKs' batch size) and each waits for its 200 before sending again;
- latency: p50/p99 of a request at half the measured intake rate (batches paced evenly).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from pushstream.codecs.intake import events_of
from pushstream.codecs.spec import input_key
from pushstream.streams.commands.outcomes import percentile
from pushstream.streams.kafka.admin import create_topics, make_producer
from pushstream.streams.kafka.writer import Record, Writer
from pushstream.streams.local.broker import free_port
from pushstream.streams.local.samples import sample_events
from pushstream.streams.local.stack import local_env, start_intake

WRITE_KEY = "bench-write-key"
BATCH = 100


def _batches(n: int) -> list[bytes]:
    events = sample_events(n, seed=5, prefix="intake")  # with messageIds, as Segment's SDKs send them
    return [msgspec.json.encode({"batch": events[i:i + BATCH], "sentAt": "2026-11-30T12:00:00.000Z"})
            for i in range(0, n, BATCH)]


def _records(bodies: list[bytes], topic: str) -> list[list[Record]]:
    """What the intake writes for each body."""
    return [[Record(topic, (key := input_key(a.event)) and key.encode(), a.raw)
             for a in events_of(None, msgspec.json.decode(body), time.time(), lambda: str(uuid.uuid4()))]
            for body in bodies]


def _bare_acked(broker: str, batches: list[list[Record]], clients: int) -> float:
    """Events/s of `clients` writers each waiting for its batch's acks, as the intake's requests do."""
    async def main() -> float:
        writer = Writer(broker)
        queue = list(batches)

        async def client() -> None:
            while queue:
                await writer.write(queue.pop())

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        took = time.monotonic() - started
        await writer.on_stop()
        return sum(map(len, batches)) / took

    return asyncio.run(main())


def _bare(broker: str, topic: str, bodies: list[bytes]) -> float:
    """Events/s of one producer writing what the intake would write for these bodies, acks at the end."""
    records = [(r.key, r.value) for batch in _records(bodies, topic) for r in batch]
    producer = make_producer(broker)
    started = time.monotonic()
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the bare producer's records were not all acknowledged")
    return len(records) / (time.monotonic() - started)


async def _post_all(url: str, bodies: list[bytes], clients: int, rate: float | None = None) -> list[float]:
    """Post every body (`clients` at a time, or paced at `rate` batches/s); each request's seconds.
    aiohttp's client: httpx's costs ~3x more CPU per request, which this shared machine would
    take from the intake being measured."""
    headers = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
               "Content-Type": "application/json"}
    pending = list(reversed(bodies))
    took: list[float] = []

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        async def one(body: bytes) -> None:
            started = time.monotonic()
            async with http.post(f"{url}/v1/batch", data=body, headers=headers) as answer:
                text = await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"intake answered {answer.status}: {text!r}")
            took.append(time.monotonic() - started)

        if rate is None:
            async def client() -> None:
                while pending:
                    await one(pending.pop())

            await asyncio.gather(*(client() for _ in range(clients)))
        else:
            start = time.monotonic()
            tasks = []
            for i, body in enumerate(bodies):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                tasks.append(asyncio.ensure_future(one(body)))
            await asyncio.gather(*tasks)
    return took


def run_intake(broker: Any, config_text: str, workdir: Path, n: int, clients: int = 8) -> dict[str, Any]:
    """The intake row: events/s, the bare producer's events/s and the ratio, p50/p99 at half load."""
    bodies = _batches(n)
    create_topics(broker.url, ["intake-bare", "intake-bare-acked", "intake-bench"], 4)
    bare = _bare(broker.url, "intake-bare", bodies)
    acked = _bare_acked(broker.url, _records(bodies, "intake-bare-acked"), clients)
    port = free_port()
    path = workdir / "intake.toml"
    path.write_text(config_text + f'\n[intake]\nlisten = "127.0.0.1:{port}"\n[[intake.sources]]\nname = "bench"\n'
                                  f'write_key = "{WRITE_KEY}"\ntopic = "intake-bench"\n')
    proc = start_intake(workdir, path, local_env(), port)
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(_post_all(url, bodies[: max(1, len(bodies) // 10)], clients))  # warm-up
        started = time.monotonic()
        asyncio.run(_post_all(url, bodies, clients))
        rate = n / (time.monotonic() - started)
        half = rate / 2 / BATCH  # batches per second
        took = sorted(asyncio.run(_post_all(url, bodies[: max(2, int(half * 10))], clients * 4, rate=half)))
    finally:
        proc.stop()
    return {"events_per_s": round(rate), "bare_acked_events_per_s": round(acked),
            "ratio_vs_bare_acked": round(rate / acked, 2), "bare_producer_events_per_s": round(bare),
            "ratio_vs_bare": round(rate / bare, 2), "clients": clients, "batch": BATCH,
            "half_load_events_per_s": round(half * BATCH), "latency_p50_ms": round(percentile(took, 0.5) * 1000, 1),
            "latency_p99_ms": round(percentile(took, 0.99) * 1000, 1)}
