"""Webhook delivery: the same track events through one worker to a webhook instance (signed,
batches of 100, one group per event type) and to a Pushwoosh instance taking the same tracks in
batches of 100. The ratio says what the webhook's signing and grouping cost against a destination
without them; the sandbox checks every signature (a wrong one is a 401, which would show as
outcomes that never arrive).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

from pushstream.codecs.destinations.pushwoosh import PUSHWOOSH
from pushstream.streams.local.stack import local_config, mapped_instance, webhook_instance


def _config(broker_url: str, url: str, name: str, webhook: bool) -> str:
    head = local_config(broker_url, url, prefix=name, app_id=name, input_topic=f"{name}-in", partitions=8,
                        batch_window=0.2).split("[[destinations]]")[0]
    if webhook:
        return head + webhook_instance(url, f"{name}-hook", 'type = "track"', path=name)
    return head + mapped_instance(url, f"{name}-pw", "SANDBOX-APP", 'type = "track"', mapping="tracks")


def run_webhook(broker: Any, sandbox_url: str, workdir: Path, run_stack: Callable[..., dict[str, Any]],
                corpus: Callable[..., list[bytes]], quick: bool) -> dict[str, Any]:
    (workdir / "track-mapping.json").write_bytes(msgspec.json.encode(PUSHWOOSH.actions["trackEvent"].default_mapping))
    lines = corpus(300 if quick else 30_000, seed=3)
    rows: dict[str, Any] = {}
    for kind in ("webhook",) if quick else ("pushwoosh", "webhook"):  # quick: the harness only
        name = f"hookbench-{kind}"
        result = run_stack(broker, sandbox_url, workdir, name, lines, 1, 0, window=0.2,
                           text=_config(broker.url, sandbox_url, name, kind == "webhook"))
        rows[kind] = {"events_per_s": result["events_per_s"], "outcomes": result["outcomes"],
                      "cores_busy": result["cores_busy"], "peak_rss_mb": result["peak_rss_mb"]}
    requests = httpx.get(f"{sandbox_url}/_sandbox/requests", timeout=60).json()
    hooks = [r for r in requests if r["path"].startswith("/hooks/hookbench-webhook/")]
    rows["webhook"]["requests"] = len(hooks)
    rows["webhook"]["refused_signatures"] = sum(1 for r in hooks if r["status"] == 401)
    base = rows.get("pushwoosh", {}).get("events_per_s")
    rows["webhook"]["ratio_vs_pushwoosh"] = round(rows["webhook"]["events_per_s"] / base, 2) if base else None
    return rows


def webhook_rows(rows: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table's line for `run_webhook`'s result."""
    hook = rows["webhook"]
    return [("webhook, 1 worker", f"{hook['events_per_s']:,} ev/s",
             f"{hook['ratio_vs_pushwoosh']}x a Pushwoosh instance on the same tracks "
             f"({rows.get('pushwoosh', {}).get('events_per_s', 'n/a')} ev/s); {hook['requests']} signed requests, "
             f"{hook['refused_signatures']} refused")]
