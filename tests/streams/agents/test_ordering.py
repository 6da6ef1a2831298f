"""Per-user order (`ordering = "per_user"`) end to end: a user's first event fails with 503 for 15 s;
its later events wait behind it and reach the destination in order, other users' events flow
on, and an unordered twin instance shows the overtaking the option prevents. Order also holds
across a kill -9 of the worker while the user's jobs wait. Real broker, sandbox and worker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pushstream.streams.local.stack import local_config, mapped_instance
from tests.support import POST_EVENTS, SandboxClient, Stack, close, launch, mine, write_track_mapping

FAULT_SECONDS = 15.0


def _instances(sandbox_url: str) -> str:
    return "".join(mapped_instance(sandbox_url, f"pw-{name}", f"APP-{name.upper()}",
                                   'type = "track" and properties.ordertest = true', mapping="ordered",
                                   options=f'ordering = "{ordering}"')
                   for name, ordering in (("ordered", "per_user"), ("unordered", "unordered")))


def _launch(broker_url: str, sandbox: SandboxClient, workdir: Path, name: str) -> Stack:
    write_track_mapping(workdir)
    text = local_config(broker_url, sandbox.url, prefix=name, app_id=f"pushstream-{name}", input_topic=f"{name}-events",
                        partitions=4, batch_window=0.3,
                        extra_pipeline="inline_retries = 1\nbackoff_base = 0.5\nbackoff_max = 3.0\nmax_attempts = 100")
    return launch(text.split("[[destinations]]")[0] + _instances(sandbox.url), name, sandbox, workdir)


def _event(prefix: str, user: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": f"{prefix}-{user}-{n:03d}", "userId": f"{prefix}-{user}", "event": "Step",
            "timestamp": "2026-11-23T10:00:00.000Z", "properties": {"ordertest": True, "n": n, **extra}}


def _delivered_order(sandbox: SandboxClient, app_code: str, user: str) -> list[int]:
    """The `n` of each of the user's events in the requests the sandbox accepted, in arrival order."""
    return [e["attributes"]["n"] for r in sandbox.requests(POST_EVENTS)
            if r["headers"].get("X-PW-Appcode") == app_code and r.get("status") == 200
            for e in r["body"]["events"] if e["user_id"] == user]


def _first_failure(sandbox: SandboxClient, marker: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.get("status") == 503 and marker in str(r.get("body")) for r in sandbox.requests(POST_EVENTS)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no request with {marker} was refused")


def _in_order(seen: list[int]) -> bool:
    """Each event's first delivery comes after the first delivery of every earlier one (a
    redelivery after a crash may repeat events; it must not reorder them)."""
    firsts = list(dict.fromkeys(seen))
    return firsts == sorted(firsts)


@pytest.fixture
def hot_user_fault(sandbox: SandboxClient, prefix: str, no_faults_left: None) -> str:
    marker = f"{prefix}-first"
    sandbox.fault(status=503, body_contains=marker, until=time.time() + FAULT_SECONDS)
    return marker


def test_a_users_events_wait_behind_its_failing_first_one_and_others_flow(
        broker: Any, sandbox: SandboxClient, workdir: Path, prefix: str, hot_user_fault: str) -> None:
    stack = _launch(broker.url, sandbox, workdir, "ordered")
    try:
        hot = f"{prefix}-hot"
        stack.produce([_event(prefix, "hot", 0, marker=hot_user_fault)])
        _first_failure(sandbox, hot_user_fault)
        others = [_event(prefix, f"u{u}", n) for n in range(40) for u in range(5)]
        stack.produce([_event(prefix, "hot", n) for n in range(1, 60)] + others)
        ordered = stack.outcomes.wait(mine(prefix, "pw-ordered"), 260, timeout=120)
        unordered = stack.outcomes.wait(mine(prefix, "pw-unordered"), 260, timeout=60)
    finally:
        stack.worker.stop()
        close(stack)
    assert {o["status"] for o in ordered + unordered} == {"delivered"}
    assert _delivered_order(sandbox, "APP-ORDERED", hot) == list(range(60))
    control = _delivered_order(sandbox, "APP-UNORDERED", hot)
    assert sorted(control) == list(range(60)) and control[-1] == 0  # without the option, 1..59 overtake 0
    first = next(o for o in ordered if o["message_id"] == f"{prefix}-hot-000")
    assert first["attempts"] > 2
    rest = [o for o in ordered if "-hot-" not in o["message_id"]]
    assert all(o["attempts"] == 1 and o["at"] < first["at"] for o in rest)  # other users were not held
    for u in range(5):
        assert _delivered_order(sandbox, "APP-ORDERED", f"{prefix}-u{u}") == list(range(40))


def test_order_holds_across_a_kill_9_while_a_user_waits(
        broker: Any, sandbox: SandboxClient, workdir: Path, prefix: str, hot_user_fault: str) -> None:
    stack = _launch(broker.url, sandbox, workdir, "ordered-k9")
    try:
        hot = f"{prefix}-hot"
        stack.produce([_event(prefix, "hot", 0, marker=hot_user_fault)])
        _first_failure(sandbox, hot_user_fault)
        stack.produce([_event(prefix, "hot", n) for n in range(1, 40)])
        stack.outcomes.wait(mine(prefix, "pw-unordered"), 39)  # the twin delivered them: they were read
        stack.worker.kill()
        stack.worker = _launch(broker.url, sandbox, workdir, "ordered-k9").worker
        stack.produce([_event(prefix, "hot", n) for n in range(40, 60)])
        outcomes = stack.outcomes.wait(lambda o: mine(prefix, "pw-ordered")(o) and o["status"] == "delivered", 60,
                                       timeout=120)
    finally:
        stack.worker.stop()
        close(stack)
    assert len({o["message_id"] for o in outcomes}) == 60
    seen = _delivered_order(sandbox, "APP-ORDERED", hot)
    assert sorted(set(seen)) == list(range(60)) and _in_order(seen), seen
