"""Mapping kit: refusals with paths, runtime errors, and properties that must hold for any input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushstream.codecs.mapping import MappingError, MappingRuntimeError, compile_mapping

REFUSED = [
    ({"a": {"@path": 5}}, "/a/@path", "should be a string or a mapping directive but it is a number"),
    ({"a": {"@nope": 1}}, "/a", "has an invalid directive: @nope"),
    ({"a": {"@path": "x", "@template": "y"}}, "/a", "should only have one @-prefixed key but it has 2 keys"),
    ({"a": {"@path": "x", "other": 1}}, "/a", "should only have one @-prefixed key but it has 2 keys"),
    ({"a": {"@if": {"then": 1}}}, "/a/@if", 'requires an "exists" key or a "blank" key'),
    ({"a": {"@if": {"exists": None, "then": 1}}}, "/a/@if", 'requires an "exists" key or a "blank" key'),
    ({"a": {"@json": {"mode": "ENCODE", "value": "x"}}}, "/a/@json/mode", "Segment only runs the lowercase form"),
    ({"a": {"@json": {"mode": "encode", "value": ""}}}, "/a/@json/value", "must not be empty"),
    ({"a": {"@json": {"value": "x"}}}, "/a/@json", 'should have field "mode"'),
    ({"a": {"@case": {"value": "x"}}}, "/a/@case", 'requires an "operator" key'),
    ({"a": {"@case": {"operator": "title", "value": "x"}}}, "/a/@case/operator", "should be one of lower, upper"),
    ({"a": {"@replace": {"pattern": "", "value": "x"}}}, "/a/@replace/pattern", "length 1 to 10"),
    ({"a": {"@replace": {"pattern": "abcdefghijk", "value": "x"}}}, "/a/@replace/pattern", "length 1 to 10"),
    ({"a": {"@replace": {"pattern": "a", "value": "x", "global": "yes"}}}, "/a/@replace/global", "should be a boolean"),
    ({"a": {"@flatten": {"value": {"@path": "$.x"}}}}, "/a/@flatten", 'requires a "separator" key'),
    ({"a": {"@merge": {"objects": [{}]}}}, "/a/@merge", 'requires a "direction" key'),
    ({"a": {"@merge": {"direction": "left", "objects": [5]}}}, "/a/@merge/objects/0", "should be a object or a mapping"),
    ({"a": {"@transform": {"apply": 1, "mapping": {}}}}, "/a/@transform/apply", "should be a object or a mapping"),
    ({"a": {"@arrayPath": "x"}}, "/a/@arrayPath", "should be an array"),
    ({"a": {"@liquid": "{% for x in y %}{% endfor %}"}}, "/a/@liquid", "unexpected tag 'for'"),
    ({"a": {"@liquid": "x" * 1001}}, "/a/@liquid", "limited to 1000 characters"),
    ({"a": {"@liquid": "{{ x | sort }}"}}, "/a/@liquid", "sort"),
    ({"deep": {"list": [{"@path": 1}]}}, "/deep/list/0/@path", "should be a string"),
]


@pytest.mark.parametrize(("mapping", "path", "message"), REFUSED, ids=[r[1] + " " + r[2][:20] for r in REFUSED])
def test_bad_mappings_are_refused_with_the_path(mapping: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping(mapping)
    assert any(p == path and message in m for p, m in info.value.errors), info.value.errors


def test_every_mistake_is_reported_at_once() -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping({"a": {"@path": 1}, "b": {"@nope": 1}, "c": {"@case": {}}})
    assert [p for p, _ in info.value.errors] == ["/a/@path", "/b", "/c/@case"]


def test_a_dynamic_path_that_resolves_to_a_number_fails_that_event_only() -> None:
    mapping = compile_mapping({"a": {"@path": {"@path": "$.properties.which"}}})
    assert mapping({"properties": {"which": "properties.v", "v": 1}}) == {"a": 1}
    with pytest.raises(MappingRuntimeError, match="@path: expected string, got number"):
        mapping({"properties": {"which": 5}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5).filter(lambda k: not k.startswith("@")), children, max_size=4),
    max_leaves=12,
)
paths = st.sampled_from(["$.userId", "$.properties.a", "$.properties.a.b", "$.context.x[0]", "$.nope", "$.", "traits.z"])
directives = st.deferred(lambda: st.one_of(
    paths.map(lambda p: {"@path": p}),
    st.text(max_size=20).map(lambda t: {"@template": t + "{{properties.a}}"}),
    st.builds(lambda e, t, o: {"@if": {"exists": e, "then": t, "else": o}}, directives, json_values, json_values),
    st.builds(lambda v, op: {"@case": {"operator": op, "value": v}}, directives, st.sampled_from(["lower", "upper"])),
    st.builds(lambda v: {"@replace": {"pattern": "a", "replacement": "b", "value": v}}, directives),
    st.builds(lambda v: {"@json": {"mode": "encode", "value": v}}, directives),
    st.builds(lambda v: {"@flatten": {"value": v, "separator": "."}}, directives),
    st.builds(lambda a, b: {"@merge": {"direction": "right", "objects": [a, b]}}, directives, directives),
    st.builds(lambda v: {"@excludeWhenNull": v}, directives),
    st.builds(lambda v: {"@arrayPath": ["$.properties.a", {"x": v}]}, directives),
    st.builds(lambda v: {"@literal": v}, json_values),
))
mappings = st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda k: not k.startswith("@")),
                           directives | json_values, max_size=5)
events = st.fixed_dictionaries({"type": st.just("track")}, optional={
    "userId": json_values, "properties": json_values, "context": json_values, "traits": json_values})


@settings(max_examples=300, deadline=None)
@given(mappings, events)
def test_valid_mappings_never_crash_on_any_event(mapping: dict[str, Any], event: dict[str, Any]) -> None:
    compiled = compile_mapping(mapping)
    try:
        result = compiled(event)
    except MappingRuntimeError:
        return
    assert isinstance(result, dict)
