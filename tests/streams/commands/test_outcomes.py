"""`pushstream outcomes` and `status`: filters, the summary's totals, reasons and percentiles (pure),
then both commands against the session's worker, including `--follow`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import msgspec
from rich.console import Console

from pushstream.codecs.records import Outcome
from pushstream.streams.commands.outcomes import OutcomeFilter, Summary
from pushstream.streams.local.stack import local_env
from tests.support import Stack, mine


def _o(status: str, instance: str = "pw", action: str = "trackEvent", latency: float | None = 10.0,
       at: float = 100.0, reason: str | None = None, code: str | None = None) -> Outcome:
    return Outcome(message_id="m", status=status, instance=instance, action=action, mapping="Track Events",
                   latency_ms=latency, at=at, reason=reason, error_code=code)


def test_a_filter_keeps_what_every_given_field_matches() -> None:
    keep = OutcomeFilter(instance="pw", status="delivered", since=50.0)
    assert keep(_o("delivered")) and not keep(_o("rejected")) and not keep(_o("delivered", instance="xp"))
    assert not keep(_o("delivered", at=10.0)) and OutcomeFilter()(_o("failed"))


def test_the_summary_counts_totals_reasons_and_latency_percentiles() -> None:
    summary = Summary()
    for i in range(1, 101):
        summary.add(_o("delivered", latency=float(i)))
    summary.add(_o("rejected", reason="bad body", code="BAD_REQUEST", latency=500.0))
    summary.add(_o("rejected", reason="bad body", code="BAD_REQUEST", latency=700.0))
    summary.add(_o("invalid", instance=None, action=None, latency=None, reason="not JSON"))
    assert summary.total == 103
    assert summary.counts[("pw", "trackEvent", "Track Events", "delivered")] == 100
    assert summary.reasons.most_common(1) == [("rejected BAD_REQUEST: bad body", 2)]
    assert summary.latency() == {("pw", "trackEvent"): (102, 51.0, 97.0, 500.0)}
    out = io.StringIO()
    summary.render(Console(file=out, width=140))
    text = out.getvalue()
    assert "outcomes: 103" in text and "Track Events" in text and "top 2 reasons" in text and "p99" in text


def _cli(stack: Stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **local_env(), "PUSHSTREAM_OPS_LISTEN": stack.worker.ops_url.split("//")[1]}
    return subprocess.run([sys.executable, "-m", "pushstream.streams", *args, "--config",
                           str(stack.workdir / "worker.toml")], capture_output=True, text=True, timeout=timeout, env=env)


def test_outcomes_filters_and_summarises_and_status_reports_each_instance(stack: Stack, prefix: str) -> None:
    stack.produce([{"type": "identify", "messageId": f"{prefix}-{i}", "userId": f"{prefix}-u{i}",
                    "timestamp": "2026-11-30T08:00:00.000Z", "traits": {"plan": "pro"}} for i in range(5)])
    stack.outcomes.wait(mine(prefix), 10)
    result = _cli(stack, "outcomes", "--instance", "xtremepush-sandbox", "--action", "identify", "--since", "600",
                  "--idle", "2")
    records = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and records, result.stderr
    assert {(r["instance"], r["action"]) for r in records} == {("xtremepush-sandbox", "identify")}
    assert {f"{prefix}-{i}" for i in range(5)} <= {r["message_id"] for r in records}
    summary = _cli(stack, "outcomes", "--summary", "--status", "delivered", "--idle", "2")
    assert summary.returncode == 0 and "updateUserProfile" in summary.stdout and "p50" in summary.stdout
    status = _cli(stack, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = {i["name"]: i for i in msgspec.json.decode(status.stdout)["instances"]}
    assert set(report) == {"pushwoosh-sandbox", "xtremepush-sandbox", "pushwoosh-custom", "pushwoosh-filtered"}
    assert report["xtremepush-sandbox"]["outcomes"]["15m"].get("delivered", 0) >= 5
    assert report["pushwoosh-sandbox"]["paused"] is False  # read from the worker's /metrics
    assert report["pushwoosh-sandbox"]["lag"]["jobs"] >= 0
    screen = _cli(stack, "status")
    assert screen.returncode == 0 and "xtremepush-sandbox (xtremepush)" in screen.stdout and "last 15m" in screen.stdout


def test_outcomes_follow_prints_new_outcomes_as_they_come(stack: Stack, prefix: str) -> None:
    env = {**os.environ, **local_env()}
    follower = subprocess.Popen([sys.executable, "-m", "pushstream.streams", "outcomes", "--follow", "--since",
                                 "1", "--instance", "pushwoosh-sandbox", "--config", str(stack.workdir / "worker.toml")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(3)  # reading from the end by now
        stack.produce([{"type": "identify", "messageId": f"{prefix}-follow", "userId": f"{prefix}-u",
                        "traits": {"plan": "pro"}}])
        deadline = time.monotonic() + 60
        assert follower.stdout is not None
        while time.monotonic() < deadline:
            line = follower.stdout.readline()
            if f"{prefix}-follow" in line:
                assert msgspec.json.decode(line)["instance"] == "pushwoosh-sandbox"
                break
        else:
            raise AssertionError("the followed outcome never came")
    finally:
        follower.terminate()
        follower.wait(10)
