"""An instance's circuit: a refused key or consistent failures open it; a probe's success closes it;
its pings (the probes of a destination with a credential check). In a Deliverer: test_deliverer.py."""

from __future__ import annotations

import asyncio

from pushstream.codecs.errors import AuthError, RetryableError
from pushstream.streams.delivery.circuit import Circuit


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


def test_without_a_ping_the_next_request_is_the_probe_once_due() -> None:
    circuit = Circuit("x")
    circuit.failed("503", "SERVICE_UNAVAILABLE", 503)
    circuit.threshold = 1
    circuit.failed("503", "SERVICE_UNAVAILABLE", 503)
    assert circuit.open and not circuit.probe_by_request()  # not due yet
    circuit.probe_at = 0.0
    assert circuit.probe_by_request()
    circuit.probed()  # answered, still open: the next probe backs off
    assert circuit.probe_at > 0 and not circuit.probe_by_request()
    parking = circuit.parking()
    assert parking.code == "SERVICE_UNAVAILABLE" and parking.status == 503 and parking.probe_at == circuit.probe_at


def test_with_a_ping_it_checks_the_key_at_start_and_pings_while_open() -> None:
    """The prober: a refused key at start opens the circuit; pings while open; an accepted one closes it."""
    answers: list[Exception | None] = [AuthError("401 bad key", status=401, code="UNAUTHORIZED"),
                                       RetryableError("503", status=503), None]
    pings: list[float] = []

    async def ping() -> None:
        pings.append(asyncio.get_running_loop().time())
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    async def main() -> Circuit:
        circuit = Circuit("x", ping, probe_min=0.01, probe_max=0.02)
        runner = asyncio.ensure_future(circuit.run(asyncio.sleep, lambda: not answers))
        await asyncio.wait_for(runner, 10)
        return circuit

    circuit = asyncio.run(main())
    assert len(pings) == 3 and not circuit.open  # refused at start, a failed probe, then accepted
