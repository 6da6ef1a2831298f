"""An instance's circuit, alone and in a Deliverer: a refused key or consistent failures park jobs
(retry topic, no attempt counted, nothing rejected); a probe's success closes it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from pushstream.codecs.config import load_config
from pushstream.codecs.records import Job
from pushstream.streams.circuit import Circuit
from pushstream.streams.deliver import Deliverer

XP = """
[[destinations]]
name = "xp"
type = "xtremepush"
settings = { url = "http://xp.test/", apiKey = "K" }
"""


def test_three_failures_in_a_row_open_it_a_success_closes_it_a_429_is_no_failure() -> None:
    circuit = Circuit("x", threshold=3)
    circuit.failed("503")
    circuit.failed("503")
    circuit.succeeded()  # not in a row
    circuit.failed("503")
    circuit.failed("503")
    assert not circuit.open
    circuit.failed("503", "SERVICE_UNAVAILABLE", 503)
    assert circuit.open and "3 requests in a row failed" in (circuit.reason or "")
    assert circuit.last_code == "SERVICE_UNAVAILABLE" and not circuit.probe_due(circuit.opened_at)
    first_probe = circuit.probe_at
    circuit.probe_failed()
    assert circuit.probe_at > first_probe  # backs off
    circuit.succeeded()
    assert not circuit.open and asyncio.run(circuit.wait_closed(0))


def test_a_refused_key_opens_it_at_once() -> None:
    circuit = Circuit("x")
    circuit.refused_credentials("401 invalid key", "UNAUTHORIZED", 401)
    assert circuit.open and "credentials refused" in (circuit.reason or "")


def _job(i: int) -> Job:
    return Job(message_id=f"m{i}", key="u", instance="xp", mapping="Send Analytics Events", action="track",
               payload={"type": "track", "event": "E", "messageId": f"m{i}", "timestamp": "2026-01-01T00:00:00Z",
                        "identifiers": {"userId": "u"}}, topic="in", partition=0, offset=i, received_at=1e12)


def test_without_a_credential_check_the_next_real_request_is_the_probe() -> None:
    """Xtremepush has no ping: with a refused key the jobs are parked, not rejected; once a probe is
    due one request goes out, the rest stay parked; when it is accepted, the circuit closes."""
    status = {"code": 401}
    seen: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status["code"], json={"ok": status["code"] == 200})

    config = load_config(XP, {})
    deliverer = Deliverer(config, config.instances[0], httpx.MockTransport(answer))

    async def main() -> None:
        writes = await deliverer.deliver([_job(i) for i in range(3)])
        assert not writes.outcomes and not writes.dead_letters and len(writes.retries) == 3
        assert all(j.attempts == 0 and j.due_at for j in writes.retries) and deliverer.circuit.open
        sent = len(seen)
        writes = await deliverer.deliver([_job(i) for i in range(3)])  # no probe due yet: nothing sent
        assert len(seen) == sent and len(writes.retries) == 3
        status["code"] = 200  # the key rotated at the destination
        deliverer.circuit.probe_at = 0.0
        writes = await deliverer.deliver([_job(i) for i in range(3)])
        assert len(seen) == sent + 1 and not deliverer.circuit.open  # one request: the probe
        assert [o.status for o in writes.outcomes] == ["delivered"] and len(writes.retries) == 2
        await deliverer.on_stop()

    asyncio.run(main())
