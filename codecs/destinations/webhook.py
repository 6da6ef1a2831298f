"""Webhooks (Actions): Segment's `send` action, to any http(s) URL a mapping gives.

As Segment's definition (@segment/action-destinations 3.497.0, `destinations/webhook`): the body is
the payload's `data` (one event) or the list of their `data` (a batch); a `sharedSecret` signs it
with a hex HMAC-SHA1 in `X-Signature`; the mapping's `headers` override those, and the JSON
content type overrides them. Batched events share a request only when their `url`, `method`
and `headers` are the same (Segment's `batch_keys`).

Segment signs a batch with the HMAC of its *first event's* `data`, not of the body it sends
(`extendRequest` reads `payload[0].data`), so a receiver that checks the body refuses every
batch. `batchSignature = "segment"` (the default) follows it, for receivers built for Segment;
`"body"` signs the exact bytes sent (docs/parity.md, "Webhook batch signatures").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import msgspec

from ..fields import Field, PayloadInvalid
from ..js import UNDEFINED, is_number, js_json_bytes, js_string
from ..secret import Secret, credential_header
from .base import Action, Destination, HttpRequest

__all__ = ["WEBHOOK", "WebhookSettings"]


class WebhookSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True,
                      rename={"shared_secret": "sharedSecret", "batch_signature": "batchSignature"}):
    """Instance settings: Segment's `sharedSecret`, and two of ours."""

    #: `sharedSecret`: signs each request with a hex HMAC-SHA1 in `X-Signature` (a secret); unset: unsigned.
    shared_secret: Secret | None = None
    #: `batchSignature`: what a batch's `X-Signature` signs: `segment` (Segment's: the first event's
    #: `data`) or `body` (the bytes sent).
    batch_signature: Literal["segment", "body"] = "segment"
    #: Headers every request carries (e.g. `Authorization = "${HOOK_AUTH}"`), each value a secret;
    #: a mapping's `headers` override them.
    headers: dict[str, Secret] = {}


_TOKEN = re.compile(r"[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+")  # what fetch takes as a header name
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")  # what fetch refuses in a header value


def _path(p: str) -> dict[str, str]:
    return {"@path": p}


SEND_FIELDS = (
    Field("url", "URL", "string", required=True, format="uri", description="URL to deliver data to."),
    Field("method", "Method", "string", required=True, default="POST", choices=("POST", "PUT", "PATCH")),
    Field("batch_size", "Batch Size", "number", default=0),
    Field("headers", "Headers", "object"),
    Field("data", "Data", "object", default=_path("$.")),
)


def _split(url: str) -> tuple[str, str, str]:
    """(scheme, authority, rest) of a URL the field check took, read as a browser's URL parser
    reads an http(s) URL: slashes after the scheme are skipped (`http:host/x` is `http://host/x`)."""
    scheme, _, rest = url.partition(":")
    rest = rest.lstrip("/")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return scheme.lower(), rest[:end], rest[end:]


def _header_text(name: str, value: Any) -> str:
    text = js_string(value)
    if _BAD_VALUE.search(text):
        shown = f"The value of {name}" if credential_header(name) else text
        raise PayloadInvalid(f"{shown} is not a legal HTTP header value")
    return text


def _port_ok(hostport: str) -> bool:
    """A host is there, and its port (if any) is at most 65535, as a browser's URL parser wants."""
    host, port = (hostport.rpartition("]")[0] + "]", hostport.rpartition("]")[2].lstrip(":")) \
        if hostport.startswith("[") else hostport.partition(":")[::2]
    return bool(host) and (not port or int(port) <= 65535)


def _check(payload: dict[str, Any]) -> None:
    """What fetch refuses in Segment's request, in its order and words: an unreadable URL, a
    header it cannot send, then a URL of another protocol."""
    scheme, authority, _ = _split(payload["url"])
    if scheme in ("http", "https") and not _port_ok(authority.rpartition("@")[2]):
        raise PayloadInvalid("Invalid URL")
    for name, value in (payload.get("headers") or {}).items():
        if not _TOKEN.fullmatch(name):
            raise PayloadInvalid(f"{name} is not a legal HTTP header name")
        _header_text(name, value)
    if scheme not in ("http", "https"):
        raise PayloadInvalid("Only HTTP(S) protocols are supported")


def _target(payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The URL a request goes to (no credentials, no fragment) and its headers: the URL's own
    user and password become Basic auth, as Node's HTTP client does, unless a header gives one."""
    scheme, authority, rest = _split(payload["url"])
    userinfo, at, hostport = authority.rpartition("@")
    headers: dict[str, str] = {}
    if at:
        user, _, password = userinfo.partition(":")
        creds = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
    for name, value in (payload.get("headers") or {}).items():
        if name.lower() == "authorization":
            headers.pop("Authorization", None)
        headers[name] = _header_text(name, value)
    return f"{scheme}://{hostport}{rest.partition('#')[0]}", headers


def _sign(secret: Secret, data: bytes) -> str:
    return hmac.new(secret.reveal().encode(), data, hashlib.sha1).hexdigest()


def _build(payloads: Sequence[dict[str, Any]], settings: WebhookSettings, batched: bool) -> HttpRequest:
    first = payloads[0]
    url, headers = _target(first)
    body: Any
    if batched:
        body = [p.get("data", UNDEFINED) for p in payloads]
        signed = first.get("data", UNDEFINED)
        if settings.batch_signature == "body":
            body = msgspec.Raw(js_json_bytes(body))
            signed = body
    else:
        signed = first.get("data", UNDEFINED)
        body = UNDEFINED if signed is UNDEFINED else msgspec.Raw(js_json_bytes(signed))
    if settings.shared_secret is not None and signed is not UNDEFINED:
        signature = _sign(settings.shared_secret, signed if isinstance(signed, msgspec.Raw) else js_json_bytes(signed))
        if not any(name.lower() == "x-signature" for name in headers):  # a mapping's header wins, as in Segment
            headers = {"X-Signature": signature, **headers}
    return HttpRequest(first["method"], url, body, headers)


def _batch_group(payload: dict[str, Any]) -> tuple[Hashable, int]:
    size = payload.get("batch_size", 0)
    headers = payload.get("headers")
    key = (payload["url"], payload["method"], None if headers is None else js_json_bytes(headers))
    return key, int(size) if is_number(size) and size >= 1 else 0


def _instance_headers(settings: WebhookSettings) -> dict[str, str]:
    return {name: value.reveal() for name, value in settings.headers.items()}


WEBHOOK = Destination(
    slug="webhook",
    title="Webhooks (Actions)",
    integration_names=("Webhook", "Webhooks (Actions)", "Actions Webhook"),
    settings_type=WebhookSettings,
    # Segment's definition gives the action no default subscription and the destination no presets.
    actions={"send": Action("send", "Send", SEND_FIELDS, "", _build, batchable=True,
                            max_batch_size=4000, default_batch_size=1000, check=_check, batch_group=_batch_group)},
    presets=(),
    base_url=lambda settings: "",
    auth_headers=_instance_headers,
    delete_user=None,
    user_agent="Segment (Actions)",
)
