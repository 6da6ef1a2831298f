"""Producing JSONL events to an input topic, as `pushstream produce` does (also the demo's and tests' producer)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import msgspec
from confluent_kafka import KafkaException

from pushstream.codecs.config import Config

from .kafka import make_producer

__all__ = ["produce_lines"]


def produce_lines(config: Config, lines: list[bytes], topic: str | None = None,
                  progress: TextIO | None = None) -> list[tuple[int, int] | None]:
    """Produce raw JSONL lines to the input topic, keyed by userId/anonymousId when readable.

    Returns each line's (partition, offset), or None for a record Kafka refused (e.g. over its
    size limit); refusals are reported on stderr.
    """
    topic = topic or config.kafka.input_topics[0]
    producer = make_producer(config.kafka.broker)
    decoder = msgspec.json.Decoder()
    refused: list[tuple[int, str]] = []
    coords: list[tuple[int, int] | None] = [None] * len(lines)

    def delivered(index: int) -> Any:
        def report(err: Any, msg: Any) -> None:
            if err is None:
                coords[index] = (msg.partition(), msg.offset())
            else:
                refused.append((index + 1, str(err)))
        return report

    started = time.monotonic()
    for i, line in enumerate(lines, 1):
        try:
            ev = decoder.decode(line)
            key = (ev.get("userId") or ev.get("anonymousId")) if isinstance(ev, dict) else None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # the worker reports why
            key = None
        while True:
            try:
                producer.produce(topic, value=line, key=key.encode() if isinstance(key, str) else None,
                                 on_delivery=delivered(i - 1))
                break
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:  # e.g. over the broker's message size limit: skip, report
                refused.append((i, exc.args[0].str() if exc.args else str(exc)))
                break
        producer.poll(0)
        if progress and (i % 1000 == 0 or i == len(lines)):
            rate = i / max(time.monotonic() - started, 1e-9)
            progress.write(f"\rproduced {i}/{len(lines)} ({rate:,.0f}/s)")
            progress.flush()
    remaining = producer.flush(30)
    if progress:
        progress.write("\n")
    if remaining:
        raise RuntimeError(f"{remaining} records were not acknowledged by the broker")
    for line_no, reason in refused[:20]:
        sys.stderr.write(f"record {line_no} refused by Kafka: {reason}\n")
    return coords
