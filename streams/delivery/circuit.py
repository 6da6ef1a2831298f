"""An instance's circuit: closed (requests flow) or open (its credentials are refused, or it fails
consistently), when its jobs wait instead of being burnt, and only probes go out; and its probes.

Opens on a 401/403 (the instance is misconfigured, not the event) and after `threshold`
requests in a row fail with a retryable error (5xx, timeouts, connection errors; a 429 is pacing,
not an outage). While open, the deliver agent parks fresh jobs on the retry topic (one write a
job) and the retry agent holds its partitions (no rewrites); a probe goes out at `probe_at`,
backing off from `probe_min` to `probe_max`; the first success closes it. A destination with a
credential check (Pushwoosh's ping) is probed by `run`, which also checks the key at start; any
other is probed with a real request: the next one due (`probe_by_request`), alone. Opening and
closing are logged once each, loudly, not per event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pushstream.codecs.errors import AuthError, DeliveryError
from pushstream.codecs.settle import Parking

__all__ = ["Circuit"]

log = logging.getLogger(__name__)


class Circuit:
    """One destination instance's circuit. `ping` sends its credential check, if it has one."""

    def __init__(self, instance: str, ping: Callable[[], Awaitable[object]] | None = None, threshold: int = 3,
                 probe_min: float = 1.0, probe_max: float = 5.0) -> None:
        self.instance = instance
        self.ping = ping
        self.threshold = threshold
        self.probe_min = probe_min
        self.probe_max = probe_max
        self.reason: str | None = None  # why it is open; None when closed
        self.opened_at = 0.0
        self.probe_at = 0.0
        self.failures = 0  # retryable failures in a row
        self.last_code: str | None = None  # the error that opened it, for jobs whose retry window ends meanwhile
        self.last_status: int | None = None
        self._delay = probe_min
        self._closed = asyncio.Event()
        self._closed.set()

    @property
    def open(self) -> bool:
        return self.reason is not None

    def probe_due(self, now: float | None = None) -> bool:
        return self.open and (time.time() if now is None else now) >= self.probe_at

    def probe_by_request(self) -> bool:
        """Whether the next request should go out, alone, as the probe (a probe is due and there is no ping)."""
        return self.ping is None and self.probe_due()

    def probed(self) -> None:
        """A probe by request was answered (the attempts told the circuit how); still open: back off."""
        if self.open:
            self.probe_failed()

    def parking(self) -> Parking:
        """What parked jobs need to know: when the next probe goes out, and why the circuit is open."""
        return Parking(self.probe_at, self.reason or "circuit open", self.last_code, self.last_status)

    async def run(self, sleep: Callable[[float], Awaitable[object]], stopping: Callable[[], bool]) -> None:
        """With a ping: check the credentials once, then ping whenever a probe is due, until `stopping()`."""
        if self.ping is None:
            return
        await self._ping(at_start=True)
        while not stopping():
            if self.probe_due():
                await self._ping()
            await sleep(0.25)

    async def _ping(self, at_start: bool = False) -> None:
        assert self.ping is not None
        try:
            await self.ping()
        except AuthError as exc:
            if self.open:
                self.probe_failed()
            else:
                self.refused_credentials(exc.reason, exc.code, exc.status)
            return
        except DeliveryError as exc:
            if self.open:
                self.probe_failed()
            elif at_start:
                log.warning("instance=%s credential check could not run: %s", self.instance, exc.reason)
            return
        except Exception:  # a probe must never end the prober
            log.exception("instance=%s credential check failed unexpectedly", self.instance)
            self.probe_failed()
            return
        if at_start and not self.open:
            log.info("instance=%s credentials accepted", self.instance)
        self.succeeded()

    def succeeded(self) -> None:
        """A request went through: the instance works."""
        self.failures = 0
        if self.open:
            log.warning("instance=%s circuit closed: requests accepted again after %.0f s (%s); resuming",
                        self.instance, time.time() - self.opened_at, self.reason)
            self.reason = None
            self._closed.set()

    def refused_credentials(self, detail: str, code: str | None = None, status: int | None = None) -> None:
        self.last_code, self.last_status = code, status
        self._open(f"credentials refused ({detail}): fix the key, or rotate it at the destination")

    def failed(self, detail: str, code: str | None = None, status: int | None = None) -> None:
        """A retryable failure (5xx, timeout, connection error)."""
        self.last_code, self.last_status = code, status
        self.failures += 1
        if self.failures >= self.threshold and not self.open:
            self._open(f"{self.failures} requests in a row failed ({detail})")

    def probe_failed(self) -> None:
        self._delay = min(self._delay * 2, self.probe_max)
        self.probe_at = time.time() + self._delay

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until closed (or `timeout`); whether it is closed."""
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            pass
        return not self.open

    def _open(self, reason: str) -> None:
        if self.open:
            self.reason = reason
            return
        self.reason, self.opened_at = reason, time.time()
        self._delay = self.probe_min
        self.probe_at = self.opened_at + self._delay
        self._closed.clear()
        log.error("instance=%s circuit OPEN: %s. Its events wait in Kafka (nothing is rejected or lost); "
                  "probing with backoff up to %.0f s, other instances flow on", self.instance, reason, self.probe_max)
