"""Crashes and stops mid-stream (streams/local/faults.py's scenarios): kill -9 at three points of one
stream and at one, kill -9 during the restart's own recovery, kill -9 of one of two workers,
SIGTERM. Real broker, sandbox and worker processes; the re-read net stays off
(`kafka.stall_reread` defaults to false).

Each run: every (event, action) pair the config routes gets exactly one terminal outcome, at
most `deliver_batch` events are sent twice per instance per kill (the delivery step in flight)
and none after a SIGTERM, and the last outcome comes within 30 s of the last fault. `make soak`
runs the same scenarios on 20,000 events, 10 times each.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from pushstream.streams.local.broker import LocalBroker
from pushstream.streams.local.faults import SCENARIOS, FaultRun
from pushstream.streams.local.stack import webhook_instance
from tests.support import SandboxClient

pytestmark = pytest.mark.crash

EVENTS = 6_000


@pytest.mark.parametrize("scenario", ["kill-0.2-0.5-0.8", "kill-in-recovery", "kill-one-of-two", "sigterm"])
def test_every_event_once_and_soon_after(scenario: str, broker: LocalBroker, sandbox: SandboxClient, workdir: Path,
                                         prefix: str) -> None:
    run_scenario, kills = SCENARIOS[scenario]
    run = FaultRun(broker.url, sandbox.url, workdir, f"crash-{scenario.replace('.', '')}", prefix, EVENTS,
                   seed=zlib.crc32(scenario.encode()) % 1000)
    verdict = run_scenario(run)
    print(f"\n{scenario}: {verdict.line()}")
    assert not verdict.problems(run.config.pipeline.deliver_batch, kills), verdict.line()


def test_a_webhook_instance_keeps_them_across_kill_9(broker: LocalBroker, sandbox: SandboxClient, workdir: Path,
                                                     prefix: str) -> None:
    """The same promise with a third instance, a webhook taking every track, page and identify in
    batches grouped by event type: kill -9 at 0.3 of the stream."""
    run_scenario, kills = SCENARIOS["kill-0.3"]
    hook = webhook_instance(sandbox.url, subscribe='type = "track" or type = "page" or type = "identify"',
                            path="crash")
    run = FaultRun(broker.url, sandbox.url, workdir, "crash-webhook", prefix, EVENTS, seed=3, extra_destinations=hook)
    assert any(instance == "webhook-sandbox" for _, instance, _, _ in run.expected)
    verdict = run_scenario(run)
    print(f"\nkill-0.3 with a webhook: {verdict.line()}")
    assert not verdict.problems(run.config.pipeline.deliver_batch, kills), verdict.line()
