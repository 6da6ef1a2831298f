"""The console against the real stack: a worker with a wrong-key instance and poison events,
`pushstream console` reading its outcome topic, the page in Debian's chromium."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec

from pushstream.streams.local.broker import LocalBroker, free_port
from pushstream.streams.local.samples import sample_events
from pushstream.streams.local.stack import local_config, local_env, start_server
from tests.support import SandboxClient, close, launch, needs_tool

SECRETS = ("sandbox-pushwoosh-key", "sandbox-xtremepush-key", "wrong-console-key")


def _counts(outcomes: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for o in outcomes:
        out[o.get("instance") or ""][o["status"]] += 1
    return {k: dict(v) for k, v in out.items()}


def _api_counts(url: str) -> dict[str, dict[str, int]]:
    overview = httpx.get(f"{url}/api/overview?window=3600", timeout=10).json()
    return {i["name"]: i["statuses"] for i in overview["instances"]}


def _wait_counts(url: str, expected: dict[str, dict[str, int]], timeout: float = 60) -> dict[str, dict[str, int]]:
    deadline = time.monotonic() + timeout
    while True:
        got = _api_counts(url)
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def _waiting(url: str, instance: str, expected: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        funnel = httpx.get(f"{url}/api/funnel?instance={instance}&window=3600", timeout=10).json()["funnel"]
        got = next(s["count"] for s in funnel if s["step"] == "waiting for retry")
        if got == expected or time.monotonic() > deadline:
            return int(got)
        time.sleep(0.3)


def _chromium_dom(url: str, profile: Path) -> str:
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
         "--virtual-time-budget=3000", "--dump-dom", url], capture_output=True, timeout=120)
    return result.stdout.decode(errors="replace")


def _dom_counts(dom: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, row in re.findall(r'<tr class="instance" data-instance="([^"]*)">(.*?)</tr>', dom, re.S):
        cells = re.findall(r'data-status="(\w+)">([\d,]+)<', row)
        counts = {s: int(n.replace(",", "")) for s, n in cells if n != "0"}
        if counts:
            out[name] = counts
    return out


def test_console_shows_the_outcome_topic_with_errors_samples_tester_and_survives_a_restart(
        broker: LocalBroker, sandbox: SandboxClient, workdir: Path) -> None:
    run = f"console{uuid.uuid4().hex[:6]}"
    port = free_port()
    text = local_config(broker.url, sandbox.url, prefix=run, app_id=run, input_topic=f"{run}-events",
                        extra_destinations=f"""
[[destinations]]
name = "pushwoosh-wrongkey"
type = "pushwoosh"
settings = {{ pushwooshAPIKey = "wrong-console-key", pushwooshAppCode = "SANDBOX-APP", baseUrl = "{sandbox.url}" }}
""") + f"""
[console]
listen = "127.0.0.1:{port}"
db = "{workdir / run / 'console.sqlite3'}"
"""
    # A 400 for any request carrying this text: the batch is halved down to the one event.
    sandbox.fault(status=400, body_contains=f"{run}-poison", path_prefix="/integration-segment")
    events = sample_events(300, seed=5, prefix=run, mix="track")
    events[7]["properties"] = {"note": f"{run}-poison"}
    del events[11]["userId"]  # Pushwoosh's trackEvent requires external_id: rejected at the mapping
    groups = [{"type": "group", "groupId": "g", "userId": f"{run}-g{i}", "messageId": f"{run}-group-{i}"}
              for i in range(3)]  # no instance's mappings take a group call
    raw = [msgspec.json.encode(e) for e in events + groups] + [b"not json", b"[1, 2]"]
    stack = launch(text, run, sandbox, workdir)
    console = None
    try:
        stack.produce(raw)
        outcomes = stack.outcomes.wait(lambda o: o.get("topic") == f"{run}-events", 602, linger=3)
        expected = _counts(outcomes)
        assert expected["pushwoosh-sandbox"]["rejected"] == 2 and expected[""] == {"invalid": 2}
        # Its events wait for a key that works; only the one its mapping refuses has an outcome.
        assert expected["pushwoosh-wrongkey"] == {"rejected": 1}
        config_path = workdir / f"{run}.toml"
        console = start_server("console", workdir, config_path, local_env(), port)
        url = f"http://127.0.0.1:{port}"
        assert _wait_counts(url, expected) == expected

        errors = httpx.get(f"{url}/api/errors?instance=pushwoosh-sandbox&window=3600").json()["errors"]
        by_code = {e["error_code"]: e for e in errors}
        bad = by_code["BAD_REQUEST"]
        assert bad["count"] == 1 and "injected fault" in bad["reason"] and "body" in bad["suggested_action"]
        sample = bad["samples"][0]
        assert sample["request"]["method"] == "POST" and sample["request"]["url"].endswith("/post-events")
        assert sample["request"]["headers"]["Authorization"] == "Token ********"
        assert sample["response"]["status"] == 400 and "injected fault" in sample["response"]["body"]
        assert any(f"{run}-poison" in msgspec.json.encode(s["event"]).decode() for s in bad["samples"])
        wrong = httpx.get(f"{url}/api/errors?instance=pushwoosh-wrongkey&window=3600").json()["errors"]
        (auth,) = [e for e in wrong if e["error_code"] == "INVALID_AUTHENTICATION"]
        assert auth["status"] == "waiting" and "credentials" in auth["suggested_action"]
        assert auth["samples"][0]["response"]["status"] == 401

        funnel = httpx.get(f"{url}/api/funnel?instance=pushwoosh-sandbox&window=3600").json()["funnel"]
        steps = {s["step"]: s["count"] for s in funnel}
        assert steps["received"] == sum(expected["pushwoosh-sandbox"].values()) + 3 and steps["no mapping"] == 3
        assert steps["invalid (all instances)"] == 2 and steps["rejected"] == 2 and steps["waiting for retry"] == 0
        # The wrong key's 299 jobs wait on its retry topic, parked until the key works.
        assert _waiting(url, "pushwoosh-wrongkey", 299) == 299

        needs_tool("chromium")
        dom = _chromium_dom(f"{url}/?window=3600", workdir / f"{run}-chromium")
        assert _dom_counts(dom) == expected, dom[:3000]
        assert "The request to the destination" in dom and "injected fault" in dom
        page = httpx.get(f"{url}/?window=86400").text + httpx.get(f"{url}/api/overview?window=600").text
        assert not any(secret in page + dom + str(errors) + str(wrong) for secret in SECRETS)

        event = {**events[0], "messageId": f"{run}-tester"}
        tested = httpx.post(f"{url}/api/test", json={"instance": "pushwoosh-sandbox", "event": event}).json()
        preview = subprocess.run([sys.executable, "-m", "pushstream.streams", "preview", "--config",
                                  str(config_path)], input=msgspec.json.encode(event), capture_output=True,
                                 env={**local_env(), "PATH": "/usr/bin:/bin"}, timeout=60).stdout.decode()
        (request,) = tested["requests"]
        assert f"pushwoosh-sandbox: {request['method']} {request['url']}  (1 event(s))" in preview
        assert msgspec.json.format(msgspec.json.encode(request["body"]), indent=2).decode() in preview
        poison = next(s for s in bad["samples"] if f"{run}-poison" in msgspec.json.encode(s["event"]).decode())
        picked = httpx.post(f"{url}/api/test", json={"instance": "pushwoosh-sandbox",
                                                     "message_id": poison["message_id"]}).json()
        assert picked["message_id"] == poison["message_id"] and f"{run}-poison" in str(picked["requests"])
        assert "Try it in the event tester" in dom
        before = len(sandbox.requests())
        sent = httpx.post(f"{url}/api/test", json={"instance": "xtremepush-sandbox", "event": event,
                                                   "send": True}).json()
        assert [r["status"] for r in sent["responses"]] == [200]
        # The worker's own requests (a circuit's probe of the wrong key) may land meanwhile: count the tester's.
        tester = [r["path"] for r in sandbox.requests()[before:] if isinstance(r["body"], dict)
                  and r["body"].get("messageId") == f"{run}-tester"]
        assert len(tester) == 1 and tester[0].endswith("/handle"), sandbox.requests()[before:]
        assert f"{run}-tester" in httpx.get(f"{url}/").text  # listed under recent tests

        console.stop()
        console = start_server("console", workdir, config_path, local_env(), port)
        assert _api_counts(url) == expected  # from the store at once, before reading anything new
        stack.produce([msgspec.json.encode(e) for e in sample_events(20, seed=6, prefix=f"{run}-more", mix="track")])
        more = stack.outcomes.wait(lambda o: o.get("topic") == f"{run}-events", 642, linger=2)
        assert _wait_counts(url, _counts(more)) == _counts(more)
    finally:
        sandbox.clear_faults()
        if console is not None:
            console.stop()
        close(stack)


def test_the_console_refuses_to_listen_off_this_machine_without_a_token(tmp_path: Path, broker: LocalBroker) -> None:
    config = tmp_path / "c.toml"
    config.write_text(local_config(broker.url, "http://127.0.0.1:1") + '\n[console]\nlisten = "0.0.0.0:8089"\n')
    result = subprocess.run([sys.executable, "-m", "pushstream.streams", "console", "--config", str(config)],
                            capture_output=True, timeout=60, env={**local_env(), "PATH": "/usr/bin:/bin"})
    err = result.stderr.decode()
    assert result.returncode == 2 and err.startswith("pushstream: console.listen is 0.0.0.0:8089, off this machine")
    assert "Traceback" not in err and err.count("\n") == 1
