"""The worker's Prometheus metrics (prometheus-client), one registry per app.

Names follow Prometheus' conventions (`_total` counters, `_seconds` durations, base units).
Hot paths count per batch, not per event: a labelled counter's `labels()` costs ~1 us, more
than routing a small event's header, so callers hand in whole batches (`outcomes`, `read`).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

from pushstream.codecs.records import TERMINAL, Outcome
from pushstream.streams.kafka.partitions import STATES

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100)


class Metrics:
    """Everything a worker reports; `registry` is what `/metrics` serves."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.events_read = Counter("pushstream_events_read", "Input records read, by input topic", ["topic"],
                                   registry=r)
        self.outcomes_total = Counter(
            "pushstream_outcomes", "Outcome records written, by instance, action, status and error code "
            "(instance and action are empty for records that are not events)",
            ["instance", "action", "status", "error_code"], registry=r)
        self.requests = Counter("pushstream_requests", "HTTP requests answered or failed, by instance, endpoint "
                                "and HTTP status (or timeout / connection / unexpected)",
                                ["instance", "endpoint", "status"], registry=r)
        self.request_duration = Histogram("pushstream_request_duration_seconds", "HTTP request duration",
                                          ["instance", "endpoint"], buckets=REQUEST_BUCKETS, registry=r)
        self.delivery_latency = Histogram("pushstream_delivery_latency_seconds",
                                          "From routing an event to its terminal outcome",
                                          ["instance", "action"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("pushstream_request_events", "Events per HTTP request", ["instance", "endpoint"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.retries = Counter("pushstream_retries", "Jobs written to the instance's retry topic", ["instance"],
                               registry=r)
        self.dead_letters = Counter("pushstream_dead_letters", "Jobs dead-lettered (retries exhausted or unsendable)",
                                    ["instance"], registry=r)
        self.lag = Gauge("pushstream_consumer_lag", "Records on a partition this worker has not read yet "
                         "(broker's high watermark minus read offset)", ["topic", "partition"], registry=r)
        self.retry_backlog = Gauge("pushstream_retry_backlog", "Unread records on the instance's retry topic "
                                   "(partitions this worker holds)", ["instance"], registry=r)
        self.rate_limit = Gauge("pushstream_rate_limit_requests_per_second", "The instance's current request rate "
                                "cap (AIMD after 429s; 0 = no cap)", ["instance"], registry=r)
        self.in_flight_limit = Gauge("pushstream_in_flight_limit", "Requests the instance may have in flight now "
                                     "(adapted to the destination's latency and answers, up to max_in_flight)",
                                     ["instance"], registry=r)
        self.in_flight = Gauge("pushstream_requests_in_flight", "The instance's requests in flight now", ["instance"],
                               registry=r)
        self.paused = Gauge("pushstream_instance_paused", "1 while the instance sends nothing but probes (its "
                            "circuit is open: key refused or failing) or waits out a Retry-After", ["instance"],
                            registry=r)
        self.partition_state = Enum("pushstream_partition_state", "Each source partition this worker reads: "
                                    "caught_up, flowing, held (on purpose), rebalancing or stalled",
                                    ["topic", "partition"], states=list(STATES), registry=r)
        self.partition_stalled = Gauge("pushstream_partition_stalled_seconds", "How long a stalled partition has "
                                       "not moved while records wait past its committed offset (0 unless stalled)",
                                       ["topic", "partition"], registry=r)
        self.ready = Gauge("pushstream_ready", "1 while the worker's /readyz would answer 200 (0: it says why)",
                           registry=r)
        self.up = Gauge("pushstream_agents_running", "Agents whose actors are running", registry=r)

    def read(self, topics: Iterable[str]) -> None:
        """Count one batch of input records (one topic name per record)."""
        for topic, n in collections.Counter(topics).items():
            self.events_read.labels(topic).inc(n)

    def outcomes(self, outcomes: Iterable[Outcome]) -> None:
        """Count a batch of outcome records and the delivery latency of the terminal ones."""
        counts: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
        latencies: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        for o in outcomes:
            counts[(o.instance or "", o.action or "", o.status, o.error_code or "")] += 1
            if o.status in TERMINAL and o.latency_ms is not None:
                latencies[(o.instance or "", o.action or "")].append(o.latency_ms / 1000)
        for labels, n in counts.items():
            self.outcomes_total.labels(*labels).inc(n)
        for pair, seconds in latencies.items():  # a child's lookup once per batch, not per outcome
            observe = self.delivery_latency.labels(*pair).observe
            for s in seconds:
                observe(s)

    def request(self, instance: str, endpoint: str, status: str, seconds: float, events: int) -> None:
        """One HTTP attempt: its status (or failure kind), duration and events carried."""
        self.requests.labels(instance, endpoint, status).inc()
        self.request_duration.labels(instance, endpoint).observe(seconds)
        self.batch_size.labels(instance, endpoint).observe(events)
