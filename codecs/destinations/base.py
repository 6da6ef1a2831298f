"""What a destination is: settings, actions (fields + request builder), presets, auth, deletion.

A destination module declares one `Destination` value; nothing here performs I/O. The HTTP
layer (streams/delivery/http.py) joins `base_url(settings)` with `HttpRequest.path` and adds
`auth_headers(settings)`, so a request builder only says what to send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from ..fields import Field, default_mapping

__all__ = ["Action", "Destination", "HttpRequest", "Preset", "put"]


class HttpRequest(msgspec.Struct, frozen=True):
    """One request to send: method, path (joined to the instance's base URL) and JSON body."""

    method: str
    path: str
    body: Any


@dataclass(frozen=True, slots=True)
class Action:
    """One action of a destination (Segment's `ActionDefinition`)."""

    key: str
    title: str
    fields: tuple[Field, ...]
    default_subscription: str
    #: (payloads, settings, batched) -> request. One builder serves one event and a batch,
    #: so the two bodies cannot drift apart (unlike Segment's Pushwoosh implementation).
    build: Callable[[Sequence[dict[str, Any]], Any, bool], HttpRequest]
    batchable: bool = False
    max_batch_size: int = 100

    @property
    def default_mapping(self) -> dict[str, Any]:
        """The mapping Segment's presets use (every field's default)."""
        return default_mapping(self.fields)


@dataclass(frozen=True, slots=True)
class Preset:
    """A ready-made subscription: trigger + the action's default mapping."""

    name: str
    action: str
    subscribe: str
    enable_batching: bool = False


@dataclass(frozen=True, slots=True)
class Destination:
    """A destination type: Pushwoosh, Xtremepush, …"""

    slug: str
    title: str
    #: Names a Segment user may write in an event's `integrations` object for this destination.
    integration_names: tuple[str, ...]
    settings_type: type[msgspec.Struct]
    actions: dict[str, Action]
    presets: tuple[Preset, ...]
    base_url: Callable[[Any], str]
    auth_headers: Callable[[Any], dict[str, str]]
    delete_user: Callable[[Any, str | None, str | None], HttpRequest]
    ping: Callable[[Any], HttpRequest] | None = None


def put(target: dict[str, Any], key: str, source: dict[str, Any], name: str) -> None:
    """Copy `source[name]` to `target[key]` when present: JSON.stringify drops undefined keys."""
    if name in source:
        target[key] = source[name]
