"""The path the deliver and retry agents share from jobs to written outcomes: the pipeline's
topic names, its one writer and the dedup table. `Pipeline.handle_jobs` is that path (dedup, the
instance's deliverer, then outcomes, retries and dead letters written); the agents' own base and
exit policy are in base.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pushstream.codecs.config import Config, Instance
from pushstream.codecs.records import Job, Outcome, encode
from pushstream.codecs.settle import Writes
from pushstream.streams.delivery.deliverer import Deliverer
from pushstream.streams.kafka.dedup import Dedup
from pushstream.streams.kafka.writer import Record, Writer, job_record
from pushstream.streams.ops.metrics import Metrics

__all__ = ["Pipeline", "Topics"]


@dataclass(frozen=True, slots=True)
class Topics:
    """The pipeline's topic names (input topics are in `config.kafka.input_topics`)."""

    outcomes: str
    deadletter: str
    samples: str
    jobs: dict[str, str]  # by instance name
    retry: dict[str, str]  # by instance name

    @classmethod
    def of(cls, config: Config) -> Topics:
        return cls(outcomes=config.topic("outcomes"), deadletter=config.topic("deadletter"),
                   samples=config.topic("samples"),
                   jobs={i.name: config.topic("jobs", i.name) for i in config.instances},
                   retry={i.name: config.topic("retry", i.name) for i in config.instances})


class Pipeline:
    """The writes and the dedup'd delivery path the agents share (one writer, one dedup table)."""

    def __init__(self, config: Config, topics: Topics, writer: Writer, dedup: Dedup, metrics: Metrics) -> None:
        self.config = config
        self.topics = topics
        self.writer = writer
        self.dedup = dedup
        self.metrics = metrics

    def outcome_record(self, o: Outcome) -> Record:
        return Record(self.topics.outcomes, (o.message_id or "").encode(), encode(o))

    async def write_delivery(self, instance: Instance, w: Writes) -> None:
        """Write a delivery's outcomes, retries and dead letters; returns once the broker has them."""
        records = [self.outcome_record(o) for o in w.outcomes]
        records += [job_record(self.topics.retry[instance.name], j) for j in w.retries]
        records += [Record(self.topics.deadletter, d.job.message_id.encode(), encode(d)) for d in w.dead_letters]
        records += [Record(self.topics.samples, s.instance.encode(), encode(s)) for s in w.samples]
        await self.writer.write(records)
        self.metrics.outcomes(w.outcomes)
        if w.retries:
            self.metrics.retries.labels(instance.name).inc(len(w.retries))
        if w.dead_letters:
            self.metrics.dead_letters.labels(instance.name).inc(len(w.dead_letters))

    async def warm_up(self) -> None:
        """Read recent outcomes into dedup (once per process; later calls wait for the first)."""
        await self.dedup.warm_up(self.config.kafka, self.topics.outcomes, self.config.pipeline.dedup_lookback)

    async def handle_jobs(self, deliverer: Deliverer, pairs: list[tuple[Job, int]],
                          before_write: Callable[[Writes], None] | None = None) -> list[Record]:
        """Deliver fresh jobs, report duplicates, write what happened; returns the dedup entries
        of the terminal outcomes, for the caller to write now that their outcomes are safe (an
        entry without its outcome would turn a redelivered job into a `duplicate` that never
        had a terminal outcome). They are in the table already. `before_write` may add to what
        is written (per-user order's jobs behind a retried one)."""
        await self.warm_up()
        fresh, partitions, duplicates = self.dedup.split(pairs, time.time())
        writes = await deliverer.deliver(fresh)
        writes.outcomes.extend(duplicates)
        if before_write is not None:
            before_write(writes)
        await self.write_delivery(deliverer.instance, writes)
        return self.dedup.remember(writes.outcomes, partitions, time.time())
