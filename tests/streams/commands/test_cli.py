"""The CLI: preview (no Kafka), one-line errors and exit codes, commands without a broker, the broker launcher."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from pushstream.streams.local.broker import LocalBroker, free_port, wait_for_port
from pushstream.streams.local.stack import SANDBOX_HOOK_SECRET, local_env, webhook_instance
from tests.support import SandboxClient, sandbox_instances

CONFIG = """
[[destinations]]
name = "pw"
type = "pushwoosh"
settings = { pushwooshAPIKey = "${PW_KEY}", pushwooshAppCode = "APP-1" }

[[destinations]]
name = "xp"
type = "xtremepush"
settings = { url = "https://xp.example/", apiKey = "${XP_KEY}" }
presets = { "Send User Profile Data" = { enabled = false } }
"""
ENV = {"PW_KEY": "pw-secret", "XP_KEY": "xp-secret"}


def test_preview_prints_exact_requests_with_secrets_masked(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)
    events = [
        {"type": "track", "messageId": "m1", "userId": "u1", "event": "Order Completed",
         "timestamp": "2024-01-02T03:04:05.000Z", "properties": {"revenue": 10}},
        {"type": "page", "messageId": "m2", "userId": "u1", "name": "Home", "timestamp": "2024-01-02T03:04:06.000Z"},
        {"type": "identify", "messageId": "m3", "userId": "u1", "traits": {"plan": "pro"}},
        {"type": "track", "messageId": "m4", "event": "No user", "timestamp": "2024-01-02T03:04:05.000Z"},
    ]
    stdin = b"\n".join(msgspec.json.encode(e) for e in events) + b"\nnot json\n"
    result = subprocess.run([sys.executable, "-m", "pushstream.streams", "preview", "--config",
                             str(tmp_path / "c.toml")], input=stdin, capture_output=True, timeout=60,
                            env={"PW_KEY": "pw-secret", "XP_KEY": "xp-secret", "PATH": "/usr/bin:/bin"})
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "pw-secret" not in out and "xp-secret" not in out
    assert "Authorization: Token ********" in out and "Authorization: Basic ********" in out
    assert "event #0: messageId=m1\n  pw / Track Events (trackEvent): batched" in out
    assert "event #3: messageId=m4\n  xp / Send Analytics Events (track): sent alone\n" \
           "  pw / Track Events (trackEvent): rejected: The root value is missing the required field 'external_id'." in out
    assert "event #4: invalid: not JSON" in out
    # the two tracked events of u1 share one batch request
    assert "pw: POST https://integration-segment.svc-nue.pushwoosh.com/integration-segment/v1/post-events  " \
           "(2 event(s))" in out
    assert '"app_id": "APP-1"' in out and '"name": "Home"' in out
    assert "pw: POST https://integration-segment.svc-nue.pushwoosh.com/integration-segment/v1/track-user" in out
    assert "xp: POST https://xp.example/api/integration/segment/handle  (1 event(s))" in out


def test_preview_shows_odd_json_as_invalid_events_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)
    deep = b'{"type": "track", "messageId": "d", "event": "E", "properties": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"
    stdin = b"\n".join([deep, b'{"type": "track", "messageId": "n", "event": "E", "properties": {"n": 1e400}}',
                        b'{"type": "track", "type": "identify", "messageId": "t", "event": "E"}']) + b"\n"
    result = subprocess.run([sys.executable, "-m", "pushstream.streams", "preview", "--config",
                             str(tmp_path / "c.toml")], input=stdin, capture_output=True, timeout=60,
                            env={"PW_KEY": "pw-secret", "XP_KEY": "xp-secret", "PATH": "/usr/bin:/bin"})
    out = result.stdout.decode()
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr.decode()[-2000:]
    assert "event #0: invalid: nested 10002 levels deep" in out
    assert "event #1: invalid: number out of range" in out
    assert "event #2: invalid: duplicate key `type`" in out


def test_preview_says_which_filter_acted(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG + """
[[destinations.filters]]
title = "No debug events"
if = 'event = "Debug"'
actions = [{ type = "drop" }]

[[destinations.filters]]
title = "No secrets"
if = 'type = "track"'
actions = [{ type = "drop_properties", fields = { properties = ["secret"] } }]
""")
    events = [{"type": "track", "messageId": "d1", "userId": "u1", "event": "Debug", "timestamp": "2024-01-02T03:04:05.000Z"},
              {"type": "track", "messageId": "s1", "userId": "u1", "event": "Buy", "timestamp": "2024-01-02T03:04:05.000Z",
               "properties": {"secret": "x", "sku": "a"}}]
    stdin = b"\n".join(msgspec.json.encode(e) for e in events) + b"\n"
    code, out, _ = _run(["preview", "--config", str(tmp_path / "c.toml")], ENV, stdin)
    assert code == 0
    first, second = out.split("event #1: ")[0], out.split("event #1: ")[1].split("event #2")[0]
    assert "  pw / Track Events (trackEvent): batched\n" in first
    assert "  xp: filtered: filter 'No debug events' dropped the event\n" in first
    assert second.startswith("messageId=s1\n  xp: filter 'No secrets' removed properties: secret\n")
    assert out.count('"secret"') == 1  # pw has no filters; xp's request lacks it


def test_check_send_test_sends_one_event_and_prints_requests_and_raw_answers(
        tmp_path: Path, sandbox: SandboxClient) -> None:
    """The Event Tester on the CLI, against the sandbox: the built-in event for both destinations,
    a file's event, a refused key (the raw 401 printed, exit 1), and the plain check for each."""
    config = tmp_path / "c.toml"
    config.write_text(sandbox_instances(sandbox.url))
    before = len(sandbox.requests())
    code, out, _ = _run(["check", "pw", "--send-test", "--config", str(config)])
    assert code == 0, out
    message_id = out.split("messageId=")[1].split()[0]
    assert message_id.startswith("pushstream-test-") and "sandbox-pushwoosh-key" not in out
    assert f"-> Track Events (trackEvent)\nPOST {sandbox.url}/integration-segment/v1/post-events  (1 event(s))\n" \
           "  Authorization: Token ********\n  X-PW-Appcode: SANDBOX-APP\n" in out
    assert '<- 200\n{"status":"ok"}\n' in out
    code, out, _ = _run(["check", "xp", "--send-test", "--config", str(config)])
    assert code == 0, out
    assert f"-> Send Analytics Events (track)\nPOST {sandbox.url}/api/integration/segment/handle  (1 event(s))\n" \
           "  Authorization: Basic ********\n" in out and '<- 200\n{"status":"ok"}\n' in out
    event = tmp_path / "identify.json"
    event.write_text('{\n  "type": "identify", "messageId": "file-1", "userId": "u-file",\n'
                     '  "traits": {"email": "a@b.co"}, "timestamp": "2024-01-02T03:04:05.000Z"\n}\n')
    code, out, _ = _run(["check", "xp", "--send-test", str(event), "--config", str(config)])
    assert code == 0 and "messageId=file-1\n" in out and "-> Send User Profile Data (identify)" in out, out
    # The sandbox is the session's: other workers' requests (a refused key's pings) may interleave.
    sent = [r for r in sandbox.requests()[before:] if "pushstream-test" in str(r["body"]) or "file-1" in str(r["body"])]
    assert [(r["path"].rsplit("/", 1)[1], r["status"]) for r in sent] == [
        ("post-events", 200), ("handle", 200), ("handle", 200)]
    assert sent[0]["body"]["events"][0]["name"] == "Pushstream Test Event"
    assert sent[2]["body"] == {"type": "identify", "userId": "u-file", "email": "a@b.co",
                               "traits": {"email": "a@b.co"}, "timestamp": "2024-01-02T03:04:05.000Z",
                               "messageId": "file-1"}

    config.write_text(sandbox_instances(sandbox.url, xp_key="wrong-key"))
    code, out, _ = _run(["check", "xp", "--send-test", "--config", str(config)])
    assert code == 1 and '<- 401\n{"status":"error","message":"invalid credentials"}\n' in out, out
    assert "wrong-key" not in out
    code, out, _ = _run(["check", "xp", "--config", str(config)])
    assert code == 1 and out.startswith("xp: Xtremepush (Actions) cannot be checked without sending data"), out
    code, out, _ = _run(["check", "pw", "--config", str(config)])
    assert (code, out) == (0, "pw: credentials accepted (200)\n")
    code, out, _ = _run(["check", "pw", "--send-test", str(tmp_path / "none.json"), "--config", str(config)])
    assert code == 4 and out.startswith("pushstream: cannot read ") and "Traceback" not in out


def test_check_send_test_on_a_webhook_shows_the_signed_request_masked_and_the_receivers_answer(
        tmp_path: Path, sandbox: SandboxClient) -> None:
    config = tmp_path / "c.toml"
    config.write_text(webhook_instance(sandbox.url, "hook", path="cli",
                                       mapping='headers = { "X-Api-Key" = "key-in-mapping" }'))
    env = {**local_env(), "WEBHOOK_SHARED_SECRET": SANDBOX_HOOK_SECRET}
    code, out, _ = _run(["check", "hook", "--send-test", "--config", str(config)], env)
    assert code == 0, out
    assert f"-> Events (send)\nPOST {sandbox.url}/hooks/cli/track  (1 event(s))\n" in out
    assert "  X-Signature: ********\n  X-Api-Key: ********\n" in out and '<- 200\n{"status":"ok"}\n' in out
    assert "key-in-mapping" not in out and SANDBOX_HOOK_SECRET not in out
    (sent,) = [r for r in sandbox.requests("/hooks/cli/track") if "pushstream-test" in str(r["body"])]
    assert sent["signed"] == "first" and sent["body"][0]["event"] == "Pushstream Test Event"
    code, out, _ = _run(["check", "hook", "--config", str(config)], env)
    assert code == 1 and out.startswith("hook: Webhooks (Actions) cannot be checked without sending data"), out
    config.write_text(webhook_instance(sandbox.url, "hook", path="cli", secret="not-the-secret"))
    code, out, _ = _run(["check", "hook", "--send-test", "--config", str(config)], env)
    assert code == 1 and '<- 401\n{"status":"error","message":"invalid credentials"}\n' in out, out
    assert "not-the-secret" not in out


def _run(args: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None,
         timeout: float = 60) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pushstream.streams", *args], input=stdin, capture_output=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace"), time.monotonic() - started


@pytest.fixture
def no_broker_config(tmp_path: Path) -> Path:
    """A config whose broker nothing listens on (a free loopback port)."""
    path = tmp_path / "c.toml"
    path.write_text(f'[kafka]\nbroker = "kafka://127.0.0.1:{free_port()}"\n' + CONFIG)
    return path


@pytest.mark.parametrize("command", [["worker"], ["produce", "-"], ["outcomes"], ["replay"], ["status"]])
def test_without_a_broker_every_command_says_so_in_one_line_within_10_s(command: list[str],
                                                                        no_broker_config: Path) -> None:
    code, out, took = _run([*command, "--config", str(no_broker_config)], ENV, stdin=b'{"type": "track"}\n')
    assert code == 3 and took < 10, (code, took, out)
    assert "Traceback" not in out and len(out.strip().splitlines()) <= 3, out
    assert "cannot reach Kafka at kafka://127.0.0.1:" in out and "connection refused" in out, out


def test_pushstream_broker_env_var_is_honoured_by_produce(no_broker_config: Path, broker: LocalBroker) -> None:
    code, out, _ = _run(["produce", "-", "--config", str(no_broker_config), "--topic", "cli-env-test"],
                        {**ENV, "PUSHSTREAM_BROKER": broker.url}, stdin=b'{"type": "track", "messageId": "e"}\n')
    assert code == 0 and "produced 1 records to cli-env-test" in out, out


def test_user_errors_are_one_line_and_an_exit_code(tmp_path: Path, no_broker_config: Path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)
    config = str(tmp_path / "c.toml")
    code, out, _ = _run(["preview", str(tmp_path / "missing.jsonl"), "--config", config], ENV)
    assert code == 4 and out.strip() == f"pushstream: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory"
    code, out, _ = _run(["check", "nope", "--config", config], ENV)
    assert code == 4 and out.strip() == "pushstream: no instance 'nope' in the config (instances: pw, xp)"
    code, out, _ = _run(["produce", str(tmp_path / "missing.jsonl"), "--config", str(no_broker_config)], ENV)
    assert code == 4 and "cannot read" in out and "Traceback" not in out
    code, out, _ = _run(["outcomes", "--config", str(tmp_path / "nope.toml")], ENV)
    assert code == 2 and "cannot read" in out and "Traceback" not in out


def test_produce_fails_when_kafka_refuses_a_record_naming_its_file_line(tmp_path: Path, broker: LocalBroker) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[kafka]\nbroker = "{broker.url}"\n' + CONFIG)
    events = tmp_path / "events.jsonl"
    too_big = b'{"type": "track", "messageId": "big", "event": "E", "properties": {"b": "' + b"x" * 2_000_000 + b'"}}'
    events.write_bytes(b'{"type": "track", "messageId": "ok", "event": "E"}\n\n' + too_big + b"\n")
    code, out, _ = _run(["produce", str(events), "--config", str(config), "--topic", "cli-refused"], ENV)
    assert code == 1 and "Kafka refused 1 of 2 records (line 3: " in out and "Traceback" not in out, out


def test_importing_the_worker_module_reads_nothing_and_faust_finds_the_app_in_it(no_broker_config: Path) -> None:
    """Importing does nothing, not even read the config (PUSHSTREAM_CONFIG names a missing file);
    Faust's `-A` lookup of `app` builds it then, from the config it names, without a broker."""
    env = {**os.environ, **ENV, "PUSHSTREAM_CONFIG": "/nonexistent.toml"}
    result = subprocess.run([sys.executable, "-c", "import pushstream.streams.worker"], capture_output=True,
                            timeout=60, env=env)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr.decode()
    lookup = "from faust.cli.base import find_app; print(find_app('pushstream.streams.worker'))"
    result = subprocess.run([sys.executable, "-c", lookup], capture_output=True, timeout=60,
                            env={**env, "PUSHSTREAM_CONFIG": str(no_broker_config)})
    assert result.returncode == 0 and b"<PushstreamApp" in result.stdout, result.stderr.decode()
    assert b"Connect to" not in result.stderr, result.stderr.decode()
    result = subprocess.run([sys.executable, "-c", lookup], capture_output=True, timeout=60, env=env)
    assert result.returncode == 2 and b"pushstream: " in result.stderr and b"Traceback" not in result.stderr


def test_sigterm_to_pushstream_broker_stops_the_broker_it_started() -> None:
    port = free_port()
    launcher = subprocess.Popen([sys.executable, "-m", "pushstream.streams", "broker", "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        launcher.send_signal(signal.SIGTERM)  # to the launcher alone, not its process group
        launcher.wait(20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _listening(port):
            time.sleep(0.2)
        assert not _listening(port), "the broker outlived its launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
