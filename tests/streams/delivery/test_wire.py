"""The aiohttp-backed httpx transport against a real loopback server: what reaches the wire, and
which httpx exception each failure becomes (delivery classifies retries by those)."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest
from aiohttp import web

from pushstream.streams.delivery.wire import RESPONSE_LIMIT, AiohttpTransport
from pushstream.streams.local.broker import free_port
from tests.support import run_served


class Server:
    """Records each request's raw header list; counts concurrently open requests."""

    def __init__(self) -> None:
        self.headers: list[list[tuple[str, str]]] = []
        self.open = self.peak = 0
        self.app = web.Application()
        self.app.router.add_post("/echo", self.echo)
        self.app.router.add_get("/gzip", self.gzipped)
        self.app.router.add_get("/slow", self.slow)
        self.app.router.add_get("/endless", self.endless)

    async def echo(self, request: web.Request) -> web.Response:
        self.headers.append([(k.decode(), v.decode()) for k, v in request.raw_headers])
        return web.json_response({"got": (await request.json())["n"]}, status=202)

    async def gzipped(self, request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b'{"ok": true}'), headers={"Content-Encoding": "gzip",
                                                                         "Content-Type": "application/json"})

    async def slow(self, request: web.Request) -> web.Response:
        self.open += 1
        self.peak = max(self.peak, self.open)
        await asyncio.sleep(float(request.query.get("s", "0.05")))
        self.open -= 1
        return web.Response(text="late")

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=503)
        if "length" in request.query:
            response.content_length = 64 * RESPONSE_LIMIT
        await response.prepare(request)
        try:
            while True:
                await response.write(b"x" * 65536)
        except (ConnectionError, RuntimeError):  # the client stopped reading and closed
            return response


def test_the_wire_carries_exactly_what_httpx_own_transport_sends() -> None:
    async def body(url: str, server: Server) -> None:
        headers = {"X-PW-Appcode": "APP", "Authorization": "Token k", "content-type": "application/json"}
        for transport in (httpx.AsyncHTTPTransport(), AiohttpTransport(4)):
            async with httpx.AsyncClient(base_url=url, transport=transport, headers={"user-agent": "ua"}) as client:
                response = await client.post("/echo", content=b'{"n": 7}', headers=headers)
                assert (response.status_code, response.json(), response.reason_phrase) == (202, {"got": 7}, "Accepted")
        native, ours = server.headers
        assert ours == native  # same names, same case, same order, nothing added

    run_served(Server, body)


def test_an_endless_answer_is_read_up_to_the_cap_and_the_connection_dropped() -> None:
    """A user's URL may answer with a body that never ends (or claims 64 MiB): the worker keeps
    at most RESPONSE_LIMIT bytes of it."""
    async def body(url: str, server: Server) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport(2)) as client:
            for path in ("/endless", "/endless?length=1"):
                response = await client.get(path)
                assert response.status_code == 503 and len(response.content) == RESPONSE_LIMIT

    run_served(Server, body)


def test_a_compressed_response_is_decoded_by_httpx() -> None:
    async def body(url: str, server: Server) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport(2)) as client:
            assert (await client.get("/gzip")).json() == {"ok": True}

    run_served(Server, body)


def test_no_more_than_max_connections_requests_are_open_at_once() -> None:
    async def body(url: str, server: Server) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport(3)) as client:
            responses = await asyncio.gather(*[client.get("/slow") for _ in range(12)])
        assert [r.text for r in responses] == ["late"] * 12
        assert server.peak == 3

    run_served(Server, body)


def test_failures_become_the_httpx_exceptions_delivery_classifies() -> None:
    async def body(url: str, server: Server) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport(2), timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/slow", params={"s": "1"})
        refused = f"http://127.0.0.1:{free_port()}"
        async with httpx.AsyncClient(transport=AiohttpTransport(2)) as client:
            with pytest.raises(httpx.ConnectError):  # not a timeout: nothing listens there
                await client.get(refused)
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(65536)  # the request, then close without an answer
            writer.close()

        silent = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        async with silent, httpx.AsyncClient(transport=AiohttpTransport(2), timeout=2) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}/")

    run_served(Server, body)
