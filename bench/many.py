"""Many instances in one worker: 20 Pushwoosh instances (one app per brand), each taking its brand's
track events, against one instance taking all of the same events. What scales with instances
rather than events (per-instance topics, agents, timers, partial batches) shows in the ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from pushstream.codecs.destinations.pushwoosh import PUSHWOOSH
from pushstream.streams.local.stack import local_config, mapped_instance

BRANDS = 20


def _config(broker_url: str, url: str, name: str, instances: int) -> str:
    head = local_config(broker_url, url, prefix=name, app_id=name, input_topic=f"{name}-in", partitions=8,
                        batch_window=0.2).split("[[destinations]]")[0]
    if instances == 1:
        return head + mapped_instance(url, f"{name}-all", "SANDBOX-APP", 'type = "track"', mapping="brand")
    return head + "".join(mapped_instance(url, f"{name}-b{i}", "SANDBOX-APP",
                                          f'type = "track" and properties.brand = "b{i}"', mapping="brand")
                          for i in range(instances))


def branded(lines: list[bytes]) -> list[bytes]:
    """The corpus with each track event's properties naming one of BRANDS brands, round robin."""
    out = []
    for i, line in enumerate(lines):
        try:
            event = msgspec.json.decode(line)
        except msgspec.DecodeError:
            out.append(line)
            continue
        if isinstance(event, dict) and isinstance(event.get("properties"), dict):
            event["properties"]["brand"] = f"b{i % BRANDS}"
        out.append(msgspec.json.encode(event))
    return out


def run_many(broker: Any, sandbox_url: str, workdir: Path, run_stack: Callable[..., dict[str, Any]],
             corpus: Callable[..., list[bytes]], quick: bool) -> dict[str, Any]:
    (workdir / "track-mapping.json").write_bytes(msgspec.json.encode(PUSHWOOSH.actions["trackEvent"].default_mapping))
    lines = branded(corpus(300 if quick else 30_000, seed=3))
    rows: dict[str, Any] = {}
    for instances in (BRANDS,) if quick else (1, BRANDS):  # quick: the harness only
        name = f"many{instances}"
        text = _config(broker.url, sandbox_url, name, instances)
        result = run_stack(broker, sandbox_url, workdir, name, lines, 1, 0, window=0.2, text=text)
        rows[str(instances)] = {"instances": instances, "events_per_s": result["events_per_s"],
                                "outcomes": result["outcomes"], "peak_rss_mb": result["peak_rss_mb"],
                                "cores_busy": result["cores_busy"]}
    one = rows["1"]["events_per_s"] if "1" in rows else None
    rows[str(BRANDS)]["ratio_vs_one"] = round(rows[str(BRANDS)]["events_per_s"] / one, 2) if one else None
    return rows
