"""A local stand-in for Pushwoosh's Segment integration API, Xtremepush's handle endpoint and
any webhook receiver.

It checks credentials (401 on a wrong key), checks body shapes (400 naming the problem),
records every request (queryable), and can be told to misbehave. Under `/hooks/` it is a
webhook receiver: any path, POST, PUT or PATCH, any JSON or none; an `X-Signature` is checked
against its shared secrets (401 when it matches none) and recorded as what it signed: `body`
(the bytes sent) or `first` (a batch's first element, as Segment signs a batch). Control endpoints:

    GET    /_sandbox/requests[?since=SEQ]  recorded requests, oldest first
    DELETE /_sandbox/requests              forget them
    POST   /_sandbox/faults                {"status": 503, "duration": 20, "retry_after": "2",
                                            "latency": 5.0, "count": 3, "path_prefix": "/api",
                                            "appcode": "APP", "api_key": "K",
                                            "body_contains": "text", "max_concurrent": 50}  (all optional;
                                           max_concurrent: only while more requests than that are open,
                                           as a destination that limits concurrency answers 429)
    DELETE /_sandbox/faults                clear every fault
    POST   /_sandbox/credentials           {"pushwoosh": [["KEY", "APPCODE"]], "xtremepush": ["KEY"],
                                            "webhook": ["SHARED SECRET"]}:
                                           accept these from now on
    GET    /_sandbox/stats                 {"in_flight": n, "peak_in_flight": n} (DELETE requests resets the peak)
    GET    /_sandbox/health

Only ever binds to loopback; for the demo, tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

__all__ = ["Sandbox", "SandboxConfig", "run_sandbox"]

PW_PREFIX = "/integration-segment/v1"
XP_PREFIX = "/api/integration/segment"
HOOK_PREFIX = "/hooks/"


@dataclass
class SandboxConfig:
    #: Accepted Pushwoosh credentials: (api key, app code) pairs.
    pushwoosh: set[tuple[str, str]] = field(default_factory=lambda: {("sandbox-pushwoosh-key", "SANDBOX-APP")})
    #: Accepted Xtremepush API keys.
    xtremepush: set[str] = field(default_factory=lambda: {"sandbox-xtremepush-key"})
    #: Shared secrets a webhook's X-Signature may be made with.
    webhook: set[str] = field(default_factory=lambda: {"sandbox-webhook-secret"})


@dataclass
class Fault:
    status: int | None = None
    retry_after: str | None = None
    latency: float = 0.0
    until: float | None = None
    count: int | None = None
    path_prefix: str = ""
    appcode: str | None = None
    api_key: str | None = None
    #: Only requests whose body holds this text: a destination refusing a batch for one bad event.
    body_contains: str | None = None
    #: Only while more requests than this are open at once.
    max_concurrent: int | None = None

    def applies(self, request: web.Request, key: str | None, raw: bytes = b"", in_flight: int = 0) -> bool:
        if self.until is not None and time.time() > self.until:
            return False
        if self.count is not None and self.count <= 0:
            return False
        if not request.path.startswith(self.path_prefix):
            return False
        if self.appcode is not None and request.headers.get("X-PW-Appcode") != self.appcode:
            return False
        if self.body_contains is not None and self.body_contains.encode() not in raw:
            return False
        if self.max_concurrent is not None and in_flight <= self.max_concurrent:
            return False
        return self.api_key is None or key == self.api_key


class _Shape(Exception):
    pass


def _need(obj: Any, key: str, kinds: tuple[type, ...], where: str, optional: bool = False) -> None:
    if key not in obj:
        if not optional:
            raise _Shape(f"{where}.{key} is required")
        return
    if not isinstance(obj[key], kinds) or isinstance(obj[key], bool) and bool not in kinds:
        raise _Shape(f"{where}.{key} has the wrong type ({type(obj[key]).__name__})")


def _check_post_events(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise _Shape("body.events must be a list")
    if not 1 <= len(body["events"]) <= 100:
        raise _Shape(f"body.events must hold 1 to 100 events, got {len(body['events'])}")
    for i, e in enumerate(body["events"]):
        where = f"events[{i}]"
        if not isinstance(e, dict):
            raise _Shape(f"{where} must be an object")
        _need(e, "user_id", (str,), where)
        _need(e, "name", (str,), where)
        _need(e, "timestamp", (str, int, float), where)
        if not isinstance(e.get("app_code", e.get("app_id")), str):
            raise _Shape(f"{where} needs app_code or app_id")
        for k in ("device_id", "device_platform"):
            _need(e, k, (str, type(None)), where, optional=True)
        _need(e, "attributes", (dict,), where, optional=True)


def _check_track_user(body: Any) -> None:
    if not isinstance(body, dict):
        raise _Shape("body must be an object")
    _need(body, "attributes", (dict,), "body")
    _need(body, "user_id", (str,), "body", optional=True)
    _need(body, "current_location", (dict, type(None)), "body", optional=True)


def _check_delete_user(body: Any) -> None:
    if not isinstance(body, dict):
        raise _Shape("body must be an object")
    _need(body, "external_id", (str,), "body")


def _check_ping(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("body"), dict):
        raise _Shape("body.body must be an object")


def _check_handle(body: Any) -> None:
    if not isinstance(body, dict):
        raise _Shape("body must be an object")
    _need(body, "type", (str,), "body")
    _need(body, "messageId", (str,), "body")
    _need(body, "timestamp", (str,), "body")
    if body["type"] == "track":
        _need(body, "event", (str,), "body")


def _check_xp_delete(body: Any) -> None:
    if not isinstance(body, dict) or not ({"userId", "anonymousId"} & set(body)):
        raise _Shape("body needs userId or anonymousId")


def _check_hook(body: Any) -> None:
    if isinstance(body, str):  # not JSON (kept as text)
        raise _Shape("body is not JSON")


_ROUTES = {
    f"{PW_PREFIX}/post-events": ("pushwoosh", _check_post_events),
    f"{PW_PREFIX}/track-user": ("pushwoosh", _check_track_user),
    f"{PW_PREFIX}/delete-user": ("pushwoosh", _check_delete_user),
    f"{PW_PREFIX}/ping": ("pushwoosh", _check_ping),
    f"{XP_PREFIX}/handle": ("xtremepush", _check_handle),
    f"{XP_PREFIX}/delete": ("xtremepush", _check_xp_delete),
}


class Sandbox:
    """The sandbox application; `app` is an aiohttp Application."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.records: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.in_flight = self.peak_in_flight = 0
        self.app = web.Application(client_max_size=8 * 1024 * 1024)
        self.app.router.add_get("/_sandbox/requests", self._list)
        self.app.router.add_delete("/_sandbox/requests", self._clear)
        self.app.router.add_post("/_sandbox/faults", self._add_fault)
        self.app.router.add_delete("/_sandbox/faults", self._clear_faults)
        self.app.router.add_post("/_sandbox/credentials", self._add_credentials)
        self.app.router.add_get("/_sandbox/health", self._health)
        self.app.router.add_get("/_sandbox/stats", self._stats)
        for method in ("POST", "PUT", "PATCH"):
            self.app.router.add_route(method, "/{tail:.*}", self._api)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response({"in_flight": self.in_flight, "peak_in_flight": self.peak_in_flight})

    async def _list(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.Response(body=msgspec.json.encode(self.records[since:]), content_type="application/json")

    async def _clear(self, request: web.Request) -> web.Response:
        self.records.clear()
        self.peak_in_flight = self.in_flight
        return web.json_response({"ok": True})

    async def _add_fault(self, request: web.Request) -> web.Response:
        spec = await request.json()
        duration = spec.pop("duration", None)
        fault = Fault(**spec)
        if duration is not None:
            fault.until = time.time() + float(duration)
        self.faults.append(fault)
        return web.json_response({"ok": True})

    async def _add_credentials(self, request: web.Request) -> web.Response:
        """Accept more keys from now on (a key rotated at the destination)."""
        spec = await request.json()
        self.config.pushwoosh.update((key, app) for key, app in spec.get("pushwoosh", []))
        self.config.xtremepush.update(spec.get("xtremepush", []))
        self.config.webhook.update(spec.get("webhook", []))
        return web.json_response({"ok": True})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({"ok": True})

    def _signed(self, raw: bytes, signature: str) -> str | None:
        """What `signature` signs with one of the shared secrets: `body`, `first` or None."""
        signed = {"body": raw}
        try:
            elements = msgspec.json.decode(raw, type=list[msgspec.Raw])
        except msgspec.DecodeError:
            elements = []
        if elements:  # the first element's bytes as sent: what JSON.stringify gave Segment's HMAC
            signed["first"] = bytes(elements[0])
        for secret in self.config.webhook:
            for what, data in signed.items():
                if hmac.compare_digest(hmac.new(secret.encode(), data, hashlib.sha1).hexdigest(), signature):
                    return what
        return None

    def _auth(self, kind: str, request: web.Request, raw: bytes = b"") -> tuple[bool, str | None]:
        header = request.headers.get("Authorization", "")
        if kind == "webhook":
            signature = request.headers.get("X-Signature")
            return signature is None or self._signed(raw, signature) is not None, None
        if kind == "pushwoosh":
            key = header.removeprefix("Token ") if header.startswith("Token ") else None
            ok = key is not None and (key, request.headers.get("X-PW-Appcode", "")) in self.config.pushwoosh
            return ok, key
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False, None
            return user in self.config.xtremepush and password == "", user
        return False, None

    async def _api(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        route = _ROUTES.get(request.path) or (("webhook", _check_hook) if request.path.startswith(HOOK_PREFIX)
                                              else None)
        raw = await request.read()
        record: dict[str, Any] = {"seq": len(self.records), "time": time.time(), "method": request.method,
                                  "path": request.path, "query": request.query_string,
                                  "headers": dict(request.headers)}
        try:
            record["body"] = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            record["body"] = raw.decode("utf-8", "replace")
        if "X-Signature" in request.headers:
            record["signed"] = self._signed(raw, request.headers["X-Signature"])
        self.records.append(record)
        if route is None:
            return self._reply(record, 404, {"status": "error", "message": f"no route {request.path}"})
        kind, check = route
        ok, key = self._auth(kind, request, raw)
        for fault in self.faults:
            if fault.applies(request, key, raw, self.in_flight):
                if fault.count is not None:
                    fault.count -= 1
                if fault.latency:
                    await asyncio.sleep(fault.latency)
                if fault.status:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                    message = "injected fault" + (f": refused {fault.body_contains}" if fault.body_contains else "")
                    return self._reply(record, fault.status, {"status": "error", "message": message}, headers)
        if not ok:
            return self._reply(record, 401, {"status": "error", "message": "invalid credentials"})
        try:
            check(record["body"])
        except _Shape as exc:
            return self._reply(record, 400, {"status": "error", "message": str(exc)})
        return self._reply(record, 200, {"status": "ok"})

    @staticmethod
    def _reply(record: dict[str, Any], status: int, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> web.Response:
        record["status"] = status
        return web.Response(status=status, body=msgspec.json.encode(body), content_type="application/json",
                            headers=headers)


def run_sandbox(port: int, config: SandboxConfig | None = None) -> None:
    """Serve on 127.0.0.1:`port` until interrupted."""
    web.run_app(Sandbox(config).app, host="127.0.0.1", port=port, print=None, access_log=None)
