"""The `[[destinations]]` tables as written in the config file: an instance, its presets' options
and its custom mappings. config.py converts them (reporting every mistake with its location),
then checks and compiles them; streams/commands/reference.py documents them from the `#:` comments.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .filters import FilterConfig
from .kafka_config import Count, Seconds

__all__ = ["DestinationTable", "MappingTable", "PresetOptions"]


class PresetOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: false switches the preset off.
    enabled: bool = True
    #: Send matching events in batches (batchable actions only); unset: the preset's or mapping's own choice.
    enable_batching: bool | None = None
    #: Most events per batched request (up to the action's maximum, 100 for Pushwoosh).
    batch_size: int | None = None


class MappingTable(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: The mapping's name, unique in its instance (in outcomes and metrics).
    name: str
    #: The destination action the mapping feeds (e.g. `trackEvent`, `track`, `send`).
    action: str
    #: The trigger: Segment's FQL (e.g. `type = "track" and event = "Order Completed"`).
    subscribe: str
    #: The field mapping inline (Segment's mapping JSON: `@path`, `@template`, `@if`, ...).
    mapping: dict[str, Any] | None = None
    #: The field mapping in a JSON file (relative to the config file); give this or `mapping`.
    mapping_file: str | None = None
    #: Fill the fields `mapping` leaves out with the action's defaults, as Segment's mapping editor
    #: pre-fills them (e.g. the webhook's `method = "POST"`, `data` = the whole event); false: the
    #: mapping exactly as written.
    defaults: bool = True
    #: Send matching events in batches (batchable actions only); unset: the mapping's `enable_batching` key,
    #: else off.
    enable_batching: bool | None = None
    #: Most events per batched request, up to the action's maximum (Pushwoosh: 100; the webhook: 4000,
    #: by default 1000 or the mapping's literal `batch_size`).
    batch_size: int | None = None


class DestinationTable(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: The instance's name: letters, digits, `.`, `_`, `-`; part of its topics' names.
    name: str
    #: The destination type: one of the registered destinations (`pushwoosh`, `xtremepush`, `webhook`).
    type: str
    #: The instance's settings table, named as in Segment (see the settings sections below).
    settings: dict[str, Any]
    #: true (all presets on), false (none), or a table of per-preset options keyed by preset name.
    presets: bool | dict[str, PresetOptions] = True
    #: The instance's custom mappings ([[destinations.mappings]]).
    mappings: list[MappingTable] = msgspec.field(default_factory=list)
    #: A fixed cap on the instance's request rate; unset: none (429s still slow it down).
    max_requests_per_second: Annotated[float, msgspec.Meta(gt=0)] | None = None
    #: Most requests in flight at once (and the connection pool's size); how many are is adapted
    #: to the destination's latency and answers, from 4 up to this (streams/delivery/concurrency.py).
    #: 1,024 lets an API answering in 300 ms take ~3,400 requests/s from one instance.
    max_in_flight: Count = 1024
    #: This instance's retry window (seconds); unset: the pipeline's.
    retry_window: Seconds | None = None
    #: This instance's attempt cap; unset: the pipeline's.
    max_attempts: Count | None = None
    #: The instance's destination filters ([[destinations.filters]]).
    filters: list[FilterConfig] = msgspec.field(default_factory=list)
    #: `per_user`: while a user's job waits for a retry, that user's later jobs wait behind it.
    ordering: Literal["unordered", "per_user"] = "unordered"
    #: The hosts this instance's requests may go to (`hooks.example.com`, or `*.example.com` for its
    #: subdomains); a request to any other is refused (HOST_NOT_ALLOWED). Unset: any host.
    allowed_hosts: list[str] | None = None
    #: Follow 3xx redirects (each hop checked against `allowed_hosts`); off: a 3xx is the answer.
    follow_redirects: bool = False
