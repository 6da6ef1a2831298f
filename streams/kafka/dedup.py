"""Delivery dedup: a (messageId, instance, action, mapping) that was already delivered (or
rejected by the destination) within the window is not sent again; its outcome says `duplicate`.
A `failed` job is not remembered, so replaying its dead letter delivers it.

Two sources, because the outcome and the table entry are separate Kafka writes: the outcome
is written first, the entry after (the deliver agent writes a step's entries while the next
step's requests are out), so a crash between them leaves an outcome without an entry.
At start-up `warm_up` therefore also reads the last minutes of the outcome topic (everything
a crash can make the worker read again lies within the uncommitted tail), so such a job is
reported `duplicate` instead of being sent and reported twice; and again when the worker gains
partitions another worker held (it may have died between an outcome and its entry: measured,
281 of 34,819 pairs delivered twice after a kill -9 of one of two workers, before this).

State lives in a Faust table whose changelog is co-partitioned with the jobs topics (jobs, in
packs or alone, and retries go to the partition of their user key, so a redelivered job
arrives on the same partition it was first seen on). Reads and writes name their partition
explicitly, because in a `take()` batch Faust's "current event" is whichever record the buffer
read last, not the job at hand.

The table is on disk (Faust's RocksDB store, one database per assigned partition under
`pipeline.state_dir`), because it holds every job of the window: in memory that was ~230 bytes
per job, gigabytes a day at a modest rate, and expiring it meant scanning every entry on the
event loop. Expiry is RocksDB's TTL (entries older than the window are dropped as files are
compacted; a stale entry read before that is ignored by its time) and the changelog's
retention (`compact,delete`), so nothing is scanned and no tombstones are written.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import time
from typing import Any

import faust
import msgspec
from rocksdict import WriteBatch

from pushstream.codecs.records import REMEMBERED, Job, Outcome, decode_outcome
from pushstream.streams.kafka.admin import Cluster, changelog_ends, read_since
from pushstream.streams.kafka.faust_compat import persisted_offset, table_bytes, table_database, table_files
from pushstream.streams.kafka.writer import Record

log = logging.getLogger(__name__)

__all__ = ["Dedup", "dedup_key"]

#: Per partition database: small write buffers and cache (a worker holds one database per
#: assigned partition; Faust's defaults are 64 MB buffers and a 2 GB cache each), and a bloom
#: filter of 10 bits per key, since most lookups are for jobs never seen (~1 us each).
ROCKSDB = {"driver": "rocksdict", "write_buffer_size": 2 << 20, "max_write_buffer_number": 2,
           "block_cache_size": 4 << 20, "bloom_filter_size": 10}


def _when(entry: bytes) -> float:
    """The time of a stored entry, a JSON string `"<unix time>:<partition>"` (digits, no escapes)."""
    return float(entry[1:entry.rindex(b":")])


def dedup_key(item: Job | Outcome) -> str:
    return f"{item.instance}|{item.action}|{item.mapping}|{item.message_id}"


class Dedup:
    """Remembers delivered jobs for `window` seconds; survives restarts on disk and through the changelog."""

    def __init__(self, app: faust.App, window: float, partitions: int) -> None:
        self.window = window
        self.recent: dict[str, float] = {}
        self._warm: asyncio.Task[None] | None = None
        self._held: set[Any] = set()
        # Values are "<unix time>:<changelog partition>" strings.
        self.table = app.Table(
            "delivered", default=None, partitions=partitions, key_type=str, value_type=str,
            # "rocksdb:<name>": faust 0.15.3 treats a per-table "rocksdb://" (no path) as unset.
            store="rocksdb:delivered", options={**ROCKSDB, "ttl": max(1, math.ceil(window))},
            extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(math.ceil(window * 1000))},
            help="dedup of delivered jobs")
        #: Entries are written by the pipeline's writer, straight to the table's changelog topic.
        self.changelog = self.table.changelog_topic.get_topic_name()

    def reconcile(self, broker: Cluster, partitions: int) -> list[int]:
        """Before the worker starts (no database open yet): remove each partition's local files whose
        persisted changelog offset is at or past the broker's end of that changelog partition, and
        return those partitions. Local state ahead of the broker means the broker lost the
        changelog (a memory broker restarted) or misreports its end (Tansu's ListOffsets lags);
        Faust would stop with ConsistencyError, and keeping the files would remember deliveries
        the broker no longer knows. Removed partitions are rebuilt from the changelog, and the
        outcome warm-up covers the last `dedup_lookback` seconds."""
        local = {p: table_files(self.table, p) for p in range(partitions)}
        local = {p: path for p, path in local.items() if path.exists()}
        if not local:
            return []
        ends = changelog_ends(broker, self.changelog, list(local))
        removed = []
        for p, path in sorted(local.items()):
            persisted = persisted_offset(path)
            if persisted is not None and persisted >= ends.get(p, 0):
                log.warning("dedup: local state of partition %d is ahead of the broker (persisted offset %d, "
                            "changelog ends at %d); rebuilding it from the changelog and recent outcomes",
                            p, persisted, ends.get(p, 0))
                shutil.rmtree(path, ignore_errors=True)
                removed.append(p)
        return removed

    def _db(self, partition: int) -> Any:
        """The partition's database if this worker holds the partition, else None."""
        return table_database(self.table, partition)

    def split(self, pairs: list[tuple[Job, int]], now: float) -> tuple[list[Job], dict[str, int], list[Outcome]]:
        """Separate fresh jobs from duplicates (seen before, or twice in this batch).

        Returns the fresh jobs, their changelog partitions by key, and `duplicate` outcomes.
        """
        fresh: list[Job] = []
        partitions: dict[str, int] = {}
        duplicates: list[Outcome] = []
        for job, partition in pairs:
            key = dedup_key(job)
            db = self._db(partition)
            entry: bytes | None = db.get(table_bytes(key)) if db is not None else None
            seen = _when(entry) if entry is not None else self.recent.get(key)
            # A replay goes past what the table remembers (its rejection), not past this batch.
            if key in partitions or (not job.replay and seen is not None and now - seen < self.window):
                duplicates.append(Outcome(
                    message_id=job.message_id, status="duplicate", instance=job.instance, action=job.action,
                    mapping=job.mapping, error_code="DUPLICATE", attempts=job.attempts,
                    reason="this event already has a terminal outcome for this action; not sent again",
                    topic=job.topic, partition=job.partition, offset=job.offset, at=now,
                    message_id_derived=job.message_id_derived))
                continue
            fresh.append(job)
            partitions[key] = partition
        return fresh, partitions, duplicates

    def remember(self, outcomes: list[Outcome], partitions: dict[str, int], now: float) -> list[Record]:
        """Record delivered/rejected outcomes; returns their changelog records (on the job's
        partition), which the caller writes once the outcomes are written. A partition this
        worker no longer holds gets only the changelog record: its new owner reads it there."""
        records = []
        values: dict[int, bytes] = {}
        batches: dict[int, tuple[Any, WriteBatch]] = {}  # held partitions: one write each, ~0.3 us an entry, not ~2.5
        for outcome in outcomes:
            if outcome.status not in REMEMBERED:
                continue
            key = dedup_key(outcome)
            partition = partitions.get(key)
            if partition is None:
                continue
            if partition not in values:
                values[partition] = table_bytes(f"{now:.3f}:{partition}")
                db = self._db(partition)
                if db is not None:
                    batches[partition] = (db, WriteBatch(raw_mode=True))
            encoded = table_bytes(key)
            if partition in batches:
                batches[partition][1].put(encoded, values[partition])
            records.append(Record(self.changelog, encoded, values[partition], partition))
        for db, batch in batches.values():
            db.write(batch)
        return records

    async def warm_up(self, broker: Cluster, outcomes_topic: str, lookback: float) -> None:
        """Load delivered/rejected outcomes of the last `lookback` seconds: once per process, and
        again after this worker gained partitions (`gained`); later calls wait for the read."""
        if self._warm is None:
            self._warm = asyncio.ensure_future(asyncio.to_thread(self._read_recent, broker, outcomes_topic, lookback))
        await self._warm

    def gained(self, partitions: set[Any]) -> bool:
        """This worker now holds `partitions` of the jobs and retry topics. A worker that takes over
        another's (which died) must also know the outcomes that one wrote without their entries,
        so the outcome topic is read again before the next delivery. Whether a read is due."""
        new = partitions - self._held
        self._held = set(partitions)
        if new and self._warm is not None and self._warm.done():
            self._warm = None
            return True
        return False

    def _read_recent(self, broker: Cluster, topic: str, lookback: float) -> None:
        started = time.time()
        count = 0
        for value in read_since(broker, topic, int((started - lookback) * 1000)):
            try:
                outcome = decode_outcome(value)
            except msgspec.DecodeError:
                continue
            if outcome.status in REMEMBERED:
                self.recent[dedup_key(outcome)] = outcome.at
                count += 1
        log.info("dedup warm-up: %d delivered/rejected outcomes of the last %.0f s read in %.2f s",
                 count, lookback, time.time() - started)

    def expire(self, now: float) -> None:
        """Forget warm-up entries older than the window (the table expires by itself)."""
        cutoff = now - self.window
        for key in [k for k, at in self.recent.items() if at < cutoff]:
            del self.recent[key]
