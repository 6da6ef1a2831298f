"""Producing JSONL events to an input topic, as `pushstream produce` does (also the demo's and tests' producer)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import KafkaException
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pushstream.codecs.config import Config
from pushstream.codecs.spec import input_key

from .kafka import make_producer

__all__ = ["ProduceError", "produce_lines", "read_lines"]


class ProduceError(Exception):
    """Some records were not written; the message says which (by line) and why."""


def read_lines(source: str) -> tuple[list[bytes], list[int]]:
    """The non-blank lines of a file (or `-` for stdin) and their line numbers in it (from 1).
    Raises `FileNotFoundError`/`OSError` for a file that cannot be read."""
    stream = sys.stdin.buffer if source == "-" else Path(source).open("rb")  # noqa: SIM115
    lines, numbers = [], []
    with stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                lines.append(line.rstrip(b"\r\n"))
                numbers.append(number)
    return lines, numbers


def produce_lines(config: Config, lines: Sequence[bytes], topic: str | None = None, progress: bool = False,
                  numbers: Sequence[int] | None = None) -> list[tuple[int, int] | None]:
    """Produce raw JSONL lines to the input topic, keyed by userId/anonymousId when readable.

    Returns each line's (partition, offset). Raises `ProduceError` naming the lines (by
    `numbers`, else by position from 1) that Kafka refused or did not acknowledge.
    """
    topic = topic or config.kafka.input_topics[0]
    numbers = list(numbers) if numbers is not None else list(range(1, len(lines) + 1))
    producer = make_producer(config.kafka.broker)
    decoder = msgspec.json.Decoder()
    refused: list[tuple[int, str]] = []
    coords: list[tuple[int, int] | None] = [None] * len(lines)

    def delivered(index: int) -> Any:
        def report(err: Any, msg: Any) -> None:
            if err is None:
                coords[index] = (msg.partition(), msg.offset())
            else:
                refused.append((numbers[index], str(err)))
        return report

    with Progress(TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress, transient=True) as bar:
        task = bar.add_task("produce", total=len(lines))
        for i, line in enumerate(lines):
            try:
                key = input_key(decoder.decode(line))
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # the worker reports why
                key = None
            while True:
                try:
                    producer.produce(topic, value=line, key=key.encode() if isinstance(key, str) else None,
                                     on_delivery=delivered(i))
                    break
                except BufferError:
                    producer.poll(0.1)
                except KafkaException as exc:  # e.g. over the broker's message size limit: skip, report
                    refused.append((numbers[i], exc.args[0].str() if exc.args else str(exc)))
                    break
            producer.poll(0)
            if i % 500 == 0:
                bar.update(task, completed=i)
        remaining = producer.flush(30)
    if remaining:
        raise ProduceError(f"{remaining} of {len(lines)} records were not acknowledged by the broker within 30 s")
    if refused:
        refused.sort()
        shown = "; ".join(f"line {n}: {why}" for n, why in refused[:5])
        raise ProduceError(f"Kafka refused {len(refused)} of {len(lines)} records ({shown}"
                           f"{'; …' if len(refused) > 5 else ''})")
    return coords
