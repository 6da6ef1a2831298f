"""Pushwoosh (Actions): Track Event and Create or Update User Profiles.

Requests equal those of Segment's `pushwoosh` destination for the same payloads, including
its one inconsistency: a batched post-events body names the app code `app_id`, a single one
`app_code`. Both come from `_post_events` below so that difference is the only one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ..fields import Field
from ..secret import Secret
from .base import Action, Destination, HttpRequest, Preset, put

__all__ = ["PUSHWOOSH", "PushwooshSettings"]

DEFAULT_BASE_URL = "https://integration-segment.svc-nue.pushwoosh.com"


class PushwooshSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True,
                        rename={"api_key": "pushwooshAPIKey", "app_code": "pushwooshAppCode", "base_url": "baseUrl"}):
    """Instance settings, named as in Segment (`pushwooshAPIKey`, `pushwooshAppCode`)."""

    #: `pushwooshAPIKey`: the Pushwoosh API access token (a secret).
    api_key: Secret
    #: `pushwooshAppCode`: the Pushwoosh application code.
    app_code: str
    #: `baseUrl`: Pushwoosh's Segment integration API (override for a sandbox or proxy).
    base_url: str = DEFAULT_BASE_URL


def _path(p: str) -> dict[str, str]:
    return {"@path": p}


TRACK_FIELDS = (
    Field("external_id", "External User ID", "string", required=True, default=_path("$.userId")),
    Field("device_id", "Device ID", "string", allow_null=True, default=_path("$.context.device.id")),
    Field("device_platform", "Device Platform", "string", allow_null=True, default=_path("$.context.device.type")),
    Field("name", "Name", "string", required=True,
          default={"@if": {"exists": _path("$.event"), "then": _path("$.event"), "else": _path("$.name")}}),
    Field("timestamp", "Timestamp", "datetime", required=True, default=_path("$.timestamp")),
    Field("properties", "Event Properties", "object", default=_path("$.properties")),
    Field("enable_batching", "Batch Data to Pushwoosh", "boolean", default=False,
          description="When enabled, up to 100 events per request"),
)


def _post_events(payloads: Sequence[dict[str, Any]], settings: PushwooshSettings, batched: bool) -> HttpRequest:
    # Segment's batch body says `app_id` where its single body says `app_code`; kept for parity.
    app_key = "app_id" if batched else "app_code"
    events = []
    for p in payloads:
        e: dict[str, Any] = {}
        put(e, "user_id", p, "external_id")
        put(e, "device_id", p, "device_id")
        put(e, "device_platform", p, "device_platform")
        e[app_key] = settings.app_code
        put(e, "name", p, "name")
        put(e, "timestamp", p, "timestamp")
        put(e, "attributes", p, "properties")
        events.append(e)
    return HttpRequest("POST", "/integration-segment/v1/post-events", {"events": events})


def _str_field(name: str, label: str, path: str) -> Field:
    return Field(name, label, "string", allow_null=True, default=_path(path))


PROFILE_FIELDS = (
    Field("external_id", "External User ID", "string", default=_path("$.userId")),
    _str_field("email", "Email", "$.traits.email"),
    _str_field("app_version", "App Version", "$.context.app.version"),
    _str_field("device_id", "Device ID", "$.context.device.id"),
    _str_field("device_model", "Device Model", "$.context.device.model"),
    _str_field("device_platform", "Device Platform", "$.context.device.type"),
    _str_field("device_token", "Device Token", "$.context.device.token"),
    _str_field("language", "Language", "$.context.locale"),
    _str_field("country", "Country", "$.context.location.country"),
    _str_field("city", "City", "$.context.location.city"),
    # Declared allowNull, but Segment's schema for an object field keeps type `object`: null is
    # removed as an empty value and any other non-object is refused.
    Field("current_location", "Current Location", "object",
          properties=(Field("latitude", "Latitude", "number"), Field("longitude", "Longitude", "number")),
          default={"latitude": _path("$.context.location.latitude"),
                   "longitude": _path("$.context.location.longitude")}),
    _str_field("device_os_version", "Device OS Version", "$.context.os.version"),
    _str_field("timezone", "Timezone", "$.context.timezone"),
    _str_field("user_agent", "User Agent", "$.context.userAgent"),
    Field("custom_attributes", "Custom Attributes", "object", default=_path("$.traits")),
)
_RESERVED = frozenset(f.name for f in PROFILE_FIELDS)
_PROFILE_KEYS = ("email", "app_version", "device_id", "device_model", "device_platform", "device_token",
                 "language", "country", "city", "current_location", "device_os_version", "timezone", "user_agent")


def _track_user(payloads: Sequence[dict[str, Any]], settings: PushwooshSettings, batched: bool) -> HttpRequest:
    (p,) = payloads
    custom = p.get("custom_attributes") or {}
    body: dict[str, Any] = {"attributes": {k: v for k, v in custom.items() if k not in _RESERVED}}
    put(body, "user_id", p, "external_id")
    for key in _PROFILE_KEYS:
        put(body, key, p, key)
    location = body.get("current_location")
    if isinstance(location, dict) and not location:
        del body["current_location"]  # Segment's removeEmpty: an empty location is left out
    return HttpRequest("POST", "/integration-segment/v1/track-user", body)


def _delete_user(settings: PushwooshSettings, user_id: str | None, anonymous_id: str | None) -> HttpRequest:
    body = {} if user_id is None else {"external_id": user_id}
    return HttpRequest("POST", "/integration-segment/v1/delete-user", body)


def _ping(settings: PushwooshSettings) -> HttpRequest:
    return HttpRequest("POST", "/integration-segment/v1/ping", {"body": {"name": "test_segment_auth"}})


def _auth(settings: PushwooshSettings) -> dict[str, str]:
    return {"Authorization": f"Token {settings.api_key.reveal()}", "X-PW-Appcode": settings.app_code}


PUSHWOOSH = Destination(
    slug="pushwoosh",
    title="Pushwoosh (Actions)",
    integration_names=("Pushwoosh", "Pushwoosh (Actions)", "Actions Pushwoosh"),
    settings_type=PushwooshSettings,
    actions={
        "trackEvent": Action("trackEvent", "Track Event", TRACK_FIELDS,
                             'type = "track" or type = "page" or type = "screen"', _post_events,
                             batchable=True, max_batch_size=100),
        "updateUserProfile": Action("updateUserProfile", "Create or Update User Profiles", PROFILE_FIELDS,
                                    'type = "identify"', _track_user),
    },
    presets=(
        # Batching is on for this preset here (Segment's default mapping has it off).
        Preset("Track Events", "trackEvent", 'type = "track" or type = "page" or type = "screen"',
               enable_batching=True),
        Preset("Create or Update User Profile", "updateUserProfile", 'type = "identify"'),
    ),
    base_url=lambda s: s.base_url.rstrip("/"),
    auth_headers=_auth,
    delete_user=_delete_user,
    ping=_ping,
)
