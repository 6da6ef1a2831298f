"""The console's reader: every worker's outcomes and samples, from the topics into the store, and
how many jobs wait on each instance's retry topic.

A thread with a plain confluent-kafka consumer, partitions assigned directly (no group: several
consoles may read the same topics, and none moves the workers' offsets). It starts where the
store says it stopped, folds what it reads (codecs/console.py's Tally) and adds each batch with
its offsets in one transaction, at most `FLUSH_EVERY` seconds after the first record of it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from pushstream.codecs.config import Config
from pushstream.codecs.console import Tally
from pushstream.codecs.records import Sample, Unmatched, decode_outcome, decode_sample
from pushstream.streams.console.store import Store
from pushstream.streams.kafka.admin import make_reader

__all__ = ["OutcomeReader"]

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.5
GAUGE_EVERY = 1.0
#: Records taken per poll: the librdkafka batch API costs ~1 us a record.
POLL_BATCH = 10_000


class OutcomeReader:
    """Reads `<prefix>.outcomes` and `<prefix>.samples` into a Store until `stop()`."""

    def __init__(self, config: Config, db_path: str | Path) -> None:
        self.config = config
        self.db_path = db_path
        self.retry_topics = {config.topic("retry", i.name): i.name for i in config.instances}
        self.topics = (config.topic("outcomes"), config.topic("samples"), *self.retry_topics)
        #: Per retry partition: the offset after the last record read (records counted, not
        #: the broker's end offsets, which the local broker misreports).
        self._ends: dict[tuple[str, int], int] = {}
        self._next_gauge = 0.0
        self._committed: Consumer | None = None
        self.read = 0
        self.unreadable = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _assign(self, consumer: Consumer, store: Store) -> None:
        known = store.offsets()
        while not self._stop.is_set():
            metadata = consumer.list_topics(timeout=10)
            missing = [t for t in self.topics if t not in metadata.topics]
            if not missing:
                break
            log.warning("console: waiting for topics %s (a worker creates them)", ", ".join(missing))
            self._stop.wait(2.0)
        consumer.assign([TopicPartition(t, p, known.get((t, p), OFFSET_BEGINNING))
                         for t in self.topics for p in metadata.topics[t].partitions])

    def _run(self) -> None:
        store = Store(self.db_path)
        consumer = make_reader(self.config.kafka, "pushstream-console")
        # Asks the workers' group for its committed offsets; never joins it or commits.
        self._committed = make_reader(self.config.kafka, self.config.kafka.app_id)
        try:
            self._assign(consumer, store)
            self._ends = {k: v for k, v in store.offsets().items() if k[0] in self.retry_topics}
            self._loop(consumer, store)
        finally:
            consumer.close()
            self._committed.close()
            store.close()

    def _gauge(self, store: Store) -> None:
        """Jobs waiting for a retry, per instance: records on its retry topic past the workers'
        committed offsets (a retry agent commits a record once its job is settled)."""
        self._next_gauge = time.monotonic() + GAUGE_EVERY
        assert self._committed is not None
        parts = [TopicPartition(t, p) for t, p in self._ends]
        try:
            committed = self._committed.committed(parts, timeout=5) if parts else []
        except KafkaException as exc:
            log.warning("console: cannot read the workers' committed offsets: %s", exc)
            return
        waiting = dict.fromkeys(self.retry_topics.values(), 0)
        for tp in committed:
            end = self._ends.get((tp.topic, tp.partition), 0)
            waiting[self.retry_topics[tp.topic]] += max(0, end - max(tp.offset, 0))
        store.set_waiting(waiting, time.time())

    def _loop(self, consumer: Consumer, store: Store) -> None:
        outcomes_topic = self.topics[0]
        tally, samples, offsets = Tally(), list[Sample](), dict[tuple[str, int], int]()
        started = 0.0
        while not self._stop.is_set():
            for msg in consumer.consume(POLL_BATCH, 0.1):
                if msg.error():
                    continue
                topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
                offsets[(topic, partition)] = offset + 1
                if topic in self.retry_topics:
                    continue  # counted by offset only: see `_gauge`
                try:
                    if topic == outcomes_topic:
                        tally.add(decode_outcome(msg.value() or b""))
                    elif isinstance(record := decode_sample(msg.value() or b""), Unmatched):
                        tally.add_unmatched(record)
                    else:
                        samples.append(record)
                except msgspec.DecodeError:
                    self.unreadable += 1
                if not started:
                    started = time.monotonic()
            if offsets and (time.monotonic() - started >= FLUSH_EVERY or tally.records >= 100_000):
                store.add(tally, samples, offsets)
                self.read += tally.records + len(samples)
                self._ends.update((k, v) for k, v in offsets.items() if k[0] in self.retry_topics)
                tally, samples, offsets, started = Tally(), [], {}, 0.0
            if time.monotonic() >= self._next_gauge:
                self._gauge(store)
