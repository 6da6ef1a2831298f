"""The webhook destination's requests: Segment's body, signature, grouping, URL and header rules,
and what people are shown of them (credentials masked)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import msgspec
import pytest

from pushstream.codecs.config import Config, ConfigError, load_config
from pushstream.codecs.destinations import HttpRequest
from pushstream.codecs.js import UNDEFINED, js_json_bytes
from pushstream.codecs.plan import PlannedRequest, endpoint, plan_requests
from pushstream.codecs.records import Job
from pushstream.codecs.route import Routed, route_record
from pushstream.codecs.tester import show_request

SECRET = "hook-secret"
ENV = {"HOOK_SECRET": SECRET, "HOOK_AUTH": "Bearer instance-token"}


def config(mapping: dict[str, Any], *, batching: bool = False, settings: str = 'sharedSecret = "${HOOK_SECRET}"',
           extra: str = "", defaults: bool = True) -> Config:
    text = f"""
[[destinations]]
name = "hook"
type = "webhook"
settings = {{ {settings} }}
{extra}

[[destinations.mappings]]
name = "All tracks"
action = "send"
subscribe = 'type = "track"'
enable_batching = {str(batching).lower()}
defaults = {str(defaults).lower()}
mapping = {_toml(mapping)}
"""
    return load_config(text, ENV)


def _toml(value: Any) -> str:
    """Inline TOML for a JSON-like value (the tests' mappings)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{msgspec.json.encode(k).decode()} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return msgspec.json.encode(value).decode()


WHOLE = {"url": "https://hooks.example.com/in", "data": {"@path": "$."}}


def event(n: int, **extra: Any) -> bytes:
    return msgspec.json.encode({"type": "track", "messageId": f"m{n}", "userId": f"u{n}", "event": "Order",
                                "timestamp": "2024-01-01T00:00:00.000Z", "properties": {"n": n}, **extra})


def routed(cfg: Config, *events: bytes) -> tuple[list[Job], Routed]:
    jobs: list[Job] = []
    last = Routed()
    for offset, raw in enumerate(events):
        last = route_record(raw, "events", 0, offset, cfg, 0.0)
        jobs += [job for _, job in last.jobs]
    return jobs, last


def plans(cfg: Config, *events: bytes) -> list[PlannedRequest]:
    jobs, _ = routed(cfg, *events)
    planned, orphans = plan_requests(cfg.instance("hook"), jobs)
    assert not orphans
    return planned


def sign(data: bytes) -> str:
    return hmac.new(SECRET.encode(), data, hashlib.sha1).hexdigest()


def test_one_event_is_its_data_as_json_signed_with_the_shared_secret() -> None:
    (plan,) = plans(config(WHOLE), event(1))
    request = plan.request
    body = js_json_bytes(request.body)
    assert request.method == "POST" and request.path == "https://hooks.example.com/in"
    assert msgspec.json.decode(body)["properties"] == {"n": 1}
    assert request.headers == {"X-Signature": sign(body)}


def test_a_batch_is_the_list_of_data_signed_as_segment_signs_it_or_over_the_body() -> None:
    (plan,) = plans(config(WHOLE, batching=True), event(1), event(2), event(3))
    body = js_json_bytes(plan.request.body)
    first = js_json_bytes(msgspec.json.decode(body)[0])
    assert [e["properties"]["n"] for e in msgspec.json.decode(body)] == [1, 2, 3] and len(plan.jobs) == 3
    assert plan.request.headers["X-Signature"] == sign(first) != sign(body)  # Segment's: the first event's data
    body_signed = config(WHOLE, batching=True, settings='sharedSecret = "${HOOK_SECRET}", batchSignature = "body"')
    (plan,) = plans(body_signed, event(1), event(2))
    assert plan.request.headers["X-Signature"] == sign(js_json_bytes(plan.request.body))


def test_batched_events_share_a_request_only_with_the_same_url_method_and_headers() -> None:
    mapping = {"url": {"@template": "https://hooks.example.com/{{properties.shop}}"},
               "method": {"@path": "$.properties.method"}, "headers": {"X-Shop": {"@path": "$.properties.shop"}},
               "data": {"n": {"@path": "$.properties.n"}}}
    cfg = config(mapping, batching=True)
    sent = plans(cfg, *(event(n, properties={"n": n, "shop": "ab"[n % 2], "method": "PUT"}) for n in range(5)),
                 event(9, properties={"n": 9, "shop": "a", "method": "PATCH"}))
    shape = [(p.request.method, p.request.path, p.request.headers.get("X-Shop"), [d["n"] for d in p.request.body])
             for p in sent]
    assert shape == [("PUT", "https://hooks.example.com/a", "a", [0, 2, 4]),
                     ("PUT", "https://hooks.example.com/b", "b", [1, 3]),
                     ("PATCH", "https://hooks.example.com/a", "a", [9])]


def test_the_mapping_batch_size_caps_each_request_and_a_literal_one_sets_the_mappings_size() -> None:
    sized = config({**WHOLE, "batch_size": 2}, batching=True)
    assert sized.instance("hook").subscriptions[0].batch_size == 2
    assert [len(p.jobs) for p in plans(sized, *(event(n) for n in range(5)))] == [2, 2, 1]
    per_event = config({**WHOLE, "batch_size": {"@path": "$.properties.size"}}, batching=True)
    assert per_event.instance("hook").subscriptions[0].batch_size == 1000  # Segment's default
    sent = plans(per_event, *(event(n, properties={"n": n, "size": 3}) for n in range(4)))
    assert [len(p.jobs) for p in sent] == [3, 1]


def test_fields_a_mapping_leaves_out_take_their_defaults_unless_defaults_is_false() -> None:
    (plan,) = plans(config({"url": "https://hooks.example.com/in"}), event(1))
    assert plan.request.method == "POST" and msgspec.json.decode(js_json_bytes(plan.request.body))["messageId"] == "m1"
    _, last = routed(config({"url": "https://hooks.example.com/in"}, defaults=False), event(1))
    assert [o.reason for o in last.outcomes] == ["The root value is missing the required field 'method'."]


def test_no_data_sends_no_body_and_no_signature_and_null_in_a_batch() -> None:
    bare = {"url": "https://hooks.example.com/in", "method": "PUT"}
    (plan,) = plans(config(bare, defaults=False), event(1))
    assert plan.request.body is UNDEFINED and plan.request.headers == {}
    (batch,) = plans(config(bare, batching=True, defaults=False), event(1), event(2))
    assert js_json_bytes(batch.request.body) == b"[null,null]"


def test_url_credentials_become_basic_auth_and_a_mappings_own_headers_win() -> None:
    (plan,) = plans(config({"url": "https://us%40r:p%3Ass@HOOKS.example.com:443/x#frag", "data": {"a": 1}}), event(1))
    assert plan.request.path == "https://hooks.example.com/x"  # as a browser's URL parser writes it
    assert plan.request.headers["Authorization"] == "Basic " + base64.b64encode(b"us@r:p:ss").decode()
    mine = {"url": "https://u:p@hooks.example.com/", "data": {"a": 1},
            "headers": {"authorization": "Token mine", "X-Signature": "set-by-me", "User-Agent": "me"}}
    (plan,) = plans(config(mine), event(1))
    assert plan.request.headers == {"authorization": "Token mine", "X-Signature": "set-by-me", "User-Agent": "me"}


@pytest.mark.parametrize(("mapping", "reason"), [
    ({"url": "not a url"}, "URL must be a valid URI string but it was not."),
    ({"url": "https://hooks.example.com/ü"}, "URL must be a valid URI string but it was not."),
    ({"url": "mailto:someone@example.com"}, "Only HTTP(S) protocols are supported"),
    ({"url": "http://hooks.example.com:99999/"}, "Invalid URL"),
    ({"url": "http://"}, "Invalid URL"),
    ({**WHOLE, "method": "GET"}, 'Method must be one of: "POST", "PUT", or "PATCH".'),
    ({**WHOLE, "headers": {"Bad Name": "x"}}, "Bad Name is not a legal HTTP header name"),
    ({**WHOLE, "headers": {"X-City": "東京"}}, "東京 is not a legal HTTP header value"),
    ({**WHOLE, "headers": {"X-Api-Key": "東京"}}, "The value of X-Api-Key is not a legal HTTP header value"),
    ({**WHOLE, "data": "text"}, "Data must be an object but it was a string."),
    ({**WHOLE, "batch_size": "ten"}, "Batch Size must be a number but it was a string."),
])
def test_what_segment_refuses_is_rejected_with_its_reason(mapping: dict[str, Any], reason: str) -> None:
    jobs, last = routed(config(mapping), event(1))
    assert not jobs
    assert [(o.status, o.reason) for o in last.outcomes] == [("rejected", reason)]


def test_an_event_from_the_mapping_can_make_a_bad_url_and_only_that_event_is_rejected() -> None:
    cfg = config({"url": {"@path": "$.properties.hook"}, "data": {"@path": "$.properties"}})
    jobs, last = routed(cfg, event(1, properties={"hook": "https://ok.example.com/"}),
                        event(2, properties={"hook": "javascript:alert(1)"}))
    assert [j.message_id for j in jobs] == ["m1"]
    assert [(o.message_id, o.reason) for o in last.outcomes] == [("m2", "Only absolute URLs are supported")]


@pytest.mark.parametrize(("url", "sent"), [
    ("http://0x7f.1:8080/a", "http://127.0.0.1:8080/a"), ("http://01.02.03.04/", "http://1.2.3.4/"),
    ("http://2130706433/", "http://127.0.0.1/"), ("http://Hooks%2Eexample.com:0080/it's", "http://hooks.example.com/it%27s"),
    ("https:hooks.example.com/x", "https://hooks.example.com/x"), ("http://[::1]:81/", "http://[::1]:81/"),
])
def test_the_url_is_sent_as_a_browsers_url_parser_writes_it(url: str, sent: str) -> None:
    (plan,) = plans(config({"url": url}), event(1))
    assert plan.request.path == sent


@pytest.mark.parametrize("url", ["http://1.2.3.999/", "http://0x100000000/", "http://1.2.3.4.5/", "http://a%20b/",
                                 "https://hooks.example.com:port/"])
def test_a_host_or_port_a_browser_cannot_read_is_an_invalid_url(url: str) -> None:
    _, last = routed(config({"url": url}), event(1))
    assert [o.reason for o in last.outcomes] == ["Invalid URL"]


def test_people_see_the_request_with_every_credential_masked() -> None:
    mapping = {"url": "https://u:pw@hooks.example.com/in?token=t0k&page=2",
               "headers": {"X-Api-Key": "k3y", "X-Trace": "visible"}, "data": {"@path": "$."}}
    cfg = config(mapping, settings='sharedSecret = "${HOOK_SECRET}", headers = { Authorization = "${HOOK_AUTH}" }')
    instance = cfg.instance("hook")
    (plan,) = plans(cfg, event(1))
    shown = show_request(instance, plan)
    assert shown["url"] == "https://hooks.example.com/in?token=********&page=2"
    assert shown["headers"] == {"Authorization": "Basic ********", "X-Api-Key": "********", "X-Trace": "visible",
                                "X-Signature": "********", "content-type": "application/json"}
    text = msgspec.json.encode(shown).decode() + repr(instance)
    for secret in ("t0k", "k3y", "pw", SECRET, "instance-token", plan.request.headers["X-Signature"]):
        assert secret not in text
    assert endpoint(plan.request) == "https://hooks.example.com"
    assert endpoint(HttpRequest("POST", "/json/1.3/postEvent", {})) == "/json/1.3/postEvent"


def test_the_instance_headers_come_from_the_environment_and_are_sent_on_each_request() -> None:
    cfg = config(WHOLE, settings='headers = { Authorization = "${HOOK_AUTH}" }')
    instance = cfg.instance("hook")
    assert instance.destination.auth_headers(instance.settings) == {"Authorization": "Bearer instance-token"}
    with pytest.raises(ConfigError, match=r"settings\.headers\.Authorization: environment variable NOPE"):
        config(WHOLE, settings='headers = { Authorization = "${NOPE}" }')


def test_deletions_pass_a_webhook_by_and_allowed_hosts_are_read_lowercased() -> None:
    cfg = config(WHOLE, extra='allowed_hosts = ["Hooks.Example.com", "*.internal.example"]')
    assert cfg.instance("hook").allowed_hosts == ("hooks.example.com", "*.internal.example")
    jobs, last = routed(cfg, b'{"type": "delete", "messageId": "d1", "userId": "u1"}')
    assert not jobs and not last.outcomes and last.unmatched == ["hook"]


def test_the_webhook_has_no_presets_and_takes_at_most_4000_per_batch() -> None:
    with pytest.raises(ConfigError, match=r"batch_size: must be between 1 and 4000, got 5000"):
        load_config("""
[[destinations]]
name = "hook"
type = "webhook"
settings = {}
[[destinations.mappings]]
name = "m"
action = "send"
subscribe = 'type = "track"'
enable_batching = true
batch_size = 5000
mapping = { url = "https://hooks.example.com/" }
""", {})
    assert load_config('[[destinations]]\nname = "h"\ntype = "webhook"\nsettings = {}\n', {}).instance("h").subscriptions == ()
