"""The worker's operator endpoints: `/metrics` (Prometheus), `/healthz` and `/readyz`.

A small aiohttp server owned by a mode Service, bound to `ops.listen` (127.0.0.1:6066 by
default; `PUSHSTREAM_OPS_LISTEN` overrides, `off` disables). Faust's own web view stays off:
it binds every interface and serves nothing an operator needs.

- `/healthz`: 200 while the event loop answers.
- `/readyz`: 200 once the broker answers, the consumer group is joined, partitions are
  assigned, every agent runs and no partition is stalled (see partitions.py); otherwise 503
  with the reasons, one per line.
Gauges that are read, not counted (lag, retry backlog, rate limits, pauses), are refreshed on
each scrape.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import mode
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pushstream.codecs.config import Config
from pushstream.streams.delivery.deliverer import Deliverer
from pushstream.streams.kafka.faust_compat import actor_crashed, partition_offsets
from pushstream.streams.kafka.partitions import PartitionWatch
from pushstream.streams.kafka.writer import Writer
from pushstream.streams.ops.metrics import Metrics

__all__ = ["OpsServer", "parse_listen"]

log = logging.getLogger(__name__)


def parse_listen(listen: str) -> tuple[str, int] | None:
    """`host:port` (or `off`/empty for no server) as (host, port)."""
    if listen.strip().lower() in ("", "off"):
        return None
    host, _, port = listen.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port))


class OpsServer(mode.Service):
    """Serves metrics and health for one worker's app."""

    def __init__(self, app: faust.App, config: Config, metrics: Metrics, writer: Writer,
                 deliverers: dict[str, Deliverer], watch: PartitionWatch, listen: str, **kwargs: Any) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self.writer = writer
        self.deliverers = deliverers
        self.watch = watch
        self.address = parse_listen(listen)
        self.joined = False  # a rebalance has completed since start
        self._runner: web.AppRunner | None = None
        super().__init__(**kwargs)
        app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]  # mode's handler type refuses coroutine functions

    async def _on_rebalance_complete(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.joined = True

    async def on_start(self) -> None:
        if self.address is None:
            return
        web_app = web.Application()
        web_app.router.add_get("/metrics", self._metrics)
        web_app.router.add_get("/healthz", self._healthz)
        web_app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        host, port = self.address
        await web.TCPSite(self._runner, host, port).start()
        log.info("metrics and health on http://%s:%d (/metrics /healthz /readyz)", host, port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        reasons = await self.not_ready()
        if reasons:
            return web.Response(status=503, text="not ready:\n" + "".join(f"- {r}\n" for r in reasons))
        return web.Response(text="ready\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.refresh()
        self.metrics.ready.set(0 if await self.not_ready() else 1)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def not_ready(self) -> list[str]:
        """Why this worker is not ready to do its job (empty when it is)."""
        reasons = []
        broker = await self.writer.unreachable()
        if broker:
            reasons.append(broker)
        if self.app.in_recovery:
            reasons.append("the dedup table is recovering from its changelog")
        elif not self.joined or self.app.rebalancing:
            reasons.append("consumer group not joined yet (rebalancing)")
        elif not self.app.consumer.assignment():
            reasons.append("no partitions assigned to this worker")
        for name, agent in self.app.agents.items():
            if not agent.started or agent.crashed or actor_crashed(agent):
                reasons.append(f"agent {name} is not running")
        reasons += [state.describe() for state in self.watch.stalled()]
        return reasons

    def refresh(self) -> None:
        """Set the read-off gauges: consumer lag, retry backlog, rate and in-flight limits, pauses."""
        m = self.metrics
        consumer = self.app.consumer
        retry_topics = {self.config.topic("retry", name): name for name in self.deliverers}
        backlog = dict.fromkeys(self.deliverers, 0)
        m.lag.clear()
        m.partition_state.clear()
        m.partition_stalled.clear()
        for tp, state in self.watch.states.items():
            m.partition_state.labels(tp.topic, str(tp.partition)).state(state.state)
            m.partition_stalled.labels(tp.topic, str(tp.partition)).set(
                state.still_for if state.state == "stalled" else 0)
        for tp in consumer.assignment():
            try:
                high = consumer.highwater(tp)
            except Exception:  # not fetched yet
                continue
            committed, read, _ = partition_offsets(consumer, tp)
            position = (read + 1) if read is not None else (committed or 0)
            # Max with 0: Tansu's high watermark can lag the records already read (docs/operating.md).
            lag = max(0, (high or 0) - position)
            m.lag.labels(tp.topic, str(tp.partition)).set(lag)
            if tp.topic in retry_topics:
                backlog[retry_topics[tp.topic]] += lag
        for name, deliverer in self.deliverers.items():
            m.retry_backlog.labels(name).set(backlog[name])
            m.rate_limit.labels(name).set(deliverer.limiter.rate or 0)
            m.in_flight_limit.labels(name).set(int(deliverer.concurrency.limit))
            m.in_flight.labels(name).set(deliverer.concurrency.in_flight)
            m.paused.labels(name).set(1 if deliverer.circuit.open or deliverer.limiter.paused_for > 0 else 0)
        m.up.set(sum(1 for agent in self.app.agents.values() if agent.started and not agent.crashed))
