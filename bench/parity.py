"""Parity with Segment's engine on a broad generated corpus (a development tool, not the runtime).

    python bench/parity.py                     # generate, run Segment's engine and ours, report
    python bench/parity.py --record FILE       # also write a recorded subset for the tests

The corpus (`corpus()`) covers every FQL operator and function with spacing variants, every
mapping directive, and every action field of both destinations with every kind of JSON value
(null vs absent vs "", numbers as strings, big and negative numbers, one- and two-element
arrays), single and batched, with default and custom mappings. Segment's answers come from
the oracle (`../shared/oracle`, set up once in `bench/.oracle` as `make bench` does: Node and
Segment's npm packages);
ours from `run_ours`, which takes the pipeline's own path (decode_event -> trigger / mapping ->
field validation -> request builder -> the bytes http.py sends).

`compare` sorts every case into: agree, a listed deliberate difference (`DELIBERATE`), or a
difference. The tests replay a recorded subset through the same functions, so they need no Node.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from pushstream.codecs.destinations import REGISTRY
from pushstream.codecs.fields import PayloadInvalid, compile_validator
from pushstream.codecs.fql import TriggerError, compile_trigger
from pushstream.codecs.js import js_json_bytes, json_stringify
from pushstream.codecs.mapping import MappingError, MappingRuntimeError, compile_mapping
from pushstream.codecs.secret import secret_hook
from pushstream.codecs.spec import InvalidEvent, decode_event

sys.path.insert(0, str(Path(__file__).parent))  # the webhook part, beside this file (also when a test loads it)
from parity_webhook import compare_requests, composed_answer, run_webhook, webhook_cases  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ABSENT = object()  # a value slot left out of the event

#: Every kind of JSON value a real event carries, as (name, value).
VALUES: list[tuple[str, Any]] = [
    ("absent", ABSENT), ("null", None), ("empty", ""), ("str", "ios"), ("numstr", "12345"), ("decstr", "1.50"),
    ("truestr", "true"), ("zero", 0), ("int", 12345), ("neg", -7), ("float", 1.5), ("intfloat", 2.0),
    ("big", 9007199254740993), ("true", True), ("false", False), ("arr0", []), ("arr1", ["ios"]),
    ("arr2", ["a", "b"]), ("arrnull", [None]), ("obj0", {}), ("obj", {"k": "v", "2": 1}), ("date", "2024-03-01"),
    ("email", "a@b.co"), ("iso", "2024-03-01T10:00:00.000Z"), ("negfloat", -0.25), ("exp", 1e21),
]

PW = {"pushwooshAPIKey": "K", "pushwooshAppCode": "APP-1"}
XP = {"url": "http://xtremepush.oracle/", "apiKey": "K"}
ACTIONS = [("pushwoosh", "trackEvent", PW, ("track", "page", "screen")),
           ("pushwoosh", "updateUserProfile", PW, ("identify",)),
           ("xtremepush", "track", XP, ("track",)), ("xtremepush", "identify", XP, ("identify",))]


def base_event(kind: str) -> dict[str, Any]:
    """A realistic event of one type, as Segment's SDKs send it."""
    event: dict[str, Any] = {
        "type": kind, "userId": "u1", "anonymousId": "an1", "messageId": "m1",
        "timestamp": "2024-03-01T10:00:00.000Z", "receivedAt": "2024-03-01T10:00:01.000Z",
        "context": {"device": {"id": "d1", "type": "ios", "model": "iPhone15", "token": "tok"},
                    "traits": {"email": "c@d.co", "phone": "+1"}, "app": {"version": "1.2"},
                    "location": {"country": "DE", "city": "Berlin", "latitude": 52.5, "longitude": 13.4},
                    "os": {"version": "17"}, "locale": "de-DE", "timezone": "Europe/Berlin", "userAgent": "UA"}}
    if kind == "track":
        event.update(event="Order Completed", properties={"revenue": 10, "sku": "x"})
    elif kind in ("page", "screen"):
        event.update(name="Home", properties={"path": "/"})
    else:
        event["traits"] = {"email": "a@b.co", "phone": "+2", "plan": "pro", "name": "Ann", "city": "Rome"}
    return event


def put(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `event` with `path` (dotted) set to `value`, or removed when ABSENT."""
    out = json.loads(json.dumps(event))
    keys = path.split(".")
    node = out
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is ABSENT:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return out


EVENT_PATHS = ("userId", "anonymousId", "messageId", "timestamp", "event", "name", "properties", "traits",
               "context", "integrations", "receivedAt", "context.device.type", "context.device.id",
               "context.location.latitude", "context.location", "context.traits.email", "traits.email",
               "traits.phone", "properties.revenue", "context.app", "sentAt")


def _action_cases() -> Iterator[dict[str, Any]]:
    for dest, action, settings, kinds in ACTIONS:
        fields = REGISTRY[dest].actions[action].fields
        common = {"kind": "action", "destination": dest, "action": action, "settings": settings}
        for kind in kinds:
            for path in EVENT_PATHS:  # every header and context field x every value, default mapping
                for name, value in VALUES:
                    event = put(base_event(kind), path, value)
                    yield {**common, "id": f"act/{action}/{kind}/{path}={name}", "event": event}
                    if action == "trackEvent" and kind == "track":
                        yield {**common, "id": f"batch/{action}/{path}={name}",
                               "events": [base_event("track"), event, put(base_event("page"), "userId", "u2")]}
        for f in fields:  # every field x every value, through a custom mapping
            for name, value in VALUES:
                event = put(base_event(kinds[0]), "properties.v", value)
                yield {**common, "id": f"field/{action}/{f.name}={name}", "event": event,
                       "mapping": {f.name: {"@path": "$.properties.v"}}}
                yield {**common, "id": f"field/{action}/{f.name}=[{name}]", "event": event,
                       "mapping": {f.name: [{"@path": "$.properties.v"}]}}
                if f.properties:
                    for sub in f.properties:
                        yield {**common, "id": f"field/{action}/{f.name}.{sub.name}={name}", "event": event,
                               "mapping": {f.name: {sub.name: {"@path": "$.properties.v"}}}}
            if action == "trackEvent":
                for name, value in VALUES:
                    event = put(base_event("track"), "properties.v", value)
                    yield {**common, "id": f"batchfield/{action}/{f.name}={name}", "mapping": {
                        f.name: {"@path": "$.properties.v"}}, "events": [base_event("track"), event]}


#: Directive shapes with a slot `V` that each value fills (`$.properties.v`).
DIRECTIVES: list[Any] = [
    {"@path": "$.properties.v"}, {"@path": "properties.v.k"}, {"@template": "a{{properties.v}}b"},
    {"@if": {"exists": {"@path": "$.properties.v"}, "then": "yes", "else": "no"}},
    {"@if": {"blank": {"@path": "$.properties.v"}, "then": "yes", "else": "no"}},
    {"@case": {"operator": "lower", "value": {"@path": "$.properties.v"}}},
    {"@case": {"operator": "upper", "value": {"@path": "$.properties.v"}}},
    {"@replace": {"pattern": "s", "replacement": "S", "value": {"@path": "$.properties.v"}}},
    {"@json": {"mode": "encode", "value": {"@path": "$.properties.v"}}},
    {"@json": {"mode": "decode", "value": {"@path": "$.properties.v"}}},
    {"@flatten": {"value": {"@path": "$.properties"}, "separator": "."}},
    {"@merge": {"objects": [{"@path": "$.properties.v"}, {"k": "w"}], "direction": "left"}},
    {"@merge": {"objects": [{"@path": "$.properties.v"}, {"k": "w"}], "direction": "right"}},
    {"@arrayPath": ["$.properties.v", {"x": {"@path": "$.k"}}]},
    {"@excludeWhenNull": {"@path": "$.properties.v"}}, {"@literal": {"@path": "$.properties.v"}},
    {"@transform": {"apply": {"w": {"@path": "$.properties.v"}}, "mapping": {"@path": "$.w"}}},
    {"@liquid": "{{ properties.v }}"}, {"@liquid": "{{ properties.v | upcase }}"},
    {"@liquid": "{% if properties.v %}t{% else %}f{% endif %}"},
    [{"@path": "$.properties.v"}, {"@path": "$.missing"}],
    # Mappings refused at start-up: Segment's validation refuses them too, or misreads them.
    {"@path": 5}, {"@if": {"then": {"@path": "$.properties.v"}}}, {"@foo": "$.properties.v"},
    {"@json": {"mode": "ENCODE", "value": {"@path": "$.properties.v"}}},
    {"@case": {"operator": "UPPER", "value": {"@path": "$.properties.v"}}},
    {"@merge": {"objects": [{"@path": "$.properties.v"}, {"k": "w"}], "direction": "LEFT"}},
    {"@path": "$.properties.v", "x": 1},
]


def _map_cases() -> Iterator[dict[str, Any]]:
    for i, directive in enumerate(DIRECTIVES):
        for name, value in VALUES:
            yield {"kind": "map", "id": f"map/{i}={name}", "mapping": {"x": directive},
                   "event": put(base_event("track"), "properties.v", value)}


#: Trigger shapes; `X` is replaced by each literal.
TRIGGERS = [
    "properties.v = X", "properties.v != X", "properties.v < X", "properties.v <= X", "properties.v > X",
    "properties.v >= X", "properties.v>X", "properties.v>=X", "properties.v >=X", "properties.v<= X",
    "properties.v!=X", "properties.v=X", "contains(properties.v, X)", "!contains(properties.v, X)",
    "(contains(properties.v, X) or type = \"page\")", "(contains(properties.v, X))",
    "type = \"track\" and(properties.v = X)", "type = \"track\" or(properties.v = X)",
    "(match(properties.v, X) and type = \"track\")", "userId = X", "traits.v = X", "context.v = X",
    "event = X", "name = X", "type = X", "match(properties.v, X)", "!match(properties.v, X)",
    "contains(userId, X)", "!contains(event, X)", "match(name, X)", 'properties.v = X or type = "page"',
    'properties.v != X and type = "track"', 'type = "page" or (properties.v = X and event = "Order Completed")',
    "traits.v != null and properties.v <= X",
    # a function as its group's last term (read as written), after a plain condition and another function
    'type = "page" or (event = "Order Completed" and contains(properties.v, X))',
    'type = "track" and (event = "Signed Up" or !contains(properties.v, X))',
    'type = "track" and (properties.v = "a" or match(properties.v, X))',
]
LITERALS = ['"ios"', '"12345"', "12345", "1.50", "1.5", "-7", "0", "true", "false", "null", '"io*"', '"*os"',
            '"1.5"', "+3", "9007199254740993"]


def _fql_cases() -> Iterator[dict[str, Any]]:
    for shape in TRIGGERS:
        for literal in LITERALS:
            fql = shape.replace("X", literal)
            for name, value in VALUES:
                event = put(put(put(base_event("track"), "properties.v", value), "traits.v", value), "context.v", value)
                yield {"kind": "fql", "id": f"fql/{fql}/{name}", "fql": fql, "event": event}


def corpus() -> list[dict[str, Any]]:
    """Every case, in a stable order."""
    return [*_fql_cases(), *_map_cases(), *_action_cases(), *webhook_cases(VALUES, put)]


def family(case: dict[str, Any]) -> str:
    return case["id"].split("/", 1)[0]


# --- ours -------------------------------------------------------------------------------

def _decode(event: Any) -> dict[str, Any]:
    """The event as the route agent sees it: the record's bytes through decode_event."""
    return decode_event(json.dumps(event).encode()).tree


def run_ours(case: dict[str, Any]) -> dict[str, Any]:
    """What pushstream does with one case, in the oracle's shape (+ `refused` for start-up refusals)."""
    try:
        if case["kind"] == "fql":
            return {"match": compile_trigger(case["fql"])(case["event"])}
        if case["kind"] == "map":
            return {"result": json.loads(json_stringify(compile_mapping(case["mapping"])(case["event"])))}
        return _run_action(case)
    except (TriggerError, MappingError) as exc:
        return {"refused": str(exc)}
    except InvalidEvent as exc:
        return {"invalid": str(exc)}
    except MappingRuntimeError as exc:
        return {"error": str(exc)}


def payloads_of(case: dict[str, Any], action: Any) -> tuple[list[dict[str, Any]], list[str]] | str:
    """The case's events mapped, validated and checked as the route agent does them: (payloads,
    a batch's refusals), or the message refusing a single event."""
    mapping = {} if case.get("useDefaultMappings") is False else dict(action.default_mapping)
    mapping.update(case.get("mapping") or {})
    compiled = compile_mapping(mapping)
    batch = "events" in case
    validate = compile_validator(action.fields, batch=batch)
    payloads, errors = [], []
    for event in case["events"] if batch else [case["event"]]:
        try:
            payload = validate(compiled(_decode(event)))
            if action.check is not None:
                action.check(payload)
            payloads.append(payload)
        except PayloadInvalid as exc:
            if not batch:
                return str(exc)
            errors.append(str(exc))
    return payloads, errors


def _run_action(case: dict[str, Any]) -> dict[str, Any]:
    if case["destination"] == "webhook":
        return run_webhook(case, payloads_of)
    dest = REGISTRY[case["destination"]]
    action = dest.actions[case["action"]]
    settings = msgspec.convert(case["settings"], dest.settings_type, dec_hook=secret_hook)
    batch = "events" in case
    found = payloads_of(case, action)
    if isinstance(found, str):
        return {"error": found}
    payloads, errors = found
    out: dict[str, Any] = {"requests": []}
    if payloads:
        request = action.build(payloads, settings, batch)
        headers = dest.auth_headers(settings)
        out["requests"] = [{"method": request.method, "path": request.path, "authorization": headers["Authorization"],
                            "appcode": headers.get("X-PW-Appcode")}]
        out["text"] = js_json_bytes(request.body).decode()  # the body: the bytes http.py sends
    if batch:
        out["batch_errors"] = errors
    return out


# --- comparison -------------------------------------------------------------------------

def _js_rounded(value: Any) -> Any:
    """A value as JavaScript holds it after JSON.parse: integers beyond 2^53 rounded."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return int(float(value))
    if isinstance(value, dict):
        return {k: _js_rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_rounded(v) for v in value]
    return value


def _header(value: Any) -> Any:
    """The oracle reports a header as the list of its values."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


ODD_DATES = "deliberate:odd date strings only JavaScript's Date parser reads"


def _odd_date(*messages: str | None) -> bool:
    """Whether one side refused a datetime value the other took (docs/parity.md, "Odd date strings")."""
    return any("date-like" in m for m in messages if m)


def compare(case: dict[str, Any], segment: dict[str, Any], ours: dict[str, Any]) -> str:
    """`agree`, `deliberate:<name>` (a listed difference) or `differ:<what>`."""
    kind = case["kind"]
    if "refused" in ours:
        return "agree" if "error" in segment else "deliberate:refused at start-up"
    if kind == "fql":
        if "error" in segment:
            return "differ:segment refuses the trigger"
        return "agree" if segment["match"] is ours.get("match") else "differ:match"
    if kind == "map":
        if "error" in segment or "error" in ours:
            return "agree" if ("error" in segment) == ("error" in ours) else "differ:error"
        return "agree" if json.dumps(ours["result"]) == json.dumps(segment["result"]) else "differ:result"
    if "invalid" in ours:
        if "must be a string or a number" in ours["invalid"]:
            return "deliberate:ids must be strings or numbers"
        return "differ:event refused"
    if "error" in segment or "error" in ours:
        if segment.get("error") == ours.get("error"):
            return "agree"
        if "events" in case and "error" in segment and "requests" in ours:
            return "deliberate:a batch keeps the events a mapping can resolve"
        if segment.get("error", "").startswith("Cannot destructure property"):
            return "deliberate:Segment's engine throws on `context: null`; delivered"
        if _odd_date(segment.get("error"), ours.get("error")):
            return ODD_DATES
        return "differ:error"
    if case["destination"] == "webhook":
        return compare_requests(case, segment, ours)
    seg = [{**r, "authorization": _header(r.get("authorization")), "appcode": _header(r.get("appcode"))}
           for r in segment["requests"]]
    mine = ours["requests"]
    if "events" in case:
        seg_errors = [m.get("errormessage") for m in segment.get("multistatus", []) if m.get("status") == 400]
        if seg_errors != ours["batch_errors"]:
            return ODD_DATES if _odd_date(*seg_errors, *ours["batch_errors"]) else "differ:batch errors"
    if len(seg) != len(mine):
        return "differ:requests"
    for s, o in zip(seg, mine, strict=True):
        if (s["method"], s["authorization"], s.get("appcode")) != (o["method"], o["authorization"], o["appcode"]):
            return "differ:headers"
        if not s["path"].endswith(o["path"]):
            return "differ:path"
        if json_stringify(s["body"]) != ours["text"]:  # Segment sends JSON.stringify of that object
            return "differ:body"
    return "agree"


_BIG_LITERAL = re.compile(r"\d{16,}")


def verdict(case: dict[str, Any], segment: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`compare` on what we do with `case`; a difference that goes away once the event's
    integers beyond 2^53 are rounded as JavaScript rounds them is the listed deliberate one."""
    ours = run_ours(case)
    result = compare(case, segment, ours)
    rounded = _js_rounded(case)
    if case["kind"] == "fql":  # and the trigger's number literals
        rounded["fql"] = _BIG_LITERAL.sub(lambda m: str(int(float(m[0]))), case["fql"])
    if result.startswith("differ") and rounded != case:
        if compare(case, segment, run_ours(rounded)) == "agree":
            return "deliberate:integers beyond 2^53 kept exact", ours
    return result, ours


def run_oracle(cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Segment's answers, by case id."""
    from run import oracle_dir  # bench/run.py sets the oracle up (this script's folder is on sys.path)

    oracle = oracle_dir()
    if oracle is None:
        sys.exit("parity: needs node, npm and ../shared/oracle")
    lines = "".join(json.dumps(c) + "\n" for c in cases)
    result = subprocess.run(["node", str(oracle / "segment_oracle.js")], input=lines, capture_output=True,
                            text=True, cwd=oracle, check=True)
    # Split on newlines alone: splitlines() also splits inside a string holding U+2028.
    return {(row := json.loads(line))["id"]: row for line in result.stdout.split("\n") if line}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="write a recorded subset (cases + Segment's answers) here")
    parser.add_argument("--per-group", type=int, default=1, help="recorded cases per case shape (id without value)")
    parser.add_argument("--per-class", type=int, default=8, help="recorded cases per family and result, at least")
    parser.add_argument("--show", type=int, default=5, help="differences to print per class")
    parser.add_argument("--only", help="only cases whose id starts with this")
    args = parser.parse_args()
    cases = [c for c in corpus() if not args.only or c["id"].startswith(args.only)]
    expected = run_oracle(cases)
    by_family: dict[str, Counter[str]] = {}
    shown: Counter[str] = Counter()
    recorded: list[dict[str, Any]] = []
    rng = random.Random(7)
    kept: Counter[tuple[str, str]] = Counter()
    for case in sorted(cases, key=lambda c: rng.random()):
        segment = composed_answer(case, expected)
        result, ours = verdict(case, segment)
        by_family.setdefault(family(case), Counter())[result] += 1
        if result.startswith("differ") and shown[result] < args.show:
            shown[result] += 1
            print(f"{result}  {case['id']}\n  segment: {json.dumps(segment)[:400]}\n  ours:    "
                  f"{json.dumps(ours)[:400]}")
        group = case["id"].rsplit("/" if case["kind"] == "fql" else "=", 1)[0]
        per_group = args.per_group * (6 if family(case) == "field" else 1)  # every field x many value kinds
        if kept[family(case), result] < args.per_class or kept[group, ""] < per_group:
            kept[family(case), result] += 1
            kept[group, ""] += 1
            recorded.append({"case": case, "segment": segment, "verdict": result})
    total = Counter[str]()
    for fam, counts in sorted(by_family.items()):
        total.update(counts)
        n = sum(counts.values())
        print(f"{fam:11} {n:6} cases  " + "  ".join(f"{v}: {c}" for v, c in counts.most_common()))
    n = sum(total.values())
    same = sum(c for v, c in total.items() if not v.startswith("differ"))
    print(f"{'all':11} {n:6} cases  agree or deliberate: {same / n:.2%}")
    if args.record:
        recorded.sort(key=lambda r: r["case"]["id"])
        args.record.write_text("".join(json.dumps(r, sort_keys=False) + "\n" for r in recorded))
        print(f"recorded {len(recorded)} cases in {args.record}")
    return 0 if same == n else 1


if __name__ == "__main__":
    sys.exit(main())
