"""How many requests one destination instance may have in flight: a limit that adapts to the
destination's latency and answers (AIMD with a latency signal, in the spirit of TCP Vegas and
Netflix's concurrency-limits).

Real APIs answer in 50-500 ms, so a fixed handful of connections caps an instance at tens of
requests a second whatever the worker could do. The limit starts at a small floor and, while
answers succeed and their latency stays near the lowest seen lately, grows by one per answer
when it is being used (so it roughly doubles each round trip, as TCP's slow start). It shrinks
multiplicatively, at most once per round trip, when the destination says it is overloaded
(429: halved; 5xx, timeouts, failed connections: x0.7) or when latency rises well above that
baseline (x0.9: requests are queueing at the destination). It never leaves [floor, cap];
`max_in_flight` is the cap and the connection pool's size. The request-rate limiter
(pacing.py) and Retry-After still apply on top.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Literal

__all__ = ["FLOOR", "AdaptiveLimit", "Signal"]

#: Where the limit starts and the least it falls to.
FLOOR = 4
#: Latency above this many times the baseline counts as queueing at the destination ...
TOLERANCE = 2.0
#: ... and only if it is also this much above it (seconds): a 1 ms API jitters by 100%.
SLACK = 0.02
#: The baseline is the lowest latency of the last one or two windows of this many answers.
WINDOW = 200

#: What an answer says about the destination's load: "ok" (2xx), "overloaded" (5xx, timeout,
#: connection failure), "throttled" (429), "neutral" (a 4xx about the request, not the load).
Signal = Literal["ok", "overloaded", "throttled", "neutral"]
_FACTORS = {"throttled": 0.5, "overloaded": 0.7, "queueing": 0.9}


class AdaptiveLimit:
    """The in-flight gate of one instance: `async with limit.slot() as s: ...; s.signal = "ok"`."""

    def __init__(self, cap: int, floor: int = FLOOR) -> None:
        self.cap = max(1, cap)
        self.floor = min(floor, self.cap)
        self.limit = float(self.floor)
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._window_min = float("inf")
        self._last_min = float("inf")
        self._seen = 0
        self._last_decrease = 0.0

    @property
    def baseline(self) -> float | None:
        """The lowest latency of the last one or two windows (None before the first answer)."""
        low = min(self._window_min, self._last_min)
        return None if low == float("inf") else low

    def slot(self) -> _Slot:
        return _Slot(self)

    async def acquire(self) -> float:
        """Wait until fewer than `limit` requests are in flight; returns the start time."""
        while self.in_flight >= int(self.limit):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                else:
                    self._wake()  # it was woken for a free slot it will not use: pass it on
                raise
        self.in_flight += 1
        return time.monotonic()

    def release(self, started: float, signal: Signal) -> None:
        """A request that started at `started` is over; adapt the limit to what it said."""
        self.in_flight -= 1
        now = time.monotonic()
        if signal == "ok":
            self._answered(now - started, now)
        elif signal in ("throttled", "overloaded"):
            self._decrease(now, _FACTORS[signal])
        self._wake()

    def _answered(self, latency: float, now: float) -> None:
        self._seen += 1
        self._window_min = min(self._window_min, latency)
        if self._seen >= WINDOW:  # an old minimum ages out, so a baseline can rise with the API's
            self._last_min, self._window_min, self._seen = self._window_min, float("inf"), 0
        baseline = self.baseline or latency
        if latency > baseline * TOLERANCE and latency - baseline > SLACK:
            self._decrease(now, _FACTORS["queueing"])
        elif self.in_flight + 1 >= self.limit / 2:  # grow only a limit that is being used
            self.limit = min(float(self.cap), self.limit + 1.0)

    def _decrease(self, now: float, factor: float) -> None:
        # Once per round trip: the answers of one overloaded round must not collapse it to the floor.
        if now - self._last_decrease < max(self.baseline or 0.0, 0.05):
            return
        self._last_decrease = now
        self.limit = max(float(self.floor), self.limit * factor)

    def _wake(self) -> None:
        free = int(self.limit) - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


class _Slot:
    """One request's hold on the gate; `signal` (default neutral) is what its answer said."""

    def __init__(self, limit: AdaptiveLimit) -> None:
        self._limit = limit
        self.started = 0.0  # monotonic time the request got its slot
        self.signal: Signal = "neutral"

    async def __aenter__(self) -> _Slot:
        self.started = await self._limit.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._limit.release(self.started, self.signal)
