"""The rate limiter: a Retry-After holds requests already waiting for their slot, not only later ones.
Lower bounds only (a slow machine cannot break them)."""

from __future__ import annotations

import asyncio
import time

from pushstream.streams.delivery.pacing import RateLimiter


def test_a_retry_after_holds_requests_already_waiting_in_the_limiter() -> None:
    async def main() -> tuple[float, list[float]]:
        limiter = RateLimiter(max_rate=4.0)
        await limiter.acquire()  # takes the first slot; the next ones are 0.25 s apart
        waiting = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
        done: list[float] = []
        for w in waiting:
            w.add_done_callback(lambda _: done.append(time.monotonic()))
        await asyncio.sleep(0.05)  # all three are queued now
        limiter.on_throttled(retry_after=1.0)  # a 429 with Retry-After: 1
        throttled_at = time.monotonic()
        await asyncio.gather(*waiting)
        return throttled_at, done

    throttled_at, done = asyncio.run(main())
    assert min(done) - throttled_at >= 0.99, [round(d - throttled_at, 3) for d in done]


def test_without_a_429_requests_are_paced_at_the_rate() -> None:
    async def main() -> list[float]:
        limiter = RateLimiter(max_rate=10.0)
        stamps = []
        for _ in range(4):
            await limiter.acquire()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(main())
    assert all(b - a >= 0.099 for a, b in zip(stamps, stamps[1:], strict=False))
