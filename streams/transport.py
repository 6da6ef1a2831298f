"""Faust's aiokafka transport with one change: the consumer's fetch wait is a setting.

Faust hard-codes `fetch_max_wait_ms=1500` for its worker consumer. A broker that honours
`fetch.min.bytes` answers as soon as a record arrives, so the wait only bounds idle polls;
a broker that holds every fetch for the full wait (Tansu, the local broker: measured p50
~480 ms per hop at 1.5 s, ~16 ms at 0.1 s) adds that wait to every hop of the pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as driver

__all__ = ["PushstreamApp"]

log = logging.getLogger(__name__)


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait", None)
        if wait is not None:
            if hasattr(consumer, "_fetch_max_wait_ms"):
                # Read by AIOKafkaConsumer.start() when it builds its fetcher (aiokafka 0.10-0.14).
                consumer._fetch_max_wait_ms = int(wait * 1000)
            else:
                log.warning("this aiokafka has no _fetch_max_wait_ms; kafka.fetch_max_wait is ignored")
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(driver.Transport):
    Consumer = _Consumer


class PushstreamApp(faust.App):
    """A Faust app whose Kafka consumer waits at most `fetch_max_wait` seconds per fetch."""

    def __init__(self, *args: Any, fetch_max_wait: float | None = None, **kwargs: Any) -> None:
        self.fetch_max_wait = fetch_max_wait
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)
