"""The console's web app: the page, its live fragment, and the JSON API the page uses.

Routes: `/` (the page), `/fragment` (its live part), `/api/overview`, `/api/funnel`,
`/api/errors`, `/api/test` (POST), `/healthz`. With a token configured every route but
`/healthz` wants it: `Authorization: Bearer TOKEN`, or `?token=TOKEN` once (it sets a cookie).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from pushstream.codecs.config import Config
from pushstream.codecs.console import MAX_WINDOW, MIN_WINDOW
from pushstream.codecs.tester import plan_test, show_request
from pushstream.streams.console.page import render_live, render_page
from pushstream.streams.console.reader import OutcomeReader
from pushstream.streams.console.store import Store
from pushstream.streams.console.views import Views
from pushstream.streams.delivery.http import DestinationClient

__all__ = ["ConsoleApp"]

log = logging.getLogger(__name__)

COOKIE = "pushstream_console"
DEFAULT_WINDOW = 3600
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _window(request: web.Request) -> int:
    raw = request.query.get("window", str(DEFAULT_WINDOW))
    try:
        window = int(raw)
    except ValueError:
        raise ApiError(400, f"window must be a number of seconds, not {raw!r}") from None
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ApiError(400, f"window must be between {MIN_WINDOW} and {MAX_WINDOW} seconds (10 minutes to 2 weeks)")
    return window


class ConsoleApp:
    """The aiohttp application over one Store (and the reader filling it)."""

    def __init__(self, config: Config, store: Store, reader: OutcomeReader | None = None) -> None:
        self.config = config
        self.store = store
        self.views = Views(config, store, reader)
        token = config.console.token
        self._token = token.reveal() if token is not None else None
        self.app = web.Application(middlewares=[self._guard])
        for path, handler in (("/", self.page), ("/fragment", self.fragment), ("/api/overview", self.api_overview),
                              ("/api/funnel", self.api_funnel), ("/api/errors", self.api_errors),
                              ("/healthz", self.healthz)):
            self.app.router.add_get(path, handler)
        self.app.router.add_post("/api/test", self.api_test)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        set_cookie = False
        if self._token is not None and request.path != "/healthz":
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or \
                request.cookies.get(COOKIE) or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                return web.json_response({"error": "this console needs its token (Authorization: Bearer …)"},
                                         status=401)
            set_cookie = request.query.get("token") is not None
        try:
            response = await handler(request)
        except ApiError as exc:
            return web.json_response({"error": exc.message}, status=exc.status)
        if set_cookie and self._token is not None:
            response.set_cookie(COOKIE, self._token, httponly=True, samesite="Strict")
        return response

    # Handlers ------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=render_page(self.views.view(_window(request))), content_type="text/html")

    async def fragment(self, request: web.Request) -> web.Response:
        return web.Response(text=render_live(self.views.view(_window(request))), content_type="text/html")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def api_overview(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.overview(_window(request), time.time()))

    def _instance(self, request: web.Request) -> str:
        name = request.query.get("instance", "")
        if name not in self.views.names():
            raise ApiError(404, f"no instance {name!r} (instances: {', '.join(self.views.names())})")
        return name

    async def api_errors(self, request: web.Request) -> web.Response:
        return web.json_response({"errors": self.views.errors(self._instance(request), _window(request), time.time())})

    async def api_funnel(self, request: web.Request) -> web.Response:
        name, window, now = self._instance(request), _window(request), time.time()
        return web.json_response({"funnel": self.views.funnel(name, window, now, self.store.overview(window, now))})

    async def api_test(self, request: web.Request) -> web.Response:
        """The event tester: the requests an event makes; with `"send": true` also sent, and the answers."""
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError as exc:
            raise ApiError(400, f"body is not JSON: {exc}") from None
        if isinstance(body, dict) and "event" not in body and isinstance(body.get("message_id"), str):
            body["event"] = self.store.sample_event(body["message_id"])  # a recent failed one
            if body["event"] is None:
                raise ApiError(404, f"no sample of messageId {body['message_id']!r}")
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            raise ApiError(400, 'send {"instance": NAME, "event": {...}} or {"instance": NAME, "message_id": ID} '
                                '(a sampled failed event), and "send": true to deliver it')
        name = body.get("instance")
        if name not in self.views.names():
            raise ApiError(404, f"no instance {name!r} (instances: {', '.join(self.views.names())})")
        inst = self.config.instance(name)
        run = plan_test(self.config, inst, msgspec.json.encode(body["event"]))
        if run.invalid is not None:
            raise ApiError(400, f"the event is invalid: {run.invalid}")
        answer: dict[str, Any] = {"message_id": run.message_id,
                                  "requests": [show_request(inst, p) for p in run.plans],
                                  "outcomes": [{"mapping": o.mapping, "status": o.status, "reason": o.reason}
                                               for o in run.outcomes]}
        if body.get("send") is True:
            answer["responses"] = await self._send(inst, run.plans)
            log.info("console: test event %s sent to %s: %s", run.message_id, name,
                     [r["status"] for r in answer["responses"]])
            self.store.add_test(name, run.message_id, {"requests": len(run.plans), "responses": answer["responses"]})
        return web.json_response(answer)

    async def _send(self, inst: Any, plans: list[Any]) -> list[dict[str, Any]]:
        client = DestinationClient(inst, self.config.pipeline.request_timeout)
        out: list[dict[str, Any]] = []
        try:
            for plan in plans:
                try:
                    response = await client.exchange(plan.request)
                    out.append({"status": response.status, "body": response.text[:4000]})
                except Exception as exc:  # a timeout or refused connection is the answer to show
                    out.append({"status": None, "body": str(getattr(exc, "reason", exc))})
        finally:
            await client.aclose()
        return out
