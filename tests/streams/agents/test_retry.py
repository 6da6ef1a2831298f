"""The retry agent end to end: 503s and 429s until recovery, an exhausted retry window, dead letters and
replay. Real broker, sandbox faults, real worker process."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import httpx
import pytest

from pushstream.codecs.records import decode_jobs
from pushstream.streams.commands.replay import replay
from pushstream.streams.kafka.admin import read_topic
from pushstream.streams.local.broker import LocalBroker
from pushstream.streams.local.stack import SANDBOX_PW_KEY, local_config, local_env, start_worker
from tests.support import (
    SandboxClient,
    Stack,
    close,
    launch,
    mine,
    sent_for_app,
    targeted_events,
    targeted_instances,
    write_track_mapping,
)

pytestmark = pytest.mark.usefixtures("no_faults_left")
OUTAGE = 45.0  # seconds: long enough for the probes to back off to their 5 s and many parked jobs to wait


def test_503_for_20s_then_recovery_delivers_everything(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=503, duration=20, appcode="APP-FLAKY")
    started = time.time()
    faulty.produce(targeted_events(prefix, 50, "flaky"))
    outcomes = faulty.outcomes.wait(mine(prefix), 50, timeout=120)
    recovered = max(o["last_attempt_at"] for o in outcomes) - started
    assert len(outcomes) == 50 and {o["status"] for o in outcomes} == {"delivered"}
    assert len({o["message_id"] for o in outcomes}) == 50
    assert all(o["attempts"] > 1 for o in outcomes)
    statuses = collections.Counter(r["status"] for r in sent_for_app(faulty.sandbox, prefix, "APP-FLAKY"))
    assert statuses[503] >= 2 and statuses[200] >= 1
    print(f"\n503 window 20s: all 50 delivered {recovered:.1f}s after produce; "
          f"max attempts {max(o['attempts'] for o in outcomes)}; requests {dict(statuses)}")


def test_429_with_retry_after_pauses_the_instance(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=429, retry_after="2", count=1, appcode="APP-FLAKY")
    faulty.produce(targeted_events(prefix, 10, "flaky"))
    outcomes = faulty.outcomes.wait(mine(prefix), 10, timeout=60)
    assert {o["status"] for o in outcomes} == {"delivered"}
    requests = sent_for_app(faulty.sandbox, prefix, "APP-FLAKY")
    assert requests[0]["status"] == 429
    # Nothing reached the instance for the 2 s it asked for (a lower bound: slowness cannot break it).
    assert requests[1]["time"] - requests[0]["time"] >= 2.0


def test_exhausted_retry_window_dead_letters_and_replay_delivers(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=503, appcode="APP-SHORT", duration=120)
    faulty.produce(targeted_events(prefix, 8, "short"))
    failed = faulty.outcomes.wait(mine(prefix), 8, timeout=60)
    assert {o["status"] for o in failed} == {"failed"}
    assert all(o["error_code"] == "SERVICE_UNAVAILABLE" and o["attempts"] >= 2 for o in failed)
    faulty.sandbox.clear_faults()
    replayed = sum(replay(faulty.config, instance="pw-short", error="503").values())
    assert replayed >= 8  # dead letters of earlier runs of this instance would be replayed too
    delivered = faulty.outcomes.wait(lambda o: mine(prefix)(o) and o["status"] == "delivered", 8, timeout=60)
    assert sorted(o["message_id"] for o in delivered) == sorted(o["message_id"] for o in failed)
    for secret in ("sandbox-pushwoosh-key",):
        assert secret not in faulty.worker.output()


def test_a_retry_after_holds_the_requests_already_queued_in_the_rate_limiter(faulty: Stack, prefix: str) -> None:
    """pw-paced sends at most 2 requests/s, so a step's requests queue in its limiter. A 429 with
    Retry-After: 3 on the first must hold every later request until it has passed (requests
    that were already waiting used to go out 0.5 s and 1 s after it)."""
    faulty.sandbox.fault(status=429, retry_after="3", count=1, appcode="APP-PACED")
    faulty.produce(targeted_events(prefix, 400, "paced"))
    outcomes = faulty.outcomes.wait(mine(prefix), 400, timeout=90)
    assert {o["status"] for o in outcomes} == {"delivered"}
    requests = sent_for_app(faulty.sandbox, prefix, "APP-PACED")
    assert requests[0]["status"] == 429 and len(requests) >= 5
    gaps = [round(r["time"] - requests[0]["time"], 2) for r in requests[1:]]
    assert min(gaps) >= 3.0, gaps


def test_a_wrong_key_pauses_only_its_instance_and_the_fix_delivers_every_event_once(faulty: Stack,
                                                                                   prefix: str) -> None:
    """pw-rotated's key is refused (401) from the worker's start. Its events wait (none rejected,
    none dead-lettered), the log says so once, other instances flow on; once the key is accepted
    at the destination the instance resumes by itself and every event is delivered once. (With
    a wrong key every event used to be rejected, and dedup then blocked sending it again.)"""
    log = faulty.worker.output()
    assert log.count("instance=pw-rotated circuit OPEN: credentials refused") == 1, log[-3000:]
    faulty.produce(targeted_events(prefix, 200, "rotated,fast"))
    fast = faulty.outcomes.wait(mine(prefix, "pw-fast"), 200, timeout=60)
    assert {o["status"] for o in fast} == {"delivered"}
    time.sleep(3)
    assert not [o for o in faulty.outcomes.seen if mine(prefix, "pw-rotated")(o)]  # waiting, not rejected
    metrics = httpx.get(f"{faulty.worker.ops_url}/metrics", timeout=10).text
    assert 'pushstream_instance_paused{instance="pw-rotated"} 1.0' in metrics
    faulty.sandbox.accept(pushwoosh=("rotated-key", "APP-ROTATED"))  # the key, rotated at the destination
    rotated = faulty.outcomes.wait(mine(prefix, "pw-rotated"), 200, timeout=90)
    assert collections.Counter(o["status"] for o in rotated) == {"delivered": 200}
    assert len({o["message_id"] for o in rotated}) == 200
    log = faulty.worker.output()
    assert log.count("instance=pw-rotated circuit OPEN") == 1 and "instance=pw-rotated circuit closed" in log


def test_a_45_s_outage_parks_jobs_without_churn_and_drains_fast(broker: LocalBroker, sandbox: SandboxClient,
                                                                workdir: Path, prefix: str) -> None:
    """503 for 45 s while 10,000 events arrive, default backoff settings: every event delivered
    once; each job written to the retry topic at most attempts + 1 times; rewrites without an
    attempt at most 1 per 10 retried jobs; the last delivered at most 15 s after recovery. (Each
    job used to back off on its own and was written back every few seconds while it waited.)"""
    text = local_config(broker.url, sandbox.url, prefix="outage", app_id="pushstream-outage",
                        input_topic="outage-events", partitions=4, batch_window=0.2)
    text = text.split("[[destinations]]")[0] + targeted_instances(sandbox.url, ("outage",))
    write_track_mapping(workdir)
    stack = launch(text, "outage", sandbox, workdir)
    try:
        sandbox.fault(status=503, duration=OUTAGE, appcode="APP-OUTAGE")
        recovered_at = time.time() + OUTAGE
        events = targeted_events(prefix, 10_000, "outage")
        for i in range(0, 10_000, 1_000):  # arriving over the outage
            stack.produce(events[i:i + 1_000])
            time.sleep(max(0.0, min(OUTAGE / 12, recovered_at - 5 - time.time())))
        outcomes = stack.outcomes.wait(lambda o: mine(prefix)(o) and o["status"] != "duplicate", 10_000,
                                       timeout=240, linger=2)
        assert collections.Counter(o["status"] for o in outcomes) == {"delivered": 10_000}
        assert len({o["message_id"] for o in outcomes}) == 10_000
        attempts = {o["message_id"]: o["attempts"] for o in outcomes}
        last = max(o["last_attempt_at"] for o in outcomes)
        writes: dict[str, list[int]] = collections.defaultdict(list)
        for _, _, _, _, value in read_topic(stack.config.kafka.broker, [stack.config.topic("retry", "pw-outage")],
                                            idle_timeout=3):
            for job in decode_jobs(value):
                if job.message_id.startswith(prefix):
                    writes[job.message_id].append(job.attempts)
        over = {m: (w, attempts[m]) for m, w in writes.items() if len(w) > attempts[m] + 1}
        assert not over, list(over.items())[:5]
        rewrites = sum(sum(1 for a, b in zip(w, w[1:], strict=False) if a == b) for w in writes.values())
        print(f"\noutage {OUTAGE:.0f} s: {len(writes)} jobs through the retry topic, {sum(map(len, writes.values()))} "
              f"records, {rewrites} rewrites without an attempt; last delivered {last - recovered_at:.1f} s "
              f"after recovery")
        assert rewrites <= len(writes) / 10
        assert last - recovered_at <= 15.0
    finally:
        sandbox.clear_faults()
        close(stack)


def test_a_job_waiting_for_its_backoff_is_not_written_again(faulty: Stack, prefix: str) -> None:
    """One 503 with Retry-After: 8 (the circuit stays closed): each job goes to the retry topic
    once and is delivered after the 8 s; it used to go back on the topic every 5 s it waited."""
    faulty.sandbox.fault(status=503, retry_after="8", count=1, appcode="APP-FLAKY")
    faulty.produce(targeted_events(prefix, 10, "flaky"))
    outcomes = faulty.outcomes.wait(mine(prefix), 10, timeout=60)
    assert {o["status"] for o in outcomes} == {"delivered"} and {o["attempts"] for o in outcomes} == {2}
    records = collections.Counter(
        job.message_id for *_, value in read_topic(faulty.config.kafka.broker,
                                                   [faulty.config.topic("retry", "pw-flaky")], idle_timeout=3)
        for job in decode_jobs(value) if job.message_id.startswith(prefix))
    assert len(records) == 10 and set(records.values()) == {1}, records
    requests = sent_for_app(faulty.sandbox, prefix, "APP-FLAKY")
    assert requests[-1]["time"] - requests[0]["time"] >= 8.0


def test_sigterm_while_an_open_circuit_holds_jobs_stops_the_worker_and_loses_none(
        broker: LocalBroker, sandbox: SandboxClient, workdir: Path, prefix: str) -> None:
    """A refused key holds its instance's jobs in the retry agent's take. Faust waits for every
    held record to be acked before it stops (or lets a rebalance go on): the worker used to sit
    in `wait_empty` until killed. Now the take goes back to the retry topic and the worker stops
    on SIGTERM; restarted once the key is accepted, it delivers every event once."""
    text = local_config(broker.url, sandbox.url, prefix="held", app_id="pushstream-held",
                        input_topic="held-events", partitions=4, batch_window=0.2)
    text = text.split("[[destinations]]")[0] + targeted_instances(sandbox.url, ("held",))  # APP-HELD: refused
    write_track_mapping(workdir)
    stack = launch(text, "held", sandbox, workdir)
    try:
        stack.produce(targeted_events(prefix, 100, "held"))
        deadline = time.monotonic() + 60
        while "instance=pw-held holds" not in stack.worker.output() and time.monotonic() < deadline:
            time.sleep(0.3)  # parked on the retry topic, then held by the retry agent
        stack.worker.stop()  # SIGTERM; SIGKILL only after 30 s
        log = stack.worker.output()
        assert stack.worker.process.returncode != -9 and "wait_empty: Waiting for tasks" not in log, log[-3000:]
        assert "instance=pw-held" in log and "held jobs written back to the retry topic" in log
        sandbox.accept(pushwoosh=(SANDBOX_PW_KEY, "APP-HELD"))
        stack.worker = start_worker(workdir, workdir / "held.toml", local_env(), name="held")
        held = stack.outcomes.wait(mine(prefix, "pw-held"), 100, timeout=90)
        assert collections.Counter(o["status"] for o in held) == {"delivered": 100}
        assert len({o["message_id"] for o in held}) == 100
    finally:
        close(stack)



def test_a_second_worker_joining_during_an_outage_rebalances_and_loses_none(
        broker: LocalBroker, sandbox: SandboxClient, workdir: Path, prefix: str) -> None:
    """The first worker holds a refused key's jobs when a second joins the group: the revocation
    waits for held records to be acked, so the hold goes back to the retry topic and the
    rebalance completes (both workers log Ready for the new generation). Once the key is
    accepted, every event is delivered once, by whichever worker owns its partition."""
    text = local_config(broker.url, sandbox.url, prefix="heldrb", app_id="pushstream-heldrb",
                        input_topic="heldrb-events", partitions=4, batch_window=0.2)
    text = text.split("[[destinations]]")[0] + targeted_instances(sandbox.url, ("heldrb",))  # refused
    write_track_mapping(workdir)
    stack = launch(text, "heldrb", sandbox, workdir)
    second = None
    try:
        stack.produce(targeted_events(prefix, 100, "heldrb"))
        deadline = time.monotonic() + 60
        while "instance=pw-heldrb holds" not in stack.worker.output() and time.monotonic() < deadline:
            time.sleep(0.3)
        second = start_worker(workdir, workdir / "heldrb.toml", local_env(), name="heldrb-2")  # waits for Ready
        assert "held jobs written back to the retry topic" in stack.worker.output()
        sandbox.accept(pushwoosh=(SANDBOX_PW_KEY, "APP-HELDRB"))
        held = stack.outcomes.wait(mine(prefix, "pw-heldrb"), 100, timeout=90)
        assert collections.Counter(o["status"] for o in held) == {"delivered": 100}
        assert len({o["message_id"] for o in held}) == 100
        assert "wait_empty: Waiting for tasks" not in stack.worker.output()
    finally:
        if second is not None:
            second.stop()
        close(stack)
