"""Per-instance pacing: an adaptive request-rate limit (the retry schedule is codecs/settle.py's `backoff`).

`RateLimiter` spaces requests to at most `max_rate` per second, halves the rate on a 429
(AIMD), creeps back up on success, and holds every request until a Retry-After has passed.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """AIMD pacing for one destination instance. `max_rate=None` means no fixed ceiling."""

    def __init__(self, max_rate: float | None, min_rate: float = 1.0) -> None:
        self.max_rate = max_rate
        self.min_rate = min_rate
        self.rate: float | None = max_rate  # None = not limited until the first 429
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for a slot: after any Retry-After pause, then at most `rate` requests per second.

        The pause is checked again after every wait: a 429 that arrives while a request waits
        for its slot (its Retry-After, or a halved rate) holds that request too, and every one
        queued behind it."""
        async with self._lock:
            while True:
                now = time.monotonic()
                start = max(now, self._paused_until, self._next_slot)
                if start <= now:
                    break
                await asyncio.sleep(start - now)
            if self.rate:
                self._next_slot = now + 1.0 / self.rate

    def on_success(self) -> None:
        if self.rate is not None:
            ceiling = self.max_rate
            self.rate = self.rate + 1.0 if ceiling is None else min(ceiling, self.rate + 1.0)
            if self.max_rate is None and self.rate > 1000:
                self.rate = None  # recovered far beyond any 429 level: stop pacing

    def on_throttled(self, retry_after: float | None) -> None:
        """A 429: halve the rate and, with a Retry-After, pause every request until it has passed."""
        current = self.rate or 50.0
        self.rate = max(self.min_rate, current / 2)
        if retry_after:
            self._paused_until = max(self._paused_until, time.monotonic() + retry_after)

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())
