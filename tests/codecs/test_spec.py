"""decode_event's checks of object-valued fields, against what msgspec says when those fields are
declared on the struct (how the header decoded them before they moved to the tree check)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pushstream.codecs.spec import OBJECT_FIELDS, InvalidEvent, decode_event

Obj = dict[str, Any]


class _Ref(msgspec.Struct, kw_only=True):
    message_id: str = msgspec.field(name="messageId")
    context: Obj | None = None
    properties: Obj | None = None
    traits: Obj | None = None


REQUIRED = {"track": {"event": "E"}, "group": {"groupId": "g"}, "alias": {"previousId": "p"}}
NOT_OBJECTS = [[1, 2], "text", 3, 2.5, True, False]
CASES = [(cls.__struct_config__.tag, name, value)
         for cls, names in OBJECT_FIELDS.items() for name in names for value in NOT_OBJECTS]


@pytest.mark.parametrize(("kind", "name", "value"), CASES)
def test_a_non_object_field_is_refused_with_msgspecs_own_message(kind: str, name: str, value: Any) -> None:
    event = {"type": kind, "messageId": "m", **REQUIRED.get(kind, {}), name: value}
    raw = msgspec.json.encode(event)
    with pytest.raises(msgspec.ValidationError) as expected:
        msgspec.json.decode(raw, type=_Ref)
    with pytest.raises(InvalidEvent) as got:
        decode_event(raw)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("kind", ["track", "page", "screen", "identify", "group", "alias", "delete"])
def test_object_and_null_fields_are_accepted_and_kept_in_the_tree(kind: str) -> None:
    names = next(n for c, n in OBJECT_FIELDS.items() if c.__struct_config__.tag == kind)
    event = {"type": kind, "messageId": "m", **REQUIRED.get(kind, {}),
             **{name: ({"k": 1} if i % 2 == 0 else None) for i, name in enumerate(names)}}
    decoded = decode_event(msgspec.json.encode(event))
    assert decoded.tree == event and decoded.message_id == "m"


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
