"""Settling deliveries (pure): each job ends as an outcome, a retry with a due time, or a failed
outcome plus a dead letter; parked jobs wait for the probe; and the backoff schedule."""

from __future__ import annotations

import random

import msgspec
import pytest

from pushstream.codecs.errors import AuthError, PermanentError, RetryableError
from pushstream.codecs.records import Job
from pushstream.codecs.settle import Parking, RetryPolicy, Settle, backoff

POLICY = RetryPolicy(window=3600.0, max_attempts=5, backoff_base=1.0, backoff_max=60.0)
T0 = 1_700_000_000.0


def job(i: int = 0, **changes: object) -> Job:
    base = Job(message_id=f"m{i}", key="u", instance="pw", mapping="Track Events", action="trackEvent",
               payload={}, topic="in", partition=0, offset=i, received_at=T0)
    return msgspec.structs.replace(base, **changes)


settle = Settle("pushwoosh", POLICY, random.Random(7))


def test_a_delivered_batch_names_its_request() -> None:
    w = settle.result([job(0), job(1)], None, 200, attempts=1, first=T0 + 1, last=T0 + 2, batch_id="b1")
    assert [o.status for o in w.outcomes] == ["delivered", "delivered"] and not w.retries and not w.dead_letters
    o = w.outcomes[0]
    assert (o.http_status, o.attempts, o.batch_id, o.batch_size, o.destination) == (200, 1, "b1", 2, "pushwoosh")
    assert (o.first_attempt_at, o.last_attempt_at, o.latency_ms, o.at) == (T0 + 1, T0 + 2, 2000.0, T0 + 2)


def test_a_permanent_error_rejects_and_keeps_a_replayable_dead_letter() -> None:
    error = PermanentError("400 bad field", status=400, code="BAD_REQUEST")
    w = settle.result([job()], error, None, attempts=1, first=T0, last=T0 + 1)
    assert [(o.status, o.error_code, o.http_status, o.reason) for o in w.outcomes] == [
        ("rejected", "BAD_REQUEST", 400, "400 bad field")]
    dl = w.dead_letters[0]
    assert (dl.status, dl.error_code, dl.job.attempts, dl.job.last_error) == ("rejected", "BAD_REQUEST", 1,
                                                                            "400 bad field")


def test_a_retryable_error_retries_with_backoff_until_attempts_or_the_window_run_out() -> None:
    error = RetryableError("503", status=503, code="SERVICE_UNAVAILABLE", retry_after=7.0)
    w = settle.result([job(attempts=1, first_attempt_at=T0)], error, None, attempts=2, first=T0 + 5, last=T0 + 6)
    (retry,) = w.retries
    assert not w.outcomes and retry.attempts == 3 and retry.first_attempt_at == T0 and retry.due_at >= T0 + 13
    spent = settle.result([job(attempts=4)], error, None, attempts=1, first=T0, last=T0 + 1)  # 5 of 5 attempts
    assert [o.status for o in spent.outcomes] == ["failed"] and spent.dead_letters[0].status == "failed"
    late = settle.result([job(first_attempt_at=T0 - 3599)], error, None, attempts=1, first=T0, last=T0)
    assert [o.status for o in late.outcomes] == ["failed"]  # the next attempt would fall past the window


def test_an_auth_error_is_permanent_for_the_job_when_it_gets_here() -> None:
    w = settle.result([job()], AuthError("401", status=401), None, attempts=1, first=T0, last=T0)
    assert [o.status for o in w.outcomes] == ["rejected"]


def test_parked_jobs_wait_for_the_probe_without_an_attempt_and_fail_once_their_window_is_over() -> None:
    circuit = Parking(probe_at=T0 + 10, reason="credentials refused", code="INVALID_AUTHENTICATION", status=401)
    w = settle.park([job(0, attempts=2), job(1, received_at=T0 - 4000)], circuit, now=T0)
    (waiting,) = w.retries
    assert waiting.attempts == 2 and waiting.due_at == T0 + 10.5 and waiting.last_error == "waiting: credentials refused"
    assert [(o.status, o.error_code, o.http_status, o.attempts) for o in w.outcomes] == [
        ("failed", "INVALID_AUTHENTICATION", 401, 0)]
    assert w.dead_letters[0].job.message_id == "m1"


def test_an_unsendable_job_fails_at_once_with_its_reason() -> None:
    w = settle.unsendable(job(), "MAPPING_REMOVED", "mapping 'x' is no longer configured", T0)
    assert [(o.status, o.error_code, o.reason) for o in w.outcomes] == [
        ("failed", "MAPPING_REMOVED", "mapping 'x' is no longer configured")]
    assert w.dead_letters[0].error_code == "MAPPING_REMOVED"


def test_writes_add_up() -> None:
    w = settle.unsendable(job(0), "X", "x", T0).add(settle.unsendable(job(1), "X", "x", T0))
    assert len(w.outcomes) == len(w.dead_letters) == 2


@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_is_full_jitter_capped_and_honours_retry_after(attempt: int) -> None:
    rng = random.Random(attempt)
    delays = [backoff(attempt, 0.5, 30.0, rng=rng) for _ in range(200)]
    assert all(0 <= d <= min(30.0, 0.5 * 2 ** (attempt - 1)) for d in delays)
    assert backoff(attempt, 0.5, 30.0, retry_after=45.0, rng=rng) == 45.0  # past the cap: the server said so
