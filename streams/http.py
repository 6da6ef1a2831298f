"""HTTP delivery: one long-lived httpx client per destination instance, and the one place where
HTTP statuses and transport failures become typed errors.

* DeliveryError                    the destination did not accept a request
  + RetryableError(retry_after)    408, 423, 429, 5xx except 501, timeouts, connection errors
  + PermanentError                 any other 4xx, and 501; never retried
    - AuthError                    401/403: the credentials are wrong

Retry rules are Segment's (errors.ts: "4xx errors are not automatically retried, except for
408, 423, 429"; "5xx are automatically retried, except for 501").
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from pushstream.codecs.config import Instance
from pushstream.codecs.destinations import HttpRequest
from pushstream.codecs.js import js_json_bytes

from .aiohttp_transport import AiohttpTransport

__all__ = ["AuthError", "DeliveryError", "DestinationClient", "PermanentError", "Response", "RetryableError",
           "classify", "parse_retry_after"]

USER_AGENT = "pushstream (Segment Actions compatible)"
REASON_LIMIT = 300


class DeliveryError(Exception):
    """The request was not accepted. `code` is a stable name for outcomes (e.g. TOO_MANY_REQUESTS)."""

    def __init__(self, reason: str, *, status: int | None = None, code: str = "DELIVERY_ERROR") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code


class RetryableError(DeliveryError):
    """Worth another attempt; `retry_after` (seconds) is the server's hint, when it gave one."""

    def __init__(self, reason: str, *, status: int | None = None, code: str = "RETRYABLE_ERROR",
                 retry_after: float | None = None) -> None:
        super().__init__(reason, status=status, code=code)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Another attempt would fail the same way."""


class AuthError(PermanentError):
    """401/403: the API key or app code is not accepted."""


_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 408: "REQUEST_TIMEOUT",
          409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 422: "UNPROCESSABLE_ENTITY", 423: "LOCKED",
          429: "TOO_MANY_REQUESTS", 500: "INTERNAL_SERVER_ERROR", 501: "NOT_IMPLEMENTED", 502: "BAD_GATEWAY",
          503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT", 529: "SITE_IS_OVERLOADED"}
_RETRYABLE_4XX = frozenset({408, 423, 429})


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    elapsed_ms: float


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify(status: int, text: str | Callable[[], str], headers: httpx.Headers) -> DeliveryError | None:
    """Map a response to None (2xx) or the matching DeliveryError. The only status interpreter.
    `text` may be a function giving the body's text, called only for an error."""
    if 200 <= status < 300:
        return None
    if callable(text):
        text = text()
    code = _CODES.get(status, f"HTTP_{status}")
    reason = f"{status} {text.strip()[:REASON_LIMIT]}".strip() if text.strip() else f"{status} {code}"
    if status in _RETRYABLE_4XX or (500 <= status < 600 and status != 501):
        return RetryableError(reason, status=status, code=code,
                              retry_after=parse_retry_after(headers.get("retry-after")))
    if status in (401, 403):
        return AuthError(f"credentials are not accepted: {reason}", status=status, code="INVALID_AUTHENTICATION")
    return PermanentError(reason, status=status, code=code)


class _NoCookies(http.cookiejar.CookieJar):
    """Segment's requests carry no cookies from earlier responses, and neither do ours. httpx
    would otherwise run every response through the cookie jar: ~20% of a request's CPU."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


class DestinationClient:
    """The HTTP client of one destination instance: base URL, auth headers, timeout, pool limits."""

    def __init__(self, instance: Instance, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        dest = instance.destination
        self.instance = instance
        # httpx logs every request at INFO; at thousands of requests a second that line costs
        # more than the request. Deliverer logs one line per batch instead.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._client = httpx.AsyncClient(
            base_url=dest.base_url(instance.settings),
            headers={**dest.auth_headers(instance.settings), "user-agent": USER_AGENT},
            timeout=httpx.Timeout(timeout),
            transport=transport or AiohttpTransport(instance.max_connections),
            cookies=_NoCookies(),
        )
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, path: str) -> httpx.URL:
        # httpx parses a str URL on every request (~7% of a request's CPU); a parsed absolute URL
        # is used as is. Joined as httpx joins base_url and a relative path.
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(str(self._client.base_url).rstrip("/") + "/" + path.lstrip("/"))
        return url

    async def send(self, request: HttpRequest) -> Response:
        """Send one request; returns the 2xx response or raises a DeliveryError."""
        started = time.perf_counter()
        try:
            response = await self._client.request(
                request.method, self._url(request.path), content=js_json_bytes(request.body),
                headers={"content-type": "application/json"})
        except httpx.TimeoutException as exc:
            raise RetryableError(f"timed out: {type(exc).__name__}", code="REQUEST_TIMEOUT") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"connection failed: {type(exc).__name__}: {exc}", code="CONNECTION_ERROR") from None
        elapsed = (time.perf_counter() - started) * 1000
        # The body's text only for an error: decoding it (`response.text` parses the content
        # type's charset) was ~10% of a request's CPU, for a 2xx text nothing reads.
        error = classify(response.status_code, lambda: response.text, response.headers)
        if error is not None:
            raise error
        return Response(response.status_code, elapsed)

    async def aclose(self) -> None:
        await self._client.aclose()
