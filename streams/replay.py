"""`pushstream replay`: send dead-lettered jobs to their jobs topic again."""

from __future__ import annotations

import msgspec

from pushstream.codecs.config import Config
from pushstream.codecs.records import decode_dead_letter, encode

from .kafka import make_producer, read_topic

__all__ = ["replay"]


def replay(config: Config, *, instance: str | None = None, action: str | None = None, since: float | None = None,
           until: float | None = None, error: str | None = None, idle: float = 2.0) -> int:
    """Re-send dead-lettered jobs (matching the filters) to their jobs topic; returns how many."""
    producer = make_producer(config.kafka.broker)
    names = {i.name for i in config.instances}
    sent = 0
    for _, _, _, _, value in read_topic(config.kafka.broker, [config.topic("deadletter")], idle_timeout=idle):
        dl = decode_dead_letter(value)
        job = dl.job
        if (instance and job.instance != instance) or (action and job.action != action) or job.instance not in names:
            continue
        if (since and dl.failed_at < since) or (until and dl.failed_at > until):
            continue
        if error and error not in f"{dl.error_code} {dl.reason}":
            continue
        fresh = msgspec.structs.replace(job, attempts=0, first_attempt_at=None, due_at=None, last_error=None)
        producer.produce(config.topic("jobs", job.instance), value=encode(fresh),
                         key=job.key.encode() if job.key else None)
        producer.poll(0)
        sent += 1
    if producer.flush(30):
        raise RuntimeError("not every replayed job was acknowledged by the broker")
    return sent
