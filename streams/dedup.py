"""Delivery dedup: a (messageId, instance, action, mapping) that was already delivered (or
rejected by the destination) within the window is not sent again; its outcome says `duplicate`.
A `failed` job is not remembered, so replaying its dead letter delivers it.

Two sources, because the outcome and the table entry are separate Kafka writes: the outcome
is written first, the entry after (the deliver agent writes a step's entries while the next
step's requests are out), so a crash between them leaves an outcome without an entry.
At start-up `warm_up` therefore also reads the last minutes of the outcome topic (everything
a crash can make the worker read again lies within the uncommitted tail), so such a job is
reported `duplicate` instead of being sent and reported twice.

State lives in a Faust table whose changelog is co-partitioned with the jobs topics (jobs, in
packs or alone, and retries go to the partition of their user key, so a redelivered job
arrives on the same partition it was first seen on). Writes name their changelog partition
explicitly, because in a `take()` batch Faust's "current event" is whichever record the buffer
read last, not the job at hand.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
import msgspec

from pushstream.codecs.records import Job, Outcome, decode_outcome

from .kafka import read_since
from .writer import Record

log = logging.getLogger(__name__)

__all__ = ["Dedup", "dedup_key"]

REMEMBERED = frozenset({"delivered", "rejected"})


_json = msgspec.json.encode


def _when(entry: str) -> float:
    return float(entry.rsplit(":", 1)[0])


def dedup_key(item: Job | Outcome) -> str:
    return f"{item.instance}|{item.action}|{item.mapping}|{item.message_id}"


class Dedup:
    """Remembers delivered jobs for `window` seconds; survives restarts through the changelog."""

    def __init__(self, app: faust.App, window: float, partitions: int) -> None:
        self.window = window
        self.recent: dict[str, float] = {}
        self._warm: asyncio.Task[None] | None = None
        # Values are "<unix time>:<changelog partition>" strings.
        self.table = app.Table("delivered", default=None, partitions=partitions, key_type=str, value_type=str,
                               help="dedup of delivered jobs")
        #: Entries are written by the pipeline's writer, straight to the table's changelog topic.
        self.changelog = self.table.changelog_topic.get_topic_name()

    def split(self, pairs: list[tuple[Job, int]], now: float) -> tuple[list[Job], dict[str, int], list[Outcome]]:
        """Separate fresh jobs from duplicates (seen before, or twice in this batch).

        Returns the fresh jobs, their changelog partitions by key, and `duplicate` outcomes.
        """
        fresh: list[Job] = []
        partitions: dict[str, int] = {}
        duplicates: list[Outcome] = []
        for job, partition in pairs:
            key = dedup_key(job)
            entry: str | None = self.table.data.get(key)
            seen = _when(entry) if entry is not None else self.recent.get(key)
            if key in partitions or (seen is not None and now - seen < self.window):
                duplicates.append(Outcome(
                    message_id=job.message_id, status="duplicate", instance=job.instance, action=job.action,
                    mapping=job.mapping, error_code="DUPLICATE", attempts=job.attempts,
                    reason="this event already has a terminal outcome for this action; not sent again",
                    topic=job.topic, partition=job.partition, offset=job.offset, at=now))
                continue
            fresh.append(job)
            partitions[key] = partition
        return fresh, partitions, duplicates

    def remember(self, outcomes: list[Outcome], partitions: dict[str, int], now: float) -> list[Record]:
        """Record delivered/rejected outcomes; returns their changelog records (on the job's
        partition), which the caller writes once the outcomes are written."""
        records = []
        for outcome in outcomes:
            if outcome.status not in REMEMBERED:
                continue
            key = dedup_key(outcome)
            partition = partitions.get(key)
            if partition is None:
                continue
            value = f"{now:.3f}:{partition}"
            self.table.data[key] = value
            records.append(self._changelog_record(key, value, partition))
        return records

    async def warm_up(self, broker: str, outcomes_topic: str, lookback: float) -> None:
        """Once per process: load delivered/rejected outcomes of the last `lookback` seconds."""
        if self._warm is None:
            self._warm = asyncio.ensure_future(asyncio.to_thread(self._read_recent, broker, outcomes_topic, lookback))
        await self._warm

    def _read_recent(self, broker: str, topic: str, lookback: float) -> None:
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

    def expire(self, now: float | None = None) -> list[Record]:
        """Forget entries older than the window; returns the tombstones for the changelog."""
        cutoff = (now or time.time()) - self.window
        old = [(k, int(v.rsplit(":", 1)[1])) for k, v in list(self.table.data.items()) if v and _when(v) < cutoff]
        for key, _ in old:
            del self.table.data[key]
        for key in [k for k, at in self.recent.items() if at < cutoff]:
            del self.recent[key]
        return [self._changelog_record(key, None, partition) for key, partition in old]

    def _changelog_record(self, key: str, value: str | None, partition: int) -> Record:
        """A changelog record the table's recovery reads back: Faust serializes a table's str keys
        and values as JSON strings. msgspec, not `changelog_topic.prepare_key`: Faust's serializer
        stack cost ~20 us per record, the largest line of `remember` in the e2e profile."""
        return Record(self.changelog, _json(key), None if value is None else _json(value), partition)
