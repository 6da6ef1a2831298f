"""Which instances an event's triggers can select, found without asking every instance.

A worker serving many instances of one kind (an app per brand: `type = "track" and
properties.brand = "b3"`) would otherwise evaluate every instance's triggers on every event.
A trigger says which string equalities any of its matches needs (`Trigger.needs`); an instance
all of whose subscriptions need the same field to hold some string is indexed under that field
by those strings. An event then reads each indexed field once and looks its value up: the
instances it finds, and those not indexed, are routed as before; the others cannot match and
are passed over as unmatched. Deletions reach every instance (route.py), so they never come
here. Which instances are passed over depends only on which strings the event's indexed fields
hold, so each combination's answer is computed once.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .fql import Trigger, field_reader

__all__ = ["Dispatch", "Routable"]


class _Subscription(Protocol):
    @property
    def trigger(self) -> Trigger: ...


class Routable(Protocol):
    """What dispatch reads of an instance (config.Instance)."""

    @property
    def name(self) -> str: ...

    @property
    def subscriptions(self) -> Sequence[_Subscription]: ...


Instance = TypeVar("Instance", bound=Routable)

Field = tuple[str, tuple[str, ...]]
#: Answers kept per Dispatch: a field's values repeat (brands, event names), so few are ever made.
_ANSWERS = 4096


class Dispatch(Generic[Instance]):
    """The instances an event may match (`select`), in config order, and the names of the others."""

    __slots__ = ("instances", "fields", "always", "answers")

    def __init__(self, instances: Sequence[Instance]) -> None:
        self.instances = tuple(instances)
        keys = [_keys(i) for i in self.instances]
        chosen = _choose(keys)
        by_field: dict[Field, dict[str, list[int]]] = collections.defaultdict(lambda: collections.defaultdict(list))
        always: list[int] = []
        for n, (key, field) in enumerate(zip(keys, chosen, strict=True)):
            if field is None:
                always.append(n)
            else:
                for text in key[field]:
                    by_field[field][text].append(n)
        #: Each indexed field: its reader, and the instances (by position) each string selects.
        self.fields: tuple[tuple[Callable[[dict[str, Any]], Any], dict[str, tuple[int, ...]]], ...] = tuple(
            (field_reader(*f), {text: tuple(ns) for text, ns in texts.items()}) for f, texts in by_field.items())
        self.always = tuple(always)
        self.answers: dict[tuple[str | None, ...], tuple[tuple[Instance, ...], tuple[str, ...]]] = {}

    @property
    def indexed(self) -> bool:
        """Whether any instance can be passed over (else `select` is all of them, always)."""
        return bool(self.fields)

    def select(self, tree: dict[str, Any]) -> tuple[tuple[Instance, ...], tuple[str, ...]]:
        """(the instances whose triggers may match `tree`, the names of those that cannot)."""
        if not self.fields:
            return self.instances, ()
        values = tuple(v if type(v := read(tree)) is str and v in texts else None for read, texts in self.fields)
        answer = self.answers.get(values)
        if answer is None:
            answer = self._answer(values)
            if len(self.answers) < _ANSWERS:
                self.answers[values] = answer
        return answer

    def _answer(self, values: tuple[str | None, ...]) -> tuple[tuple[Instance, ...], tuple[str, ...]]:
        chosen = set(self.always)
        for (_, texts), value in zip(self.fields, values, strict=True):
            if value is not None:
                chosen.update(texts[value])
        picked = tuple(i for n, i in enumerate(self.instances) if n in chosen)
        passed = tuple(i.name for n, i in enumerate(self.instances) if n not in chosen)
        return picked, passed


def _keys(instance: Routable) -> dict[Field, frozenset[str]]:
    """The fields every subscription of `instance` needs to hold a string, with the strings its
    subscriptions accept there (one per subscription; any of them lets the instance match)."""
    subs = instance.subscriptions
    if not subs:
        return {}
    per_sub = [{(head, path): text for head, path, text in s.trigger.needs} for s in subs]
    if any(len(needs) != len(s.trigger.needs) for needs, s in zip(per_sub, subs, strict=True)):
        # A trigger needing one field to hold two strings matches nothing; not worth an index.
        return {}
    shared = set(per_sub[0]).intersection(*per_sub[1:])
    return {f: frozenset(needs[f] for needs in per_sub) for f in shared}


def _choose(keys: list[dict[Field, frozenset[str]]]) -> list[Field | None]:
    """The field each instance is indexed under: of the fields two or more instances can use, the
    one that tells the most apart (most distinct strings among them, then most users)."""
    usable: dict[Field, set[str]] = collections.defaultdict(set)
    users: collections.Counter[Field] = collections.Counter()
    for key in keys:
        for field, texts in key.items():
            usable[field].update(texts)
            users[field] += 1
    # One instance alone is as quick to ask as to look up.
    rank = {f: (len(texts), users[f]) for f, texts in usable.items() if users[f] >= 2}
    return [max((f for f in key if f in rank), key=lambda f: (rank[f], f), default=None) for key in keys]
