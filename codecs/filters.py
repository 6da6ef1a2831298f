"""Destination filters (Segment's, per destination instance), compiled once; applied to an event
before the instance's mappings see it (pure).

A filter has a `title`, an FQL condition (`if`, the language of mapping triggers) and actions:
`drop` the event, `sample` it (keep `percent` of the events the condition selects, chosen by
messageId, so a replay keeps the same ones), `drop_properties` (remove the named keys of
`properties`, `traits`, `context`) or `allow_properties` (keep only the named keys of each object
named). As Segment documents, filters apply by kind, whatever their order in the config: every
sample first, then every drop, then property removals, then property allowlists; within a kind
in the order written. Each condition is read on the event as it arrived. At most 10 per instance.

An event dropped or sampled out gets one `filtered` outcome for the instance, naming the filter;
an event whose properties changed goes on, changed, to the mappings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from .fql import Trigger, TriggerError, compile_trigger

__all__ = ["MAX_FILTERS", "Dropped", "FilterConfig", "Filters", "Kept", "compile_filters"]

MAX_FILTERS = 10
OBJECTS = ("properties", "traits", "context")


class _Fields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    properties: list[str] = msgspec.field(default_factory=list)
    traits: list[str] = msgspec.field(default_factory=list)
    context: list[str] = msgspec.field(default_factory=list)


class _Drop(msgspec.Struct, tag="drop", tag_field="type", forbid_unknown_fields=True):
    pass


class _Sample(msgspec.Struct, tag="sample", tag_field="type", forbid_unknown_fields=True):
    percent: Annotated[float, msgspec.Meta(gt=0, le=1)]


class _DropProperties(msgspec.Struct, tag="drop_properties", tag_field="type", forbid_unknown_fields=True):
    fields: _Fields


class _AllowProperties(msgspec.Struct, tag="allow_properties", tag_field="type", forbid_unknown_fields=True):
    fields: _Fields


_Action = _Drop | _Sample | _DropProperties | _AllowProperties
_ORDER = (_Sample, _Drop, _DropProperties, _AllowProperties)  # Segment's order of application


class FilterConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One `[[destinations.filters]]` entry, in the shape of Segment's filter objects."""

    #: The filter's name, given in the `filtered` outcome's reason.
    title: str
    #: Which events the filter applies to: FQL, as in `subscribe`.
    if_: str = msgspec.field(name="if")
    #: What it does: `drop`, `sample` (percent, by messageId), `drop_properties`, `allow_properties`.
    actions: list[_Action]
    #: false switches the filter off.
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Dropped:
    """The event does not go to the instance: `reason` names the filter."""

    title: str
    reason: str


@dataclass(frozen=True, slots=True)
class Kept:
    """The event goes on, as `tree` (the same object when no filter changed it); `changes` says
    which filters changed what, for `pushstream preview`."""

    tree: dict[str, Any]
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Filter:
    title: str
    trigger: Trigger
    action: _Action


class Filters:
    """An instance's compiled filters; `apply(tree, message_id)` is a Dropped or a Kept."""

    def __init__(self, filters: Sequence[_Filter] = ()) -> None:
        self._by_kind = [[f for f in filters if isinstance(f.action, kind)] for kind in _ORDER]
        self.count = len(filters)

    def __bool__(self) -> bool:
        return self.count > 0

    def apply(self, tree: dict[str, Any], message_id: str) -> Dropped | Kept:
        if not self.count:
            return Kept(tree)
        samples, drops, removals, allowlists = self._by_kind
        for f in samples:
            assert isinstance(f.action, _Sample)
            if f.trigger.matches(tree) and not sampled_in(message_id, f.action.percent):
                return Dropped(f.title, f"filter {f.title!r} sampled the event out (it keeps "
                                        f"{f.action.percent:.0%} of the events it selects)")
        for f in drops:
            if f.trigger.matches(tree):
                return Dropped(f.title, f"filter {f.title!r} dropped the event")
        changed, changes = tree, []
        for f in (*removals, *allowlists):
            if not f.trigger.matches(tree):
                continue
            assert isinstance(f.action, (_DropProperties, _AllowProperties))
            changed, what = _apply_fields(changed, f.action)
            if what:
                changes.append(f"filter {f.title!r} {what}")
        return Kept(changed, changes)


def sampled_in(message_id: str, percent: float) -> bool:
    """Whether a sample keeping `percent` keeps this event: its messageId's place in [0, 1), the
    same every time it is read."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < percent


def _apply_fields(tree: dict[str, Any], action: _DropProperties | _AllowProperties) -> tuple[dict[str, Any], str]:
    """A copy of `tree` with the action's keys removed (or only them kept), and what it did."""
    out = dict(tree)
    done = []
    for name in OBJECTS:
        keys = getattr(action.fields, name)
        obj = tree.get(name)
        if not keys or not isinstance(obj, dict):
            continue
        if isinstance(action, _DropProperties):
            kept = {k: v for k, v in obj.items() if k not in keys}
            verb = "removed"
            touched = sorted(set(obj) - set(kept))
        else:
            kept = {k: v for k, v in obj.items() if k in keys}
            verb = "kept only"
            touched = sorted(kept)
        out[name] = kept
        done.append(f"{verb} {name}: {', '.join(touched) or '(none)'}")
    return out, "; ".join(done)


def compile_filters(configs: Sequence[FilterConfig], where: str, errors: list[str]) -> Filters:
    """Compile an instance's filters, adding every mistake (with `where`, the instance's location) to `errors`."""
    if len(configs) > MAX_FILTERS:
        errors.append(f"{where}.filters: at most {MAX_FILTERS} filters per destination (Segment's limit), "
                      f"got {len(configs)}")
    compiled: list[_Filter] = []
    for i, cfg in enumerate(configs):
        here = f"{where}.filters[{i}] ({cfg.title})"
        if not cfg.actions:
            errors.append(f"{here}.actions: give at least one action (drop, sample, drop_properties, allow_properties)")
        try:
            trigger = compile_trigger(cfg.if_)
        except TriggerError as exc:
            errors.append(f"{here}.if: {exc}")
            continue
        for j, action in enumerate(cfg.actions):
            if isinstance(action, (_DropProperties, _AllowProperties)) and not any(
                    getattr(action.fields, name) for name in OBJECTS):
                errors.append(f"{here}.actions[{j}].fields: name the keys of properties, traits or context")
            if cfg.enabled:
                compiled.append(_Filter(cfg.title, trigger, action))
    return Filters(compiled)
