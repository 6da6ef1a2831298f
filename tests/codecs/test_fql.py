"""Triggers Segment silently misreads are refused with the column; the rest compile."""

from __future__ import annotations

import pytest

from pushstream.codecs.fql import TriggerError, compile_trigger

REFUSED = [
    ('anonymousId = "a1" and type = "track"', 1, "unknown field `anonymousId`"),
    ('type = "track" AND event = "x"', 16, "use lowercase `and`"),
    ('type = "track" OR event = "x"', 16, "use lowercase `or`"),
    ('not type = "track"', 1, "`not` is not part of FQL"),
    ("type = 'track'", 8, "use double quotes"),
    ('type == "track"', 6, "use `=`, not `==`"),
    ('type = "a" and type = "b" or type = "c"', 27, "mixing `and` and `or` needs parentheses"),
    ('(type = "a" and (event = "b"))', 17, "nested parentheses"),
    ('properties.items[0].id = "x"', 17, "brackets are not supported"),
    ('properties.items.0.id = "x"', 18, "a path segment must be a name"),
    ('match(event, "Order Completed")', 14, "match() takes one wildcard"),
    ('match(event, "*Comp*")', 14, "match() takes one wildcard"),
    ('contains(type, "tr")', 10, "contains() cannot read `type`"),
    ("properties.flag != true", 17, "always true in Segment"),
    ("event = null", 9, 'compares with the string "null"'),
    ('type > "track"', 6, "compares numbers"),
    ('properties.total > "abc"', 20, "needs a number"),
    ("", 1, "the trigger is empty"),
    ('type = "track" and', 19, "expected a condition"),
    ('type = "unterminated', 8, "unterminated string"),
    ("userId.x = 1", 1, "`userId` has no sub-fields"),
    ("properties = 1", 1, "`properties` needs a path"),
    ('type = "a" )', 12, "expected `and`, `or` or the end"),
    ("name = true", 8, 'compares with the string "true"'),
    ("properties.total>100", 17, "put a space before `>`"),
    ('properties.sku !="x"', 16, "put a space after `!=`"),
    ("properties.count >=1", 18, "put a space after `>=`"),
    ('type = "page" or(event = "y")', 15, "put a space between `or` and `(`"),
    ('type = "t" and (contains(event, "x") or type = "p")', 17, "contains()/match() inside parentheses"),
    ("properties.v = 1e3", 16, "write the number out"),
]


@pytest.mark.parametrize(("text", "column", "reason"), REFUSED, ids=[r[0] or "empty" for r in REFUSED])
def test_misread_triggers_are_refused_at_the_column(text: str, column: int, reason: str) -> None:
    with pytest.raises(TriggerError) as info:
        compile_trigger(text)
    assert reason in info.value.reason
    assert info.value.column == column
    assert str(info.value).splitlines()[-1].index("^") == column + 1  # the caret sits under the column


@pytest.mark.parametrize(("text", "event", "expected"), [
    ('type = "track"', {"type": "track"}, True),
    ("type = track", {"type": "track"}, True),  # a bare word is a string, as in Segment
    ('properties.x != "a"', {"type": "track"}, True),  # != is true for a missing field
    ("properties.x != 5", {"type": "track"}, False),  # number forms need a number
    ("properties.a.b = 0", {"properties": {"a": 0}}, True),  # falsy intermediate value is returned
    ('contains(properties.s, "x")', {"properties": {}}, False),
    ('!contains(properties.s, "x")', {"properties": {}}, False),  # not_ forms are false on missing fields
    ('properties.n = "10"', {"properties": {"n": 10}}, False),  # no coercion
    ('event = "A" or event = "B"', {"event": "B"}, True),
    ('type = "t" and (event = "A" or event = "B")', {"type": "t", "event": "C"}, False),
    ("contains(properties.s, 1.50)", {"properties": {"s": "v1.5"}}, True),  # String(Number("1.50"))
    ("contains(properties.s, +3)", {"properties": {"s": "3"}}, True),
])
def test_truth_values(text: str, event: dict, expected: bool) -> None:
    assert compile_trigger(text)(event) is expected


LAST_IN_GROUP = 'type = "track" and (name != "Home" or contains(properties.sku, "x"))'


@pytest.mark.parametrize(("text", "event", "expected"), [
    # Segment's engine on each (../shared/oracle, 2026-12-02): a function as its group's last term
    # is read as written.
    (LAST_IN_GROUP, {"type": "track", "name": "Home", "properties": {"sku": "axb"}}, True),
    (LAST_IN_GROUP, {"type": "track", "name": "Home", "properties": {"sku": "abc"}}, False),
    (LAST_IN_GROUP, {"type": "track", "name": "Shop", "properties": {"sku": "abc"}}, True),
    (LAST_IN_GROUP, {"type": "page", "name": "Shop", "properties": {"sku": "axb"}}, False),
    ('(event = "A" and match(properties.p, "/x*")) or type = "page"', {"type": "track", "event": "A",
                                                                        "properties": {"p": "/xy"}}, True),
    ('(event = "A" and match(properties.p, "/x*")) or type = "page"', {"type": "track", "event": "A",
                                                                        "properties": {"p": "/yy"}}, False),
    ('type = "track" and (event = "A" or !contains(properties.sku, "x"))', {"type": "track", "event": "B",
                                                                             "properties": {"sku": "axc"}}, False),
    ('type = "track" and (contains(properties.sku, "x"))', {"type": "track", "properties": {"sku": "axc"}}, True),
])
def test_a_function_that_ends_its_group_is_read_as_written(text: str, event: dict[str, object],
                                                           expected: bool) -> None:
    assert compile_trigger(text)(event) is expected


@pytest.mark.parametrize(("text", "needs"), [
    ('type = "track" and properties.brand = "b3"', {("type", (), "track"), ("properties", ("brand",), "b3")}),
    ('(type = "track" and event = "A") or (type = "track" and event = "B")', {("type", (), "track")}),
    ('type = "track" or type = "page"', set()),  # one of two strings: not one string every match needs
    ('event = "A" or properties.brand = "b4"', set()),
    ("event = 1.50", {("event", (), "1.5")}),  # compared as the string JavaScript writes
    ("properties.n = 3", set()),  # a number compared as a number
    ('type != "x"', set()), ('properties.brand = null', set()), ("traits.vip = true", set()),
    ('contains(event, "a") and userId = "u"', {("userId", (), "u")}),
    ('!match(event, "A*") and name = "Home"', {("name", (), "Home")}),
])
def test_a_trigger_says_which_string_equalities_every_match_needs(text: str, needs: set[object]) -> None:
    assert compile_trigger(text).needs == needs
