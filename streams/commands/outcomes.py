"""`pushstream outcomes`: read the outcome topic with filters, as records, a summary, or followed.

`OutcomeFilter` and `Summary` are pure (tested without Kafka); `read_outcomes` reads the topic
from the start (or from `--since`, by the broker's time index) until it is quiet, or for ever
with `--follow`.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition
from rich.console import Console
from rich.table import Table

from pushstream.codecs.records import TERMINAL, Outcome, decode_outcome
from pushstream.streams.kafka.admin import Cluster, make_reader

__all__ = ["OutcomeFilter", "Summary", "percentile", "read_outcomes"]


@dataclass(frozen=True, slots=True)
class OutcomeFilter:
    """Which outcomes a command shows; None matches anything."""

    instance: str | None = None
    status: str | None = None
    action: str | None = None
    since: float | None = None  # unix seconds

    def __call__(self, o: Outcome) -> bool:
        return ((self.instance is None or o.instance == self.instance)
                and (self.status is None or o.status == self.status)
                and (self.action is None or o.action == self.action)
                and (self.since is None or o.at >= self.since))


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


@dataclass
class Summary:
    """Counts by (instance, action, mapping, status), top reasons and latency percentiles."""

    counts: collections.Counter[tuple[str, str, str, str]] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: dict[tuple[str, str], list[float]] = field(default_factory=lambda: collections.defaultdict(list))

    def add(self, o: Outcome) -> None:
        key = (o.instance or "(input)", o.action or "-", o.mapping or "-", o.status)
        self.counts[key] += 1
        if o.status not in ("delivered", "duplicate"):
            self.reasons[f"{o.status} {o.error_code or '-'}: {o.reason or '-'}"[:160]] += 1
        if o.latency_ms is not None and o.status in TERMINAL:
            self.latencies[(o.instance or "(input)", o.action or "-")].append(o.latency_ms)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def latency(self) -> dict[tuple[str, str], tuple[int, float, float, float]]:
        """Per (instance, action): count, p50, p95, p99 in ms."""
        out = {}
        for key, values in sorted(self.latencies.items()):
            values.sort()
            out[key] = (len(values), percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99))
        return out

    def render(self, console: Console, top: int = 5) -> None:
        table = Table(title=f"outcomes: {self.total:,}", title_justify="left")
        for column in ("instance", "action", "mapping", "status"):
            table.add_column(column)
        table.add_column("count", justify="right")
        for (inst, action, mapping, status), n in sorted(self.counts.items()):
            table.add_row(inst, action, mapping, status, f"{n:,}")
        by_status = collections.Counter[str]()
        for (_, _, _, status), n in self.counts.items():
            by_status[status] += n
        table.add_section()
        for status, n in sorted(by_status.items()):
            table.add_row("total", "", "", status, f"{n:,}")
        console.print(table)
        if self.reasons:
            reasons = Table(title=f"top {min(top, len(self.reasons))} reasons", title_justify="left")
            reasons.add_column("count", justify="right")
            reasons.add_column("status, code: reason")
            for reason, n in self.reasons.most_common(top):
                reasons.add_row(f"{n:,}", reason)
            console.print(reasons)
        latency = self.latency()
        if latency:
            lat = Table(title="latency, received -> terminal outcome (ms)", title_justify="left")
            for column in ("instance", "action", "count", "p50", "p95", "p99"):
                lat.add_column(column, justify="left" if column in ("instance", "action") else "right")
            for (inst, action), (n, p50, p95, p99) in latency.items():
                lat.add_row(inst, action, f"{n:,}", f"{p50:,.0f}", f"{p95:,.0f}", f"{p99:,.0f}")
            console.print(lat)


def read_outcomes(cluster: Cluster, topic: str, *, since: float | None = None, follow: bool = False,
                  idle: float = 3.0, max_wait: float | None = None) -> Iterator[tuple[Outcome | None, bytes]]:
    """(outcome, raw value) pairs from `topic` (None for a record that is not an outcome): from
    `since` (unix seconds; the start when None) until no record came for `idle` seconds, or
    until interrupted with `follow`."""
    consumer = make_reader(cluster, "pushstream-outcomes")
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        parts = list(metadata.topics[topic].partitions) if topic in metadata.topics else []
        if since is None:
            start = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]
        else:
            found = consumer.offsets_for_times([TopicPartition(topic, p, int(since * 1000)) for p in parts], timeout=10)
            start = [tp if tp.offset >= 0 else TopicPartition(topic, tp.partition, OFFSET_END) for tp in found]
        consumer.assign(start)
        deadline = None if max_wait is None else time.monotonic() + max_wait
        last = time.monotonic()
        while (follow or time.monotonic() - last < idle) and (deadline is None or time.monotonic() < deadline):
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            last = time.monotonic()
            value = msg.value() or b""
            try:
                yield decode_outcome(value), value
            except (msgspec.DecodeError, msgspec.ValidationError):
                yield None, value
    finally:
        consumer.close()
