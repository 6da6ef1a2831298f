"""The Tracking API's pure part: auth, limits, and the enrichment Segment's API applies."""

from __future__ import annotations

import base64
import datetime as dt
import itertools

import msgspec
import pytest

from pushstream.codecs.config import ConfigError, load_config
from pushstream.codecs.intake import (
    MAX_BATCH_BYTES,
    PATHS,
    IntakeError,
    Source,
    authenticate,
    events_of,
    parse_body,
    settings_for,
)

WEB = Source("web", "wk-web", "segment-events")
APP = Source("app", "wk-app", "app-events")
NOW = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC).timestamp()


def _ids() -> object:
    counter = itertools.count()
    return lambda: f"gen-{next(counter)}"


def _basic(key: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()


def test_the_write_key_comes_from_basic_auth_or_the_body() -> None:
    assert authenticate(_basic("wk-app"), {}, [WEB, APP]) is APP
    assert authenticate(None, {"writeKey": "wk-web"}, [WEB, APP]) is WEB
    for auth, body in ((None, {}), (_basic("nope"), {}), ("Basic !!!", {}), (None, {"writeKey": 5})):
        with pytest.raises(IntakeError) as err:
            authenticate(auth, body, [WEB, APP])
        assert err.value.status == 401 and err.value.code == "unauthorized"
    assert "wk-web" not in repr(WEB)


def test_bodies_over_500_kb_and_bodies_that_are_not_json_objects_are_400() -> None:
    with pytest.raises(IntakeError, match="over the 512,000-byte \\(500 KB\\) limit per request") as err:
        parse_body(b" " * (MAX_BATCH_BYTES + 1))
    assert err.value.status == 400
    for raw in (b"{not json", b"[1]"):
        with pytest.raises(IntakeError) as err:
            parse_body(raw)
        assert err.value.status == 400 and err.value.code == "invalid_request"


def test_a_single_call_takes_its_type_from_the_path_and_is_enriched() -> None:
    body = {"userId": "u1", "event": "Signed Up", "writeKey": "wk-web", "timestamp": "2026-11-30T11:59:00.000Z",
            "sentAt": "2026-11-30T11:59:10.000Z", "context": {"library": {"name": "x"}}}
    ((event, raw),) = events_of(PATHS["/v1/t"], body, NOW, _ids())
    assert event["type"] == "track" and "writeKey" not in event
    assert event["messageId"] == "gen-0" and event["receivedAt"] == "2026-11-30T12:00:00.000Z"
    assert event["originalTimestamp"] == "2026-11-30T11:59:00.000Z"
    assert event["timestamp"] == "2026-11-30T11:59:50.000Z"  # receivedAt - (sentAt - originalTimestamp)
    assert event["context"] == {"library": {"name": "x"}}
    assert msgspec.json.decode(raw) == event  # what goes to Kafka


def test_a_batch_keeps_message_ids_fills_in_context_and_times_events_without_a_timestamp() -> None:
    body = {"batch": [{"type": "identify", "userId": "u", "messageId": "m1"},
                      {"type": "track", "event": "E", "messageId": "", "context": {"ip": "1.2.3.4"}}],
            "context": {"library": {"name": "analytics-python"}}, "sentAt": "2026-11-30T12:00:00Z"}
    first, second = (a.event for a in events_of(None, body, NOW, _ids()))
    assert first["messageId"] == "m1" and second["messageId"] == "gen-0"
    assert first["context"] == {"library": {"name": "analytics-python"}} and second["context"] == {"ip": "1.2.3.4"}
    assert first["timestamp"] == "2026-11-30T12:00:00.000Z" and "originalTimestamp" not in first
    assert first["sentAt"] == "2026-11-30T12:00:00Z"


def test_an_event_over_32_kb_is_400_naming_it() -> None:
    body = {"batch": [{"type": "track", "event": "E", "messageId": "big", "properties": {"b": "x" * 40_000}}]}
    with pytest.raises(IntakeError, match="event 0 \\(track, messageId big\\) is .* over the 32,768-byte"):
        events_of(None, body, NOW, _ids())
    with pytest.raises(IntakeError, match="needs a `batch` list"):
        events_of(None, {"batch": {}}, NOW, _ids())


def test_settings_point_analytics_js_at_the_intake() -> None:
    settings = settings_for(WEB, "127.0.0.1:8088/v1", "http")
    assert settings["integrations"]["Segment.io"]["apiHost"] == "127.0.0.1:8088/v1"
    assert settings["integrations"]["Segment.io"]["protocol"] == "http"


def test_the_intake_section_is_checked_with_the_rest_of_the_config() -> None:
    base = '[[destinations]]\nname = "pw"\ntype = "pushwoosh"\nsettings = { pushwooshAPIKey = "K", pushwooshAppCode = "A" }\n'
    section = '[intake]\n[[intake.sources]]\nname = "web"\nwrite_key = "${WK}"\ntopic = "t"\n'
    config = load_config(base + section, {"WK": "secret-key"}, intake=True)
    assert config.intake is not None and config.intake.sources[0].write_key == "secret-key"
    assert config.intake.listen == "127.0.0.1:8088"
    assert load_config(base + section, {}).intake is not None  # a worker needs no intake secrets
    with pytest.raises(ConfigError) as err:
        load_config(base + '[intake]\nlisten = "x:1"\n[[intake.sources]]\nname = "web"\nwrite_key = "${NOPE}"\n'
                    'topic = "t"\n[[intake.sources]]\nname = "b"\nwrite_key = "k"\ntopic = ""\n', {}, intake=True)
    assert err.value.errors == ["intake.sources[0] (web).write_key: environment variable NOPE is not set",
                                "intake.sources[1] (b).topic: name the input topic"]
    with pytest.raises(ConfigError) as err:
        load_config(base + "[intake]\nlisten = 5\n", {})
    assert err.value.errors == ["intake.listen: Expected `str`, got `int`"]
