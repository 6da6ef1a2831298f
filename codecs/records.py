"""Records the pipeline writes to Kafka: delivery jobs, outcomes and dead letters.

All are msgspec Structs encoded as JSON; decoders and encoders are built once here.
No record ever holds a credential: settings stay in the config, requests are built from
payloads at delivery time.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["DeadLetter", "Job", "Outcome", "Status", "decode_job", "encode"]

Status = Literal["delivered", "rejected", "failed", "invalid", "skipped", "duplicate"]
TERMINAL = frozenset({"delivered", "rejected", "failed"})


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


class Outcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What happened to one event for one action (or to one input record that was invalid)."""

    message_id: str | None
    status: Status
    instance: str | None = None
    destination: str | None = None
    action: str | None = None
    mapping: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    reason: str | None = None
    attempts: int = 0
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    latency_ms: float | None = None
    batch_id: str | None = None
    batch_size: int | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    at: float


class DeadLetter(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A job whose retries ran out, kept with its last error so it can be replayed."""

    job: Job
    error_code: str | None = None
    reason: str | None = None
    http_status: int | None = None
    failed_at: float


_encoder = msgspec.json.Encoder()
encode = _encoder.encode
decode_job = msgspec.json.Decoder(Job).decode
decode_outcome = msgspec.json.Decoder(Outcome).decode
decode_dead_letter = msgspec.json.Decoder(DeadLetter).decode
