"""What every agent is: a unit with a Faust name whose body Faust runs (`Agent`), one of a
destination instance (`InstanceAgent`), and the exit policy around each batch (`or_exit`:
Faust acks a batch whose body raised, so the worker exits instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import faust
import msgspec

from pushstream.codecs.records import Job, decode_jobs
from pushstream.streams.agents.pipeline import Pipeline
from pushstream.streams.delivery.deliverer import Deliverer

__all__ = ["TAKE_WITHIN", "Agent", "InstanceAgent", "or_exit", "record_jobs"]

log = logging.getLogger(__name__)
TAKE_WITHIN = 0.02  # seconds a read record may wait for others before its agent sees it


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
