"""The configuration reference (docs/configuration.md), generated from the config structs: every
key of every section with its type, default, meaning (the `#:` comment above the field) and the
environment variable that overrides it. `pushstream config --reference` prints it;
tests/streams/commands/test_reference.py fails when the page is stale or a key has no meaning.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import msgspec

from pushstream.codecs.config import OpsConfig, PipelineConfig
from pushstream.codecs.console import ConsoleToml
from pushstream.codecs.destinations import REGISTRY
from pushstream.codecs.filters import FilterConfig
from pushstream.codecs.intake import IntakeToml, SourceToml
from pushstream.codecs.kafka_config import ENV_PREFIX, SECURITY_KEYS, KafkaConfig
from pushstream.codecs.secret import Secret
from pushstream.codecs.tables import DestinationTable, MappingTable, PresetOptions
from pushstream.streams import environ

__all__ = ["SECTIONS", "Section", "field_docs", "reference"]


@dataclass(frozen=True)
class Section:
    """One table of the config file and the struct that reads it."""

    heading: str
    struct: type[msgspec.Struct]
    intro: str
    env: dict[str, str] = field(default_factory=dict)


SECTIONS: tuple[Section, ...] = (
    Section("[kafka]", KafkaConfig, "Where the brokers are, how to connect to them, topics and group timings. "
            "The security keys are explained in docs/operating.md, \"Connecting to your Kafka\".",
            {"broker": environ.BROKER_ENV, "replication_factor": environ.REPLICATION_ENV,
             **{k: ENV_PREFIX + k.upper() for k in SECURITY_KEYS}}),
    Section("[pipeline]", PipelineConfig, "Batching, retries, dedup and the worker's local state.",
            {"state_dir": environ.STATE_DIR_ENV}),
    Section("[ops]", OpsConfig, "The worker's operator endpoints.", {"listen": environ.OPS_LISTEN_ENV}),
    Section("[intake]", IntakeToml, "`pushstream intake`: Segment's HTTP Tracking API in front of Kafka.",
            {"listen": environ.INTAKE_LISTEN_ENV}),
    Section("[[intake.sources]]", SourceToml, "One source per write key."),
    Section("[console]", ConsoleToml, "`pushstream console`: the delivery console.",
            {"listen": environ.CONSOLE_LISTEN_ENV}),
    Section("[[destinations]]", DestinationTable, "One destination instance (at least one)."),
    Section("presets", PresetOptions, "Per preset, as `presets = { \"Preset name\" = { ... } }`."),
    Section("[[destinations.mappings]]", MappingTable, "Up to 50 custom mappings per instance, Segment's syntax."),
    Section("[[destinations.filters]]", FilterConfig, "Up to 10 destination filters per instance, Segment's shape, "
            "applied in order before the mappings."),
    *(Section(f"settings (type = \"{slug}\")", dest.settings_type, f"The `settings` table of a {dest.title} instance, "
              "named as in Segment.") for slug, dest in REGISTRY.items()),
)


def field_docs(struct: type) -> dict[str, str]:
    """Each field's `#:` comment lines (joined), read from the source of `struct` and its bases."""
    docs: dict[str, str] = {}
    for cls in reversed(struct.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)) or cls is msgspec.Struct:
            continue
        lines, _ = inspect.getsourcelines(cls)
        tree = ast.parse(textwrap.dedent("".join(lines)))
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                comment: list[str] = []
                i = node.lineno - 2
                while i >= 0 and lines[i].strip().startswith("#:"):
                    comment.insert(0, lines[i].strip()[2:].strip())
                    i -= 1
                if comment:
                    docs[node.target.id] = " ".join(comment)
    return docs


def _type_text(t: Any) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Annotated:
        base, *metas = args
        bounds = [f"{sym} {getattr(m, k)}" for m in metas for k, sym in (("ge", ">="), ("gt", ">"), ("le", "<="))
                  if getattr(m, k, None) is not None]
        return _type_text(base) + (f" ({', '.join(bounds)})" if bounds else "")
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in args if a is not type(None)) + \
            (" (optional)" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict:
        return "table"
    if t is Secret:
        return "secret string (`\"${ENV}\"`)"
    if isinstance(t, type) and issubclass(t, msgspec.Struct):
        return "table"
    return getattr(t, "__name__", str(t))


def _default_text(f: msgspec.structs.FieldInfo) -> str:
    if f.required:
        return "required"
    value = f.default_factory() if f.default is msgspec.NODEFAULT else f.default
    if value is None:
        return "unset"
    return f"`{msgspec.json.encode(value).decode()}`" if not isinstance(value, msgspec.Struct) else "see below"


def reference() -> str:
    """docs/configuration.md's text."""
    out = ["# Configuration reference", "",
           "Generated from the config structs by `pushstream config --reference` (the `#:` comment above each",
           "field is its meaning here); tests/streams/commands/test_reference.py fails when this page is stale.",
           "Any string value may be written `\"${NAME}\"` to read the environment variable NAME; secrets must be.",
           "A config with mistakes is refused at start-up with every mistake and its location.", ""]
    for section in SECTIONS:
        docs = field_docs(section.struct)
        out += [f"## {section.heading}", "", section.intro, "", "| key | type | default | meaning | env |",
                "|---|---|---|---|---|"]
        for f in msgspec.structs.fields(section.struct):
            env = f"`{section.env[f.name]}`" if f.name in section.env else ""
            meaning = re.sub(r"\s+", " ", docs.get(f.name, "")).replace("|", "\\|")
            out.append(f"| `{f.encode_name}` | {_type_text(f.type)} | {_default_text(f)} | {meaning} | {env} |")
        out.append("")
    return "\n".join(out)
