"""The Faust app: declarations first (app, topics, services, timers), then the agents.

    input topics --route--> <prefix>.jobs.<instance> --deliver-<instance>--> HTTP
                      \\                                   |  \\--> <prefix>.retry.<instance> --retry-<instance>--> HTTP
                       \\--> <prefix>.outcomes <-----------+------------------------------------+
                                                           \\--> <prefix>.deadletter

What each agent reads, writes and acks is in its module under `agents/`. Every agent reads raw
bytes (a decoding codec would crash the agent on a bad record) with `concurrency=1` (faust
#606) and never lets an exception escape its body (`agents.base.or_exit`). Building the
app reads nothing and connects to nothing: topics are created when the worker starts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from pushstream.codecs.config import Config
from pushstream.streams.agents import DeliverAgent, Pipeline, RetryAgent, RouteAgent, Topics
from pushstream.streams.agents.ordering import Ordering
from pushstream.streams.delivery.deliverer import Deliverer
from pushstream.streams.kafka.admin import ensure_topics
from pushstream.streams.kafka.dedup import Dedup
from pushstream.streams.kafka.faust_app import PushstreamApp, app_settings, broker_ends
from pushstream.streams.kafka.faust_compat import partition_offsets, seek_to
from pushstream.streams.kafka.fetch_wait import QuietPartitions
from pushstream.streams.kafka.partitions import PartitionWatch
from pushstream.streams.kafka.writer import Writer
from pushstream.streams.ops.metrics import Metrics
from pushstream.streams.ops.server import OpsServer

__all__ = ["create_app"]


def _on_assigned(app: PushstreamApp, topics: Topics, pipeline: Pipeline, orderings: dict[str, Ordering]) -> None:
    """After each rebalance: re-read outcomes for gained job partitions (dedup), and rebuild who
    waits on gained retry partitions (per-user order, from the retry topic)."""
    job_topics = {*topics.jobs.values(), *topics.retry.values()}

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's handler type refuses coroutine functions
    async def read_outcomes_again(sender: Any, assigned: set[faust.types.TP], *args: Any, signal: Any,
                                  **kwargs: Any) -> None:
        if pipeline.dedup.gained({tp for tp in assigned if tp.topic in job_topics}):
            asyncio.ensure_future(pipeline.warm_up())  # the agents' next deliveries wait for it
        for name, ordering in orderings.items():
            ordering.assigned({tp.partition for tp in assigned if tp.topic == topics.retry[name]})


def create_app(config: Config) -> PushstreamApp:
    """The worker's app for `config` (loaded and checked by the caller)."""
    k = config.kafka
    topics = Topics.of(config)
    quiet = QuietPartitions(topics.retry.values())  # a retry waits out its backoff: a peek's delay is lost in it
    app = PushstreamApp(k.app_id, fetch_max_wait=k.fetch_max_wait, quiet_partitions=quiet, **app_settings(config))

    def topic(name: str, maxsize: int | None = None) -> faust.TopicT:
        # The Topic class, not app.topic(): faust 0.15.3's app.topic() drops `maxsize`.
        return faust.Topic(app, topics=[name], value_type=bytes, key_type=bytes, value_serializer="raw",
                           key_serializer="raw", maxsize=maxsize)

    inputs = app.topic(*k.input_topics, value_type=bytes, value_serializer="raw", key_serializer="raw")
    metrics = Metrics()
    writer = Writer(k, quiet=quiet)
    deliverers = {i.name: Deliverer(config, i, metrics) for i in config.instances}
    watch = _partition_watch(app, config, topics, deliverers)
    ops = OpsServer(app, config, metrics, writer, deliverers, watch, config.ops.listen)
    for service in (writer, *deliverers.values(), ops):
        app.add_dependency(service)
    dedup = Dedup(app, config.pipeline.dedup_window, k.partitions)

    def prepare() -> None:  # when the worker starts, never when the app is built
        ensure_topics(config)
        dedup.reconcile(k, k.partitions)

    app.prepare = prepare
    pipeline = Pipeline(config, topics, writer, dedup, metrics)

    @app.task
    async def warm_dedup() -> None:
        """Start reading recent outcomes at once, not when the first batch is waiting for them."""
        await pipeline.warm_up()

    orderings = {i.name: Ordering(config, i, topics.retry[i.name]) for i in config.instances
                 if i.ordering == "per_user"}
    _on_assigned(app, topics, pipeline, orderings)

    @app.timer(interval=5.0)
    async def watch_partitions() -> None:
        await watch.check(time.time(), app.consumer.assignment(), app.rebalancing or app.in_recovery)

    @app.timer(interval=60.0)
    async def expire_dedup() -> None:
        pipeline.dedup.expire(time.time())

    # Agents -------------------------------------------------------------------------------
    route = RouteAgent(pipeline)
    app.agent(inputs, name=route.name, concurrency=1)(route.faust_fun())
    for name, deliverer in deliverers.items():
        # A jobs record is a pack: its queue holds one take, not the app's default 8,192 records.
        deliver = DeliverAgent(pipeline, deliverer, orderings.get(name))
        app.agent(topic(topics.jobs[name], maxsize=config.pipeline.deliver_batch), name=deliver.name,
                  concurrency=1)(deliver.faust_fun())
        retry = RetryAgent(pipeline, deliverer, orderings.get(name))
        app.agent(topic(topics.retry[name]), name=retry.name, concurrency=1)(retry.faust_fun())
    return app


def _partition_watch(app: PushstreamApp, config: Config, topics: Topics,
                     deliverers: dict[str, Deliverer]) -> PartitionWatch:
    """The watch over the source partitions: held on purpose by a retry agent's hold (it says why)
    or by an instance waiting out a Retry-After on its jobs topic."""
    pacing = {topics.jobs[name]: d for name, d in deliverers.items()}

    def held(tp: faust.types.TP) -> str | None:
        why = app.held_partitions.get(tp)
        deliverer = pacing.get(tp.topic)
        if why is None and deliverer is not None and deliverer.limiter.paused_for > 0:
            why = f"instance {deliverer.instance.name} waits out a Retry-After"
        return why

    k = config.kafka
    return PartitionWatch({*k.input_topics, *topics.jobs.values(), *topics.retry.values()},
                          offsets=lambda tp: partition_offsets(app.consumer, tp), held=held,
                          ends=lambda tps: broker_ends(app.consumer, tps), reread=k.stall_reread,
                          seek=lambda tp, offset: seek_to(app.consumer, tp, offset))
