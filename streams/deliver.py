"""Delivery of one instance's jobs: requests, classification, inline retries, hand-off to retry.

`Deliverer.deliver(jobs)` never raises: every job ends as a `delivered`/`rejected` outcome,
a job on the retry topic (with a due time), or a `failed` outcome plus a dead letter. The
caller writes what it returns and only then lets the stream ack the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

import httpx
import mode
import msgspec

from pushstream.codecs.config import Config, Instance
from pushstream.codecs.plan import PlannedRequest, plan_requests
from pushstream.codecs.records import DeadLetter, Job, Outcome

from .http import AuthError, DeliveryError, DestinationClient, PermanentError, Response, RetryableError
from .circuit import Circuit
from .metrics import Metrics
from .pacing import RateLimiter, backoff

__all__ = ["Deliverer", "Writes"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Writes:
    """Records to write before the batch may be acked."""

    outcomes: list[Outcome] = field(default_factory=list)
    retries: list[Job] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


class Deliverer(mode.Service):
    """One destination instance's delivery path: owns its httpx client and its rate limiter."""

    def __init__(self, config: Config, instance: Instance, transport: httpx.AsyncBaseTransport | None = None,
                 metrics: Metrics | None = None, **kwargs: object) -> None:
        self.config = config
        self.instance = instance
        self.metrics = metrics or Metrics()
        self.pipeline = config.pipeline
        self.limiter = RateLimiter(instance.max_requests_per_second)
        self.retry_window = instance.retry_window or self.pipeline.retry_window
        self.max_attempts = instance.max_attempts or self.pipeline.max_attempts
        self._transport = transport
        self._client: DestinationClient | None = None
        self._concurrency = asyncio.Semaphore(instance.max_connections)
        self.circuit = Circuit(instance.name)
        super().__init__(**kwargs)

    @property
    def client(self) -> DestinationClient:
        # Created on first use so agents that start before this service still find it.
        if self._client is None:
            self._client = DestinationClient(self.instance, self.pipeline.request_timeout, self._transport)
        return self._client

    async def on_stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, jobs: list[Job]) -> Writes:
        """Deliver a batch of jobs; returns the outcomes/retries/dead letters to write. Never raises."""
        writes = Writes()
        now = time.time()
        try:
            plans, orphans = plan_requests(self.instance, jobs)
        except Exception as exc:  # a request builder bug must not lose the batch
            log.exception("instance=%s building requests failed", self.instance.name)
            plans, orphans = [], []
            for job in jobs:
                self._fail(writes, job, "BUILD_FAILED", f"building the request failed: {exc}", now)
        for job in orphans:
            self._fail(writes, job, "MAPPING_REMOVED",
                       f"mapping {job.mapping!r} ({job.action}) is no longer configured", now)
        probing = False
        if self.circuit.open:  # park; a real request goes as the probe where there is no ping
            probing = self.circuit.probe_due() and self.instance.destination.ping is None and bool(plans)
            for plan in plans[1 if probing else 0:]:
                self._park(plan.jobs, writes)
            plans = plans[:1] if probing else []
        await asyncio.gather(*(self._send_plan(plan, writes) for plan in plans))
        if probing and self.circuit.open:
            self.circuit.probe_failed()
        if plans:  # one line per batch: a line per request cost more than the request itself
            log.info("instance=%s requests=%d events=%d outcomes=%d retries=%d dead_letters=%d elapsed_ms=%.1f",
                     self.instance.name, len(plans), len(jobs), len(writes.outcomes), len(writes.retries),
                     len(writes.dead_letters), (time.time() - now) * 1000)
        return writes

    async def _send_plan(self, plan: PlannedRequest, writes: Writes) -> None:
        first = time.time()
        error, response, attempts = await self._attempts(plan)
        if isinstance(error, AuthError):  # the instance's key, not the events: they wait
            self.circuit.refused_credentials(error.reason, error.code, error.status)
            self._park(plan.jobs, writes)
            return
        if isinstance(error, PermanentError) and len(plan.jobs) > 1:
            await self._bisect(plan, writes)
            return
        self._settle(plan, writes, error, response, attempts, first)

    async def _attempts(self, plan: PlannedRequest) -> tuple[DeliveryError | None, Response | None, int]:
        """Send `plan` with up to `inline_retries` quick retries; (last error or None, response, attempts).
        Every result also goes to the circuit."""
        error: DeliveryError | None = None
        response: Response | None = None
        attempts = 0
        async with self._concurrency:
            for attempts in range(1, self.pipeline.inline_retries + 2):
                await self.limiter.acquire()
                sent = time.monotonic()
                try:
                    response = await self.client.send(plan.request)
                    error = None
                    self._count(plan, str(response.status), sent)
                    self.limiter.on_success()
                    self.circuit.succeeded()
                    break
                except RetryableError as exc:
                    error = exc
                    self._count(plan, str(exc.status or exc.code.lower()), sent)
                    if exc.status == 429:
                        self.limiter.on_throttled(exc.retry_after)
                    else:
                        self.circuit.failed(exc.reason, exc.code, exc.status)
                    wait = backoff(attempts, self.pipeline.backoff_base, self.pipeline.backoff_max, exc.retry_after)
                    # Long waits go through the retry topic so they do not hold this batch.
                    if attempts > self.pipeline.inline_retries or wait > 5.0 or self.circuit.open:
                        break
                    await asyncio.sleep(wait)
                except DeliveryError as exc:
                    error = exc
                    self._count(plan, str(exc.status or exc.code.lower()), sent)
                    break
                except Exception as exc:  # unknown failure: treat as retryable, keep the stream alive
                    self._count(plan, "unexpected", sent)
                    log.exception("instance=%s unexpected send failure", self.instance.name)
                    error = RetryableError(f"unexpected: {type(exc).__name__}: {exc}", code="UNEXPECTED")
                    break
        return error, response, attempts

    def _settle(self, plan: PlannedRequest, writes: Writes, error: DeliveryError | None, response: Response | None,
                attempts: int, first: float) -> None:
        """Each job's outcome, retry or dead letter after its request's last attempt."""
        batch_id = uuid.uuid4().hex[:12] if plan.batched else None
        last = time.time()
        size = len(plan.jobs) if plan.batched else None
        for job in plan.jobs:
            tries = job.attempts + attempts
            started = job.first_attempt_at or first
            if error is None:
                assert response is not None
                writes.outcomes.append(self._outcome(job, "delivered", None, None, response.status, tries,
                                                     started, last, batch_id, size))
            elif isinstance(error, PermanentError):
                writes.outcomes.append(self._outcome(job, "rejected", error.code, error.reason, error.status, tries,
                                                     started, last, batch_id, size))
                # Kept where `pushstream replay --status rejected` finds it once the cause is fixed.
                writes.dead_letters.append(DeadLetter(
                    job=_copy(job, attempts=tries, first_attempt_at=started, last_error=error.reason),
                    status="rejected", error_code=error.code, reason=error.reason, http_status=error.status,
                    failed_at=last))
            else:
                assert isinstance(error, RetryableError)
                self._retry_or_fail(writes, job, error, tries, started, last, batch_id, size)
        if error is not None and not self.circuit.open:  # an open circuit said it once, loudly
            log.warning("instance=%s request failed: events=%d attempts=%d code=%s status=%s elapsed_ms=%.1f",
                        self.instance.name, len(plan.jobs), attempts, error.code, error.status, (last - first) * 1000)

    def _park(self, jobs: list[Job], writes: Writes) -> None:
        """Jobs of an instance whose circuit is open: to the retry topic, due at the next probe, with
        no attempt counted (none was made); the retry agent holds them while the circuit stays open.
        A job whose retry window is over fails instead (outcome and dead letter, replayable)."""
        now, due, reason = time.time(), self.circuit.probe_at + 0.5, self.circuit.reason or "circuit open"
        for job in jobs:
            started = job.first_attempt_at or job.received_at
            if now - started < self.retry_window:
                writes.retries.append(_copy(job, due_at=due, last_error=f"waiting: {reason}"))
                continue
            code = self.circuit.last_code or "CIRCUIT_OPEN"
            writes.outcomes.append(self._outcome(job, "failed", code, reason, self.circuit.last_status, job.attempts,
                                                 started, now, None, None))
            writes.dead_letters.append(DeadLetter(job=_copy(job, first_attempt_at=started, last_error=reason),
                                                  error_code=code, reason=reason, http_status=self.circuit.last_status,
                                                  failed_at=now))

    @mode.Service.task
    async def _prober(self) -> None:
        """Checks the credentials once the worker starts, and pings while the circuit is open
        (destinations with a credential check; the others probe with a real request)."""
        if self.instance.destination.ping is None:
            return
        await self._ping(at_start=True)
        while not self.should_stop:
            if self.circuit.probe_due():
                await self._ping()
            await self.sleep(0.25)

    async def _ping(self, at_start: bool = False) -> None:
        assert self.instance.destination.ping is not None
        try:
            await self.client.send(self.instance.destination.ping(self.instance.settings))
        except AuthError as exc:
            if self.circuit.open:
                self.circuit.probe_failed()
            else:
                self.circuit.refused_credentials(exc.reason, exc.code, exc.status)
            return
        except DeliveryError as exc:
            if self.circuit.open:
                self.circuit.probe_failed()
            elif at_start:
                log.warning("instance=%s credential check could not run: %s", self.instance.name, exc.reason)
            return
        except Exception:  # a probe must never end the prober
            log.exception("instance=%s credential check failed unexpectedly", self.instance.name)
            self.circuit.probe_failed()
            return
        if at_start and not self.circuit.open:
            log.info("instance=%s credentials accepted", self.instance.name)
        self.circuit.succeeded()

    async def _bisect(self, plan: PlannedRequest, writes: Writes) -> None:
        """A batch refused for good: usually one bad event makes the destination refuse them all.
        Send the halves again, and theirs, so that only events refused on their own are rejected,
        each with its own reason (about 2*log2(n) more requests per bad event)."""
        half = len(plan.jobs) // 2
        parts = [plan_requests(self.instance, jobs)[0] for jobs in (plan.jobs[:half], plan.jobs[half:])]
        await asyncio.gather(*(self._send_plan(p, writes) for plans in parts for p in plans))

    def _count(self, plan: PlannedRequest, status: str, sent: float) -> None:
        self.metrics.request(self.instance.name, plan.request.path, status, time.monotonic() - sent, len(plan.jobs))

    def _retry_or_fail(self, writes: Writes, job: Job, error: RetryableError, tries: int, started: float,
                       last: float, batch_id: str | None, size: int | None) -> None:
        delay = backoff(tries, self.pipeline.backoff_base, self.pipeline.backoff_max, error.retry_after)
        window_left = started + self.retry_window - last
        if tries >= self.max_attempts or delay > window_left:
            writes.outcomes.append(self._outcome(job, "failed", error.code, error.reason, error.status, tries,
                                                 started, last, batch_id, size))
            failed = _copy(job, attempts=tries, first_attempt_at=started, last_error=error.reason)
            writes.dead_letters.append(DeadLetter(job=failed, error_code=error.code, reason=error.reason,
                                                  http_status=error.status, failed_at=last))
            return
        writes.retries.append(_copy(job, attempts=tries, first_attempt_at=started, last_error=error.reason,
                                    due_at=last + delay))

    def _fail(self, writes: Writes, job: Job, code: str, reason: str, now: float) -> None:
        """A job that cannot be sent at all: `failed` outcome plus a dead letter, no request made."""
        writes.outcomes.append(self._outcome(job, "failed", code, reason, None, job.attempts, now, now, None, None))
        writes.dead_letters.append(DeadLetter(job=job, error_code=code, reason=reason, failed_at=now))

    def _outcome(self, job: Job, status: str, code: str | None, reason: str | None, http: int | None, attempts: int,
                 started: float, last: float, batch_id: str | None, size: int | None) -> Outcome:
        return Outcome(message_id=job.message_id, status=status,  # type: ignore[arg-type]
                       instance=job.instance, destination=self.instance.destination.slug, action=job.action,
                       mapping=job.mapping, http_status=http, error_code=code, reason=reason, attempts=attempts,
                       first_attempt_at=started, last_attempt_at=last,
                       latency_ms=round((last - job.received_at) * 1000, 1), batch_id=batch_id, batch_size=size,
                       topic=job.topic, partition=job.partition, offset=job.offset, at=last,
                       message_id_derived=job.message_id_derived)


def _copy(job: Job, **changes: object) -> Job:
    return msgspec.structs.replace(job, **changes)
