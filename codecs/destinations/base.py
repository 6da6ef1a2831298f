"""What a destination is: settings, actions (fields + request builder), presets, auth, deletion.

A destination module declares one `Destination` value; nothing here performs I/O. The HTTP
layer (streams/delivery/http.py) resolves `HttpRequest.path` against `base_url(settings)` and
adds `auth_headers(settings)` and the request's own headers, so a request builder only says
what to send.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from ..fields import Field, default_mapping

__all__ = ["Action", "Destination", "HttpRequest", "Preset", "put"]


class HttpRequest(msgspec.Struct, frozen=True):
    """One request to send: method, path and JSON body (`UNDEFINED`: no body, as Segment sends
    for an undefined `json`), and headers of this request alone (a user's, a signature)."""

    method: str
    #: A path joined to the instance's base URL, or an absolute http(s) URL taken as it is.
    path: str
    body: Any
    headers: dict[str, str] = {}


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
    #: A batched mapping's size when its config gives none; None: `max_batch_size`.
    default_batch_size: int | None = None
    #: What the action refuses after field validation (Segment's `perform` throwing a
    #: PayloadValidationError): raises `PayloadInvalid`, so the event is `rejected` at routing.
    check: Callable[[dict[str, Any]], None] | None = None
    #: payload -> (group, most events per request or 0): batched events share a request only
    #: within one group (Segment's `batch_keys`); None: one group per mapping.
    batch_group: Callable[[dict[str, Any]], tuple[Hashable, int]] | None = None

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
    #: The request that deletes a user; None: the destination takes no deletions (they pass it by).
    delete_user: Callable[[Any, str | None, str | None], HttpRequest] | None
    ping: Callable[[Any], HttpRequest] | None = None
    #: The User-Agent its requests carry; None: pushstream's own.
    user_agent: str | None = None


def put(target: dict[str, Any], key: str, source: dict[str, Any], name: str) -> None:
    """Copy `source[name]` to `target[key]` when present: JSON.stringify drops undefined keys."""
    if name in source:
        target[key] = source[name]
