"""Records the pipeline writes to Kafka: delivery jobs, outcomes and dead letters.

All are msgspec Structs encoded as JSON; decoders and encoders are built once here.
No record ever holds a credential: settings stay in the config, requests are built from
payloads at delivery time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

import msgspec

from .js import UNDEFINED

__all__ = ["REMEMBERED", "STATUSES", "TERMINAL", "DeadLetter", "Job", "Outcome", "Sample", "Status", "Unmatched",
           "decode_jobs", "decode_sample", "encode", "pack_jobs"]

Status = Literal["delivered", "rejected", "failed", "invalid", "skipped", "filtered", "duplicate"]
STATUSES: tuple[Status, ...] = get_args(Status)
#: An (event, action)'s journey ends with one of these; `duplicate` says it ended before.
TERMINAL = frozenset({"delivered", "rejected", "failed"})
#: What dedup remembers: the destination answered for good (a `failed` job may be replayed).
REMEMBERED = frozenset({"delivered", "rejected"})


class Job(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One (event, action) to deliver, written by route to the instance's jobs topic."""

    message_id: str
    #: The partition key (userId, else anonymousId): jobs and their retries share a partition.
    key: str | None = None
    instance: str
    mapping: str
    action: str
    payload: dict[str, Any]
    batched: bool = False
    topic: str
    partition: int
    offset: int
    received_at: float
    attempts: int = 0
    first_attempt_at: float | None = None
    last_error: str | None = None
    due_at: float | None = None
    #: The original event, embedded untouched, so a dead letter can be replayed as is.
    event: msgspec.Raw = msgspec.Raw(b"null")
    #: The event had no messageId; `message_id` was derived from its input coordinates.
    message_id_derived: bool = False
    #: Sent again by `pushstream replay`: past the dedup table, which remembers its rejection.
    replay: bool = False


class Outcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What happened to one event for one action (or to one input record that was invalid)."""

    #: The event's messageId (derived from topic/partition/offset when it had none); null for an unreadable
    #: record.
    message_id: str | None
    #: delivered, rejected (refused for good), failed (retries ran out), invalid (unreadable input), skipped,
    #: filtered or duplicate.
    status: Status
    #: The destination instance (config name); null for an invalid input record.
    instance: str | None = None
    #: The destination type (`pushwoosh`, `xtremepush`, `webhook`).
    destination: str | None = None
    #: The action the mapping fed (e.g. `trackEvent`).
    action: str | None = None
    #: The preset or custom mapping that selected the event.
    mapping: str | None = None
    #: The destination's last HTTP status, if it answered.
    http_status: int | None = None
    #: A stable code for the error (e.g. BAD_REQUEST, REQUEST_TIMEOUT, INVALID_AUTHENTICATION, FILTERED).
    error_code: str | None = None
    #: A person's explanation of the status (never a credential).
    reason: str | None = None
    #: Requests made for this event and action.
    attempts: int = 0
    #: Unix time of the first request.
    first_attempt_at: float | None = None
    #: Unix time of the last request.
    last_attempt_at: float | None = None
    #: From the event being routed to this outcome, in milliseconds.
    latency_ms: float | None = None
    #: Shared by the events sent in one batched request.
    batch_id: str | None = None
    #: Events in that request.
    batch_size: int | None = None
    #: The input record's topic.
    topic: str | None = None
    #: The input record's partition.
    partition: int | None = None
    #: The input record's offset.
    offset: int | None = None
    #: Unix time the outcome was written.
    at: float
    #: The event had no (or an empty) messageId; `message_id` was derived from topic/partition/offset.
    message_id_derived: bool = False


class DeadLetter(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A job that did not get through, kept with its last error so it can be replayed: `failed`
    (retries ran out) or `rejected` (the destination refused it; replayed after a fix)."""

    #: The job as it was last tried, with the original event in `event` (replayable as is).
    job: Job
    #: failed (retries ran out) or rejected (the destination refused it).
    status: Literal["failed", "rejected"] = "failed"
    #: The last error's stable code.
    error_code: str | None = None
    #: The last error, for people.
    reason: str | None = None
    #: The destination's last HTTP status, if it answered.
    http_status: int | None = None
    #: Unix time it was dead-lettered.
    failed_at: float


class Sample(msgspec.Struct, kw_only=True, omit_defaults=True, tag="sample"):
    """One request that failed, as the console shows it: the event, the request as sent
    (credentials masked) and the destination's answer. Kept a few per (instance, error code)
    per minute (codecs/console.py's Sampler), never one per event."""

    instance: str
    error_code: str
    http_status: int | None = None
    reason: str = ""
    at: float
    message_id: str
    event: msgspec.Raw = msgspec.Raw(b"null")
    #: method, url, headers (masked), body
    request: dict[str, Any]
    #: status (None when no answer came), body (truncated)
    response: dict[str, Any]


class Unmatched(msgspec.Struct, kw_only=True, tag="unmatched"):
    """Per instance, how many events of a route batch no mapping took (they get no outcome):
    the console's "no mapping" step. Written with the batch, so a batch read again after a crash
    is counted again."""

    at: float
    counts: dict[str, int]


def _undefined_as_null(value: Any) -> Any:
    """A payload's array may hold `undefined` (a mapping item that resolved to nothing); JSON
    writes it as null, as JSON.stringify does."""
    if value is UNDEFINED:
        return None
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_undefined_as_null)
encode = _encoder.encode
_decode_job_record = msgspec.json.Decoder(list[Job] | Job).decode
decode_outcome = msgspec.json.Decoder(Outcome).decode
decode_dead_letter = msgspec.json.Decoder(DeadLetter).decode
#: A `<prefix>.samples` record: a failed request's sample, or a route batch's unmatched counts.
decode_sample = msgspec.json.Decoder(Sample | Unmatched).decode

#: A pack holds at most this many jobs and bytes (a job embeds its event: up to ~70 KB). 20
#: jobs bring a record's reading cost to ~2 us a job; more would only grow what a deliver
#: agent holds (up to about four times `deliver_batch` records: its queue, its take, what
#: waits for a delivery and the delivery in flight).
PACK_JOBS = 20
PACK_BYTES = 64 * 1024


def pack_jobs(jobs: Iterable[tuple[str, Job]], partition_of: Callable[[str, Job], int | None],
              max_jobs: int = PACK_JOBS, max_bytes: int = PACK_BYTES) -> list[tuple[str, int | None, bytes]]:
    """Jobs as (topic, partition, value) records, one per run of jobs bound for the same topic
    and partition: a JSON array of jobs in arrival order (so per-user order holds), at most
    `max_jobs` jobs and `max_bytes` bytes unless one job alone is larger.

    Why packs: the jobs topic is internal, and a record costs its reader (Faust's stream,
    event and ack machinery) ~40 us whatever its size; a route batch spreads over a few
    partitions, so a pack usually carries tens of jobs. `partition_of` must give the partition
    the producer's partitioner would give the job's key (None: let the producer choose), so a
    pack lands where each job alone would have, and where its retries will.
    """
    bodies: dict[tuple[str, int | None], list[bytes]] = {}
    sizes: dict[tuple[str, int | None], int] = {}
    out: list[tuple[str, int | None, bytes]] = []

    def close(where: tuple[str, int | None]) -> None:
        out.append((where[0], where[1], b"[" + b",".join(bodies.pop(where)) + b"]"))

    for topic, job in jobs:
        where = (topic, partition_of(topic, job))
        body = _encoder.encode(job)
        pack = bodies.get(where)
        if pack and (len(pack) >= max_jobs or sizes[where] + len(body) + 1 > max_bytes):
            close(where)
            pack = None
        if pack is None:
            pack = bodies[where] = []
            sizes[where] = 1
        pack.append(body)
        sizes[where] += len(body) + 1
    for where in list(bodies):
        close(where)
    return out


def decode_jobs(value: bytes) -> list[Job]:
    """A jobs or retry topic record: route's pack of jobs, or one job (retries, replays, and
    records written before packs existed)."""
    decoded = _decode_job_record(value)
    return decoded if isinstance(decoded, list) else [decoded]
