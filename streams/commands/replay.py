"""`pushstream replay`: send dead-lettered jobs (failed, or rejected once the cause is fixed) again."""

from __future__ import annotations

import asyncio
import collections

import msgspec

from pushstream.codecs.config import Config
from pushstream.codecs.records import decode_dead_letter
from pushstream.streams.kafka.admin import Cluster, read_topic
from pushstream.streams.kafka.writer import Record, Writer, job_record

__all__ = ["replay"]


def replay(config: Config, *, instance: str | None = None, action: str | None = None, since: float | None = None,
           until: float | None = None, error: str | None = None, status: str = "failed", dry_run: bool = False,
           idle: float = 2.0) -> collections.Counter[str]:
    """Send dead-lettered jobs matching the filters (`status`: failed, rejected or all) to their
    jobs topic again, past the dedup table; returns how many per instance (with `dry_run`, how
    many would be sent, sending nothing)."""
    records: list[Record] = []
    names = {i.name for i in config.instances}
    sent: collections.Counter[str] = collections.Counter()
    for _, _, _, _, value in read_topic(config.kafka, [config.topic("deadletter")], idle_timeout=idle):
        try:
            dl = decode_dead_letter(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        job = dl.job
        if (instance and job.instance != instance) or (action and job.action != action) or job.instance not in names:
            continue
        if status != "all" and dl.status != status:
            continue
        if (since and dl.failed_at < since) or (until and dl.failed_at > until):
            continue
        if error and error not in f"{dl.error_code} {dl.reason}":
            continue
        sent[job.instance] += 1
        fresh = msgspec.structs.replace(job, attempts=0, first_attempt_at=None, due_at=None, last_error=None,
                                        replay=True)
        records.append(job_record(config.topic("jobs", job.instance), fresh))
    if records and not dry_run:
        asyncio.run(_write(config.kafka, records))
    return sent


async def _write(broker: Cluster, records: list[Record]) -> None:
    writer = Writer(broker)
    try:
        await asyncio.wait_for(writer.write(records), 30)
    finally:
        await writer.close()
