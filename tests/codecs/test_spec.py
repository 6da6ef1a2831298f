"""decode_event checks the routing header only (type, messageId, the ids) and keeps the rest as sent."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pushstream.codecs.spec import InvalidEvent, decode_event, input_key

KINDS = ["track", "page", "screen", "identify", "group", "alias", "delete"]
ODD_VALUES = [[1, 2], "text", 3, 2.5, True, False, None, {}]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["context", "properties", "traits", "timestamp", "event", "name", "groupId",
                                  "previousId", "integrations", "sentAt"])
@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_fields_outside_the_header_are_kept_as_sent(kind: str, name: str, value: Any) -> None:
    # Segment validates only what a mapping puts in a payload: `"timestamp": true` on an event
    # whose mapping reads `receivedAt` is delivered.
    event = {"type": kind, "messageId": "m", "userId": "u", name: value}
    decoded = decode_event(msgspec.json.encode(event))
    assert decoded.tree == event and decoded.message_id == "m" and decoded.key == "u"


@pytest.mark.parametrize(("value", "expected"), [(12345, "12345"), (-7, "-7"), (1.5, "1.5"), (2.0, "2"),
                                                 (0, "0"), (1e21, "1e+21"), ("u", "u")])
def test_numeric_ids_are_strings_in_the_header_and_as_sent_in_the_tree(value: Any, expected: str) -> None:
    event = {"type": "track", "event": "E", "messageId": value, "userId": value, "anonymousId": value}
    decoded = decode_event(msgspec.json.encode(event))
    header = decoded.header
    assert (header.message_id, header.user_id, header.anonymous_id) == (expected, expected, expected)
    assert decoded.key == expected and decoded.tree["userId"] == value
    assert input_key(event) == expected


@pytest.mark.parametrize("name", ["messageId", "userId", "anonymousId"])
@pytest.mark.parametrize(("value", "got"), [(True, "a boolean"), ([1], "an array"), ({"a": 1}, "an object")])
def test_an_id_that_is_no_string_or_number_is_refused_with_its_path(name: str, value: Any, got: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(msgspec.json.encode({"type": "identify", "messageId": "m", name: value}))
    assert str(info.value) == f"`{name}` must be a string or a number, not {got}"


DEEP = b'{"type": "track", "messageId": "m", "event": "E", "properties": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"


@pytest.mark.parametrize(("raw", "reason"), [
    # Invalid UTF-8: msgspec 0.22 raised UnicodeDecodeError (positioned in the string), 0.23 a
    # DecodeError without a position; both give the record's byte offset.
    (b'{"type": "track", "event": "\xff\xfe", "messageId": "m"}', "not UTF-8: invalid start byte at byte 28"),
    (b'\xff\xfe\xfd', "not UTF-8: invalid start byte at byte 0"),
    (b'{"type": "track", "event": "\xc3"}', "not UTF-8: invalid continuation byte at byte 28"),
    (b'{"type": "track", "event": }', "not JSON: "),
    (DEEP, "nested 10002 levels deep, deeper than the decoder's stack allows"),
    (b'{"type": "track", "messageId": "m", "event": "E", "properties": {"n": 1e400}}', "number out of range"),
    (b'{"type": "track", "type": "identify", "messageId": "m", "event": "E"}', "duplicate key `type`"),
    (b'{"type": "identify", "type": "track", "messageId": "m", "event": "E"}', "duplicate key `type`"),
    (b"[1, 2]", "not a Segment event: expected a JSON object"),
])
def test_odd_json_gets_one_precise_reason_whichever_msgspec_decodes_it(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as got:
        decode_event(raw)
    assert str(got.value).startswith(reason)
