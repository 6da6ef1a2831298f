"""The adaptive in-flight limit: its rule on synthetic answers (latencies handed in, no sleeping), and a
Deliverer against the real sandbox answering slowly, and limiting concurrency with 429s."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from pushstream.codecs.config import load_config
from pushstream.codecs.records import Job
from pushstream.streams.delivery.concurrency import FLOOR, AdaptiveLimit, Signal
from pushstream.streams.delivery.deliverer import Deliverer
from pushstream.streams.local.sandbox import Sandbox
from pushstream.streams.ops.metrics import Metrics
from tests.support import serve


def _answers(limit: AdaptiveLimit, n: int, latency: float, signal: Signal = "ok", busy: int | None = None) -> None:
    """`n` answers of `latency` seconds while `busy` requests (default: the limit) are in flight."""
    for _ in range(n):
        limit.in_flight = (busy if busy is not None else int(limit.limit)) + 1
        limit.release(time.monotonic() - latency, signal)


def test_grows_from_the_floor_to_the_cap_while_latency_stays_flat() -> None:
    limit = AdaptiveLimit(cap=300)
    assert limit.limit == FLOOR
    _answers(limit, 4, 0.2)
    assert limit.limit == FLOOR + 4  # one per answer: doubles in a round trip
    _answers(limit, 1000, 0.2)
    assert limit.limit == 300


def test_an_unused_limit_does_not_grow() -> None:
    limit = AdaptiveLimit(cap=300)
    _answers(limit, 50, 0.2)
    grown = limit.limit
    _answers(limit, 500, 0.2, busy=1)  # one request at a time: nothing says more would be fine
    assert limit.limit == grown


def test_a_429_halves_it_once_per_round_trip_and_never_below_the_floor() -> None:
    limit = AdaptiveLimit(cap=300)
    _answers(limit, 200, 0.2)
    before = limit.limit
    _answers(limit, 30, 0.2, signal="throttled")  # one round of 429s
    assert limit.limit == before / 2
    limit._last_decrease -= 1.0  # a round trip later
    _answers(limit, 1, 0.2, signal="throttled")
    assert limit.limit == before / 4
    for _ in range(20):
        limit._last_decrease -= 1.0
        _answers(limit, 1, 0.2, signal="throttled")
    assert limit.limit == FLOOR


def test_rising_latency_and_5xx_shrink_it_and_4xx_do_not() -> None:
    limit = AdaptiveLimit(cap=300)
    _answers(limit, 100, 0.1)
    before = limit.limit
    _answers(limit, 1, 0.1, signal="neutral")
    assert limit.limit == before
    _answers(limit, 1, 0.5)  # five times the baseline: queueing at the destination
    assert limit.limit == before * 0.9
    limit._last_decrease -= 1.0
    _answers(limit, 1, 0.1, signal="overloaded")
    assert limit.limit == before * 0.9 * 0.7


def test_waiters_get_slots_as_requests_end() -> None:
    async def main() -> list[int]:
        limit = AdaptiveLimit(cap=8, floor=2)
        held = [await limit.acquire() for _ in range(2)]
        order: list[int] = []

        async def one(i: int) -> None:
            async with limit.slot():
                order.append(i)

        waiting = [asyncio.ensure_future(one(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert order == [] and limit.in_flight == 2
        cancelled = asyncio.ensure_future(one(99))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        for started in held:
            limit.release(started, "neutral")
        await asyncio.gather(*waiting)
        assert limit.in_flight == 0
        return order

    assert asyncio.run(main()) == [0, 1, 2]


CONFIG = """
[pipeline]
inline_retries = 2
backoff_base = 0.05
backoff_max = 0.1

[[destinations]]
name = "xp"
type = "xtremepush"
settings = {{ url = "{url}/", apiKey = "sandbox-xtremepush-key" }}
max_in_flight = {cap}
"""


def _xp_jobs(n: int) -> list[Job]:
    return [Job(message_id=f"x{i}", key=f"u{i}", instance="xp", mapping="Send Analytics Events", action="track",
                payload={"type": "track", "event": "E", "messageId": f"x{i}", "timestamp": "2026-01-01T00:00:00Z",
                         "identifiers": {"userId": f"u{i}"}}, topic="in", partition=0, offset=i, received_at=1e12)
            for i in range(n)]


def _run(faults: list[dict[str, Any]], cap: int, steps: int, per_step: int,
         then: int = 0) -> tuple[dict[str, Any], Deliverer, Any]:
    """Deliver `steps` steps of `per_step` jobs with `faults` on, then `then` more steps with only the latency left."""
    async def main() -> tuple[dict[str, Any], Deliverer, Any]:
        sandbox = Sandbox()
        async with serve(sandbox.app) as url:
            async with httpx.AsyncClient(base_url=url) as control:
                for fault in faults:
                    (await control.post("/_sandbox/faults", json=fault)).raise_for_status()
            config = load_config(CONFIG.format(url=url, cap=cap), {})
            deliverer = Deliverer(config, config.instance("xp"), Metrics())
            try:
                statuses: dict[str, int] = {}
                jobs = _xp_jobs((steps + then) * per_step)
                for k in range(steps + then):
                    if k == steps:
                        statuses["limit_before"] = int(deliverer.concurrency.limit)
                        sandbox.faults[:] = [f for f in sandbox.faults if f.status is None]  # latency stays
                    writes = await deliverer.deliver(jobs[k * per_step:(k + 1) * per_step])
                    for o in writes.outcomes:
                        statuses[o.status] = statuses.get(o.status, 0) + 1
                    statuses["retry"] = statuses.get("retry", 0) + len(writes.retries)
            finally:
                await deliverer.on_stop()
            answered = [r["status"] for r in sandbox.records]
            return {"statuses": statuses, "peak": sandbox.peak_in_flight, "answered": answered}, deliverer, sandbox

    return asyncio.run(main())


def test_a_slow_destination_gets_many_requests_in_flight() -> None:
    """200 ms per request: the limit climbs well past the old fixed 10 connections, and all is delivered."""
    seen, deliverer, _ = _run([{"latency": 0.2}], cap=256, steps=3, per_step=300)
    assert seen["statuses"] == {"delivered": 900, "retry": 0}
    assert seen["peak"] >= 100, seen["peak"]
    assert deliverer.concurrency.limit >= 100


def test_a_destination_that_limits_concurrency_gets_no_429_storm_and_the_limit_recovers() -> None:
    """It answers 429 above 40 open requests: the limit backs off to about that and stays there;
    once the destination stops limiting, the limit climbs past it again."""
    # 200 ms, so that client and sandbox (one event loop here) stay far from busy: latency is the API's.
    seen, deliverer, _ = _run([{"latency": 0.2}, {"status": 429, "max_concurrent": 40}], cap=256, steps=4,
                              per_step=300, then=3)
    refused = seen["answered"].count(429)
    statuses = seen["statuses"]
    assert statuses.get("delivered", 0) + statuses.get("retry", 0) == 2100
    assert refused < 0.1 * len(seen["answered"]), (refused, len(seen["answered"]))
    assert FLOOR <= statuses["limit_before"] <= 2 * 40, statuses["limit_before"]
    assert deliverer.concurrency.limit > 2 * 40, deliverer.concurrency.limit  # recovered
