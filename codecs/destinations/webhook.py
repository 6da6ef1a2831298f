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
import functools
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


_SPECIAL = ("http", "https", "ftp", "ws", "wss")
_DEFAULT_PORT = {"http": "80", "https": "443"}  # the schemes a browser's URL parser gives a host
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")


def _host_port(authority: str) -> tuple[str, str]:
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        return host + "]", rest.removeprefix(":")
    host, _, port = hostport.partition(":")
    return host, port


def _ipv4(host: str) -> str | None:
    """A host ending in a number is an IPv4 address to a browser's URL parser: every part read
    (decimal, 0x hex or 0 octal) and within range, as dotted decimal; "" when it is not one,
    None when it cannot be read."""
    parts = host.removesuffix(".").split(".")
    if not re.fullmatch(r"\d+|0[xX][0-9a-fA-F]*", parts[-1]):
        return ""  # a domain name
    try:
        numbers = [int(p, 16) if p[:2].lower() == "0x" else int(p, 8) if len(p) > 1 and p[0] == "0" else int(p)
                   for p in (q if q.lower() != "0x" else "0x0" for q in parts)]
    except ValueError:
        return None
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = sum(n << 8 * (3 - i) for i, n in enumerate(numbers[:-1])) + numbers[-1]
    return ".".join(str(value >> shift & 255) for shift in (24, 16, 8, 0))


def _hostname(host: str) -> str:
    """The host a request goes to, as a browser's URL parser writes it: percent-decoded, lower
    case, an IPv4 address in dotted decimal."""
    if host.startswith("["):
        return host.lower()
    host = urllib.parse.unquote(host).lower()
    return _ipv4(host) or host


def _parses(scheme: str, authority: str, slashed: bool) -> bool:
    """Whether a browser's URL parser (node-fetch's first step) reads the URL: a port of digits
    up to 65535, and for an http(s)-like scheme a host that is there and well formed."""
    if scheme not in _SPECIAL and not slashed:
        return True  # an opaque path (`mailto:`, `urn:`): nothing more to read
    host, port = _host_port(authority)
    if port and (not port.isdigit() or int(port) > 65535):
        return False
    if scheme not in _SPECIAL or host.startswith("["):
        return True
    host = urllib.parse.unquote(host)
    return bool(host) and not _FORBIDDEN_HOST.search(host) and _ipv4(host) is not None


@functools.lru_cache(maxsize=4096)  # a mapping's URLs repeat: most events reuse a handful
def _url_problems(url: str) -> tuple[str | None, str | None]:
    """What fetch refuses in a URL, before the headers are read (`Invalid URL`: a browser's URL
    parser cannot read it) and after (a URL without a host, as Node's legacy parser reads
    `javascript:` or `foo:/x`, or of another protocol)."""
    scheme, authority, _ = _split(url)
    slashed = url.partition(":")[2].startswith("//")
    if not _parses(scheme, authority, slashed):
        return "Invalid URL", None
    if scheme in ("http", "https"):
        return None, None
    rest = url.partition(":")[2]
    if scheme == "javascript" or (rest.startswith("/") and not slashed) or not _host_port(authority)[0]:
        return None, "Only absolute URLs are supported"
    return None, "Only HTTP(S) protocols are supported"


def _check(payload: dict[str, Any]) -> None:
    """What fetch refuses in Segment's request, in its order and words: an unreadable URL, a
    header it cannot send, then a URL without a host or of another protocol."""
    before, after = _url_problems(payload["url"])
    if before:
        raise PayloadInvalid(before)
    for name, value in (payload.get("headers") or {}).items():
        if not _TOKEN.fullmatch(name):
            raise PayloadInvalid(f"{name} is not a legal HTTP header name")
        _header_text(name, value)
    if after:
        raise PayloadInvalid(after)


def _target(payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The URL a request goes to (no credentials, no fragment) and its headers: the URL's own
    user and password become Basic auth, as Node's HTTP client does, unless a header gives one."""
    scheme, authority, rest = _split(payload["url"])
    userinfo, at, _ = authority.rpartition("@")
    host, port = _host_port(authority)
    shown_port = str(int(port)) if port else ""
    hostport = _hostname(host) + (f":{shown_port}" if shown_port not in ("", _DEFAULT_PORT[scheme]) else "")
    headers: dict[str, str] = {}
    if at:  # as Node's legacy URL parser gives `auth`: `user` alone when there is no colon
        creds = urllib.parse.unquote(userinfo)
        headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
    for name, value in (payload.get("headers") or {}).items():
        if name.lower() == "authorization":
            headers.pop("Authorization", None)
        headers[name] = _header_text(name, value)
    # Node's URL parser escapes `'` (the one character it escapes that a valid URI may hold).
    return f"{scheme}://{hostport}{rest.partition('#')[0].replace(chr(39), '%27')}", headers


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
