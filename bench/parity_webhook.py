"""The webhook part of the parity corpus (bench/parity.py): cases, our side, and the comparison.

Cases cover the URL (forms Segment takes, normalizes or refuses), the method, header names and
values, `data` and `batch_size` with every kind of JSON value, signing (signed, unsigned, an
empty secret, our `batchSignature = "body"`), and batches: one group, one group with an event
the fields refuse, and mixed groups. Segment's `performBatch` sends a whole batch to the first
event's URL with its method and headers (its delivery infrastructure groups by `batch_keys`
before that), so a mixed-groups case also gets one oracle case per group (`#g0`, `#g1`, ...);
`composed_answer` joins those answers, which is what our grouped requests must equal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec

from pushstream.codecs.destinations import REGISTRY
from pushstream.codecs.js import UNDEFINED, js_json_bytes, json_stringify
from pushstream.codecs.secret import secret_hook

__all__ = ["composed_answer", "compare_requests", "run_webhook", "webhook_cases"]

HOOK = "https://hooks.oracle.test"
SIGNED = {"sharedSecret": "S"}
GROUPED = "deliberate:batches grouped by url, method and headers (Segment's batch_keys), checked group by group"
BODY_SIGNED = "deliberate:batchSignature = body signs the bytes sent"

URLS = [
    f"{HOOK}/in", f"{HOOK}", f"{HOOK}/", f"{HOOK}/a/b?x=1&y=%20z", f"{HOOK}/in#frag", "https://HOOKS.Oracle.Test/Case",
    f"{HOOK}:443/in", "http://hooks.oracle.test:80/in", "https://u:p@hooks.oracle.test/in",
    "https://us%40r:p%3Ass@hooks.oracle.test/in", "https://user@hooks.oracle.test/in", "https:hooks.oracle.test/x",
    "https:/hooks.oracle.test/x", "HTTPS://hooks.oracle.test/up", f"{HOOK}/a%2Fb", f"{HOOK}/~user/!$&'()*+,;=:@",
    # refused by the uri format, or by fetch
    "not a url", "", "hooks.oracle.test/in", "//hooks.oracle.test/in", f"{HOOK}/ü", f"{HOOK}/a b", f"{HOOK}/%zz",
    "mailto:a@b.co", "ftp://hooks.oracle.test/", "urn:isbn:123", "javascript:alert(1)", "http://",
    "https://hooks.oracle.test:99999/", "https://hooks.oracle.test:port/", "http:", "https://[::1/",
    "foo:/path", "foo://host:bad/", "foo://host/x", "tel:+123", "data:text/plain,hi", "http://1.2.3.999/",
    "http://hooks%2eoracle.test/", "http:/hooks.oracle.test:port/",
]
METHODS: list[Any] = ["POST", "PUT", "PATCH", "post", "Put", "GET", "DELETE", "", None, 5, ["PUT"], ["PUT", "POST"]]
HEADER_NAMES = ["X-Plain", "x-lower", "X_Under", "X.Dot", "Bad Name", "", "Ü-Header", "X:Colon", "User-Agent",
                "x-signature", "Content-Type", "Authorization", "X-Api-Key"]
HEADER_VALUES: list[Any] = ["v", "", " padded ", "tab\tin", "日本", "é", "line\nbreak", 0, 1.5, True, None, [1, 2],
                            {"k": 1}, 1e21, -0.0]
DATA: list[Any] = [{"@path": "$."}, {"@path": "$.properties"}, {"k": {"@path": "$.missing"}}, {"n": 1e21},
                   {"s": "日本", "e": "\u2028"}, {"@path": "$.missing"}, "text", 5, [1], None, {}]


def _event(n: int = 1, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order", "userId": f"u{n}", "messageId": f"m{n}",
            "timestamp": "2024-03-01T10:00:00.000Z", "properties": {"n": n, **properties}}


def webhook_cases(values: list[tuple[str, Any]],
                  put: Callable[[dict[str, Any], str, Any], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The webhook cases; `values` are the corpus's kinds of JSON value, which `put` sets in an event."""
    common = {"kind": "action", "destination": "webhook", "action": "send", "settings": SIGNED}
    for i, url in enumerate(URLS):
        yield {**common, "id": f"hook/url/{i}={url}", "event": _event(), "mapping": {"url": url}}
    for i, method in enumerate(METHODS):
        yield {**common, "id": f"hook/method/{i}={method}", "event": _event(),
               "mapping": {"url": f"{HOOK}/m", "method": method}}
    for name in HEADER_NAMES:
        yield {**common, "id": f"hook/header-name/{name}=v", "event": _event(),
               "mapping": {"url": "https://u:p@hooks.oracle.test/h", "headers": {name: "v"}}}
    for i, value in enumerate(HEADER_VALUES):
        yield {**common, "id": f"hook/header-value/{i}={value!r}", "event": _event(),
               "mapping": {"url": f"{HOOK}/h", "headers": {"X-V": value}}}
    for i, data in enumerate(DATA):
        yield {**common, "id": f"hook/data/{i}={json.dumps(data)}", "event": _event(),
               "mapping": {"url": f"{HOOK}/d", "data": data}}
    for field in ("url", "method", "headers", "data", "batch_size"):
        for name, value in values:  # every field x every kind of value, from the event
            event = put(_event(), "properties.v", value)
            yield {**common, "id": f"hook/field/{field}={name}", "event": event,
                   "mapping": {"url": f"{HOOK}/f", field: {"@path": "$.properties.v"}}}
    for i, settings in enumerate([{}, {"sharedSecret": ""}, {"sharedSecret": "ü-secret"}]):
        yield {**common, "id": f"hook/settings/{i}={json.dumps(settings)}", "settings": settings, "event": _event(),
               "mapping": {"url": f"{HOOK}/s"}}
    yield {**common, "id": "hook/nodata=single", "event": _event(), "useDefaultMappings": False,
           "mapping": {"url": f"{HOOK}/n", "method": "PUT"}}
    yield from _batch_cases(common)


def _batch_cases(common: dict[str, Any]) -> Iterator[dict[str, Any]]:
    three = [_event(1), _event(2, v=2.0), _event(3, v="日本")]
    yield {**common, "id": "hook/batch/signed=3", "events": three, "mapping": {"url": f"{HOOK}/b"}}
    yield {**common, "id": "hook/batch/unsigned=3", "settings": {}, "events": three, "mapping": {"url": f"{HOOK}/b"}}
    yield {**common, "id": "hook/batch/nodata=3", "events": three, "useDefaultMappings": False,
           "mapping": {"url": f"{HOOK}/b", "method": "PATCH"}}
    yield {**common, "id": "hook/batch/somedata=3", "events": three,
           "mapping": {"url": f"{HOOK}/b", "data": {"@path": "$.properties.v"}}}
    sized = {**common, "id": "hook/groups/sized=3", "events": three, "groups": [[0, 1], [2]],
             "mapping": {"url": f"{HOOK}/b", "batch_size": 2, "headers": {"X-Same": "1"}}}
    yield sized
    yield from ({**sized, "id": f"{sized['id']}#g{g}", "events": [three[i] for i in members], "groups": None}
                for g, members in enumerate(sized["groups"]))
    yield {**common, "id": "hook/batch/refused-field=3", "events": [*three[:1], _event(4, d="text"), three[2]],
           "mapping": {"url": f"{HOOK}/b", "data": {"@if": {"exists": {"@path": "$.properties.d"},
                                                            "then": {"@path": "$.properties.d"}, "else": {"ok": 1}}}}}
    yield {**common, "id": "hook/batch/body-signed=3", "settings": {**SIGNED, "batchSignature": "body"},
           "events": three, "mapping": {"url": f"{HOOK}/b"}}
    shops = [_event(i, shop="ab"[i % 2], method=["POST", "PUT"][i % 3 == 0]) for i in range(1, 7)]
    mixed = {"url": {"@template": f"{HOOK}/shop/{{{{properties.shop}}}}"}, "method": {"@path": "$.properties.method"},
             "headers": {"X-Shop": {"@path": "$.properties.shop"}}}
    for name, mapping, key in (("url+method", {k: mixed[k] for k in ("url", "method")}, ("shop", "method")),
                               ("headers", {"url": f"{HOOK}/h", "headers": mixed["headers"]}, ("shop",)),
                               ("all", mixed, ("shop", "method"))):
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, event in enumerate(shops):
            groups.setdefault(tuple(event["properties"][k] for k in key), []).append(i)
        case_id = f"hook/groups/{name}=6"
        yield {**common, "id": case_id, "events": shops, "mapping": mapping, "groups": list(groups.values())}
        for g, members in enumerate(groups.values()):
            yield {**common, "id": f"{case_id}#g{g}", "events": [shops[i] for i in members], "mapping": mapping}


def composed_answer(case: dict[str, Any], expected: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Segment's answer to a mixed-groups case: its groups' answers, in order (the case's own otherwise)."""
    if not case.get("groups"):
        return expected[case["id"]]
    parts = [expected[f"{case['id']}#g{g}"] for g in range(len(case["groups"]))]
    return {"requests": [r for p in parts for r in p.get("requests", [])],
            "multistatus": [m for p in parts for m in p.get("multistatus", [])], "composed": True}


def run_webhook(case: dict[str, Any], payloads_of: Callable[..., Any]) -> dict[str, Any]:
    """Our requests for a webhook case: its payloads (`payloads_of`, parity.py's), grouped as
    plan.py groups them, with the headers and URL http.py sends."""
    dest = REGISTRY["webhook"]
    action = dest.actions["send"]
    try:
        settings = msgspec.convert(case["settings"], dest.settings_type, dec_hook=secret_hook)
    except msgspec.ValidationError as exc:  # the config refuses it at start-up
        return {"refused": str(exc)}
    batch = "events" in case
    found = payloads_of(case, action)
    if isinstance(found, str):
        return {"error": found}
    payloads, errors = found
    groups: dict[Any, list[dict[str, Any]]] = {}
    for payload in payloads:
        assert action.batch_group is not None
        group, size = action.batch_group(payload)
        groups.setdefault(group, []).append(payload)
    requests = []
    for members in groups.values():
        size = (action.batch_group(members[0])[1] or 1000) if batch else 1
        for start in range(0, len(members), size):
            request = action.build(members[start:start + size], settings, batch)
            headers = {"user-agent": dest.user_agent, **{k.lower(): v for k, v in request.headers.items()}}
            if request.body is not UNDEFINED:
                headers["content-type"] = "application/json"
            requests.append({"method": request.method, "url": request.path, "headers": headers,
                             "text": "" if request.body is UNDEFINED else js_json_bytes(request.body).decode()})
    out: dict[str, Any] = {"requests": requests}
    if batch:
        out["batch_errors"] = errors
    return out


def _wire(url: str) -> tuple[str, str, int | None, bytes]:
    """What reaches the wire of a URL: scheme, Host, port and the request line's target."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port, parsed.raw_path


def _header(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def compare_requests(case: dict[str, Any], segment: dict[str, Any], ours: dict[str, Any]) -> str:
    """`agree`, a listed deliberate difference or `differ:<what>`, for webhook requests."""
    if "events" in case:
        seg_errors = [m.get("errormessage") for m in segment.get("multistatus", []) if m.get("status") == 400]
        if seg_errors != ours["batch_errors"]:
            return "differ:batch errors"
    if len(segment["requests"]) != len(ours["requests"]):
        return "differ:requests"
    for s, o in zip(segment["requests"], ours["requests"], strict=True):
        seg_headers = {k: _header(v) for k, v in s["headers"].items() if k not in ("accept", "accept-encoding")}
        if s["method"] != o["method"]:
            return "differ:method"
        if _wire(s["url"]) != _wire(o["url"]):
            return "differ:url"
        body = s["body"] if s["body"] == "" else json_stringify(s["body"])
        if body != o["text"]:
            return "differ:body"
        if seg_headers != o["headers"]:
            signature_only = {**seg_headers, "x-signature": o["headers"].get("x-signature")} == o["headers"]
            if signature_only and case["settings"].get("batchSignature") == "body":
                return BODY_SIGNED
            return "differ:headers"
    return GROUPED if segment.get("composed") else "agree"
