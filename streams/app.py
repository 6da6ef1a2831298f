"""The Faust app: declarations first (app, topics, services, timers), then the agents.

    input topics --route--> <prefix>.jobs.<instance> --deliver-<instance>--> HTTP
                      \\                                   |  \\--> <prefix>.retry.<instance> --retry-<instance>--> HTTP
                       \\--> <prefix>.outcomes <-----------+------------------------------------+
                                                           \\--> <prefix>.deadletter

What each agent reads, writes and acks is in its module under `agents/`. Every agent reads raw
bytes (a decoding codec would crash the agent on a bad record) with `concurrency=1` (faust
#606) and never lets an exception escape its body (`agents.pipeline.or_exit`).
"""

from __future__ import annotations

import time

import faust
import httpx

from pushstream.codecs.config import Config

from .agents import DeliverAgent, Pipeline, RetryAgent, RouteAgent, Topics
from .dedup import Dedup
from .deliver import Deliverer
from .kafka import ensure_topics
from .metrics import Metrics
from .ops import OpsServer
from .partitions import PartitionWatch
from .transport import PushstreamApp, app_settings, broker_ends, partition_offsets
from .writer import Writer

__all__ = ["create_app"]


def create_app(config: Config, transport: httpx.AsyncBaseTransport | None = None) -> faust.App:
    """Build the app for `config`. `transport` replaces the network for every instance (tests)."""
    k = config.kafka
    app = PushstreamApp(k.app_id, fetch_max_wait=k.fetch_max_wait, **app_settings(config))

    def topic(name: str, maxsize: int | None = None) -> faust.TopicT:
        # The Topic class, not app.topic(): faust 0.15.3's app.topic() drops `maxsize`.
        return app.conf.Topic(app, topics=[name], value_type=bytes, key_type=bytes, value_serializer="raw",
                              key_serializer="raw", maxsize=maxsize)

    topics = Topics.of(config)
    inputs = app.topic(*k.input_topics, value_type=bytes, value_serializer="raw", key_serializer="raw")
    metrics = Metrics()
    writer = Writer(k.broker)
    deliverers = {i.name: Deliverer(config, i, transport, metrics) for i in config.instances}
    topics_of = {topics.jobs[i.name]: deliverers[i.name] for i in config.instances}

    def held(tp: faust.types.TP) -> str | None:
        why = app.held_partitions.get(tp)
        deliverer = topics_of.get(tp.topic)
        if why is None and deliverer is not None and deliverer.limiter.paused_for > 0:
            why = f"instance {deliverer.instance.name} waits out a Retry-After"
        return why

    watch = PartitionWatch({*k.input_topics, *topics.jobs.values(), *topics.retry.values()},
                           offsets=lambda tp: partition_offsets(app.consumer, tp), held=held,
                           ends=lambda tps: broker_ends(app.consumer, tps), reread=k.stall_reread,
                           seek=lambda tp, offset: app.consumer.seek(tp, offset))
    ops = OpsServer(app, config, metrics, writer, deliverers, watch, config.ops.listen)
    for service in (writer, *deliverers.values(), ops):
        app.add_dependency(service)
    dedup = Dedup(app, config.pipeline.dedup_window, k.partitions)

    def prepare() -> None:  # when the worker starts, never when the app is built
        ensure_topics(config)
        dedup.reconcile(k.broker, k.partitions)

    app.prepare = prepare
    pipeline = Pipeline(config, topics, writer, dedup, deliverers, metrics)

    @app.task
    async def warm_dedup() -> None:
        """Start reading recent outcomes at once, not when the first batch is waiting for them."""
        await pipeline.warm_up()

    @app.timer(interval=5.0)
    async def watch_partitions() -> None:
        await watch.check(time.time(), app.consumer.assignment(), app.rebalancing or app.in_recovery)

    @app.timer(interval=60.0)
    async def expire_dedup() -> None:
        pipeline.dedup.expire(time.time())

    # Agents -------------------------------------------------------------------------------
    route = RouteAgent(pipeline)
    app.agent(inputs, name=route.name, concurrency=1)(route.faust_fun())
    for inst in config.instances:
        # A jobs record is a pack: its queue holds one take, not the app's default 8,192 records.
        deliver = DeliverAgent(pipeline, inst)
        app.agent(topic(topics.jobs[inst.name], maxsize=config.pipeline.deliver_batch), name=deliver.name,
                  concurrency=1)(deliver.faust_fun())
        retry = RetryAgent(pipeline, inst)
        app.agent(topic(topics.retry[inst.name]), name=retry.name, concurrency=1)(retry.faust_fun())
    return app

