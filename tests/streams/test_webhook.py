"""A webhook instance end to end: a real worker delivers tracks to the sandbox's receiver,
batched in Segment's groups and signed as Segment signs them, and keeps the guarantees the other
destinations keep (an outage, a 429, poison events in a batch, a wrong shared secret fixed)."""

from __future__ import annotations

import collections
import time
from typing import Any

import httpx
import msgspec
import pytest

from pushstream.streams.kafka.admin import read_topic
from pushstream.streams.local.stack import SANDBOX_HOOK_SECRET
from tests.support import SandboxClient, Stack, mine, targeted_events

pytestmark = pytest.mark.usefixtures("no_faults_left")
HOOK_PATH = "/hooks/faulty/track"


def shop_events(prefix: str, n: int, target: str = "hook", shops: str = "abc") -> list[dict[str, Any]]:
    events = targeted_events(prefix, n, target)
    for i, event in enumerate(events):
        event["properties"]["shop"] = shops[i % len(shops)]
    return events


def received(sandbox: SandboxClient, prefix: str, path: str = HOOK_PATH) -> list[dict[str, Any]]:
    """The sandbox's requests on `path` carrying this test's events, in order."""
    return [r for r in sandbox.requests(path)
            if isinstance(r["body"], list) and r["body"][0]["messageId"].startswith(prefix)]


def test_tracks_arrive_whole_grouped_by_url_and_headers_and_signed_as_segment_signs(faulty: Stack,
                                                                                    prefix: str) -> None:
    faulty.produce(shop_events(prefix, 150))
    outcomes = faulty.outcomes.wait(mine(prefix, "hook"), 150, timeout=60)
    assert {(o["status"], o["destination"], o["action"], o["mapping"]) for o in outcomes} == {
        ("delivered", "webhook", "send", "Events")}
    requests = received(faulty.sandbox, prefix)
    sent = collections.Counter(e["messageId"] for r in requests for e in r["body"])
    assert len(sent) == 150 and set(sent.values()) == {1}
    for r in requests:
        shops = {e["properties"]["shop"] for e in r["body"]}
        assert shops == {r["headers"]["X-Shop"]} and 1 <= len(r["body"]) <= 20, (shops, len(r["body"]))
        assert r["status"] == 200 and r["method"] == "POST" and r["signed"] == "first"
        assert r["headers"]["User-Agent"] == "Segment (Actions)" and r["headers"]["Content-Type"] == "application/json"
    assert requests[0]["body"][0]["type"] == "track" and "targets" in requests[0]["body"][0]["properties"]
    seen = msgspec.json.encode(outcomes).decode() + faulty.worker.output()
    assert SANDBOX_HOOK_SECRET not in seen and "rotated-secret" not in seen
    # Metrics count the requests under the URL's scheme and host: not a series per path or query.
    metrics = httpx.get(f"{faulty.worker.ops_url}/metrics", timeout=10).text
    host = faulty.sandbox.url.removeprefix("http://")
    assert f'pushstream_requests_total{{endpoint="http://{host}",instance="hook",status="200"}}' in metrics
    assert "/hooks/" not in metrics


def test_a_503_outage_then_recovery_delivers_everything_once(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=503, duration=8, path_prefix=HOOK_PATH)
    faulty.produce(shop_events(prefix, 60))
    outcomes = faulty.outcomes.wait(mine(prefix, "hook"), 60, timeout=90)
    assert collections.Counter(o["status"] for o in outcomes) == {"delivered": 60}
    assert max(o["attempts"] for o in outcomes) > 1
    statuses = collections.Counter(r["status"] for r in received(faulty.sandbox, prefix))
    assert statuses[503] >= 1 and statuses[200] >= 1


def test_a_429_with_retry_after_holds_the_instance_for_as_long_as_asked(faulty: Stack, prefix: str) -> None:
    faulty.sandbox.fault(status=429, retry_after="2", count=1, path_prefix=HOOK_PATH)
    faulty.produce(shop_events(prefix, 10, shops="a"))  # one group: one request, then its retry
    outcomes = faulty.outcomes.wait(mine(prefix, "hook"), 10, timeout=60)
    assert {o["status"] for o in outcomes} == {"delivered"}
    requests = received(faulty.sandbox, prefix)
    assert requests[0]["status"] == 429 and requests[1]["time"] - requests[0]["time"] >= 2.0


def test_poison_events_in_a_batch_are_rejected_alone(faulty: Stack, prefix: str) -> None:
    events = shop_events(prefix, 120)
    poison = {events[i]["messageId"] for i in (5, 60, 61)}
    for event in events:
        if event["messageId"] in poison:
            event["properties"]["bad"] = f"POISON-{event['messageId']}"
            faulty.sandbox.fault(status=400, body_contains=event["properties"]["bad"], path_prefix=HOOK_PATH,
                                 duration=120)
    faulty.produce(events)
    outcomes = faulty.outcomes.wait(mine(prefix, "hook"), 120, timeout=90)
    by_status = collections.defaultdict(set)
    for o in outcomes:
        by_status[o["status"]].add(o["message_id"])
    assert by_status["rejected"] == poison and len(by_status["delivered"]) == 117
    assert all(f"POISON-{o['message_id']}" in o["reason"] for o in outcomes if o["status"] == "rejected")
    # The console's samples of the refused requests show them as sent, the signature masked.
    samples = [msgspec.json.decode(v) for *_, v in read_topic(faulty.config.kafka, [faulty.config.topic("samples")],
                                                                idle_timeout=2)]
    refused = [s for s in samples if s.get("instance") == "hook" and s.get("http_status") == 400
               and prefix in msgspec.json.encode(s["event"]).decode()]
    assert refused and all(s["request"]["headers"]["X-Signature"] == "********" for s in refused)
    assert all(s["request"]["url"].endswith(HOOK_PATH) and s["request"]["method"] == "POST" for s in refused)
    assert SANDBOX_HOOK_SECRET not in msgspec.json.encode(samples).decode()


def test_a_refused_shared_secret_parks_the_events_until_it_is_accepted(faulty: Stack, prefix: str) -> None:
    """hook-rotated's signature is refused (401): its events wait behind an open circuit probed
    with one real request at a time (the webhook has no credential check), then all go once."""
    faulty.produce(shop_events(prefix, 40, "hookrotated"))
    deadline = time.monotonic() + 30
    while not received(faulty.sandbox, prefix, "/hooks/rotated/track") and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)
    assert not [o for o in faulty.outcomes.seen if mine(prefix, "hook-rotated")(o)]  # waiting, not rejected
    assert {r["status"] for r in received(faulty.sandbox, prefix, "/hooks/rotated/track")} == {401}
    faulty.sandbox.accept(webhook="rotated-secret")
    outcomes = faulty.outcomes.wait(mine(prefix, "hook-rotated"), 40, timeout=90)
    assert collections.Counter(o["status"] for o in outcomes) == {"delivered": 40}
    log = faulty.worker.output()
    assert log.count("instance=hook-rotated circuit OPEN") == 1 and "instance=hook-rotated circuit closed" in log
