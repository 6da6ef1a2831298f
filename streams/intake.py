"""`pushstream intake`: Segment's HTTP Tracking API in front of Kafka, so Segment's SDKs send here.

An aiohttp server owned by a mode Service, with the pipeline's `Writer` (one confluent-kafka
producer) as its dependency. A request is answered only once the broker has acknowledged every
record it produced (one per event, keyed by userId/anonymousId as `pushstream produce` keys
them); when the broker does not within `intake.produce_timeout`, the answer is 503 with a
Retry-After, so SDKs send the request again (messageId dedup downstream absorbs the copies).
What a request means (paths, auth, limits, enrichment) is the pure `codecs/intake.py`.

Also served: `GET /v1/projects/<writeKey>/settings` (what analytics.js loads to send here),
CORS for browser pages on other origins, `/metrics`, `/healthz` and `/readyz`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import aiohttp.http_exceptions
import mode
import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from pushstream.codecs.config import Config
from pushstream.codecs.intake import PATHS, IntakeConfig, IntakeError, authenticate, events_of, parse_body, settings_for
from pushstream.codecs.spec import input_key
from pushstream.streams.kafka.writer import Record, Writer
from pushstream.streams.ops.server import parse_listen

__all__ = ["IntakeServer"]

log = logging.getLogger(__name__)
RETRY_AFTER = "5"  # seconds an SDK should wait after a 503
MAX_READ = 1024 * 1024  # aiohttp refuses bodies past this; parse_body names Segment's 500 KB limit below it
_encode = msgspec.json.Encoder().encode
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class IntakeMetrics:
    """The intake's counters, in its own registry (served on its own /metrics)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter("pushstream_intake_requests", "Tracking API requests by path and HTTP status",
                                ["path", "status"], registry=r)
        self.events = Counter("pushstream_intake_events", "Events written to Kafka, by source", ["source"],
                              registry=r)
        self.rejected = Counter("pushstream_intake_rejections", "Requests refused, by reason code", ["reason"],
                                registry=r)
        self.produce_seconds = Histogram("pushstream_intake_produce_seconds",
                                         "From a request's records handed to the producer to the broker's acks",
                                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
                                         registry=r)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_encode(body), content_type="application/json", headers=headers)


@web.middleware
async def _cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Any origin may post (analytics.js runs on the customer's site); preflights answered here."""
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
    origin = request.headers.get("Origin")
    response.headers["Access-Control-Allow-Origin"] = origin or "*"
    response.headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = request.headers.get(
        "Access-Control-Request-Headers", "Content-Type, Authorization, Content-Encoding")
    response.headers["Access-Control-Max-Age"] = "600"
    if origin:
        response.headers["Vary"] = "Origin"
    return response


class IntakeServer(mode.Service):
    """Serves the Tracking API for `config.intake`'s sources."""

    def __init__(self, config: Config, intake: IntakeConfig, **kwargs: Any) -> None:
        self.config = config
        self.intake = intake
        self.sources = list(intake.sources)
        # A record the broker has not taken by the deadline fails, rather than landing after the 503.
        self.writer = Writer(config.kafka, {"message.timeout.ms": int(intake.produce_timeout * 1000)})
        self.metrics = IntakeMetrics()
        self.address = parse_listen(intake.listen) or ("127.0.0.1", 8088)
        self._runner: web.AppRunner | None = None
        super().__init__(**kwargs)

    def on_init_dependencies(self) -> list[mode.ServiceT]:
        return [self.writer]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_cors], client_max_size=MAX_READ)
        for path in PATHS:
            app.router.add_post(path, self._track)
        app.router.add_get("/v1/projects/{write_key}/settings", self._settings)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", lambda r: self._plain("ok\n"))
        app.router.add_get("/readyz", self._readyz)
        app.router.add_route("OPTIONS", "/{tail:.*}", lambda r: self._plain(""))
        return app

    async def on_start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        host, port = self.address
        await web.TCPSite(self._runner, host, port).start()
        log.info("intake on http://%s:%d: sources %s", host, port,
                 ", ".join(f"{s.name} -> {s.topic}" for s in self.sources))

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _plain(self, text: str) -> web.Response:
        return web.Response(text=text)

    async def _track(self, request: web.Request) -> web.Response:
        path = request.path
        try:
            body = parse_body(await self._body(request))
            source = authenticate(request.headers.get("Authorization"), body, self.sources)
            events = events_of(PATHS[path], body, time.time(), lambda: str(uuid.uuid4()))
        except IntakeError as exc:
            self.metrics.rejected.labels(exc.code).inc()
            self.metrics.requests.labels(path, str(exc.status)).inc()
            return web.Response(status=exc.status, body=exc.body(), content_type="application/json")
        records = [Record(source.topic, key.encode() if (key := input_key(a.event)) else None, a.raw) for a in events]
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.writer.write(records), self.intake.produce_timeout)
        except Exception as exc:  # broker down or slow: the SDK keeps the events and retries
            log.warning("intake: %d events not acknowledged by Kafka within %.0f s (%s); answered 503",
                        len(records), self.intake.produce_timeout, type(exc).__name__)
            self.metrics.rejected.labels("kafka_unavailable").inc()
            self.metrics.requests.labels(path, "503").inc()
            return _json(503, {"code": "unavailable", "message": "Kafka did not acknowledge the events; retry"},
                         {"Retry-After": RETRY_AFTER})
        self.metrics.produce_seconds.observe(time.monotonic() - started)
        self.metrics.events.labels(source.name).inc(len(records))
        self.metrics.requests.labels(path, "200").inc()
        return _json(200, {"success": True})

    async def _body(self, request: web.Request) -> bytes:
        """The body, gzip undone (aiohttp decodes `Content-Encoding: gzip` as it reads)."""
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise IntakeError(400, "too_large", "request is over the 500 KB limit per request") from None
        except (aiohttp.http_exceptions.ContentEncodingError, aiohttp.ClientPayloadError):
            raise IntakeError(400, "invalid_request", "body is not valid gzip") from None

    async def _settings(self, request: web.Request) -> web.Response:
        key = request.match_info["write_key"]
        source = next((s for s in self.sources if s.write_key == key), None)
        if source is None:
            return _json(404, {"code": "not_found", "message": "unknown write key"})
        protocol = request.headers.get("X-Forwarded-Proto", request.scheme)
        return _json(200, settings_for(source, f"{request.host}/v1", protocol))

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _readyz(self, request: web.Request) -> web.Response:
        problem = await self.writer.unreachable()
        if problem:
            return web.Response(status=503, text=f"not ready:\n- {problem}\n")
        return web.Response(text="ready\n")
