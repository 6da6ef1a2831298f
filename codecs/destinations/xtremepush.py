"""Xtremepush (Actions): Identify and Track, both posting to `/api/integration/segment/handle`.

Identifiers are flattened into the body (`{type, ...identifiers, traits|event+properties,
timestamp, messageId}`), as Segment's implementation does; track reads phone/email from
`context.traits`, identify from `traits`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import msgspec

from ..fields import Field
from ..secret import Secret
from .base import Action, Destination, HttpRequest, Preset, put

__all__ = ["XTREMEPUSH", "XtremepushSettings"]


class XtremepushSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename={"api_key": "apiKey"}):
    """Instance settings, named as in Segment (`url`, `apiKey`)."""

    #: The Xtremepush integration URL from its Segment settings (one trailing slash is dropped, as Segment
    #: does).
    url: str
    #: `apiKey`: the Xtremepush integration API key (a secret).
    api_key: Secret


def _path(p: str) -> dict[str, str]:
    return {"@path": p}


def _identifiers(traits: str) -> Field:
    return Field(
        "identifiers", "Identifiers", "object",
        properties=(Field("userId", "User ID", "string"), Field("anonymousId", "Anonymous ID", "string"),
                    Field("phone", "Phone", "string"), Field("email", "Email", "string", format="email")),
        default={"userId": _path("$.userId"), "anonymousId": _path("$.anonymousId"),
                 "phone": _path(f"{traits}.phone"), "email": _path(f"{traits}.email")},
    )


_TYPE = Field("type", "Event type", "string", required=True, default=_path("$.type"))
_TIMESTAMP = Field("timestamp", "Timestamp", "string", required=True, default=_path("$.timestamp"))
_MESSAGE_ID = Field("messageId", "Message ID", "string", required=True, default=_path("$.messageId"))

IDENTIFY_FIELDS = (_TYPE, _identifiers("$.traits"),
                   Field("traits", "User Attributes", "object", default=_path("$.traits")), _TIMESTAMP, _MESSAGE_ID)
TRACK_FIELDS = (_TYPE, _identifiers("$.context.traits"),
                Field("event", "Event Name", "string", required=True, default=_path("$.event")),
                Field("properties", "Event Properties", "object", default=_path("$.properties")),
                _TIMESTAMP, _MESSAGE_ID)


def _handle(*middle: str) -> Any:
    def build(payloads: Sequence[dict[str, Any]], settings: XtremepushSettings, batched: bool) -> HttpRequest:
        (p,) = payloads
        body: dict[str, Any] = {}
        put(body, "type", p, "type")
        body.update(p.get("identifiers") or {})
        for key in (*middle, "timestamp", "messageId"):
            put(body, key, p, key)
        return HttpRequest("POST", "/api/integration/segment/handle", body)

    return build


def _delete_user(settings: XtremepushSettings, user_id: str | None, anonymous_id: str | None) -> HttpRequest:
    body: dict[str, Any] = {}
    if user_id is not None:
        body["userId"] = user_id
    if anonymous_id is not None:
        body["anonymousId"] = anonymous_id
    return HttpRequest("POST", "/api/integration/segment/delete", body)


def _auth(settings: XtremepushSettings) -> dict[str, str]:
    # HTTP Basic with the API key as the user name and an empty password.
    token = base64.b64encode(f"{settings.api_key.reveal()}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _base_url(settings: XtremepushSettings) -> str:
    # Segment strips exactly one trailing slash from the configured URL.
    return settings.url[:-1] if settings.url.endswith("/") else settings.url


XTREMEPUSH = Destination(
    slug="xtremepush",
    title="Xtremepush (Actions)",
    integration_names=("Xtremepush", "Xtremepush (Actions)", "Actions Xtremepush"),
    settings_type=XtremepushSettings,
    actions={
        "identify": Action("identify", "Identify", IDENTIFY_FIELDS, 'type = "identify"', _handle("traits")),
        "track": Action("track", "Track", TRACK_FIELDS, 'type = "track"', _handle("event", "properties")),
    },
    presets=(
        Preset("Send Analytics Events", "track", 'type = "track"'),
        Preset("Send User Profile Data", "identify", 'type = "identify"'),
    ),
    base_url=_base_url,
    auth_headers=_auth,
    delete_user=_delete_user,
)
