"""httpx's client API on aiohttp's connection pool.

Why: measured against the local sandbox (8 concurrent requests, small JSON bodies, one
process), httpx's default transport costs ~1,000-1,400 us of CPU per request, httpx on this
transport ~400-460 us, aiohttp alone ~100-150 us. Most of the default's cost is httpcore's
pool checking every idle connection's socket through anyio's attribute lookup on each request.
Delivery keeps httpx's API (requests, responses, timeouts, exceptions); only the wire is aiohttp.

Not `httpx-aiohttp` (the published transport): it maps a refused connection to
`httpx.ConnectTimeout`, which would turn every "connection refused" outcome into "timed out".
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx

__all__ = ["RESPONSE_LIMIT", "AiohttpTransport"]

#: Most bytes of an answer's body read (what the tester and samples can show; a 2xx's is unread).
RESPONSE_LIMIT = 1024 * 1024


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` open connections; HTTP/1.1; no proxies from the environment."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on the first request: a session belongs to the event loop it was made on.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        # A redirect's request holds a stream httpx has not read; no body is sent as none (aiohttp
        # would give an empty one a content type).
        content = await request.aread() or None
        try:
            async with self._open().request(
                request.method, str(request.url), headers=_wire_headers(request), data=content,
                allow_redirects=False, compress=None,
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout.get("pool"),
                                              sock_connect=timeout.get("connect"), sock_read=timeout.get("read")),
            ) as response:
                body = await _read_capped(response)
        except Exception as exc:
            raise _as_httpx(exc, request) from exc
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()}
        # The body stays encoded as sent: httpx decodes it by its content-encoding, as with its own transport.
        return httpx.Response(response.status, headers=response.raw_headers, stream=httpx.ByteStream(body),
                              request=request, extensions=extensions)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The answer's body, cut at RESPONSE_LIMIT: a destination (a user's URL) cannot make the
    worker hold an endless body; the rest is left unread and the connection closed."""
    if response.content_length is not None and response.content_length <= RESPONSE_LIMIT:
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) >= RESPONSE_LIMIT:
            del body[RESPONSE_LIMIT:]
            break
    return bytes(body)


def _wire_headers(request: httpx.Request) -> list[tuple[str, str]]:
    # `raw` keeps each name's case as given (Segment sends `X-PW-Appcode`); multi_items() lowercases.
    encoding = request.headers.encoding
    return [(name.decode(encoding), value.decode(encoding)) for name, value in request.headers.raw]


def _as_httpx(exc: Exception, request: httpx.Request) -> Exception:
    """aiohttp's failures as the httpx exceptions httpx's own transport raises for them."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, asyncio.TimeoutError):  # includes aiohttp's ServerTimeoutError/SocketTimeoutError
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientError):
        return httpx.ReadError(message, request=request)
    return exc
