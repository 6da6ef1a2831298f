"""The event tester's pure half: one event's requests for one instance, as shown to people."""

from __future__ import annotations

import msgspec

from pushstream.codecs.config import load_config
from pushstream.codecs.tester import builtin_events, plan_test, show_request

CONFIG = """
[[destinations]]
name = "pw"
type = "pushwoosh"
settings = { pushwooshAPIKey = "pw-secret", pushwooshAppCode = "APP-1", baseUrl = "https://pw.example/" }

[[destinations.filters]]
title = "No debug"
if = 'event = "Debug"'
actions = [{ type = "drop" }]

[[destinations]]
name = "xp"
type = "xtremepush"
settings = { url = "https://xp.example/", apiKey = "xp-secret" }
presets = { "Send Analytics Events" = { enabled = false } }
"""


def test_the_built_in_track_makes_one_masked_request_for_its_instance_only() -> None:
    config = load_config(CONFIG, {})
    track, identify = (msgspec.json.encode(e) for e in builtin_events(0))
    run = plan_test(config, config.instance("pw"), track)
    assert run.message_id and run.message_id.startswith("pushstream-test-") and not run.outcomes
    (shown,) = [show_request(config.instance("pw"), p) for p in run.plans]
    assert shown["url"] == "https://pw.example/integration-segment/v1/post-events"
    assert shown["headers"]["Authorization"] == "Token ********" and "pw-secret" not in str(shown)
    assert shown["mappings"] == ["Track Events (trackEvent)"] and shown["events"] == 1
    assert shown["body"]["events"][0]["timestamp"] == "1970-01-01T00:00:00.000Z"
    assert plan_test(config, config.instance("xp"), track).plans == []
    (xp,) = plan_test(config, config.instance("xp"), identify).plans
    assert show_request(config.instance("xp"), xp)["headers"]["Authorization"] == "Basic ********"


def test_a_filtered_or_invalid_event_says_why_and_makes_no_request() -> None:
    config = load_config(CONFIG, {})
    debug = b'{"type": "track", "messageId": "d", "userId": "u", "event": "Debug", "timestamp": "2024-01-01T00:00:00Z"}'
    run = plan_test(config, config.instance("pw"), debug)
    assert run.plans == [] and [(o.status, o.reason) for o in run.outcomes] == [
        ("filtered", "filter 'No debug' dropped the event")]
    bad = plan_test(config, config.instance("pw"), b'{"type": "track"')
    assert bad.plans == [] and bad.invalid and bad.invalid.startswith("not JSON")
