"""End to end: real broker (Tansu), real sandbox HTTP server, real worker process."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from pushstream.streams.local.samples import sample_events
from pushstream.streams.local.stack import local_config

from ..conftest import LocalBroker, SandboxClient, Stack, close, launch

POST_EVENTS = "/integration-segment/v1/post-events"
TRACK_USER = "/integration-segment/v1/track-user"
HANDLE = "/api/integration/segment/handle"


def _mine(prefix: str) -> Any:
    return lambda o: (o.get("message_id") or "").startswith(prefix)


def _segment_batch_element(ev: dict[str, Any]) -> dict[str, Any]:
    """What Segment's Pushwoosh performBatch writes for one track event (written out by hand)."""
    return {"user_id": ev["userId"], "device_id": ev["context"]["device"]["id"],
            "device_platform": ev["context"]["device"]["type"], "app_id": "SANDBOX-APP",
            "name": ev.get("event", ev.get("name")), "timestamp": ev["timestamp"], "attributes": ev["properties"]}


def test_250_track_events_go_in_batches_of_at_most_100(stack: Stack, prefix: str) -> None:
    events = sample_events(250, seed=1, prefix=prefix, mix="track")
    stack.produce(events)
    outcomes = stack.outcomes.wait(_mine(prefix), 500)
    pushwoosh = [o for o in outcomes if o["instance"] == "pushwoosh-sandbox"]
    assert len(pushwoosh) == 250 and {o["status"] for o in pushwoosh} == {"delivered"}
    assert collections.Counter(o["message_id"] for o in pushwoosh).most_common(1)[0][1] == 1
    assert all(o["attempts"] == 1 and o["http_status"] == 200 for o in pushwoosh)
    assert all(o["topic"] == "segment-events" and o["offset"] >= 0 for o in pushwoosh)

    requests = [r for r in stack.sandbox.requests(POST_EVENTS)  # batched bodies (app_id), this test's users
                if r["body"]["events"][0]["user_id"].startswith(prefix) and "app_id" in r["body"]["events"][0]]
    # A delivery starts as soon as 100 jobs wait, and takes what arrived meanwhile: the split
    # depends on how the 250 jobs arrive (e.g. 100 + 100 + 50, or 100 + 20 + 100 + 30), never
    # the cap or the count.
    sizes = sorted(len(r["body"]["events"]) for r in requests)
    assert sum(sizes) == 250 and max(sizes) == 100, sizes
    assert collections.Counter(o["batch_size"] for o in pushwoosh) == collections.Counter(
        n for n in sizes for _ in range(n))  # each outcome names the size of the request it went in
    assert all(r["headers"]["Authorization"] == "Token sandbox-pushwoosh-key" for r in requests)
    assert all(r["headers"]["X-PW-Appcode"] == "SANDBOX-APP" for r in requests)
    sent = sorted((e for r in requests for e in r["body"]["events"]), key=lambda e: (e["user_id"], e["timestamp"]))
    expected = sorted(map(_segment_batch_element, events), key=lambda e: (e["user_id"], e["timestamp"]))
    assert sent == expected


def test_a_full_request_goes_at_once_and_a_partial_one_waits_the_batch_window(
        broker: LocalBroker, sandbox: SandboxClient, workdir: Path, prefix: str) -> None:
    """`batch_window` is the longest a job waits for its batch to fill, not a period: with a
    10 s window, 100 track events (one full Pushwoosh request) go out at once, and 30 more wait
    the window and go as one request."""
    text = local_config(broker.url, sandbox.url, prefix="window", app_id="pushstream-window",
                        input_topic="window-events", partitions=4, batch_window=10.0)
    stack = launch(text.split('[[destinations]]\nname = "xtremepush-sandbox"')[0], "window", sandbox, workdir)
    try:
        events = sample_events(130, seed=2, prefix=prefix, mix="track")
        stack.produce(events[:100])
        full = stack.outcomes.wait(_mine(prefix), 100, settle=0)
        stack.produce(events[100:])
        partial = stack.outcomes.wait(_mine(prefix), 130, timeout=60)[100:]
    finally:
        close(stack)
    assert {o["status"] for o in full + partial} == {"delivered"}
    # latency_ms runs from routing to the response; the window from when the deliver agent read
    # the job. A full batch takes ~0.1 s here; 3 s is far from that and from the window.
    assert max(o["latency_ms"] for o in full) < 3_000 and {o["batch_size"] for o in full} == {100}
    assert min(o["latency_ms"] for o in partial) >= 10_000 and {o["batch_size"] for o in partial} == {30}


def test_only_track_page_screen_reach_the_track_event_action(stack: Stack, prefix: str) -> None:
    events = sample_events(120, seed=2, prefix=prefix)
    kinds = collections.Counter(e["type"] for e in events)
    assert kinds["identify"] and kinds["alias"] and kinds["group"]
    stack.produce(events)
    tracked = [e for e in events if e["type"] in ("track", "page", "screen")]
    identified = [e for e in events if e["type"] == "identify"]
    expected = len(tracked) + len(identified) + kinds["track"] + len(identified)  # pushwoosh + xtremepush
    outcomes = [o for o in stack.outcomes.wait(_mine(prefix), expected) if o["instance"] != "pushwoosh-custom"]
    assert len(outcomes) == expected
    by_action = collections.Counter((o["instance"], o["action"]) for o in outcomes)
    assert by_action[("pushwoosh-sandbox", "trackEvent")] == len(tracked)
    assert by_action[("pushwoosh-sandbox", "updateUserProfile")] == len(identified)
    assert by_action[("xtremepush-sandbox", "track")] == kinds["track"]
    assert by_action[("xtremepush-sandbox", "identify")] == len(identified)

    sent = [e for r in stack.sandbox.requests(POST_EVENTS) for e in r["body"]["events"]
            if e["user_id"].startswith(prefix) and "app_id" in e]
    assert sorted(e["name"] for e in sent) == sorted(e.get("event") or e["name"] for e in tracked)
    profiles = [r["body"] for r in stack.sandbox.requests(TRACK_USER) if r["body"]["user_id"].startswith(prefix)]
    assert len(profiles) == len(identified)
    assert all("email" not in p["attributes"] and "plan" in p["attributes"] for p in profiles)


def test_malformed_records_get_invalid_outcomes_and_the_stream_goes_on(stack: Stack, prefix: str) -> None:
    good = sample_events(3, seed=3, prefix=prefix, mix="track")
    bad = [
        b"this is not json",
        b"[1, 2, 3]",
        b'{"type": "track", "messageId": "x-missing-event"}',
        b'{"type": "track", "messageId": 5, "event": "E"}',
        b'{"type": "teleport", "messageId": "x"}',
        b'{"type": "track", "event": "\xff\xfe", "messageId": "bad-utf8"}',
        b'{"type": "track", "messageId": "big", "event": "E", "properties": {"blob": "' + b"x" * 900_000 + b'"}}',
    ]
    coords = stack.produce([good[0], *bad[:4], good[1], *bad[4:], good[2]])
    bad_coords = {c for i, c in enumerate(coords) if i not in (0, 5, 9)}
    assert None not in bad_coords and len(bad_coords) == len(bad)
    delivered = stack.outcomes.wait(_mine(prefix), 6)
    assert {o["status"] for o in delivered} == {"delivered"}
    invalid = stack.outcomes.wait(lambda o: (o["partition"], o["offset"]) in bad_coords, len(bad))
    assert {o["status"] for o in invalid} == {"invalid"}
    reasons = " | ".join(o["reason"] for o in invalid)
    assert "not JSON" in reasons and "expected a JSON object" in reasons
    assert "missing required field `event`" in reasons and "Expected `str`, got `int` - at `$.messageId`" in reasons
    assert "unknown event type 'teleport'" in reasons and "not UTF-8" in reasons
    assert "over the 32768-byte limit" in reasons


def test_custom_mapping_from_a_file_with_a_trigger(stack: Stack, prefix: str) -> None:
    base = {"type": "track", "userId": f"{prefix}-u", "timestamp": "2026-01-02T03:04:05Z",
            "context": {"library": {"name": "analytics.js"}}}
    events = [
        {**base, "messageId": f"{prefix}-big", "event": "Order Completed", "properties": {"revenue": 150, "currency": "EUR"}},
        {**base, "messageId": f"{prefix}-small", "event": "Order Completed", "properties": {"revenue": 50, "currency": "EUR"}},
        {**base, "messageId": f"{prefix}-other", "event": "Signed Up", "properties": {"revenue": 500}},
    ]
    stack.produce(events)
    outcomes = stack.outcomes.wait(lambda o: _mine(prefix)(o) and o["instance"] == "pushwoosh-custom", 1, settle=3)
    assert [(o["message_id"], o["mapping"], o["status"]) for o in outcomes] == [
        (f"{prefix}-big", "Orders only", "delivered")]
    (request,) = [r for r in stack.sandbox.requests(POST_EVENTS) if r["body"]["events"][0]["user_id"] == f"{prefix}-u"
                  and "app_code" in r["body"]["events"][0]]
    assert request["body"] == {"events": [{"user_id": f"{prefix}-u", "app_code": "SANDBOX-APP", "name": "order:EUR",
                                           "timestamp": "2026-01-02T03:04:05Z",
                                           "attributes": {"revenue": 150, "currency": "EUR", "channel": "ANALYTICS.JS"}}]}


def test_api_keys_never_reach_outcomes_or_logs(stack: Stack, prefix: str) -> None:
    stack.produce(sample_events(5, seed=4, prefix=prefix))
    stack.outcomes.wait(_mine(prefix), 5)
    for secret in ("sandbox-pushwoosh-key", "sandbox-xtremepush-key"):
        assert all(secret not in str(o) for o in stack.outcomes.seen)
        assert secret not in stack.worker.output()


def test_user_deletion_reaches_every_instance(stack: Stack, prefix: str) -> None:
    stack.produce([{"type": "delete", "messageId": f"{prefix}-del", "userId": f"{prefix}-gone"}])
    outcomes = stack.outcomes.wait(_mine(prefix), 3)
    assert sorted((o["instance"], o["action"], o["status"]) for o in outcomes) == [
        ("pushwoosh-custom", "deleteUser", "delivered"), ("pushwoosh-sandbox", "deleteUser", "delivered"),
        ("xtremepush-sandbox", "deleteUser", "delivered")]
    bodies = [r["body"] for r in stack.sandbox.requests() if r["path"].endswith(("/delete-user", "/delete"))]
    assert bodies.count({"external_id": f"{prefix}-gone"}) == 2 and {"userId": f"{prefix}-gone"} in bodies
