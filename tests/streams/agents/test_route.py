"""The route agent end to end: which events become which jobs, and every bad record one `invalid` outcome.
Real broker (Tansu), real sandbox HTTP server, real worker process."""

from __future__ import annotations

import collections
from typing import Any

import httpx

from pushstream.codecs.filters import sampled_in
from pushstream.streams.local.samples import sample_events
from tests.support import POST_EVENTS, TRACK_USER, Stack, mine


def test_only_track_page_screen_reach_the_track_event_action(stack: Stack, prefix: str) -> None:
    events = sample_events(120, seed=2, prefix=prefix)
    kinds = collections.Counter(e["type"] for e in events)
    assert kinds["identify"] and kinds["alias"] and kinds["group"]
    stack.produce(events)
    tracked = [e for e in events if e["type"] in ("track", "page", "screen")]
    identified = [e for e in events if e["type"] == "identify"]
    expected = len(tracked) + len(identified) + kinds["track"] + len(identified)  # pushwoosh + xtremepush
    outcomes = [o for o in stack.outcomes.wait(mine(prefix), expected) if o["instance"] != "pushwoosh-custom"]
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
        b'{"type": "track", "messageId": "x-bool-user", "userId": false, "event": "E"}',
        b'{"type": "track", "messageId": [5], "event": "E"}',
        b'{"type": "teleport", "messageId": "x"}',
        b'{"type": "track", "event": "\xff\xfe", "messageId": "bad-utf8"}',
        b'{"type": "track", "messageId": "big", "event": "E", "properties": {"blob": "' + b"x" * 900_000 + b'"}}',
    ]
    coords = stack.produce([good[0], *bad[:4], good[1], *bad[4:], good[2]])
    bad_coords = {c for i, c in enumerate(coords) if i not in (0, 5, 9)}
    assert None not in bad_coords and len(bad_coords) == len(bad)
    delivered = stack.outcomes.wait(mine(prefix), 6)
    assert {o["status"] for o in delivered} == {"delivered"}
    invalid = stack.outcomes.wait(lambda o: (o["partition"], o["offset"]) in bad_coords, len(bad))
    assert {o["status"] for o in invalid} == {"invalid"}
    reasons = " | ".join(o["reason"] for o in invalid)
    assert "not JSON" in reasons and "expected a JSON object" in reasons
    assert "`userId` must be a string or a number, not a boolean" in reasons
    assert "`messageId` must be a string or a number, not an array" in reasons
    assert "unknown event type 'teleport'" in reasons and "not UTF-8" in reasons
    assert "over the 32768-byte limit" in reasons


def test_malformed_records_mixed_into_valid_traffic(stack: Stack, prefix: str) -> None:
    valid = sample_events(1000, seed=9, prefix=prefix, mix="track")
    kinds = [b"{not json", b'{"type": "track", "messageId": {"n": 1}, "event": "E"}', b"\xff\xfe\xfd",
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
    delivered = stack.outcomes.wait(lambda o: mine(prefix, "pushwoosh-sandbox")(o), 1000, timeout=120)
    assert len(delivered) == 1000 and {o["status"] for o in delivered} == {"delivered"}


def test_custom_mapping_from_a_file_with_a_trigger(stack: Stack, prefix: str) -> None:
    base = {"type": "track", "userId": f"{prefix}-u", "timestamp": "2026-01-02T03:04:05Z",
            "context": {"library": {"name": "analytics.js"}}}
    events = [
        {**base, "messageId": f"{prefix}-big", "event": "Order Completed", "properties": {"revenue": 150, "currency": "EUR"}},
        {**base, "messageId": f"{prefix}-small", "event": "Order Completed", "properties": {"revenue": 50, "currency": "EUR"}},
        {**base, "messageId": f"{prefix}-other", "event": "Signed Up", "properties": {"revenue": 500}},
    ]
    stack.produce(events)
    outcomes = stack.outcomes.wait(lambda o: mine(prefix)(o) and o["instance"] == "pushwoosh-custom", 1, linger=3)
    assert [(o["message_id"], o["mapping"], o["status"]) for o in outcomes] == [
        (f"{prefix}-big", "Orders only", "delivered")]
    (request,) = [r for r in stack.sandbox.requests(POST_EVENTS) if r["body"]["events"][0]["user_id"] == f"{prefix}-u"
                  and "app_code" in r["body"]["events"][0]]
    assert request["body"] == {"events": [{"user_id": f"{prefix}-u", "app_code": "SANDBOX-APP", "name": "order:EUR",
                                           "timestamp": "2026-01-02T03:04:05Z",
                                           "attributes": {"revenue": 150, "currency": "EUR", "channel": "ANALYTICS.JS"}}]}


def test_api_keys_never_reach_outcomes_or_logs(stack: Stack, prefix: str) -> None:
    stack.produce(sample_events(5, seed=4, prefix=prefix))
    stack.outcomes.wait(mine(prefix), 5)
    for secret in ("sandbox-pushwoosh-key", "sandbox-xtremepush-key"):
        assert all(secret not in str(o) for o in stack.outcomes.seen)
        assert secret not in stack.worker.output()


def test_odd_json_gets_one_precise_invalid_outcome_each(stack: Stack, prefix: str) -> None:
    """Nesting too deep for the decoder, a number out of range and a repeated `type` key: each
    record one `invalid` outcome with its own reason (they used to say RecursionError, "expected
    a JSON object" and "unknown event type 'identify'"), and no traceback in the worker's log."""
    deep = b'{"type": "track", "messageId": "d", "event": "E", "properties": {"a": ' + b"[" * 5_000 + b"]" * 5_000 + b"}}"
    odd = [deep, b'{"type": "track", "messageId": "n", "event": "E", "properties": {"n": 1e400}}',
           b'{"type": "track", "type": "identify", "messageId": "t", "event": "E"}']
    good = sample_events(1, seed=5, prefix=prefix, mix="track")
    coords = stack.produce([*odd, *good])
    bad = set(coords[:3])
    invalid = stack.outcomes.wait(lambda o: (o.get("partition"), o.get("offset")) in bad
                                  and o["topic"] == "segment-events", 3)
    reasons = {(o["partition"], o["offset"]): o["reason"] for o in invalid}
    assert reasons[coords[0]].startswith("nested 5002 levels deep")
    assert reasons[coords[1]].startswith("number out of range")
    assert reasons[coords[2]] == "duplicate key `type`"
    assert {o["status"] for o in stack.outcomes.wait(mine(prefix), 1)} == {"delivered"}
    assert "RecursionError" not in stack.worker.output()


def test_events_with_an_empty_message_id_are_never_merged(stack: Stack, prefix: str) -> None:
    """Three different events for one user, each `"messageId": ""`: all three delivered (they used
    to become one delivery and two `duplicate`s), each with its own derived id, flagged as such;
    an invalid record keeps the messageId it had."""
    user = f"{prefix}-same-user"
    events = [{"type": "track", "messageId": "", "userId": user, "event": f"E{i}",
               "timestamp": "2026-11-30T10:00:00.000Z", "properties": {"i": i}} for i in range(3)]
    coords = stack.produce([*events, {"type": "track", "messageId": f"{prefix}-kept", "userId": True}])
    derived = {f"pushstream:segment-events:{p}:{o}" for p, o in coords[:3]}
    outcomes = stack.outcomes.wait(lambda o: o.get("message_id") in derived, 6)  # Pushwoosh + Xtremepush each
    assert {o["status"] for o in outcomes} == {"delivered"} and all(o["message_id_derived"] for o in outcomes)
    assert {o["message_id"] for o in outcomes} == derived
    sent = [e for r in stack.sandbox.requests(POST_EVENTS) for e in r["body"]["events"] if e["user_id"] == user]
    assert sorted(e["name"] for e in sent) == ["E0", "E1", "E2"]
    (invalid,) = stack.outcomes.wait(lambda o: o.get("message_id") == f"{prefix}-kept", 1)
    assert invalid["status"] == "invalid" and "userId" in invalid["reason"]


def _filter_event(prefix: str, n: int, event: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": f"{prefix}-{event}-{n:04d}", "userId": f"{prefix}-u{n % 7}", "event": event,
            "timestamp": "2026-11-23T10:00:00.000Z", "properties": {"filtertest": True, **properties}}


def test_destination_filters_drop_sample_and_strip_properties(stack: Stack, prefix: str) -> None:
    # pushwoosh-filtered (tests/support.py): drop Debug, sample 30% of Sampled, remove `secret` from
    # every track event, keep only plan (and the trigger's filtertest) of an Upgraded.
    debug = [_filter_event(prefix, i, "Debug") for i in range(20)]
    sampled = [_filter_event(prefix, i, "Sampled", i=i) for i in range(1000)]
    upgraded = [_filter_event(prefix, i, "Upgraded", plan="pro", seats=i, secret="s3") for i in range(30)]
    other = [_filter_event(prefix, i, "Other", keep=i, secret="s3") for i in range(30)]
    stack.produce([*debug, *sampled, *upgraded, *other])
    outcomes = stack.outcomes.wait(mine(prefix, "pushwoosh-filtered"), 1080, timeout=120)
    assert len(outcomes) == 1080
    status = {o["message_id"]: o for o in outcomes}
    assert {status[e["messageId"]]["status"] for e in debug} == {"filtered"}
    assert {status[e["messageId"]]["reason"] for e in debug} == {"filter 'No debug events' dropped the event"}
    kept = {e["messageId"] for e in sampled if status[e["messageId"]]["status"] == "delivered"}
    out = {e["messageId"] for e in sampled if status[e["messageId"]]["status"] == "filtered"}
    assert len(kept) + len(out) == 1000 and 240 <= len(kept) <= 360
    assert kept == {e["messageId"] for e in sampled if sampled_in(e["messageId"], 0.3)}
    assert {status[m]["error_code"] for m in out} == {"FILTERED"}
    assert all(status[e["messageId"]]["status"] == "delivered" for e in upgraded + other)
    metrics = httpx.get(f"{stack.worker.ops_url}/metrics", timeout=10).text
    assert ('pushstream_outcomes_total{action="",error_code="FILTERED",instance="pushwoosh-filtered",'
            f'status="filtered"}} {20 + len(out)}.0') in metrics

    sent = [e for r in stack.sandbox.requests(POST_EVENTS) if r["headers"].get("X-PW-Appcode") == "APP-FILTERED"
            for e in r["body"]["events"] if e["user_id"].startswith(prefix)]
    assert collections.Counter(e["name"] for e in sent) == {"Sampled": len(kept), "Upgraded": 30, "Other": 30}
    assert sorted(e["attributes"]["i"] for e in sent if e["name"] == "Sampled") == sorted(
        int(m.rsplit("-", 1)[1]) for m in kept)
    assert all(e["attributes"] == {"plan": "pro", "filtertest": True} for e in sent if e["name"] == "Upgraded")
    assert sorted(e["attributes"]["keep"] for e in sent if e["name"] == "Other") == list(range(30))
    assert not any("secret" in e["attributes"] for e in sent)

    # Replayed, the sample keeps the same events: those it kept come back as duplicates.
    stack.produce(sampled)
    again = stack.outcomes.wait(mine(prefix, "pushwoosh-filtered"), 2080, timeout=120)[1080:]
    assert {o["message_id"] for o in again if o["status"] == "filtered"} == out
    assert {o["message_id"] for o in again if o["status"] == "duplicate"} == kept
