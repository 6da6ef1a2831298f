"""`pushstream intake` with clients no one here wrote: segment-analytics-python, @segment/analytics-node
and analytics.js (@segment/analytics-next) in Debian's Chromium; their events reach the session's
worker and are delivered. Faults: a wrong write key, oversized bodies, gzip, and the broker gone
(503, never a 200 for records the broker did not acknowledge)."""

from __future__ import annotations

import asyncio
import base64
import collections
import gzip
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiohttp import web

from pushstream.codecs.config import load_config
from pushstream.codecs.route import route_record
from pushstream.streams.kafka.admin import ensure_topics, read_topic
from pushstream.streams.local.broker import free_port, start_broker
from pushstream.streams.local.stack import Proc, local_config, local_env, start_intake
from tests.support import Stack, needs_tool, serve

WRITE_KEY = "wk-intake-test"
NPM_PACKAGES = ["@segment/analytics-node@3.1.0", "@segment/analytics-next@1.84.3"]


def _intake_config(stack_config_text: str, port: int, produce_timeout: float = 10.0) -> str:
    return stack_config_text + (f'\n[intake]\nlisten = "127.0.0.1:{port}"\nproduce_timeout = {produce_timeout}\n'
                                f'[[intake.sources]]\nname = "test"\nwrite_key = "${{SEGMENT_WRITE_KEY}}"\n'
                                f'topic = "segment-events"\n')


@pytest.fixture(scope="module")
def intake(stack: Stack) -> Iterator[str]:
    """An intake in front of the session worker's input topic; yields its base URL."""
    port = free_port()
    path = stack.workdir / "intake.toml"
    path.write_text(_intake_config((stack.workdir / "worker.toml").read_text(), port))
    proc = start_intake(stack.workdir, path, {**local_env(), "SEGMENT_WRITE_KEY": WRITE_KEY}, port)
    yield f"http://127.0.0.1:{port}"
    assert WRITE_KEY not in proc.output()  # the write key never reaches the log
    proc.stop()


def _records_of(stack: Stack, user_prefix: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The input topic's events whose userId starts with `user_prefix`, once `count` are there."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = []
        for _, _, _, key, value in read_topic(stack.config.kafka.broker, ["segment-events"], idle_timeout=2):
            try:
                event = msgspec.json.decode(value)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # other tests' malformed records
                continue
            if isinstance(event, dict) and str(event.get("userId", "")).startswith(user_prefix):
                assert key == str(event["userId"]).encode()  # keyed as `pushstream produce` keys them
                found.append(event)
        if len(found) >= count:
            return found
    raise AssertionError(f"{len(found)} of {count} events on the input topic")


def _delivered(stack: Stack, records: list[dict[str, Any]]) -> None:
    """Every outcome the router expects for these records arrives, and all are `delivered`."""
    expected = collections.Counter[str]()
    for i, event in enumerate(records):
        routed = route_record(msgspec.json.encode(event), "segment-events", 0, i, stack.config, 0.0)
        expected.update(job.message_id for _, job in routed.jobs)
    ids = set(expected)
    outcomes = stack.outcomes.wait(lambda o: o.get("message_id") in ids, sum(expected.values()), timeout=120)
    assert collections.Counter(o["status"] for o in outcomes) == {"delivered": sum(expected.values())}


def _six_types(prefix: str, i: int) -> tuple[str, dict[str, Any]]:
    kind = ("track", "identify", "page", "screen", "group", "alias")[i % 6]
    user = f"{prefix}-u{i % 50}"
    fields: dict[str, Any] = {"user_id": user}
    if kind == "track":
        fields.update(event="Order Completed", properties={"revenue": i, "currency": "EUR"})
    elif kind == "identify":
        fields.update(traits={"plan": "pro", "email": f"{user}@example.com"})
    elif kind in ("page", "screen"):
        fields.update(name="Home", properties={"path": "/"})
    elif kind == "group":
        fields.update(group_id="org-1", traits={"name": "Acme"})
    else:
        fields.update(previous_id=f"anon-{user}")
    return kind, fields


def test_analytics_python_sends_1000_events_of_all_six_types(stack: Stack, intake: str, prefix: str) -> None:
    from segment.analytics import Client

    sent: list[str] = []
    errors: list[Any] = []
    client = Client(WRITE_KEY, host=intake, gzip=True, on_error=lambda e, batch: errors.append(e), max_retries=2)
    for i in range(1000):
        kind, fields = _six_types(prefix, i)
        _, message = getattr(client, kind)(**fields)
        sent.append(message["messageId"])
    client.flush()
    client.join()
    assert not errors
    records = _records_of(stack, prefix, 1000)
    assert len(records) == 1000 and sorted(r["messageId"] for r in records) == sorted(sent)
    assert collections.Counter(r["type"] for r in records) == {t: 1000 // 6 + (i < 1000 % 6) for i, t in
                                                               enumerate(("track", "identify", "page", "screen",
                                                                          "group", "alias"))}
    assert all("receivedAt" in r and "writeKey" not in r for r in records)
    _delivered(stack, records)


def _npm(tmp: Path) -> Path:
    """The SDKs from npm, installed once per session's temp dir (Node and npm from the machine)."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("Node.js and npm are not installed: the analytics-node and analytics.js tests need them")
    modules = tmp / "node_modules"
    if not modules.exists():
        subprocess.run(["npm", "init", "-y"], cwd=tmp, check=True, capture_output=True, timeout=60)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", *NPM_PACKAGES], cwd=tmp, check=True,
                       capture_output=True, timeout=300)
    return tmp


@pytest.fixture(scope="module")
def npm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _npm(tmp_path_factory.mktemp("npm"))


def test_analytics_node_sends_events_of_all_six_types(stack: Stack, intake: str, prefix: str, npm_dir: Path) -> None:
    script = npm_dir / "send.js"
    script.write_text("""
const { Analytics } = require('@segment/analytics-node')
const [writeKey, host, prefix] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushAt: 40, maxRetries: 2 })
analytics.on('error', (err) => { console.error('error', err && err.reason || err); process.exitCode = 1 })
for (let i = 0; i < 120; i++) {
  const userId = `${prefix}-n${i % 20}`
  switch (i % 6) {
    case 0: analytics.track({ userId, event: 'Order Completed', properties: { revenue: i } }); break
    case 1: analytics.identify({ userId, traits: { plan: 'pro' } }); break
    case 2: analytics.page({ userId, name: 'Home' }); break
    case 3: analytics.screen({ userId, name: 'Home' }); break
    case 4: analytics.group({ userId, groupId: 'org-1', traits: { name: 'Acme' } }); break
    case 5: analytics.alias({ userId, previousId: `anon-${userId}` }); break
  }
}
analytics.closeAndFlush({ timeout: 20000 }).then(() => console.log('flushed'))
""")
    result = subprocess.run(["node", str(script), WRITE_KEY, intake, prefix], capture_output=True, text=True,
                            timeout=120, cwd=npm_dir)
    assert result.returncode == 0 and "flushed" in result.stdout, result.stdout + result.stderr
    records = _records_of(stack, prefix, 120)
    assert len(records) == 120 and len({r["messageId"] for r in records}) == 120
    assert {r["type"] for r in records} == {"track", "identify", "page", "screen", "group", "alias"}
    assert {r["context"]["library"]["name"] for r in records} == {"@segment/analytics-node"}
    _delivered(stack, records)


PAGE = """<!doctype html><html><head><title>shop</title></head><body><p id="status">loading</p>
<script src="/umd/index.js"></script>
<script>
const status = (text) => { document.getElementById('status').textContent = text }
AnalyticsNext.AnalyticsBrowser.load({ writeKey: 'WRITE_KEY', cdnURL: 'INTAKE' })
  .then(async ([analytics]) => {
    await analytics.identify('USER', { plan: 'pro', email: 'user@example.com' })
    await analytics.track('Order Completed', { revenue: 42, currency: 'EUR' })
    await analytics.page('Home', { path: '/' })
    status('sent')
  })
  .catch((err) => status('failed: ' + err))
</script></body></html>"""


def test_analytics_js_in_chromium_on_another_origin(stack: Stack, intake: str, prefix: str, npm_dir: Path) -> None:
    needs_tool("chromium")
    bundle = npm_dir / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
    page = PAGE.replace("WRITE_KEY", WRITE_KEY).replace("INTAKE", intake).replace("USER", f"{prefix}-browser")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def run() -> str:
        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_static("/umd", bundle)
        async with serve(app) as url:  # another origin than the intake: CORS is needed
            proc = await asyncio.create_subprocess_exec(
                "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={npm_dir / 'chromium-profile'}", "--virtual-time-budget=20000", "--dump-dom",
                f"{url}/", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            return out.decode(errors="replace")

    dom = asyncio.run(run())
    assert '<p id="status">sent</p>' in dom, dom[-2000:]
    records = _records_of(stack, f"{prefix}-browser", 3)
    assert sorted(r["type"] for r in records) == ["identify", "page", "track"]
    assert {r["context"]["library"]["name"] for r in records} == {"analytics.js"}
    _delivered(stack, records)


def _post(url: str, body: Any, key: str | None = WRITE_KEY, gzipped: bool = False, raw: bytes | None = None
          ) -> httpx.Response:
    data = raw if raw is not None else msgspec.json.encode(body)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    if gzipped:
        data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
    return httpx.post(url, content=data, headers=headers, timeout=30)


def test_faults_wrong_key_401_oversized_400_gzip_accepted(stack: Stack, intake: str, prefix: str) -> None:
    event = {"type": "track", "userId": f"{prefix}-g", "event": "E", "timestamp": "2026-11-30T10:00:00Z"}
    wrong = _post(f"{intake}/v1/batch", {"batch": [event]}, key="not-the-key")
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    assert _post(f"{intake}/v1/track", event, key=None).status_code == 401
    big = {"batch": [{**event, "properties": {"b": "x" * 30_000}} for _ in range(20)]}  # ~600 KB
    answer = _post(f"{intake}/v1/batch", big)
    assert answer.status_code == 400 and "500 KB" in answer.json()["message"]
    assert _post(f"{intake}/v1/batch", None, raw=b"{nope").status_code == 400
    ok = _post(f"{intake}/v1/batch", {"batch": [event], "sentAt": "2026-11-30T10:00:00Z"}, gzipped=True)
    assert ok.status_code == 200 and ok.json() == {"success": True}
    plain = httpx.post(f"{intake}/v1/t", content=msgspec.json.encode({**event, "writeKey": WRITE_KEY}),
                       headers={"Content-Type": "text/plain", "Origin": "http://shop.example"}, timeout=30)
    assert plain.status_code == 200 and plain.headers["Access-Control-Allow-Origin"] == "http://shop.example"
    assert len(_records_of(stack, f"{prefix}-g", 2)) == 2
    settings = httpx.get(f"{intake}/v1/projects/{WRITE_KEY}/settings", timeout=10).json()
    assert settings["integrations"]["Segment.io"]["apiHost"] == intake.split("//")[1] + "/v1"
    metrics = httpx.get(f"{intake}/metrics", timeout=10).text
    assert 'pushstream_intake_rejections_total{reason="unauthorized"}' in metrics
    assert 'pushstream_intake_rejections_total{reason="too_large"}' in metrics
    assert 'pushstream_intake_requests_total{path="/v1/batch",status="200"}' in metrics
    assert "pushstream_intake_produce_seconds_count" in metrics


def test_broker_gone_means_503_with_retry_after_and_never_200(stack: Stack, tmp_path: Path) -> None:
    broker = start_broker(log_path=str(tmp_path / "broker.log"))
    text = local_config(broker.url, "http://127.0.0.1:1")
    config_path = tmp_path / "intake.toml"
    port = free_port()
    config_path.write_text(_intake_config(text, port, produce_timeout=3.0))
    ensure_topics(load_config(text, local_env()))
    proc: Proc = start_intake(tmp_path, config_path, {**local_env(), "SEGMENT_WRITE_KEY": WRITE_KEY}, port)
    url = f"http://127.0.0.1:{port}"
    try:
        event = {"type": "track", "userId": "u", "event": "E"}
        assert _post(f"{url}/v1/track", event).status_code == 200
        broker.stop()
        started = time.monotonic()
        answer = _post(f"{url}/v1/batch", {"batch": [event] * 5})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer.text
        assert time.monotonic() - started < 10
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
    finally:
        proc.stop()
        broker.stop()
