"""Delivery that loses nothing: retries, Retry-After, isolation, permanent errors, dead letters and
replay, kill -9 of the worker, malformed traffic. Real broker, sandbox faults, real worker processes."""

from __future__ import annotations

import collections
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushstream.streams.cli import replay
from pushstream.streams.local.samples import sample_events

from pushstream.streams.local.stack import local_config, local_env, start_worker

from ..conftest import LocalBroker, SandboxClient, Stack, close, launch

POST_EVENTS = "/integration-segment/v1/post-events"


def _events(prefix: str, n: int, targets: str) -> list[dict[str, Any]]:
    return [{"type": "track", "messageId": f"{prefix}-{i:05d}", "userId": f"{prefix}-u{i % 7}", "event": "Ping",
             "timestamp": "2026-11-23T10:00:00.000Z", "properties": {"targets": targets, "i": i}}
            for i in range(n)]


def _mine(prefix: str, instance: str | None = None) -> Any:
    return lambda o: (o.get("message_id") or "").startswith(prefix) and (instance is None or o["instance"] == instance)


def _sent(sandbox: SandboxClient, prefix: str, app: str) -> list[dict[str, Any]]:
    """Requests the sandbox received for this test's users and instance (by app code), in order."""
    return [r for r in sandbox.requests(POST_EVENTS) if r["headers"].get("X-PW-Appcode") == app
            and r["body"]["events"][0]["user_id"].startswith(prefix)]


@pytest.fixture(autouse=True)
def _no_faults_left(sandbox: SandboxClient) -> Iterator[None]:
    yield
    sandbox.clear_faults()


def test_503_for_20s_then_recovery_delivers_everything(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=503, duration=20, appcode="APP-FLAKY")
    started = time.time()
    faulty.produce(_events(prefix, 50, "flaky"))
    outcomes = faulty.outcomes.wait(_mine(prefix), 50, timeout=120)
    recovered = max(o["last_attempt_at"] for o in outcomes) - started
    assert len(outcomes) == 50 and {o["status"] for o in outcomes} == {"delivered"}
    assert len({o["message_id"] for o in outcomes}) == 50
    assert all(o["attempts"] > 1 for o in outcomes)
    statuses = collections.Counter(r["status"] for r in _sent(faulty.sandbox, prefix, "APP-FLAKY"))
    assert statuses[503] >= 2 and statuses[200] >= 1
    print(f"\n503 window 20s: all 50 delivered {recovered:.1f}s after produce; "
          f"max attempts {max(o['attempts'] for o in outcomes)}; requests {dict(statuses)}")


def test_429_with_retry_after_pauses_the_instance(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=429, retry_after="2", count=1, appcode="APP-FLAKY")
    faulty.produce(_events(prefix, 10, "flaky"))
    outcomes = faulty.outcomes.wait(_mine(prefix), 10, timeout=60)
    assert {o["status"] for o in outcomes} == {"delivered"}
    requests = _sent(faulty.sandbox, prefix, "APP-FLAKY")
    assert requests[0]["status"] == 429
    # Nothing reached the instance for the 2 s it asked for (a lower bound: slowness cannot break it).
    assert requests[1]["time"] - requests[0]["time"] >= 2.0


def test_a_slow_instance_does_not_slow_another(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(latency=5.0, appcode="APP-SLOW", duration=60)
    faulty.produce(_events(prefix, 100, "slow,fast"))
    fast = faulty.outcomes.wait(_mine(prefix, "pw-fast"), 100, timeout=60, settle=0)
    slow = faulty.outcomes.wait(_mine(prefix, "pw-slow"), 100, timeout=90, settle=0)
    assert {o["status"] for o in fast + slow} == {"delivered"}
    fast_p50 = statistics.median(o["latency_ms"] for o in fast)
    slow_p50 = statistics.median(o["latency_ms"] for o in slow)
    print(f"\nisolation: fast p50 {fast_p50:.0f} ms, slow (5 s latency) p50 {slow_p50:.0f} ms")
    assert fast_p50 * 2 < slow_p50


def test_permanent_400_is_rejected_without_retry(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=400, count=1, appcode="APP-FLAKY")
    faulty.produce(_events(prefix, 5, "flaky"))
    outcomes = faulty.outcomes.wait(_mine(prefix), 5, timeout=60)
    assert {o["status"] for o in outcomes} == {"rejected"}
    assert all(o["http_status"] == 400 and o["attempts"] == 1 for o in outcomes)
    assert all("400" in o["reason"] and "injected fault" in o["reason"] for o in outcomes)
    time.sleep(2)  # a retry would show up as a second request
    assert len(_sent(faulty.sandbox, prefix, "APP-FLAKY")) == 1


def test_exhausted_retry_window_dead_letters_and_replay_delivers(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=503, appcode="APP-SHORT", duration=120)
    faulty.produce(_events(prefix, 8, "short"))
    failed = faulty.outcomes.wait(_mine(prefix), 8, timeout=60)
    assert {o["status"] for o in failed} == {"failed"}
    assert all(o["error_code"] == "SERVICE_UNAVAILABLE" and o["attempts"] >= 2 for o in failed)
    faulty.sandbox.clear_faults()
    replayed = replay(faulty.config, instance="pw-short", error="503")
    assert replayed >= 8  # dead letters of earlier runs of this instance would be replayed too
    delivered = faulty.outcomes.wait(lambda o: _mine(prefix)(o) and o["status"] == "delivered", 8, timeout=60)
    assert sorted(o["message_id"] for o in delivered) == sorted(o["message_id"] for o in failed)
    for secret in ("sandbox-pushwoosh-key",):
        assert secret not in faulty.worker.output()


def test_malformed_records_mixed_into_valid_traffic(stack: Stack, prefix: str) -> None:
    valid = sample_events(1000, seed=9, prefix=prefix, mix="track")
    kinds = [b"{not json", b'{"type": "track", "messageId": 1, "event": "E"}', b"\xff\xfe\xfd",
             b'{"type": "track", "messageId": "x", "event": "E", "properties": {"b": "' + b"y" * 40_000 + b'"}}']
    records: list[Any] = []
    for i, event in enumerate(valid):
        records.append(event)
        records.append(kinds[i % len(kinds)])
    coords = stack.produce(records)
    bad = {coords[i] for i in range(1, len(records), 2)}
    invalid = stack.outcomes.wait(lambda o: (o.get("partition"), o.get("offset")) in bad
                                  and o["topic"] == "segment-events", 1000, timeout=120)
    assert len(invalid) == 1000 and {o["status"] for o in invalid} == {"invalid"}
    delivered = stack.outcomes.wait(lambda o: _mine(prefix, "pushwoosh-sandbox")(o), 1000, timeout=120)
    assert len(delivered) == 1000 and {o["status"] for o in delivered} == {"delivered"}


def test_a_redelivered_event_is_not_sent_twice_even_after_a_restart(broker: LocalBroker, sandbox: SandboxClient,
                                                                     workdir: Path, prefix: str) -> None:
    """Same messageIds produced again: `duplicate`, not sent. After restarts with the outcome
    warm-up turned off (dedup_lookback = 0), only the table can know them: on the worker's disk
    (started again on its state), then from the changelog alone (a worker with no state)."""
    text = local_config(broker.url, sandbox.url, prefix="dedup", app_id="pushstream-dedup",
                        input_topic="dedup-events", partitions=4, batch_window=0.2,
                        extra_pipeline="dedup_lookback = 0.0")
    text = text.split("[[destinations]]\nname = \"xtremepush-sandbox\"")[0]  # Pushwoosh only
    stack = launch(text, "dedup", sandbox, workdir)
    events = _events(prefix, 300, "none")
    mine = _mine(prefix)
    try:
        stack.produce(events)
        first = stack.outcomes.wait(mine, 300, timeout=60, settle=0)
        assert {o["status"] for o in first} == {"delivered"}
        stack.produce(events[:100])
        again = stack.outcomes.wait(mine, 400, timeout=60)[300:]
        assert len(again) == 100 and {o["status"] for o in again} == {"duplicate"}
        assert sorted(p.name for p in (workdir / "dedup.state").rglob("delivered-*.db")) == [
            f"delivered-{p}.db" for p in range(4)]  # the worker's own state directory (PUSHSTREAM_STATE_DIR)
        seen = 400
        for name in ("dedup", "dedup-2"):
            stack.worker.stop()
            stack.worker = start_worker(workdir, workdir / "dedup.toml", local_env(), name=name)
            stack.produce(events)
            after = stack.outcomes.wait(mine, seen + 300, timeout=90)[seen:]
            assert len(after) == 300 and {o["status"] for o in after} == {"duplicate"}, (name, collections.Counter(
                o["status"] for o in after))
            seen += 300
        sent = collections.Counter(e["attributes"]["i"] for r in sandbox.requests(POST_EVENTS)
                                   for e in r["body"]["events"] if e["user_id"].startswith(prefix))
        assert len(sent) == 300 and set(sent.values()) == {1}
    finally:
        close(stack)


@pytest.mark.crash
def test_kill_9_mid_stream_loses_nothing(broker: LocalBroker, sandbox: SandboxClient, workdir: Path,
                                         prefix: str) -> None:
    """kill -9 mid-stream, restart: every messageId gets exactly one terminal outcome, each event
    reached the sandbox at least once, at most one delivery step twice. Full-suite runs on
    2026-11-23 after the fetch-loop fix: 6 of 6 passed, done 14.7-14.8 s after the kill; in one,
    the restarted worker left all partitions' committed offsets stuck below records it had read
    (cause not found) and StallWatch re-read them after 45 s (done 65 s after the kill)."""
    text = local_config(broker.url, sandbox.url, prefix="killable", app_id="pushstream-killable",
                        input_topic="killable-events", partitions=4)
    text = text.split("[[destinations]]\nname = \"xtremepush-sandbox\"")[0]  # Pushwoosh only
    stack = launch(text, "killable", sandbox, workdir)
    events = _events(prefix, 5000, "none")
    try:
        stack.produce(events)
        stack.outcomes.wait(_mine(prefix), 1000, timeout=60, settle=0)
        stack.worker.kill()  # SIGKILL: no flush, no commit
        killed_at = time.time()
        stack.worker = start_worker(workdir, workdir / "killable.toml", local_env(), name="killable-2")
        try:
            terminal = stack.outcomes.wait(lambda o: _mine(prefix)(o) and o["status"] != "duplicate", 5000,
                                           timeout=120, settle=3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnose(stack, sandbox, events, prefix)}") from None
        per_id = collections.Counter(o["message_id"] for o in terminal)
        doubled = sorted(k for k, n in per_id.items() if n > 1)
        assert len(per_id) == 5000 and not doubled, (len(doubled), doubled[:3], doubled[-3:])
        assert {o["status"] for o in terminal} == {"delivered"}
        sent = collections.Counter(e["attributes"]["i"] for r in sandbox.requests(POST_EVENTS)
                                   for e in r["body"]["events"] if e["user_id"].startswith(prefix))
        assert len(sent) == 5000  # every event reached the destination at least once
        twice = sum(n - 1 for n in sent.values())
        duplicates = sum(1 for o in stack.outcomes.seen if _mine(prefix)(o) and o["status"] == "duplicate")
        recovered = max(o["at"] for o in terminal) - killed_at
        print(f"\nkill -9: all 5000 with one terminal outcome; {twice} events sent twice, "
              f"{duplicates} duplicate outcomes, done {recovered:.1f}s after the kill")
        # At most the one delivery step that was in flight: up to `deliver_batch` jobs, sent as
        # concurrent requests of up to 100 (seen: 0 and 500 on 2026-11-23).
        assert twice <= stack.config.pipeline.deliver_batch
    finally:
        close(stack)


def _diagnose(stack: Stack, sandbox: SandboxClient, events: list[dict[str, Any]], prefix: str) -> str:
    """Where did the events without a terminal outcome get to? (outcomes, sandbox, jobs topic)"""
    from pushstream.codecs.records import decode_jobs
    from pushstream.streams.kafka import read_topic

    statuses: dict[str, list[str]] = collections.defaultdict(list)
    for o in stack.outcomes.seen:
        if _mine(prefix)(o):
            statuses[o["message_id"]].append(o["status"])
    missing = [e["messageId"] for e in events if not set(statuses[e["messageId"]]) - {"duplicate"}]
    seen = {e["attributes"]["i"] for r in sandbox.requests(POST_EVENTS) for e in r["body"]["events"]
            if e["user_id"].startswith(prefix)}
    jobs: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for _, part, off, _, value in read_topic(stack.config.kafka.broker,
                                             [stack.config.topic("jobs", "pushwoosh-sandbox")], idle_timeout=3):
        for job in decode_jobs(value):
            if job.message_id.startswith(prefix):
                jobs[job.message_id].append((part, off))
    return (f"{len(missing)} without a terminal outcome, e.g. " + "; ".join(
        f"{m}: outcomes {statuses[m]}, sent {int(m.rsplit('-', 1)[1]) in seen}, jobs {jobs.get(m)}"
        for m in missing[:4]))
