"""The compiled validator's fast path and the fast path getter agree with the general code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushstream.codecs import fields as fields_module
from pushstream.codecs.destinations import REGISTRY
from pushstream.codecs.fields import Field, PayloadInvalid, compile_validator, validate_payload
from pushstream.codecs.js import get_path, path_getter

ACTION_FIELDS = [(f"{d.slug}.{a.key}", a.fields) for d in REGISTRY.values() for a in d.actions.values()]
EXTRA = ("number", "Number", "number"), ("count", "Count", "integer", True), ("ok", "OK", "boolean")
EXTRA_FIELDS = tuple(Field(*spec) for spec in EXTRA) + (
    Field("mail", "Mail", "string", format="email", allow_null=True), Field("site", "Site", "string", format="uri"))
ALL_FIELDS = [*ACTION_FIELDS, ("extra", EXTRA_FIELDS)]

scalars = (st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["", "x", "5", "1.5", "true", "2024-01-02T03:04:05Z", "2024-01-02", "a@b.co", "not date",
                              "http://x.io", "[]"]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(["latitude", "longitude", "a", "b"]), c, max_size=3), max_leaves=6)


def _valid(f: Field) -> st.SearchStrategy[Any]:
    """Values the field accepts as is, so most drawn payloads reach the end of the fast path."""
    if f.properties is not None:
        return st.fixed_dictionaries({}, optional={s.name: _valid(s) for s in f.properties})
    return {"datetime": st.sampled_from(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.5+01:00"]),
            "number": st.integers(-9, 9) | st.floats(-1e3, 1e3), "integer": st.integers(-9, 9),
            "boolean": st.booleans(), "object": st.dictionaries(st.sampled_from("ab"), values, max_size=2)}.get(
        f.type, st.sampled_from({"email": ["a@b.co"], "uri": ["http://x.io"]}.get(f.format or "", ["x", "u1", "é"])))


def _payload(data: st.DataObject, fields: tuple[Field, ...]) -> dict[str, Any]:
    payload = {}
    for f in data.draw(st.permutations([*fields, Field("unknown", "Unknown", "string")])):
        roll = data.draw(st.integers(0, 9))
        if roll < 7:
            payload[f.name] = data.draw(_valid(f))
        elif roll < 9:
            payload[f.name] = data.draw(values)  # anything: wrong types, empties, coercible strings
    return payload


def _outcome(fn: Any, payload: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", fn(payload)
    except PayloadInvalid as exc:
        return "error", str(exc)


@pytest.mark.parametrize(("name", "fields"), ALL_FIELDS, ids=[n for n, _ in ALL_FIELDS])
@pytest.mark.parametrize("batch", [False, True])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_compiled_validator_equals_the_general_path(name: str, fields: tuple[Field, ...], batch: bool,
                                                    data: st.DataObject) -> None:
    payload = _payload(data, fields)
    fast = _outcome(compile_validator(fields, batch=batch), payload)
    general = _outcome(lambda p: validate_payload(p, fields, batch=batch), payload)
    assert fast == general
    if fast[0] == "ok":
        assert list(fast[1]) == list(general[1])  # key order is part of the request body


TRICKY = [None, "", "x", "5", "1.5", "true", "not a date", "2024-01-02", 0, 5, 1.5, True, False, [], ["x"], [1, 2], {},
          {"latitude": 1, "longitude": "2"}, {"latitude": None}, {"other": 1}, "a@b", "a@b.co", "http://x.io"]


def _example(f: Field) -> Any:
    if f.properties is not None:
        return {s.name: _example(s) for s in f.properties}
    return {"datetime": "2024-01-02T03:04:05Z", "number": 1.5, "integer": 2, "boolean": True, "object": {"a": 1}}.get(
        f.type, {"email": "a@b.co", "uri": "http://x.io"}.get(f.format or "", "x"))


@pytest.mark.parametrize(("name", "fields"), ALL_FIELDS, ids=[n for n, _ in ALL_FIELDS])
@pytest.mark.parametrize("batch", [False, True])
def test_each_field_with_each_tricky_value_matches_the_general_path(name: str, fields: tuple[Field, ...],
                                                                    batch: bool) -> None:
    base = {f.name: _example(f) for f in fields}
    validate = compile_validator(fields, batch=batch)
    for f in fields:
        for value in TRICKY:
            payload = {**base, f.name: value}
            general = _outcome(lambda p: validate_payload(p, fields, batch=batch), payload)
            assert _outcome(validate, payload) == general, (f.name, value)


def test_a_valid_payload_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = REGISTRY["pushwoosh"].actions["trackEvent"].fields
    validate = compile_validator(fields, batch=False)
    monkeypatch.setattr(fields_module, "validate_payload", None)  # the general path would now fail
    payload = {"name": "Order Completed", "external_id": "u1", "timestamp": "2024-01-02T03:04:05.123Z",
               "properties": {"a": 1}, "device_id": None, "device_platform": "", "junk": 1}
    assert validate(payload) == {"name": "Order Completed", "external_id": "u1",
                                 "timestamp": "2024-01-02T03:04:05.123Z", "properties": {"a": 1}, "device_id": None}


tree = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(["a", "b", "0", "length"]), c, max_size=3), max_leaves=8)


@settings(max_examples=500, deadline=None)
@given(obj=tree, keys=st.lists(st.sampled_from(["a", "b", "0", "length"]), max_size=4).map(tuple))
def test_path_getter_equals_get_path(obj: Any, keys: tuple[str, ...]) -> None:
    assert path_getter(keys)(obj) == get_path(obj, keys)


@pytest.mark.parametrize(("text", "expected"), [
    # Segment's answers (its engine on each string, 2026-11-30).
    ("2024-01-02T03:04:05.123Z", True), ("2024-01-02T24:00:00Z", True), ("2024-01-02T25:00:00Z", False),
    ("2024-13-01T00:00:00Z", False), ("1700000000", True), ("-5.5", True), ("1e3", False), ("Jan 5 2024", True),
    ("Mar 2024", True), ("March", False), ("12:30", False), ("Tuesday", False), ("2024 Mar 3", True), ("foo", False),
])
def test_date_like_strings_as_segment_reads_them(text: str, expected: bool) -> None:
    assert fields_module.is_date_like(text) is expected
