"""Settling deliveries (pure): what a request's last attempt, an open circuit or an unsendable job
makes of each job: an outcome, a retry with a due time, or a failed outcome plus a dead letter.

Every job of a delivery ends in exactly one of:

- `delivered` (2xx) or `rejected` (a permanent error: outcome, plus a dead letter that
  `pushstream replay --status rejected` sends again once the cause is fixed);
- a retry on the instance's retry topic, due after the backoff (`Retry-After` honoured), while
  attempts and the retry window last;
- `failed` (outcome plus dead letter) once they do not, or when it cannot be sent at all.

Jobs of an instance whose circuit is open are parked: retried at the next probe, no attempt
counted. The caller writes the `Writes` before it lets the stream ack the jobs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from .config import Instance, PipelineConfig
from .errors import DeliveryError, PermanentError, RetryableError
from .records import DeadLetter, Job, Outcome, Sample, Status

__all__ = ["Parking", "RetryPolicy", "Settle", "Writes", "backoff"]


@dataclass(slots=True)
class Writes:
    """Records to write before the jobs they settle may be acked."""

    outcomes: list[Outcome] = field(default_factory=list)
    retries: list[Job] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: Failed requests kept for the console (bounded by the instance's Sampler).
    samples: list[Sample] = field(default_factory=list)

    def add(self, other: Writes) -> Writes:
        self.outcomes += other.outcomes
        self.retries += other.retries
        self.dead_letters += other.dead_letters
        self.samples += other.samples
        return self


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None,
            rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1): exponential with
    full jitter, at most `cap`, at least a `Retry-After` (which may exceed the cap)."""
    r = rng or random
    delay = r.uniform(0, min(cap, base * (2 ** (attempt - 1))))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(max(delay, 0.0), max(cap, retry_after or 0.0))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often an instance's jobs are retried."""

    window: float
    max_attempts: int
    backoff_base: float
    backoff_max: float

    @classmethod
    def of(cls, pipeline: PipelineConfig, instance: Instance) -> RetryPolicy:
        return cls(window=instance.retry_window or pipeline.retry_window,
                   max_attempts=instance.max_attempts or pipeline.max_attempts,
                   backoff_base=pipeline.backoff_base, backoff_max=pipeline.backoff_max)


@dataclass(frozen=True, slots=True)
class Parking:
    """An open circuit, as parked jobs need it: when the next probe goes out and why it opened."""

    probe_at: float
    reason: str
    code: str | None = None
    status: int | None = None


class Settle:
    """Settles one destination instance's jobs (`destination` is its type's slug, for outcomes)."""

    def __init__(self, destination: str, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.destination = destination
        self.policy = policy
        self.rng = rng

    def result(self, jobs: Sequence[Job], error: DeliveryError | None, http_status: int | None, attempts: int,
               first: float, last: float, batch_id: str | None = None) -> Writes:
        """Each job of one request after its last attempt: `error` None (delivered with
        `http_status`), permanent (rejected) or retryable (retried or failed)."""
        writes = Writes()
        size = len(jobs) if batch_id is not None else None
        for job in jobs:
            tries, started = job.attempts + attempts, job.first_attempt_at or first
            if error is None:
                writes.outcomes.append(self._outcome(job, "delivered", http_status=http_status, attempts=tries,
                                                     started=started, last=last, batch_id=batch_id, batch_size=size))
                continue
            due = self._retry_due(tries, started, last, error) if isinstance(error, RetryableError) else None
            if due is not None:
                writes.retries.append(_copy(job, attempts=tries, first_attempt_at=started, last_error=error.reason,
                                            due_at=due))
            else:
                self._dead(writes, job, error, "rejected" if isinstance(error, PermanentError) else "failed",
                           attempts=tries, started=started, last=last, batch_id=batch_id, batch_size=size)
        return writes

    def park(self, jobs: Iterable[Job], circuit: Parking, now: float) -> Writes:
        """Jobs of an instance whose circuit is open: retried at the next probe, no attempt counted
        (none was made); a job whose retry window is over fails (outcome and dead letter)."""
        writes = Writes()
        error = DeliveryError(circuit.reason, status=circuit.status, code=circuit.code or "CIRCUIT_OPEN")
        for job in jobs:
            started = job.first_attempt_at or job.received_at
            if now - started < self.policy.window:
                writes.retries.append(_copy(job, due_at=circuit.probe_at + 0.5,
                                            last_error=f"waiting: {circuit.reason}"))
            else:
                self._dead(writes, job, error, "failed", attempts=job.attempts, started=started, last=now)
        return writes

    def unsendable(self, job: Job, code: str, reason: str, now: float) -> Writes:
        """A job no request can be built for: failed at once, kept as a dead letter."""
        writes = Writes()
        self._dead(writes, job, DeliveryError(reason, code=code), "failed", attempts=job.attempts, started=now,
                   last=now)
        return writes

    def _retry_due(self, tries: int, started: float, last: float, error: RetryableError) -> float | None:
        """When a retryable job is due again, or None when its attempts or retry window are spent."""
        p = self.policy
        delay = backoff(tries, p.backoff_base, p.backoff_max, error.retry_after, self.rng)
        if tries >= p.max_attempts or delay > started + p.window - last:
            return None
        return last + delay

    def _dead(self, writes: Writes, job: Job, error: DeliveryError, status: Status, *, attempts: int, started: float,
              last: float, batch_id: str | None = None, batch_size: int | None = None) -> None:
        """The one place a job ends badly: its outcome and its dead letter."""
        writes.outcomes.append(self._outcome(job, status, error=error, attempts=attempts, started=started, last=last,
                                             batch_id=batch_id, batch_size=batch_size))
        kept = _copy(job, attempts=attempts, first_attempt_at=started, last_error=error.reason)
        writes.dead_letters.append(DeadLetter(job=kept, status="rejected" if status == "rejected" else "failed",
                                              error_code=error.code, reason=error.reason, http_status=error.status,
                                              failed_at=last))

    def _outcome(self, job: Job, status: Status, *, attempts: int, started: float, last: float,
                 error: DeliveryError | None = None, http_status: int | None = None, batch_id: str | None = None,
                 batch_size: int | None = None) -> Outcome:
        return Outcome(message_id=job.message_id, status=status, instance=job.instance, destination=self.destination,
                       action=job.action, mapping=job.mapping,
                       http_status=error.status if error is not None else http_status,
                       error_code=error.code if error is not None else None,
                       reason=error.reason if error is not None else None, attempts=attempts,
                       first_attempt_at=started, last_attempt_at=last,
                       latency_ms=round((last - job.received_at) * 1000, 1), batch_id=batch_id, batch_size=batch_size,
                       topic=job.topic, partition=job.partition, offset=job.offset, at=last,
                       message_id_derived=job.message_id_derived)


def _copy(job: Job, **changes: object) -> Job:
    return msgspec.structs.replace(job, **changes)
