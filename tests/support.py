"""What the tests share that is not a fixture: clients for the sandbox and the outcome topic, a
worker stack, and helpers that make and select a test's events. Fixtures are in conftest.py."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiohttp import web
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from pushstream.codecs.config import Config, load_config
from pushstream.streams.commands.produce import produce_lines
from pushstream.streams.kafka.admin import ensure_topics, make_reader
from pushstream.streams.local.broker import free_port
from pushstream.streams.local.stack import Proc, local_env, mapped_instance, start_worker, webhook_instance

EXTRA_DESTINATIONS = """
[[destinations]]
name = "pushwoosh-custom"
type = "pushwoosh"
presets = false
settings = { pushwooshAPIKey = "${PUSHWOOSH_API_KEY}", pushwooshAppCode = "SANDBOX-APP", baseUrl = "SANDBOX_URL" }

[[destinations.mappings]]
name = "Orders only"
action = "trackEvent"
subscribe = 'type = "track" and event = "Order Completed" and properties.revenue > 100'
mapping_file = "order-mapping.json"
enable_batching = false

[[destinations]]
name = "pushwoosh-filtered"
type = "pushwoosh"
presets = false
settings = { pushwooshAPIKey = "${PUSHWOOSH_API_KEY}", pushwooshAppCode = "APP-FILTERED", baseUrl = "SANDBOX_URL" }

[[destinations.mappings]]
name = "Filter tests"
action = "trackEvent"
subscribe = 'type = "track" and properties.filtertest = true'
mapping_file = "track-mapping.json"
enable_batching = true

[[destinations.filters]]
title = "No debug events"
if = 'event = "Debug"'
actions = [{ type = "drop" }]

[[destinations.filters]]
title = "A third of the samples"
if = 'event = "Sampled"'
actions = [{ type = "sample", percent = 0.3 }]

[[destinations.filters]]
title = "No secrets"
if = 'type = "track"'
actions = [{ type = "drop_properties", fields = { properties = ["secret"] } }]

[[destinations.filters]]
title = "Only the plan of an upgrade"
if = 'event = "Upgraded"'
actions = [{ type = "allow_properties", fields = { properties = ["plan", "filtertest"] } }]
"""


ORDER_MAPPING = {
    "external_id": {"@path": "$.userId"},
    "name": {"@template": "order:{{properties.currency}}"},
    "timestamp": {"@path": "$.timestamp"},
    "properties": {"@merge": {"direction": "right", "objects": [
        {"@path": "$.properties"}, {"channel": {"@case": {"operator": "upper", "value": {"@path": "$.context.library.name"}}}}]}},
}


#: The `faulty` worker's webhooks: `hook` takes the tracks whose properties.targets name it, in
#: batches of 20 grouped by type (URL) and shop (a header); `hook-rotated` signs with a secret the
#: sandbox refuses until a test rotates it in.
HOOK_INSTANCES = "".join(
    webhook_instance("SANDBOX_URL", name, f'type = "track" and contains(properties.targets, "{target}")', path=path,
                     batch_size=20, mapping='headers = { "X-Shop" = { "@path" = "$.properties.shop" } }', secret=secret)
    for name, target, path, secret in (("hook", "hook", "faulty", "${WEBHOOK_SHARED_SECRET}"),
                                       ("hook-rotated", "hookrotated", "rotated", "rotated-secret")))


FAULTY_APP_CODES = ("APP-FLAKY", "APP-SHORT", "APP-SLOW", "APP-FAST", "APP-PACED", "APP-OUTAGE", "APP-FILTERED",
                    "APP-ORDERED", "APP-UNORDERED")


POST_EVENTS = "/integration-segment/v1/post-events"


TRACK_USER = "/integration-segment/v1/track-user"


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on a free loopback port (in this event loop); yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run_served(make: Callable[[], Any], body: Callable[[str, Any], Awaitable[Any]]) -> Any:
    """In a fresh event loop, serve the `app` of a server built by `make` and return
    `body(url, server)`."""

    async def main() -> Any:
        server = make()
        async with serve(server.app) as url:
            return await body(url, server)

    return asyncio.run(main())


class SandboxClient:
    """Reads and steers the sandbox over its control endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        reqs = self.http.get("/_sandbox/requests").json()
        return [r for r in reqs if path is None or r["path"] == path]

    def fault(self, **spec: Any) -> None:
        self.http.post("/_sandbox/faults", json=spec).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_sandbox/faults").raise_for_status()

    def accept(self, pushwoosh: tuple[str, str] | None = None, xtremepush: str | None = None,
               webhook: str | None = None) -> None:
        """Make the sandbox accept a key (or a webhook's shared secret) from now on (rotated at the destination)."""
        self.http.post("/_sandbox/credentials", json={"pushwoosh": [list(pushwoosh)] if pushwoosh else [],
                                                       "xtremepush": [xtremepush] if xtremepush else [],
                                                       "webhook": [webhook] if webhook else []})


class OutcomeReader:
    """A long-lived reader of the outcome topic (partitions assigned, no consumer group)."""

    def __init__(self, config: Config) -> None:
        self.consumer = make_reader(config.kafka, "tests", log_level=0)
        topic = config.topic("outcomes")
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.seen: list[dict[str, Any]] = []

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.1)
            if msg is not None and not msg.error():
                self.seen.append(msgspec.json.decode(msg.value()))

    def wait(self, match: Callable[[dict[str, Any]], bool], count: int, timeout: float = 60.0,
             linger: float = 1.0) -> list[dict[str, Any]]:
        """Outcomes matching `match`, once at least `count` arrived (then `linger` more seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [o for o in self.seen if match(o)]
            if len(found) >= count:
                self.poll(linger)
                return [o for o in self.seen if match(o)]
            self.poll(0.5)
        found = [o for o in self.seen if match(o)]
        raise AssertionError(f"only {len(found)} of {count} outcomes after {timeout}s: "
                             f"{collections.Counter(o['status'] for o in found)}")


class Stack:
    def __init__(self, config: Config, sandbox: SandboxClient, worker: Proc, workdir: Path) -> None:
        self.config = config
        self.sandbox = sandbox
        self.worker = worker
        self.workdir = workdir
        self.outcomes = OutcomeReader(config)

    def produce(self, records: list[Any]) -> list[tuple[int, int] | None]:
        """Produce events (dicts) or raw records (bytes); returns each one's (partition, offset)."""
        lines = [r if isinstance(r, bytes) else msgspec.json.encode(r) for r in records]
        return produce_lines(self.config, lines)


def sandbox_instances(url: str, pw_key: str = "sandbox-pushwoosh-key", xp_key: str = "sandbox-xtremepush-key",
                      head: str = "") -> str:
    """A config with instances `pw` and `xp` on the sandbox at `url` (no Kafka section)."""
    return f"""{head}
[[destinations]]
name = "pw"
type = "pushwoosh"
settings = {{ pushwooshAPIKey = "{pw_key}", pushwooshAppCode = "SANDBOX-APP", baseUrl = "{url}" }}

[[destinations]]
name = "xp"
type = "xtremepush"
settings = {{ url = "{url}/", apiKey = "{xp_key}" }}
"""


def launch(text: str, name: str, sandbox: SandboxClient, workdir: Path) -> Stack:
    """Write a config, create its topics and start a worker process for it."""
    path = workdir / f"{name}.toml"
    path.write_text(text)
    config = load_config(text, local_env(), workdir)
    ensure_topics(config)
    worker = start_worker(workdir, path, local_env(), name=name)
    return Stack(config, sandbox, worker, workdir)


def close(stack: Stack) -> None:
    stack.outcomes.consumer.close()
    stack.worker.stop()


def write_track_mapping(workdir: Path) -> None:
    """The mapping file `targeted_instances` name: Pushwoosh's default Track Event mapping."""
    from pushstream.codecs.destinations.pushwoosh import PUSHWOOSH

    (workdir / "track-mapping.json").write_bytes(msgspec.json.encode(PUSHWOOSH.actions["trackEvent"].default_mapping))


def targeted_instances(sandbox_url: str, names: tuple[str, ...], extra: dict[str, str] | None = None) -> str:
    """Pushwoosh instances that each take only track events whose properties.targets names them."""
    return "".join(mapped_instance(sandbox_url, f"pw-{name}", f"APP-{name.upper()}",
                                   f'type = "track" and contains(properties.targets, "{name}")', mapping="targeted",
                                   options=(extra or {}).get(name, ""))
                   for name in names)


def mine(prefix: str, instance: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """Selects a test's outcomes by its messageId prefix (and instance)."""
    return lambda o: (o.get("message_id") or "").startswith(prefix) and (instance is None or o["instance"] == instance)


def targeted_events(prefix: str, n: int, targets: str) -> list[dict[str, Any]]:
    """Track events for the `faulty` worker's instances named in `targets` (see `targeted_instances`)."""
    return [{"type": "track", "messageId": f"{prefix}-{i:05d}", "userId": f"{prefix}-u{i % 7}", "event": "Ping",
             "timestamp": "2026-11-23T10:00:00.000Z", "properties": {"targets": targets, "i": i}}
            for i in range(n)]


def sent_for_app(sandbox: SandboxClient, prefix: str, app: str) -> list[dict[str, Any]]:
    """Requests the sandbox received for this test's users and instance (by app code), in order."""
    return [r for r in sandbox.requests(POST_EVENTS) if r["headers"].get("X-PW-Appcode") == app
            and r["body"]["events"][0]["user_id"].startswith(prefix)]


def needs_tool(name: str) -> bool:
    """Whether a command-line tool the test uses (Debian's promtool, prometheus, docker-compose)
    is on PATH: in CI (.ci/run installs them) a missing one fails the test, elsewhere skips it."""
    if shutil.which(name):
        return True
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed; .ci/run installs it")
    pytest.skip(f"{name} is not installed (Debian package: see .ci/run)")

