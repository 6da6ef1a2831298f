"""Delivery of one instance's jobs: the I/O around the pure settling (codecs/settle.py).

`Deliverer.deliver(jobs)` never raises: requests are built (codecs/plan.py), sent through the
rate limiter with up to `inline_retries` quick retries, and every result goes to the circuit;
then each job is settled into an outcome, a retry or a dead letter. Three branches leave the
straight path: an open circuit parks the jobs (all but the one sent as its probe); a refused
key opens the circuit and parks them; a batch refused for good is split in halves and sent
again, so only events refused on their own are rejected. The caller writes what it returns
and only then lets the stream ack the jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import httpx
import mode
import msgspec

from pushstream.codecs.config import Config, Instance
from pushstream.codecs.console import Sampler
from pushstream.codecs.errors import AuthError, DeliveryError, PermanentError, RetryableError
from pushstream.codecs.plan import PlannedRequest, endpoint, plan_requests
from pushstream.codecs.records import Job, Sample
from pushstream.codecs.settle import RetryPolicy, Settle, Writes, backoff
from pushstream.codecs.tester import show_request
from pushstream.streams.delivery.circuit import Circuit
from pushstream.streams.delivery.concurrency import AdaptiveLimit
from pushstream.streams.delivery.http import DestinationClient, Response
from pushstream.streams.delivery.pacing import RateLimiter
from pushstream.streams.ops.metrics import Metrics

__all__ = ["Deliverer"]

log = logging.getLogger(__name__)

#: A retry that would wait longer than this goes through the retry topic, not the batch.
INLINE_WAIT_MAX = 5.0


class Deliverer(mode.Service):
    """One destination instance's delivery path: owns its httpx client, rate limiter and circuit."""

    def __init__(self, config: Config, instance: Instance, metrics: Metrics,
                 transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any) -> None:
        self.instance = instance
        self.metrics = metrics
        self.settings = config.pipeline
        self.policy = RetryPolicy.of(config.pipeline, instance)
        self.settle = Settle(instance.destination.slug, self.policy)
        self.limiter = RateLimiter(instance.max_requests_per_second)
        self.sampler = Sampler(config.console.samples_per_minute)
        self.circuit = Circuit(instance.name, self._ping if instance.destination.ping else None)
        #: Samples of failed credential checks, written with the next delivery's records.
        self._ping_samples: list[Sample] = []
        self._transport = transport
        self._client: DestinationClient | None = None
        self.concurrency = AdaptiveLimit(instance.max_in_flight)  # requests in flight (concurrency.py)
        super().__init__(**kwargs)

    @property
    def client(self) -> DestinationClient:
        # Created on first use so agents that start before this service still find it.
        if self._client is None:
            self._client = DestinationClient(self.instance, self.settings.request_timeout, self._transport)
        return self._client

    async def on_stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @mode.Service.task
    async def _prober(self) -> None:
        """The circuit's credential check at start and its pings while open (destinations with a ping)."""
        await self.circuit.run(self.sleep, lambda: self.should_stop)

    async def _ping(self) -> Response:
        ping = self.instance.destination.ping
        assert ping is not None
        request = ping(self.instance.settings)
        try:
            return await self.client.send(request)
        except DeliveryError as exc:
            if self.sampler.take(self.instance.name, exc.code, time.time()):
                self._ping_samples.append(sample_of(self.instance, PlannedRequest(request, (), False), exc))
            raise

    async def deliver(self, jobs: list[Job]) -> Writes:
        """Deliver a batch of jobs; returns the outcomes, retries and dead letters to write. Never raises."""
        now = time.time()
        writes = Writes()
        writes.samples, self._ping_samples = self._ping_samples, []
        try:
            plans, orphans = plan_requests(self.instance, jobs)
        except Exception as exc:  # a request builder bug must not lose the batch
            log.exception("instance=%s building requests failed", self.instance.name)
            plans, orphans = [], []
            for job in jobs:
                writes.add(self.settle.unsendable(job, "BUILD_FAILED", f"building the request failed: {exc}", now))
        for job in orphans:
            writes.add(self.settle.unsendable(job, "MAPPING_REMOVED",
                                              f"mapping {job.mapping!r} ({job.action}) is no longer configured", now))
        probing = False
        if self.circuit.open:  # parked; a real request goes as the probe where there is no ping
            probing = bool(plans) and self.circuit.probe_by_request()
            sent = plans[:1] if probing else []
            writes.add(self.settle.park((j for plan in plans[len(sent):] for j in plan.jobs),
                                        self.circuit.parking(), now))
            plans = sent
        for result in await asyncio.gather(*(self._send(plan) for plan in plans)):
            writes.add(result)
        if probing:
            self.circuit.probed()
        if plans:  # one line per delivery: a line per request cost more than the request itself
            log.info("instance=%s requests=%d events=%d outcomes=%d retries=%d dead_letters=%d elapsed_ms=%.1f",
                     self.instance.name, len(plans), len(jobs), len(writes.outcomes), len(writes.retries),
                     len(writes.dead_letters), (time.time() - now) * 1000)
        return writes

    async def _send(self, plan: PlannedRequest) -> Writes:
        """One planned request, to the end: delivered, rejected, retried, failed, parked or split."""
        first = time.time()
        error, response, attempts = await self._attempts(plan)
        if isinstance(error, PermanentError) and not isinstance(error, AuthError) and len(plan.jobs) > 1:
            return await self._bisect(plan)  # the halves take the samples: they name the refused event
        samples = [sample_of(self.instance, plan, error)] if error is not None and self.sampler.take(
            self.instance.name, error.code, time.time()) else []
        if isinstance(error, AuthError):  # the instance's key, not the events: they wait
            self.circuit.refused_credentials(error.reason, error.code, error.status)
            return Writes(samples=samples).add(self.settle.park(plan.jobs, self.circuit.parking(), time.time()))
        last = time.time()
        if error is not None and not self.circuit.open:  # an open circuit said it once, loudly
            log.warning("instance=%s request failed: events=%d attempts=%d code=%s status=%s elapsed_ms=%.1f",
                        self.instance.name, len(plan.jobs), attempts, error.code, error.status, (last - first) * 1000)
        return Writes(samples=samples).add(self.settle.result(
            plan.jobs, error, response.status if response else None, attempts, first, last,
            batch_id=uuid.uuid4().hex[:12] if plan.batched else None))

    async def _attempts(self, plan: PlannedRequest) -> tuple[DeliveryError | None, Response | None, int]:
        """Send `plan` with up to `inline_retries` quick retries; (last error or None, response,
        attempts). Every result also goes to the circuit and the rate limiter."""
        error: DeliveryError | None = None
        attempts = 0
        for attempts in range(1, self.settings.inline_retries + 2):
            await self.limiter.acquire()
            async with self.concurrency.slot() as slot:  # held per attempt, never across a backoff
                sent = slot.started
                try:
                    response = await self.client.send(plan.request)
                except RetryableError as exc:
                    error, slot.signal = exc, ("throttled" if exc.status == 429 else "overloaded")
                except DeliveryError as exc:
                    self._count(plan, str(exc.status or exc.code.lower()), sent)
                    return exc, None, attempts
                except Exception as exc:  # unknown failure: treat as retryable, keep the stream alive
                    self._count(plan, "unexpected", sent)
                    log.exception("instance=%s unexpected send failure", self.instance.name)
                    return RetryableError(f"unexpected: {type(exc).__name__}: {exc}", code="UNEXPECTED"), None, attempts
                else:
                    slot.signal = "ok"
                    self._count(plan, str(response.status), sent)
                    self.limiter.on_success()
                    self.circuit.succeeded()
                    return None, response, attempts
            assert error is not None
            self._count(plan, str(error.status or error.code.lower()), sent)
            if error.status == 429:
                self.limiter.on_throttled(error.retry_after)
            else:
                self.circuit.failed(error.reason, error.code, error.status)
            wait = backoff(attempts, self.settings.backoff_base, self.settings.backoff_max, error.retry_after)
            if attempts > self.settings.inline_retries or wait > INLINE_WAIT_MAX or self.circuit.open:
                break
            await asyncio.sleep(wait)
        return error, None, attempts

    async def _bisect(self, plan: PlannedRequest) -> Writes:
        """A batch refused for good: usually one bad event makes the destination refuse them all.
        Send the halves again, and theirs, so that only events refused on their own are rejected,
        each with its own reason (about 2*log2(n) more requests per bad event)."""
        half = len(plan.jobs) // 2
        parts = [plan_requests(self.instance, jobs)[0] for jobs in (plan.jobs[:half], plan.jobs[half:])]
        writes = Writes()
        for result in await asyncio.gather(*(self._send(p) for plans in parts for p in plans)):
            writes.add(result)
        return writes

    def _count(self, plan: PlannedRequest, status: str, at: float) -> None:
        self.metrics.request(self.instance.name, endpoint(plan.request), status, time.monotonic() - at, len(plan.jobs))


def sample_of(instance: Instance, plan: PlannedRequest, error: DeliveryError) -> Sample:
    """The console's view of a failed request: its first event, the request as sent (masked)
    and what the destination answered."""
    shown = show_request(instance, plan)
    job = plan.jobs[0] if plan.jobs else None
    return Sample(instance=instance.name, error_code=error.code, http_status=error.status,
                  reason=error.reason, at=time.time(), message_id=job.message_id if job else "(credential check)",
                  event=job.event if job else msgspec.Raw(b"null"),
                  request={k: shown[k] for k in ("method", "url", "headers", "body")},
                  response={"status": error.status, "body": error.body})
