"""The shipped examples run: Engage audiences reach both destinations through the worker."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import msgspec

from pushstream.streams.local.broker import LocalBroker, free_port
from tests.support import SandboxClient, close, launch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_engage_example_routes_audience_traits_and_events_to_pushwoosh_and_xtremepush(
        broker: LocalBroker, sandbox: SandboxClient, workdir: Path) -> None:
    """examples/engage.toml with examples/engage-events.jsonl, pointed at the test's broker and
    sandbox: each audience identify and Audience Entered/Exited event reaches both instances, in
    each user's order; a plain track and a plain identify reach neither."""
    run = f"engage{uuid.uuid4().hex[:6]}"
    text = (EXAMPLES / "engage.toml").read_text()
    for old, new in (("kafka://127.0.0.1:9092", broker.url), ("http://127.0.0.1:8787", sandbox.url),
                     ('"engage-events"', f'"{run}-events"'), ('"engage"', f'"{run}"'),
                     ('"pushstream-engage"', f'"{run}"'), ("127.0.0.1:6067", f"127.0.0.1:{free_port()}"),
                     ('"pushstream-engage-state"', f'"{workdir / run}"')):
        assert old in text
        text = text.replace(old, new)
    for mapping in (EXAMPLES / "mappings").glob("engage-*.json"):
        (workdir / "mappings").mkdir(exist_ok=True)
        (workdir / "mappings" / mapping.name).write_bytes(mapping.read_bytes())
    events = [msgspec.json.decode(line) for line in (EXAMPLES / "engage-events.jsonl").read_bytes().splitlines()]
    for e in events:
        e["messageId"] = f"{run}-{e['messageId']}"
    before = len(sandbox.requests())
    stack = launch(text, run, sandbox, workdir)
    try:
        stack.produce(events)
        outcomes = stack.outcomes.wait(lambda o: (o.get("message_id") or "").startswith(run), 12)
    finally:
        close(stack)
    assert sorted((o["instance"], o["mapping"], o["status"]) for o in outcomes) == sorted(
        [(i, m, "delivered") for i, ms in (("pushwoosh-engage", ("Audience as a tag", "Audience entered or exited")),
                                           ("xtremepush-engage", ("Audience as an attribute",
                                                                  "Audience entered or exited")))
         for m in ms for _ in range(3)])
    # Pushwoosh's bodies carry no messageId: the example's user ids tell its requests apart.
    users = ("user-anna", "user-ben")
    sent = [r for r in sandbox.requests()[before:] if r["status"] == 200 and any(u in str(r["body"]) for u in users)]
    profiles = [(r["body"]["user_id"], r["body"]["attributes"]) for r in sent if r["path"].endswith("/track-user")]
    assert sorted(profiles, key=str) == sorted([
        ("user-anna", {"order_completed_last_30days": True}), ("user-ben", {"order_completed_last_30days": True}),
        ("user-anna", {"order_completed_last_30days": False})], key=str)
    assert profiles.index(("user-anna", {"order_completed_last_30days": True})) < \
        profiles.index(("user-anna", {"order_completed_last_30days": False}))
    pw_events = [e for r in sent if r["path"].endswith("/post-events") for e in r["body"]["events"]]
    assert sorted((e["user_id"], e["name"], e["attributes"]["audience_key"]) for e in pw_events) == [
        ("user-anna", "Audience Entered", "order_completed_last_30days"),
        ("user-anna", "Audience Exited", "order_completed_last_30days"),
        ("user-ben", "Audience Entered", "order_completed_last_30days")]
    xp = [r["body"] for r in sent if r["path"].endswith("/handle") and r["body"]["messageId"].startswith(run)]
    assert sorted((b["type"], b["userId"], b.get("event"), str(b.get("traits"))) for b in xp) == sorted([
        ("identify", "user-anna", None, str({"order_completed_last_30days": True, "email": "anna@example.com"})),
        ("identify", "user-ben", None, str({"order_completed_last_30days": True})),
        ("identify", "user-anna", None, str({"order_completed_last_30days": False})),
        ("track", "user-anna", "Audience Entered", "None"), ("track", "user-ben", "Audience Entered", "None"),
        ("track", "user-anna", "Audience Exited", "None")])
    assert all(b["properties"] == {"audience_key": "order_completed_last_30days", "space_id": "spa_w5JmNB5L8"}
               for b in xp if b["type"] == "track")
    assert not any(run + "-engage-7" in str(r["body"]) or run + "-engage-8" in str(r["body"]) for r in sent)


def test_webhook_example_previews_grouped_signed_requests_with_its_secrets_masked() -> None:
    """examples/webhook.toml on examples/events.jsonl through `pushstream preview`: orders batched
    per currency URL, sign-ups one PUT each, the token and signature masked."""
    env = {"WEBHOOK_SHARED_SECRET": "hook-s3cret", "ORDERS_API_TOKEN": "Bearer tok-123", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "pushstream.streams", "preview", "--config",
                             str(EXAMPLES / "webhook.toml"), str(EXAMPLES / "events.jsonl")],
                            capture_output=True, timeout=60, env=env)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "orders-service: POST https://orders.internal.example.com/v1/orders/EUR  (2 event(s))" in out
    assert out.count("orders-service: PUT https://hooks.partner.example.net/signups  (1 event(s))") == 3
    assert "Authorization: Bearer ********" in out and "X-Signature: ********" in out
    assert "tok-123" not in out and "hook-s3cret" not in out
