"""Producing JSONL events to an input topic, as `pushstream produce` does (also the demo's and tests' producer)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pushstream.codecs.config import Config
from pushstream.codecs.spec import input_key
from pushstream.streams.kafka.security import Cluster
from pushstream.streams.kafka.writer import Record, WriteError, Writer

__all__ = ["ProduceError", "produce_lines", "read_lines"]


class ProduceError(Exception):
    """Some records were not written; the message says which (by line) and why."""


def read_lines(source: str) -> tuple[list[bytes], list[int]]:
    """The non-blank lines of a file (or `-` for stdin) and their line numbers in it (from 1).
    Raises `FileNotFoundError`/`OSError` for a file that cannot be read."""
    stream = sys.stdin.buffer if source == "-" else Path(source).open("rb")
    lines, numbers = [], []
    with stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                lines.append(line.rstrip(b"\r\n"))
                numbers.append(number)
    return lines, numbers


def produce_lines(config: Config, lines: Sequence[bytes], topic: str | None = None, progress: bool = False,
                  numbers: Sequence[int] | None = None, timeout: float = 30.0) -> list[tuple[int, int] | None]:
    """Produce raw JSONL lines to the input topic, keyed by userId/anonymousId when readable;
    returns each line's (partition, offset).

    Raises `ProduceError` naming the lines (by `numbers`, else by position from 1) that Kafka
    refused, or saying how many it did not acknowledge within `timeout` seconds of a chunk.
    """
    topic = topic or config.kafka.input_topics[0]
    numbers = list(numbers) if numbers is not None else list(range(1, len(lines) + 1))
    decoder = msgspec.json.Decoder()
    records = []
    for line in lines:
        try:
            key = input_key(decoder.decode(line))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # the worker reports why
            key = None
        records.append(Record(topic, key.encode() if key else None, line))
    with Progress(TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress, transient=True) as bar:
        task = bar.add_task("produce", total=len(lines))
        coords, refused = asyncio.run(_write(config.kafka, records, timeout,
                                             lambda n: bar.update(task, completed=n)))
    if refused:
        shown = "; ".join(f"line {numbers[i]}: {why}" for i, why in refused[:5])
        raise ProduceError(f"Kafka refused {len(refused)} of {len(lines)} records ({shown}"
                           f"{'; …' if len(refused) > 5 else ''})")
    return coords


async def _write(broker: Cluster, records: list[Record], timeout: float, done: Callable[[int], object],
                 chunk: int = 2_000) -> tuple[list[tuple[int, int] | None], list[tuple[int, str]]]:
    """Write in chunks (the progress bar moves per chunk): each record's (partition, offset), and
    the refused records' (index, reason)."""
    writer = Writer(broker)
    coords: list[tuple[int, int] | None] = [None] * len(records)
    refused: list[tuple[int, str]] = []
    try:
        for start in range(0, len(records), chunk):
            try:
                written = await asyncio.wait_for(writer.write(records[start:start + chunk], indexed=True), timeout)
                coords[start:start + len(written)] = written
            except WriteError as exc:
                refused += [(start + (i or 0), why) for i, why in exc.failed]
            except TimeoutError:
                raise ProduceError(f"records {start + 1}-{min(start + chunk, len(records))} of {len(records)} were "
                                   f"not acknowledged by the broker within {timeout:.0f} s") from None
            done(min(start + chunk, len(records)))
    finally:
        await writer.close()
    return coords, refused
