"""Segment spec events: a tagged union on `type`, decoded with msgspec.

`decode_event(raw)` returns an `Event`: the typed header (`SegmentEvent`, used for keys,
routing and outcomes) plus the decoded JSON tree that mappings and triggers read, with every
unknown field kept (`$.context.foo`, custom top-level keys). Anything that is not a Segment
event raises `InvalidEvent` with a message naming the problem (path and expected type).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import msgspec

__all__ = ["Alias", "Delete", "Event", "Group", "Identify", "InvalidEvent", "Page", "Screen", "input_key",
           "SegmentEvent", "Track", "decode_event"]

Obj = dict[str, Any]


class _Base(msgspec.Struct, tag_field="type", rename="camel", kw_only=True, frozen=True):
    """Fields common to every call. Unknown fields are ignored here (they stay in the tree).

    The object-valued fields mappings read (`context`, `properties`, `traits`) are not decoded
    a second time into the header: `OBJECT_FIELDS` checks their type on the tree, with the
    message msgspec gives. (Building them twice was ~7% of the transform stage.)"""

    #: Missing or empty: the router gives the event a derived one (`derived_message_id`).
    message_id: str = ""
    user_id: str | None = None
    anonymous_id: str | None = None
    timestamp: str | int | float | None = None
    integrations: Obj | None = None


class Track(_Base, tag="track"):
    event: str


class Page(_Base, tag="page"):
    name: str | None = None
    category: str | None = None


class Screen(_Base, tag="screen"):
    name: str | None = None


class Identify(_Base, tag="identify"):
    pass


class Group(_Base, tag="group"):
    group_id: str


class Alias(_Base, tag="alias"):
    previous_id: str


class Delete(_Base, tag="delete"):
    """A user deletion request (Segment sends these apart from events; here they share the topic)."""


SegmentEvent = Track | Page | Screen | Identify | Group | Alias | Delete
EVENT_TYPES = frozenset(t.__struct_config__.tag for t in (Track, Page, Screen, Identify, Group, Alias, Delete))
_header = msgspec.json.Decoder(SegmentEvent)

#: Per call, the fields that must be a JSON object (or null) when present.
OBJECT_FIELDS: dict[type, tuple[str, ...]] = {
    Track: ("context", "properties"), Page: ("context", "properties"), Screen: ("context", "properties"),
    Identify: ("context", "traits"), Group: ("context", "traits"), Alias: ("context",), Delete: ("context",)}
_JSON_NAMES = {list: "array", str: "str", int: "int", float: "float", bool: "bool"}
_tree = msgspec.json.Decoder(Obj)


class InvalidEvent(ValueError):
    """The record is not a Segment event; the message says why. `message_id` is the record's
    messageId when it could be read (its outcome keeps it)."""

    def __init__(self, message: str, message_id: str | None = None) -> None:
        super().__init__(message)
        self.message_id = message_id


class Event(msgspec.Struct, frozen=True):
    """A decoded event: typed header + the full JSON tree."""

    header: SegmentEvent
    tree: Obj

    @property
    def type(self) -> str:
        return self.tree["type"]

    @property
    def message_id(self) -> str:
        return self.header.message_id or ""

    def with_message_id(self, message_id: str) -> Event:
        """This event with `message_id` in its header and its tree (where mappings read `$.messageId`)."""
        return Event(msgspec.structs.replace(self.header, message_id=message_id), {**self.tree, "messageId": message_id})

    @property
    def key(self) -> str | None:
        """The partition key: userId, else anonymousId (keeps one user's events in order)."""
        return self.header.user_id or self.header.anonymous_id


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def input_key(event: Any) -> str | None:
    """The Kafka key of an input record, from its decoded JSON: userId, else anonymousId (one
    user's events stay in order on one partition). `pushstream produce` and the intake both key
    records with it."""
    if not isinstance(event, dict):
        return None
    key = event.get("userId") or event.get("anonymousId")
    return key if isinstance(key, str) else None


def _depth(raw: bytes) -> int:
    """How deep arrays and objects nest in `raw` (brackets inside strings not counted); for an
    error message only (~80 us per KB)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", raw)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _undecodable(raw: bytes, exc: Exception) -> str:
    """Why a record is not JSON. msgspec 0.23 reports invalid UTF-8 as a DecodeError without a
    position, 0.22 as a UnicodeDecodeError positioned within the string: the record's bytes
    are checked here, on this error path only, so both give the same reason and the byte
    offset is the record's."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as utf8:
        return f"not UTF-8: {utf8.reason} at byte {utf8.start}"
    return f"not JSON: {exc}"


def decode_event(raw: bytes, max_bytes: int | None = None) -> Event:
    """Decode one record; raises `InvalidEvent` for bad JSON, a wrong shape or an oversized record."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise InvalidEvent(f"record is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        tree = _tree.decode(raw)
    except msgspec.ValidationError as exc:
        # Only a top-level mismatch has no location: inside the object it is e.g. a number out of range.
        message = str(exc)
        raise InvalidEvent("not a Segment event: expected a JSON object" if " - at `$" not in message
                           else message[:1].lower() + message[1:]) from None
    except RecursionError:
        # No fixed limit is checked up front: even two `bytes.count` calls cost ~10% of routing.
        raise InvalidEvent(f"nested {_depth(raw)} levels deep, deeper than the decoder's stack allows "
                           f"(about {sys.getrecursionlimit():,} levels, less the caller's)") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec < 0.23 raised UnicodeDecodeError
        raise InvalidEvent(_undecodable(raw, exc)) from None
    if "type" not in tree:
        raise InvalidEvent("not a Segment event: missing field `type`",
                           tree["messageId"] if isinstance(tree.get("messageId"), str) else None)
    readable_id = tree.get("messageId") if isinstance(tree.get("messageId"), str) else None
    try:
        header = _header.decode(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if message.startswith("Invalid value") and "$.type" in message:
            if tree.get("type") in EVENT_TYPES:  # the tag read twice: JSON keeps the last, the tag the first
                message = "duplicate key `type`"
            else:
                message = (f"unknown event type {tree.get('type')!r}: expected one of "
                           "track, page, screen, identify, group, alias, delete")
        raise InvalidEvent(message, readable_id) from None
    for name in OBJECT_FIELDS[type(header)]:
        value = tree.get(name)
        if value is not None and type(value) is not dict:
            raise InvalidEvent(f"Expected `object | null`, got `{_JSON_NAMES[type(value)]}` - at `$.{name}`",
                               readable_id)
    return Event(header, tree)
