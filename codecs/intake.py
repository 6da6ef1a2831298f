"""Segment's HTTP Tracking API, the pure part: which request is which call, who sent it, and the
events it carries, enriched as Segment's API enriches them. No I/O: `streams/intake.py` serves it.

Errors (each an HTTP answer with a JSON body `{"code", "message"}`, as Segment's SDKs read it):
* IntakeError(status, code, message)
  - 400 `invalid_request`: not JSON, not an object, a batch that is not a list
  - 400 `too_large`: an event over 32 KB or a request over 500 KB (Segment's limits)
  - 401 `unauthorized`: no write key, or one no source has

Per event, as Segment's API does: `type` from the path for single calls; a `messageId` when
missing or empty; `receivedAt` (the intake's clock); `sentAt` from the request; the client's
`timestamp` kept as `originalTimestamp` and corrected for clock skew:
`timestamp = receivedAt - (sentAt - originalTimestamp)` (no `timestamp`: `receivedAt`).
`context` is kept as sent (a batch's top-level `context` and `integrations` fill in what an
event lacks). The write key never reaches the event. Events Segment would accept and then drop
(no userId/anonymousId, track without `event`) go on: the worker gives them a `rejected` outcome
where a mapping needs what they lack.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import msgspec

from .secret import resolve_env

__all__ = ["MAX_BATCH_BYTES", "MAX_EVENT_BYTES", "PATHS", "Accepted", "IntakeConfig", "IntakeError", "IntakeToml",
           "Source", "SourceToml", "authenticate", "events_of", "load_intake", "parse_body", "settings_for"]

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

#: Request path -> the call's type (None: a batch). Segment's paths, analytics.js's short ones.
PATHS: dict[str, str | None] = {
    **{f"/v1/{t}": t for t in ("track", "identify", "page", "screen", "group", "alias")},
    **{f"/v1/{t[0]}": t for t in ("track", "identify", "page", "screen", "group", "alias")},
    "/v1/batch": None, "/v1/import": None, "/v1/b": None}

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class IntakeError(Exception):
    """A request the intake refuses; `status`, `code` and `message` make the HTTP answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> bytes:
        return _encode({"code": self.code, "message": self.message})


@dataclass(frozen=True, slots=True)
class Source:
    """A write key and the input topic its events go to. `repr` hides the key."""

    name: str
    write_key: str
    topic: str

    def __repr__(self) -> str:
        return f"Source(name={self.name!r}, topic={self.topic!r}, write_key='********')"


class SourceToml(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: The source's name (in logs and metrics).
    name: str
    #: The write key Segment's SDKs send (a secret: `"${ENV}"`).
    write_key: str
    #: The Kafka topic this source's events are written to.
    topic: str


class IntakeToml(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: host:port the intake serves Segment's Tracking API on.
    listen: str = "127.0.0.1:8088"
    #: Seconds a request waits for the broker to acknowledge its records; then 503 (the SDK retries).
    produce_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: The sources ([[intake.sources]]): each write key and the topic its events go to.
    sources: list[SourceToml] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    """`[intake]`: where `pushstream intake` listens, how long it lets the broker take to ack a
    request's records before answering 503, and its sources (write key -> input topic)."""

    listen: str
    produce_timeout: float
    sources: tuple[Source, ...]


def load_intake(raw: Any, env: dict[str, str], errors: list[str], secrets: bool = True) -> IntakeConfig | None:
    """Check the `[intake]` table; mistakes go to `errors` with their location. Without `secrets`
    (a worker reading the same file) unset write keys are no mistake: the sources keep no key."""
    try:
        toml = msgspec.convert(raw, IntakeToml)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where, _, at = text.partition(" - at `$")
        errors.append(f"intake{at.rstrip('`')}: {where}" if at else f"intake: {text}")
        return None
    if not toml.sources:
        errors.append("intake.sources: name at least one source ([[intake.sources]] with name, write_key, topic)")
    sources = []
    for i, src in enumerate(toml.sources):
        key = resolve_env(src.write_key, f"intake.sources[{i}] ({src.name}).write_key", env,
                          errors if secrets else [])
        if not src.topic:
            errors.append(f"intake.sources[{i}] ({src.name}).topic: name the input topic")
        sources.append(Source(src.name, key, src.topic))
    keys = [s.write_key for s in sources]
    if len(set(keys)) != len(keys):
        errors.append("intake.sources: two sources share a write key")
    return IntakeConfig(toml.listen, toml.produce_timeout, tuple(sources))


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (gzip already undone); the size limit of a request first."""
    if len(raw) > MAX_BATCH_BYTES:
        raise IntakeError(400, "too_large", f"request is {len(raw):,} bytes, over the {MAX_BATCH_BYTES:,}-byte "
                                            "(500 KB) limit per request")
    try:
        body = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IntakeError(400, "invalid_request", f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise IntakeError(400, "invalid_request", "body is not a JSON object")
    return body


def authenticate(authorization: str | None, body: dict[str, Any], sources: list[Source]) -> Source:
    """The source whose write key the request carries: Basic auth (key as user name, empty
    password) or `writeKey` in the body. Keys are compared in constant time."""
    key: str | None = None
    if authorization and authorization[:6].lower() == "basic ":
        try:
            key = base64.b64decode(authorization[6:].strip(), validate=True).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            key = None
    if not key and isinstance(body.get("writeKey"), str):
        key = body["writeKey"]
    if not key:
        raise IntakeError(401, "unauthorized", "no write key: send it as the Basic auth user name or as writeKey")
    for source in sources:
        if hmac.compare_digest(source.write_key.encode(), key.encode()):
            return source
    raise IntakeError(401, "unauthorized", "unknown write key")


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)  # 3.11: also "Z" and most ISO 8601 forms
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    """UTC with milliseconds and a Z, as Segment writes times (isoformat: ~10x strftime's speed)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Accepted(NamedTuple):
    """One enriched event and its JSON, as it goes to Kafka."""

    event: dict[str, Any]
    raw: bytes


def events_of(kind: str | None, body: dict[str, Any], now: float, new_id: Callable[[], str]) -> list[Accepted]:
    """The events a request carries (`kind`: the call's type, None for a batch), enriched, with
    their JSON. Raises `IntakeError` for a malformed batch or an event over the size limit."""
    if kind is None:
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise IntakeError(400, "invalid_request", "a batch request needs a `batch` list")
        defaults = {k: body[k] for k in ("context", "integrations") if isinstance(body.get(k), dict)}
        raw_events = batch
    else:
        defaults, raw_events = {}, [{**body, "type": kind}]
    received = dt.datetime.fromtimestamp(now, dt.UTC)
    received_iso = _iso(received)
    request_sent = body.get("sentAt")
    out = []
    for i, event in enumerate(raw_events):
        if not isinstance(event, dict):
            raise IntakeError(400, "invalid_request", f"batch[{i}] is not a JSON object")
        event.pop("writeKey", None)
        for key, value in defaults.items():
            event.setdefault(key, value)
        message_id = event.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            event["messageId"] = new_id()
        event["receivedAt"] = received_iso
        sent_at = event.get("sentAt", request_sent)
        if sent_at is not None:
            event["sentAt"] = sent_at
        original = _parse_time(event.get("timestamp"))
        if original is None:
            event["timestamp"] = received_iso
        else:
            event["originalTimestamp"] = event["timestamp"]
            sent = _parse_time(sent_at)
            if sent is not None:
                event["timestamp"] = _iso(received - (sent - original))
        raw = _encode(event)
        if len(raw) > MAX_EVENT_BYTES:
            raise IntakeError(400, "too_large",
                              f"event {i} ({event.get('type')}, messageId {event['messageId']}) is {len(raw):,} "
                              f"bytes, over the {MAX_EVENT_BYTES:,}-byte (32 KB) limit")
        out.append(Accepted(event, raw))
    return out


def settings_for(source: Source, api_host: str, protocol: str) -> dict[str, Any]:
    """What analytics.js loads from `<cdnURL>/v1/projects/<writeKey>/settings`: send every event
    to this intake (`apiHost` is `host:port/v1`), nothing else."""
    return {
        "integrations": {"Segment.io": {"apiKey": source.write_key, "apiHost": api_host, "protocol": protocol,
                                        "unbundledIntegrations": [], "addBundledMetadata": True,
                                        "maybeBundledConfigIds": {}, "versionSettings": {"version": "4.4.7"}}},
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}},
                 "identify": {"__default": {"enabled": True}}, "group": {"__default": {"enabled": True}}},
        "edgeFunction": {}, "analyticsNextEnabled": True, "middlewareSettings": {}, "enabledMiddleware": {},
        "metrics": {"sampleRate": 0}, "legacyVideoPluginsEnabled": False, "remotePlugins": [],
    }
