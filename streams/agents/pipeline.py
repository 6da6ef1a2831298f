"""What the agents share: the pipeline's topics, its one writer and the dedup table.

`Pipeline.handle_jobs` is the one path from jobs to written outcomes (dedup, the instance's
deliverer, then outcomes, retries and dead letters written), used by the deliver and retry
agents alike. `or_exit` guards every agent body: Faust acks a batch whose body raised, so the
worker exits instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import msgspec

from pushstream.codecs.config import Config, Instance
from pushstream.codecs.records import Job, Outcome, decode_jobs, encode
from pushstream.codecs.settle import Writes
from pushstream.streams.delivery.deliverer import Deliverer
from pushstream.streams.kafka.dedup import Dedup
from pushstream.streams.kafka.writer import Record, Writer, job_record
from pushstream.streams.ops.metrics import Metrics

__all__ = ["TAKE_WITHIN", "Agent", "InstanceAgent", "Pipeline", "Topics", "or_exit", "record_jobs"]

log = logging.getLogger(__name__)
TAKE_WITHIN = 0.02  # seconds a read record may wait for others before its agent sees it


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


class Agent:
    """An agent's unit: `run(stream)` is the agent body Faust calls, `name` its Faust name."""

    name: str

    def faust_fun(self) -> Callable[..., Any]:
        """`run` as a plain coroutine function named after the agent (Faust names agents, and
        their actors, after the function it is given)."""

        async def agent(stream: faust.Stream[bytes]) -> None:
            await self.run(stream)

        agent.__name__ = agent.__qualname__ = self.name.replace("-", "_")
        agent.__module__ = type(self).__module__
        return agent

    async def run(self, stream: faust.Stream[bytes]) -> None:
        raise NotImplementedError


class InstanceAgent(Agent):
    """An agent of one destination instance (deliver, retry), named `<kind>-<instance>`."""

    kind: str

    def __init__(self, pipeline: Pipeline, deliverer: Deliverer) -> None:
        self.pipeline = pipeline
        self.deliverer = deliverer
        self.instance = deliverer.instance
        self.name = f"{self.kind}-{self.instance.name}"


@contextlib.asynccontextmanager
async def or_exit(agent: str) -> AsyncIterator[None]:
    """Around one batch: anything escaping it would make Faust ack the batch unprocessed, so the
    worker exits instead (nothing is committed; the batch is read again after the restart)."""
    try:
        yield
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.critical("agent %s failed on a batch; exiting so the batch is read again", agent, exc_info=True)
        logging.shutdown()
        os._exit(70)


def record_jobs(events: Sequence[Any]) -> Iterator[list[tuple[Job, int]]]:
    """Each record's (job, partition) pairs; none for a record that is not a job or a pack."""
    for ev in events:
        msg = ev.message
        try:
            yield [(job, msg.partition) for job in decode_jobs(ev.value)]
        except (msgspec.DecodeError, TypeError):
            log.error("dropping an unreadable job record topic=%s partition=%s offset=%s", msg.topic, msg.partition,
                      msg.offset)
            yield []
