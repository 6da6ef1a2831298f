"""The pipeline's Faust app class, its settings and its garbage collector's tuning.

Settings are built from a loaded config (`app_settings`), never read at import; Faust's
insides are reached through faust_compat.py only.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import sys
from collections.abc import Callable
from typing import Any

from pushstream.codecs.config import Config
from pushstream.streams.kafka.faust_compat import CompatApp, LeanMonitor
from pushstream.streams.kafka.fetch_wait import QuietPartitions
from pushstream.streams.kafka.security import faust_settings

__all__ = ["PushstreamApp", "app_settings", "broker_ends", "raise_open_files", "tune_gc", "tune_process"]

log = logging.getLogger(__name__)


class PushstreamApp(CompatApp):
    """The pipeline's Faust app: its consumer waits at most `fetch_max_wait` seconds per idle fetch
    and names the partitions of `quiet_partitions` only while they answer records, or at a peek
    (faust_compat.py), it runs `prepare` before it starts, and it keeps the lean monitor."""

    def __init__(self, *args: Any, fetch_max_wait: float | None = None,
                 quiet_partitions: QuietPartitions | None = None,
                 prepare: Callable[[], object] | None = None, **kwargs: Any) -> None:
        self.fetch_max_wait = fetch_max_wait
        self.quiet_partitions = quiet_partitions
        self.prepare = prepare
        #: Partitions an agent holds on purpose, and why (PartitionWatch reports them as held).
        self.held_partitions: dict[Any, str] = {}
        kwargs.setdefault("Monitor", LeanMonitor)
        super().__init__(*args, **kwargs)

    async def on_first_start(self) -> None:
        """Runs `prepare` (e.g. creating topics) in a thread before the consumer starts, so that
        building or importing the app touches no network."""
        if self.prepare is not None:
            await asyncio.to_thread(self.prepare)
        await super().on_first_start()


def tune_gc() -> None:
    """Call once the app is built, before it runs.

    Nearly everything a worker allocates per event is freed by reference counting, yet with
    Python's default thresholds (a young collection every 700 net allocations, full ones over
    the whole heap) collections took ~10% of the worker's CPU in the end-to-end bench (0.69 s
    of a 40k-event run, and most of what a profile put on msgspec's job decoding). Objects
    alive now (modules, config, compiled mappings) are frozen out of collections, and young
    collections run every 10,000 net allocations (0.17 s of GC, 25 collections, in the same run)."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def tune_process(config: Config) -> None:
    """A worker's process, once its app is built: the garbage collector tuned (`tune_gc`), and
    open files allowed for every instance's connections (`raise_open_files`; a warning line
    on stderr when the hard limit is too low)."""
    tune_gc()
    warning = raise_open_files(sum(i.max_in_flight for i in config.instances))
    if warning is not None:
        print(f"pushstream: warning: {warning}", file=sys.stderr)


#: Descriptors a worker needs besides its destinations' connections (Kafka, ops, logs, RocksDB).
FILES_RESERVE = 256


def raise_open_files(connections: int) -> str | None:
    """Raise this process's soft limit on open files to its hard limit, as far as `connections`
    (every instance's `max_in_flight`) plus FILES_RESERVE need; a soft limit of 1,024 (common)
    would otherwise refuse sockets before the in-flight limits are reached. Returns a warning
    when the hard limit is too low, else None."""
    needed = connections + FILES_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        return (f"open files are limited to {target} (ulimit -n; hard limit {hard}), and the instances' max_in_flight "
                f"add up to {connections} connections: raise the limit or lower max_in_flight")
    return None


async def broker_ends(consumer: Any, tps: list[Any]) -> dict[Any, int | None]:
    """The broker's end offsets of `tps` (ListOffsets; the local broker's may lag, never lead);
    empty when the broker does not answer within 10 s."""
    try:
        return dict(await asyncio.wait_for(consumer.highwaters(*tps), timeout=10))
    except Exception as exc:  # a watch must not stop the timer that runs it
        log.debug("end offsets for %s: %r", tps, exc)
        return {}


def app_settings(config: Config) -> dict[str, Any]:
    """Faust's settings for this config: raw bytes everywhere (agents decode with msgspec), web off
    (ops/server.py serves health and metrics), the group timings and commit interval from [kafka], and
    its TLS/SASL credentials (security.py, from the same options as every librdkafka client)."""
    k = config.kafka
    return dict(
        broker=k.broker, value_serializer="raw", key_serializer="raw", store="memory://",
        datadir=config.pipeline.state_dir, autodiscover=False, web_enabled=False, topic_disable_leader=True,
        topic_partitions=k.partitions, topic_replication_factor=k.replication_factor,
        consumer_auto_offset_reset="earliest", broker_session_timeout=k.session_timeout,
        broker_heartbeat_interval=k.heartbeat_interval, broker_rebalance_timeout=k.rebalance_timeout,
        broker_request_timeout=max(90.0, k.session_timeout + 5), broker_commit_interval=k.commit_interval,
        table_standby_replicas=0, stream_buffer_maxsize=8192, producer_linger=0.005,
        # Dedup.reconcile does this check before Faust's, and rebuilds instead of stopping.
        recovery_consistency_check=False, **faust_settings(k))
