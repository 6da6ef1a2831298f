"""`pushstream status`: one screen per instance, from Kafka and the worker's /metrics.

Per instance: the consumer group's lag on its jobs and retry topics (end offset minus committed
offset, per partition, never below 0: the local broker's end offsets can lag what was read),
outcomes by status over the last 1, 5 and 15 minutes, the last error, and whether the worker
reports it paused (from `ops.listen`'s /metrics; "unknown" when no worker answers there).
"""

from __future__ import annotations

import collections
import time
from typing import Any

import httpx
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from pushstream.codecs.config import Config
from pushstream.streams.commands.outcomes import read_outcomes
from pushstream.streams.kafka.admin import make_reader
from pushstream.streams.ops.server import parse_listen

__all__ = ["gather", "render"]

WINDOWS = (60, 300, 900)  # seconds: the last 1, 5 and 15 minutes


def _lag(config: Config, topics: list[str]) -> dict[str, int]:
    """Per topic: records past the worker group's committed offsets."""
    consumer = make_reader(config.kafka, config.kafka.app_id)
    try:
        metadata = consumer.list_topics(timeout=10)
        parts = [TopicPartition(t, p) for t in topics if t in metadata.topics for p in metadata.topics[t].partitions]
        committed = consumer.committed(parts, timeout=10) if parts else []
        lag: dict[str, int] = dict.fromkeys(topics, 0)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            start = tp.offset if tp.offset >= 0 else low
            lag[tp.topic] += max(0, high - start)
        return lag
    finally:
        consumer.close()


def _paused(config: Config) -> dict[str, bool] | None:
    """Instance -> paused, from the worker's /metrics; None when no worker answers."""
    address = parse_listen(config.ops.listen)
    if address is None:
        return None
    try:
        text = httpx.get(f"http://{address[0]}:{address[1]}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    paused = {}
    for family in text_string_to_metric_families(text):
        if family.name == "pushstream_instance_paused":
            paused.update({s.labels["instance"]: s.value > 0 for s in family.samples})
    return paused


def gather(config: Config, now: float | None = None) -> dict[str, Any]:
    """Everything `status` shows, as plain data (what `--json` prints)."""
    now = time.time() if now is None else now
    names = [i.name for i in config.instances]
    topics = [config.topic(kind, n) for n in names for kind in ("jobs", "retry")]
    lag = _lag(config, topics)
    windows: dict[str, dict[int, collections.Counter[str]]] = {
        n: {w: collections.Counter() for w in WINDOWS} for n in names}
    last_error: dict[str, dict[str, Any]] = {}
    for outcome, _ in read_outcomes(config.kafka, config.topic("outcomes"), since=now - max(WINDOWS),
                                    idle=2.0, max_wait=30.0):
        if outcome is None or outcome.instance not in windows:
            continue
        for w in WINDOWS:
            if outcome.at >= now - w:
                windows[outcome.instance][w][outcome.status] += 1
        if outcome.status in ("rejected", "failed") and outcome.at >= last_error.get(outcome.instance, {}).get("at", 0):
            last_error[outcome.instance] = {"at": outcome.at, "status": outcome.status, "code": outcome.error_code,
                                            "reason": outcome.reason}
    paused = _paused(config)
    return {"at": now, "broker": config.kafka.broker, "instances": [{
        "name": n, "destination": config.instance(n).destination.slug,
        "lag": {"jobs": lag[config.topic("jobs", n)], "retry": lag[config.topic("retry", n)]},
        "outcomes": {f"{w // 60}m": dict(windows[n][w]) for w in WINDOWS},
        "last_error": last_error.get(n),
        "paused": None if paused is None else paused.get(n, False)} for n in names]}


def render(status: dict[str, Any], console: Console) -> None:
    for inst in status["instances"]:
        paused = {None: "unknown (no worker answered on ops.listen)", True: "PAUSED", False: "no"}[inst["paused"]]
        console.print(f"[bold]{inst['name']}[/bold] ({inst['destination']}): lag jobs {inst['lag']['jobs']:,}, "
                      f"retry {inst['lag']['retry']:,}; paused: {paused}", soft_wrap=True)
        table = Table()
        statuses = sorted({s for counts in inst["outcomes"].values() for s in counts})
        table.add_column("outcomes")
        for status in statuses or ["(none)"]:
            table.add_column(str(status), justify="right")
        for window, counts in inst["outcomes"].items():
            table.add_row(f"last {window}", *(f"{counts.get(s, 0):,}" for s in statuses or ["(none)"]))
        console.print(table)
        error = inst["last_error"]
        if error:
            when = time.strftime("%H:%M:%S", time.localtime(error["at"]))
            console.print(f"  last error {when}: {error['status']} {error['code']}: {error['reason']}")
        console.print()
