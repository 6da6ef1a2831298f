"""HTTP classification and the client, against the real sandbox server on loopback (no patched httpx)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from aiohttp import web

from pushstream.codecs.config import Config, Instance, PipelineConfig, load_config
from pushstream.codecs.destinations import HttpRequest
from pushstream.codecs.js import UNDEFINED
from pushstream.codecs.kafka_config import KafkaConfig
from pushstream.codecs.plan import PlannedRequest, plan_requests
from pushstream.codecs.route import route_record
from pushstream.streams.delivery.http import (
    AuthError,
    DestinationClient,
    PermanentError,
    RetryableError,
    classify,
    parse_retry_after,
)
from pushstream.streams.local.sandbox import Sandbox
from tests.support import run_served, sandbox_instances, serve


def _config(url: str, key: str = "sandbox-pushwoosh-key", timeout: float = 10.0) -> Any:
    return load_config(sandbox_instances(url, pw_key=key, head=f"[pipeline]\nrequest_timeout = {timeout}"), {})


@pytest.mark.parametrize(("status", "kind"), [
    (200, None), (204, None), (400, PermanentError), (401, AuthError), (403, AuthError), (404, PermanentError),
    (408, RetryableError), (409, PermanentError), (422, PermanentError), (423, RetryableError),
    (429, RetryableError), (500, RetryableError), (501, PermanentError), (502, RetryableError),
    (503, RetryableError), (504, RetryableError), (529, RetryableError), (599, RetryableError),
])
def test_every_status_class_is_classified(status: int, kind: type | None) -> None:
    error = classify(status, "body", httpx.Headers())
    assert (error is None) if kind is None else type(error) is kind


def test_the_body_is_decoded_for_an_error_only() -> None:
    def never() -> str:
        raise AssertionError("a 2xx body was decoded")

    assert classify(200, never, httpx.Headers()) is None
    error = classify(503, lambda: "  busy, come back later ", httpx.Headers({"retry-after": "4"}))
    assert isinstance(error, RetryableError) and error.reason == "503 busy, come back later" and error.retry_after == 4


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:10 GMT", now=1792567685.0) == 5.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_faults_from_a_real_server_become_typed_errors() -> None:
    async def body(url: str, sandbox: Sandbox) -> None:
        config = _config(url, timeout=0.5)
        client = DestinationClient(config.instance("pw"), 0.5)
        ping = config.instance("pw").destination.ping(config.instance("pw").settings)
        assert (await client.send(ping)).status == 200
        sandbox.faults[:] = []
        from pushstream.streams.local.sandbox import Fault
        sandbox.faults.append(Fault(status=429, retry_after="3", count=1))
        with pytest.raises(RetryableError) as info:
            await client.send(ping)
        assert info.value.status == 429 and info.value.retry_after == 3.0 and info.value.code == "TOO_MANY_REQUESTS"
        sandbox.faults.append(Fault(latency=1.0, count=1))
        with pytest.raises(RetryableError, match="timed out"):
            await client.send(ping)
        await client.aclose()
        bad = DestinationClient(_config(url, key="wrong").instance("pw"), 2.0)
        with pytest.raises(AuthError, match="credentials are not accepted: 401"):
            await bad.send(ping)
        await bad.aclose()
        gone = DestinationClient(_config("http://127.0.0.1:9").instance("pw"), 2.0)
        with pytest.raises(RetryableError, match="connection failed"):
            await gone.send(ping)
        await gone.aclose()

    run_served(Sandbox, body)


def test_headers_reach_the_wire_as_segment_sends_them() -> None:
    async def body(url: str, sandbox: Sandbox) -> None:
        config = _config(url)
        for name in ("pw", "xp"):
            inst = config.instance(name)
            client = DestinationClient(inst, 5)
            await client.send(inst.destination.delete_user(inst.settings, "u1", "a1"))
            await client.aclose()
        pw, xp = sandbox.records
        assert pw["headers"]["Authorization"] == "Token sandbox-pushwoosh-key"
        assert pw["headers"]["X-PW-Appcode"] == "SANDBOX-APP" and pw["headers"]["Content-Type"] == "application/json"
        assert pw["path"] == "/integration-segment/v1/delete-user" and pw["body"] == {"external_id": "u1"}
        assert xp["headers"]["Authorization"] == "Basic " + base64.b64encode(b"sandbox-xtremepush-key:").decode()
        assert xp["path"] == "/api/integration/segment/delete" and xp["body"] == {"userId": "u1", "anonymousId": "a1"}
        assert [pw["status"], xp["status"]] == [200, 200]

    run_served(Sandbox, body)


def test_credential_check_command_accepts_and_refuses() -> None:
    from pushstream.streams.commands.preview import check_credentials

    async def body(url: str, sandbox: Sandbox) -> None:
        assert await check_credentials(_config(url), "pw") == (True, "credentials accepted (200)")
        ok, text = await check_credentials(_config(url, key="wrong"), "pw")
        assert not ok and text.startswith("credentials rejected: credentials are not accepted: 401")
        ok, text = await check_credentials(_config(url), "xp")
        assert not ok and "cannot be checked without sending data" in text

    run_served(Sandbox, body)


@pytest.mark.parametrize("base", ["http://h:1", "http://h:1/", "https://h/prefix", "https://h/prefix/"])
def test_cached_request_urls_join_as_httpx_joins_base_url_and_path(base: str) -> None:
    client = DestinationClient(_config(base).instance("xp"), 1.0)
    for path in ("/api/integration/segment/delete", "api/x", "/"):
        assert client._url(path) == client._client.build_request("POST", path).url


def test_a_cookie_set_by_a_destination_is_not_sent_back() -> None:
    """As Segment's requests: no cookie jar carries state from one delivery to the next."""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response({"status_code": 200})
        response.set_cookie("session", "abc")
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        async with serve(app) as url:
            inst = _config(url).instance("pw")
            client = DestinationClient(inst, 5)
            for _ in range(2):
                await client.send(inst.destination.delete_user(inst.settings, "u1", "a1"))
            await client.aclose()

    asyncio.run(main())
    assert seen == [None, None]


def _hook(url: str, extra: str = "", batching: bool = False, **mapping: str) -> Instance:
    fields = "".join(f", {k} = {v}" for k, v in mapping.items())
    return load_config(f"""
[[destinations]]
name = "hook"
type = "webhook"
settings = {{ sharedSecret = "sandbox-webhook-secret", headers = {{ Authorization = "Bearer inst" }} }}
{extra}
[[destinations.mappings]]
name = "m"
action = "send"
subscribe = 'type = "track"'
enable_batching = {str(batching).lower()}
mapping = {{ url = "{url}/hooks/in?src=ps"{fields} }}
""", {}).instance("hook")


def _planned(instance: Instance, n: int) -> list[PlannedRequest]:
    """The requests `n` track events make for `instance`."""
    config = Config(KafkaConfig(), PipelineConfig(), (instance,))
    jobs = [job for i in range(n) for _, job in route_record(
        b'{"type": "track", "messageId": "m%d", "userId": "u", "event": "E"}' % i, "t", 0, i, config, 0.0).jobs]
    return plan_requests(instance, jobs)[0]


def test_webhook_requests_reach_the_wire_as_segment_sends_them() -> None:
    async def body(url: str, sandbox: Sandbox) -> None:
        for instance, n in ((_hook(url), 1), (_hook(url, batching=True, method='"PATCH"'), 3),
                            (_hook(url, method='"PUT"', data="{}"), 1)):
            client = DestinationClient(instance, 5)
            for plan in _planned(instance, n):
                await client.send(plan.request)
            await client.aclose()
        single, batch, empty_object = sandbox.records
        assert [r["status"] for r in sandbox.records] == [200, 200, 200]
        assert (single["method"], single["path"], single["query"]) == ("POST", "/hooks/in", "src=ps")
        assert single["headers"]["User-Agent"] == "Segment (Actions)" and single["signed"] == "body"
        assert single["headers"]["Authorization"] == "Bearer inst"
        assert single["headers"]["Content-Type"] == "application/json" and single["body"]["messageId"] == "m0"
        assert batch["method"] == "PATCH" and batch["signed"] == "first"
        assert [e["messageId"] for e in batch["body"]] == ["m0", "m1", "m2"]
        assert empty_object["method"] == "PUT" and empty_object["body"] == {}

    run_served(Sandbox, body)


def test_a_webhook_without_data_sends_no_body_and_no_content_type() -> None:
    async def body(url: str, sandbox: Sandbox) -> None:
        instance = _hook(url, extra="", method='"PUT"')
        request = _planned(instance, 1)[0].request
        client = DestinationClient(instance, 5)
        await client.send(HttpRequest(request.method, request.path, UNDEFINED, {}))
        await client.aclose()
        (record,) = sandbox.records
        assert record["body"] is None and "Content-Type" not in record["headers"] and "X-Signature" not in record["headers"]

    run_served(Sandbox, body)


def test_allowed_hosts_refuse_other_hosts_before_anything_is_sent_and_on_every_redirect() -> None:
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/hooks/in":  # always to 127.0.0.1, whatever name the request came by
            raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{request.url.port}/hooks/final")
        return web.json_response({"ok": True})

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        async with serve(app) as url:
            elsewhere = _hook(url, extra='allowed_hosts = ["hooks.example.com", "*.example.org"]')
            client = DestinationClient(elsewhere, 5)
            with pytest.raises(PermanentError, match="host 127.0.0.1 is not in this instance's allowed_hosts") as info:
                await client.send(_planned(elsewhere, 1)[0].request)
            assert info.value.code == "HOST_NOT_ALLOWED" and hits == []
            await client.aclose()
            here = _hook(url, extra='allowed_hosts = ["127.0.0.1"]')
            client = DestinationClient(here, 5)
            with pytest.raises(PermanentError) as info:  # a 3xx is the answer unless redirects are followed
                await client.send(_planned(here, 1)[0].request)
            assert info.value.status == 307 and hits == ["/hooks/in"]
            await client.aclose()
            hits.clear()
            following = _hook(url, extra='allowed_hosts = ["127.0.0.1"]\nfollow_redirects = true')
            client = DestinationClient(following, 5)
            await client.send(_planned(following, 1)[0].request)
            assert hits == ["/hooks/in", "/hooks/final"]
            await client.aclose()
            away = _hook(url.replace("/127.0.0.1:", "/localhost:"),
                         extra='allowed_hosts = ["localhost"]\nfollow_redirects = true')
            hits.clear()
            client = DestinationClient(away, 5)
            with pytest.raises(PermanentError, match="host 127.0.0.1 is not") as info:
                await client.send(_planned(away, 1)[0].request)
            await client.aclose()
            assert info.value.code == "HOST_NOT_ALLOWED" and hits == ["/hooks/in"]

    asyncio.run(main())
