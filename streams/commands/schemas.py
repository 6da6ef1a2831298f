"""JSON Schemas (draft 2020-12) of the records pushstream writes for others, generated from the
msgspec structs that write them, each field described by its `#:` comment: `pushstream schema KIND`
prints one; docs/schemas/ holds them all, and tests/streams/commands/test_schemas.py checks the
files against this module and records a worker wrote against the files.

Compatibility (stated in every schema): within a version, fields are only added, never removed,
renamed or retyped; consumers ignore fields they do not know. A change that breaks this is a new
version with a new `$id`.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

import msgspec

from pushstream.codecs.records import DeadLetter, Outcome, Sample, Unmatched
from pushstream.codecs.spec import SegmentEvent
from pushstream.streams.commands.reference import field_docs

__all__ = ["KINDS", "SCHEMA_VERSION", "schema"]

SCHEMA_VERSION = 1
COMPATIBILITY = ("Version 1: within a version fields are only added, never removed, renamed or retyped; "
                 "ignore fields you do not know. A breaking change is a new version with a new $id.")

#: kind -> (the type a record decodes as, what the topic holds)
KINDS: dict[str, tuple[Any, str]] = {
    "outcome": (Outcome, "A <prefix>.outcomes record: what happened to one event for one action (or to one "
                         "invalid input record). Keyed by the job's key; JSON."),
    "deadletter": (DeadLetter, "A <prefix>.deadletter record: a job that failed (retries ran out) or was "
                               "rejected, with the original event, for `pushstream replay`."),
    "sample": (Sample | Unmatched, "A <prefix>.samples record: a failed request as the console shows it "
                                   "(credentials masked), or a route batch's count of events no mapping took."),
    "event": (SegmentEvent, "An input topic record (what `pushstream intake` and `pushstream produce` write): a "
                            "Segment event. Only the routing header is described; every other field is kept "
                            "as sent and read where a mapping reads it."),
}


def _mirror(t: Any, made: dict[type, Any]) -> Any:
    """`t` for schema generation: msgspec.Raw (an embedded event) as any JSON, and each struct
    rebuilt with its fields' `#:` comments as descriptions (msgspec cannot write a Raw default)."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is msgspec.Raw:
        return Any
    if isinstance(t, type) and issubclass(t, msgspec.Struct):
        if t not in made:
            config, docs = t.__struct_config__, field_docs(t)
            fields: list[Any] = []
            for f in msgspec.structs.fields(t):
                ftype = _mirror(f.type, made)
                if docs.get(f.name):
                    ftype = Annotated[ftype, msgspec.Meta(description=docs[f.name])]
                if f.required:
                    fields.append((f.encode_name, ftype))
                elif f.default is msgspec.NODEFAULT:
                    fields.append((f.encode_name, ftype, msgspec.field(default_factory=f.default_factory)))
                else:
                    fields.append((f.encode_name, ftype, None if isinstance(f.default, msgspec.Raw) else f.default))
            made[t] = msgspec.defstruct(t.__name__, fields, kw_only=True, tag=config.tag, tag_field=config.tag_field,
                                        omit_defaults=config.omit_defaults)
            made[t].__doc__ = t.__doc__
        return made[t]
    if origin in (typing.Union, types.UnionType):
        mirrored = tuple(_mirror(a, made) for a in args)
        return typing.Union[mirrored]  # noqa: UP007  (built from a tuple)
    if origin in (list, dict):
        return types.GenericAlias(origin, tuple(_mirror(a, made) for a in args))
    if origin is typing.Annotated:
        return Annotated[(_mirror(args[0], made), *args[1:])]
    return t


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of `kind` (one of KINDS)."""
    record_type, about = KINDS[kind]
    body = msgspec.json.schema(_mirror(record_type, {}))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://pushstream.invalid/schemas/{kind}/v{SCHEMA_VERSION}.json",
            "title": f"pushstream {kind} record, version {SCHEMA_VERSION}", "description": f"{about} {COMPATIBILITY}",
            **body}
