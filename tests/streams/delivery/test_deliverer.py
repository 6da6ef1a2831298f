"""The Deliverer's branches in-process, on httpx's MockTransport (no broker, no worker): a poison
event in a batch (bisection), a refused key (parked), retryable failures (inline retry, then the
retry topic, then failed), an open circuit (parked, one real request as its probe)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from pushstream.codecs.config import load_config
from pushstream.codecs.records import Job
from pushstream.streams.delivery.deliverer import Deliverer
from pushstream.streams.ops.metrics import Metrics

CONFIG = """
[pipeline]
inline_retries = 1
backoff_base = 0.01
backoff_max = 0.02
max_attempts = 3

[[destinations]]
name = "pw"
type = "pushwoosh"
settings = { pushwooshAPIKey = "K", pushwooshAppCode = "APP", baseUrl = "http://pw.test" }

[[destinations]]
name = "xp"
type = "xtremepush"
settings = { url = "http://xp.test/", apiKey = "K" }
"""

Answer = Callable[[httpx.Request], httpx.Response]


def _deliver(instance: str, jobs: list[Job], answer: Answer, rounds: int = 1) -> tuple[list[Any], Deliverer]:
    config = load_config(CONFIG, {})
    inst = config.instance(instance)
    deliverer = Deliverer(config, inst, Metrics(), httpx.MockTransport(answer))

    async def main() -> list[Any]:
        try:
            return [await deliverer.deliver(jobs) for _ in range(rounds)]
        finally:
            await deliverer.on_stop()

    return asyncio.run(main()), deliverer


def _pw_job(i: int) -> Job:
    payload = {"external_id": f"u{i}", "name": "Ping", "timestamp": "2026-01-01T00:00:00Z",
               "properties": {"i": i}, "device_platform": "ios", "device_id": f"d{i}"}
    return Job(message_id=f"m{i}", key=f"u{i}", instance="pw", mapping="Track Events", action="trackEvent", payload=payload,
               batched=True, topic="in", partition=0, offset=i, received_at=1e12)


def _xp_job(i: int) -> Job:
    return Job(message_id=f"x{i}", key="u", instance="xp", mapping="Send Analytics Events", action="track",
               payload={"type": "track", "event": "E", "messageId": f"x{i}", "timestamp": "2026-01-01T00:00:00Z",
                        "identifiers": {"userId": "u"}}, topic="in", partition=0, offset=i, received_at=1e12)


def test_one_poison_event_in_a_batch_is_the_only_one_rejected() -> None:
    sizes: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        sizes.append(len(events))
        if any(e["attributes"].get("i") == 5 for e in events):
            return httpx.Response(400, json={"message": "bad event 5"})
        return httpx.Response(200, json={"ok": True})

    (writes,), _ = _deliver("pw", [_pw_job(i) for i in range(8)], answer)
    statuses = {o.message_id: o.status for o in writes.outcomes}
    assert statuses.pop("m5") == "rejected" and set(statuses.values()) == {"delivered"} and len(statuses) == 7
    assert sizes[0] == 8 and sizes.count(1) >= 1 and len(sizes) <= 1 + 2 * 3  # 8 -> halves -> ... -> the one
    (dead,) = writes.dead_letters
    assert dead.status == "rejected" and "bad event 5" in (dead.reason or "")


def test_a_refused_key_opens_the_circuit_and_parks_every_job() -> None:
    (writes,), deliverer = _deliver("pw", [_pw_job(i) for i in range(3)],
                                    lambda r: httpx.Response(401, json={"message": "invalid key"}))
    assert not writes.outcomes and not writes.dead_letters and len(writes.retries) == 3
    assert all(j.attempts == 0 and j.due_at for j in writes.retries) and deliverer.circuit.open


def test_retryable_failures_retry_inline_then_go_to_the_retry_topic() -> None:
    answers = iter([503, 200])
    (writes,), _ = _deliver("xp", [_xp_job(0)], lambda r: httpx.Response(next(answers)))
    assert [(o.status, o.attempts) for o in writes.outcomes] == [("delivered", 2)]  # the inline retry did it
    (writes,), _ = _deliver("xp", [_xp_job(0)], lambda r: httpx.Response(503))
    (retry,) = writes.retries
    assert not writes.outcomes and retry.attempts == 2 and retry.due_at  # inline retry spent: the retry topic
    again = msgspec.structs.replace(retry, due_at=None)
    (writes,), _ = _deliver("xp", [again], lambda r: httpx.Response(503))
    assert [(o.status, o.attempts) for o in writes.outcomes] == [("failed", 4)] and writes.dead_letters  # 3 allowed


def test_an_unexpected_failure_is_retryable_and_the_stream_goes_on() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    (writes,), _ = _deliver("xp", [_xp_job(0)], answer)
    assert len(writes.retries) == 1 and "unexpected: RuntimeError: boom" in (writes.retries[0].last_error or "")


def test_with_the_circuit_open_jobs_park_and_one_request_probes_once_due() -> None:
    """Xtremepush has no ping: with a refused key the jobs are parked; once a probe is due one
    request goes out, the rest stay parked; when it is accepted, the circuit closes."""
    status = {"code": 401}
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status["code"], json={"ok": status["code"] == 200})

    config = load_config(CONFIG, {})
    deliverer = Deliverer(config, config.instance("xp"), Metrics(), httpx.MockTransport(answer))

    async def main() -> None:
        writes = await deliverer.deliver([_xp_job(i) for i in range(3)])
        assert not writes.outcomes and len(writes.retries) == 3 and deliverer.circuit.open
        sent = len(seen)
        writes = await deliverer.deliver([_xp_job(i) for i in range(3)])  # no probe due yet: nothing sent
        assert len(seen) == sent and len(writes.retries) == 3
        status["code"] = 200  # the key rotated at the destination
        deliverer.circuit.probe_at = 0.0
        writes = await deliverer.deliver([_xp_job(i) for i in range(3)])
        assert len(seen) == sent + 1 and not deliverer.circuit.open  # one request: the probe
        assert [o.status for o in writes.outcomes] == ["delivered"] and len(writes.retries) == 2
        await deliverer.on_stop()

    asyncio.run(main())
