"""CLI commands that need no Kafka: preview."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

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
    result = subprocess.run([sys.executable, "-m", "pushstream.streams.cli", "preview", "--config",
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
    result = subprocess.run([sys.executable, "-m", "pushstream.streams.cli", "preview", "--config",
                             str(tmp_path / "c.toml")], input=stdin, capture_output=True, timeout=60,
                            env={"PW_KEY": "pw-secret", "XP_KEY": "xp-secret", "PATH": "/usr/bin:/bin"})
    out = result.stdout.decode()
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr.decode()[-2000:]
    assert "event #0: invalid: nested 10002 levels deep" in out
    assert "event #1: invalid: number out of range" in out
    assert "event #2: invalid: duplicate key `type`" in out
