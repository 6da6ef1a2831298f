"""Segment spec events: a tagged union on `type`, decoded with msgspec.

`decode_event(raw)` returns an `Event`: the typed header (`SegmentEvent`, used for keys,
routing and outcomes) plus the decoded JSON tree that mappings and triggers read, with every
unknown field kept (`$.context.foo`, custom top-level keys). Only the header is checked here:
`type`, `messageId`, `userId`, `anonymousId` (numeric ids are coerced to strings, as Segment
does). A record that is not a JSON object, or whose header is wrong, raises `InvalidEvent`
with a message naming the problem (path and expected type); any other field is checked where
a mapping reads it, as Segment does.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import msgspec

from .js import js_string

__all__ = ["Alias", "Delete", "Event", "Group", "Identify", "InvalidEvent", "Page", "Screen", "input_key",
           "SegmentEvent", "Track", "decode_event"]

Obj = dict[str, Any]


#: An id as it may arrive: Segment's SDKs send numbers too (`"userId": 12345`); the header keeps
#: it as the string Segment would (`"12345"`), the tree as sent (mappings coerce per field).
_Id = str | int | float | None


class _Base(msgspec.Struct, tag_field="type", rename="camel", kw_only=True, frozen=True):
    """The routing header: the only fields checked for every event (they key, dedup and route
    it). Everything else stays in the tree and is checked where a mapping reads it, as Segment
    validates only what ends up in an action's payload."""

    #: Missing or empty: the router gives the event a derived one (`derived_message_id`).
    message_id: _Id = ""
    user_id: _Id = None
    anonymous_id: _Id = None
    #: Read by routing only when it is an object (`integrations_allow`); anything else filters nothing.
    integrations: Any = None


class Track(_Base, tag="track", frozen=True):
    pass


class Page(_Base, tag="page", frozen=True):
    pass


class Screen(_Base, tag="screen", frozen=True):
    pass


class Identify(_Base, tag="identify", frozen=True):
    pass


class Group(_Base, tag="group", frozen=True):
    pass


class Alias(_Base, tag="alias", frozen=True):
    pass


class Delete(_Base, tag="delete", frozen=True):
    """A user deletion request (Segment sends these apart from events; here they share the topic)."""


SegmentEvent = Track | Page | Screen | Identify | Group | Alias | Delete
EVENT_TYPES = frozenset(t.__struct_config__.tag for t in (Track, Page, Screen, Identify, Group, Alias, Delete))
_header = msgspec.json.Decoder(SegmentEvent)
_NUMBERS = (int, float)
_tree = msgspec.json.Decoder(Obj)


def _id_text(value: Any) -> Any:
    """An id as the header keeps it: a number written as JavaScript's `String(id)` (`12345`, `1.5`)."""
    return js_string(value) if type(value) in _NUMBERS else value


def _as_strings(header: SegmentEvent) -> SegmentEvent:
    """The header with numeric ids as strings (`_id_text`)."""
    return msgspec.structs.replace(header, **{name: _id_text(getattr(header, name))
                                              for name in ("message_id", "user_id", "anonymous_id")})


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
        return str(self.tree["type"])

    @property
    def message_id(self) -> str:
        message_id = self.header.message_id  # a string once decoded (`_as_strings`), or None
        return message_id if isinstance(message_id, str) else ""

    def with_message_id(self, message_id: str) -> Event:
        """This event with `message_id` in its header and its tree (where mappings read `$.messageId`)."""
        header = msgspec.structs.replace(self.header, message_id=message_id)
        return Event(header, {**self.tree, "messageId": message_id})

    @property
    def key(self) -> str | None:
        """The partition key: userId, else anonymousId (keeps one user's events in order)."""
        key = self.header.user_id or self.header.anonymous_id
        return key if isinstance(key, str) else None


_BAD_ID = re.compile(r"got `(\w+)` - at `\$\.(messageId|userId|anonymousId)`$")
_KIND_NAMES = {"bool": "a boolean", "array": "an array", "object": "an object"}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def input_key(event: Any) -> str | None:
    """The Kafka key of an input record, from its decoded JSON: userId, else anonymousId (one
    user's events stay in order on one partition). `pushstream produce` and the intake both key
    records with it."""
    if not isinstance(event, dict):
        return None
    for name in ("userId", "anonymousId"):
        key = _id_text(event.get(name))  # as the header has it
        if key and isinstance(key, str):
            return key
    return None


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
    readable_id = tree.get("messageId") if isinstance(tree.get("messageId"), str) else None
    if "type" not in tree:
        raise InvalidEvent("not a Segment event: missing field `type`", readable_id)
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
        elif (bad_id := _BAD_ID.search(message)) is not None:
            message = f"`{bad_id[2]}` must be a string or a number, not {_KIND_NAMES[bad_id[1]]}"
        raise InvalidEvent(message, readable_id) from None
    if type(header.user_id) in _NUMBERS or type(header.anonymous_id) in _NUMBERS or type(header.message_id) in _NUMBERS:
        header = _as_strings(header)
    return Event(header, tree)
