"""The delivery console's pure half: its config, folding outcomes into per-minute aggregates,
latency percentiles from a fixed histogram, suggested actions, and the worker's sample budget.

The console (streams/console/) reads every worker's outcomes from the outcome topic and keeps,
per minute, counts per (instance, action, mapping, status), a latency histogram per instance,
and per (instance, status, error code, reason) a count with first and last time. Minutes make a
two-week window a sum over at most 20,160 rows per key, whatever the traffic.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from .records import Outcome, Unmatched
from .secret import Secret, resolve_env

__all__ = ["LATENCY_BOUNDS_MS", "MAX_WINDOW", "MIN_WINDOW", "ConsoleConfig", "ConsoleToml", "Sampler", "Tally",
           "UNMATCHED", "is_loopback", "load_console", "percentiles", "suggest"]

MIN_WINDOW, MAX_WINDOW = 600, 14 * 86_400
#: Upper bounds (ms) of the latency histogram's buckets; a percentile is interpolated inside
#: its bucket, so it is within one bucket's width (~1.5x) of the exact value.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000, 3_000,
    5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 3_600_000, float("inf"))
#: A reason longer than this is cut: it names the error, not the event (a 400's body may echo it).
REASON_CHARS = 200
#: Statuses whose reasons the console lists (the funnel's "top reasons"; rejected and failed
#: make the error table).
REASONED = frozenset({"rejected", "failed", "invalid", "skipped", "filtered"})


class ConsoleToml(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The `[console]` table as written (config.py converts it, reporting mistakes with the rest)."""

    #: host:port the console serves on (a token is required off loopback).
    listen: str = "127.0.0.1:8089"
    #: The token a browser or API client must give (`"${ENV}"`); required unless listening on loopback.
    token: str | None = None
    #: The console's SQLite store; unset: `<pipeline.state_dir>/console.sqlite3`.
    db: str | None = None
    #: Failed requests each worker samples per (instance, error code) per minute for the console (0: none).
    samples_per_minute: int = 3


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """`[console]`: where `pushstream console` listens, its token (required off loopback), its
    store (default `<state_dir>/console.sqlite3`) and how many samples a worker keeps per
    (instance, error code) per minute (0: none)."""

    listen: str = "127.0.0.1:8089"
    token: Secret | None = None
    db: str | None = None
    samples_per_minute: int = 3


def load_console(toml: ConsoleToml, env: dict[str, str], errors: list[str], secrets: bool = True) -> ConsoleConfig:
    """Check the converted `[console]` table; mistakes go to `errors` with their location.
    Without `secrets` (a worker reading the same file) an unset token is no mistake."""
    if toml.samples_per_minute < 0:
        errors.append("console.samples_per_minute: must be 0 or more")
    token = None
    if toml.token is not None:
        value = resolve_env(toml.token, "console.token", env, errors if secrets else [])
        token = Secret(value) if value else None
    return ConsoleConfig(toml.listen, token, toml.db, toml.samples_per_minute)


def is_loopback(host: str) -> bool:
    """Whether `host` (of a listen address) only takes connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bucket(latency_ms: float) -> int:
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def percentiles(hist: dict[int, int], qs: Iterable[float] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
    """Percentiles (ms) of a histogram {bucket index: count}, interpolated linearly in the bucket;
    None for an empty one. Keys: "p50", "p95", "p99"."""
    total = sum(hist.values())
    out: dict[str, float | None] = {}
    for q in qs:
        key = f"p{round(q * 100)}"
        if not total:
            out[key] = None
            continue
        rank, seen = q * total, 0
        for b in sorted(hist):
            n = hist[b]
            if seen + n >= rank:
                low = LATENCY_BOUNDS_MS[b - 1] if b else 0.0
                high = LATENCY_BOUNDS_MS[b] if b < len(LATENCY_BOUNDS_MS) - 1 else low * 2
                out[key] = round(low + (high - low) * ((rank - seen) / n), 1)
                break
            seen += n
    return out


@dataclass
class Tally:
    """Outcomes folded per minute, waiting to be added to the store (every key's value adds up)."""

    counts: dict[tuple[int, str, str, str, str, str], int] = field(default_factory=dict)
    latency: dict[tuple[int, str, int], int] = field(default_factory=dict)
    #: (minute, instance, status, error_code, reason) -> [count, first_at, last_at]
    reasons: dict[tuple[int, str, str, str, str], list[float]] = field(default_factory=dict)
    records: int = 0

    def add_unmatched(self, u: Unmatched) -> None:
        """Fold a route batch's counts of events no mapping took (status "no mapping", no action)."""
        minute = int(u.at // 60)
        for instance, n in u.counts.items():
            key = (minute, instance, "", "", "", UNMATCHED)
            self.counts[key] = self.counts.get(key, 0) + n

    def add(self, o: Outcome) -> None:
        """Fold one outcome. An input record invalid for every instance counts under instance ""."""
        minute = int(o.at // 60)
        instance = o.instance or ""
        key = (minute, instance, o.destination or "", o.action or "", o.mapping or "", o.status)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.records += 1
        if o.latency_ms is not None and o.status != "duplicate":
            lk = (minute, instance, _bucket(o.latency_ms))
            self.latency[lk] = self.latency.get(lk, 0) + 1
        if o.status in REASONED:
            rk = (minute, instance, o.status, o.error_code or "", (o.reason or "")[:REASON_CHARS])
            seen = self.reasons.get(rk)
            if seen is None:
                self.reasons[rk] = [1, o.at, o.at]
            else:
                seen[0] += 1
                seen[1] = min(seen[1], o.at)
                seen[2] = max(seen[2], o.at)


UNMATCHED = "no mapping"


def suggest(error_code: str, http_status: int | None, reason: str) -> str:
    """What an operator should look at for an error, in one sentence."""
    if error_code == "INVALID_AUTHENTICATION" or http_status in (401, 403):
        return "Check the instance's credentials (API key, app code): `pushstream check INSTANCE`; its events wait."
    if error_code in ("TOO_MANY_REQUESTS",) or http_status == 429:
        return "The destination throttles: lower max_requests_per_second, or ask it for a higher limit."
    if error_code in ("SERVICE_UNAVAILABLE", "BAD_GATEWAY", "GATEWAY_TIMEOUT", "INTERNAL_SERVER_ERROR",
                      "REQUEST_TIMEOUT", "CONNECTION_ERROR") or (http_status or 0) >= 500:
        return "The destination is failing or unreachable: see its circuit in `pushstream status`; " \
               "`pushstream replay` resends the failed events once it is back."
    if error_code == "PAYLOAD_VALIDATION" or "required field" in reason or "must be" in reason:
        return "A mapping's field is missing or of the wrong type: fix the mapping or the events (the field is named)."
    if http_status == 400 or error_code == "BAD_REQUEST":
        return "The destination refused the body: see the named field in its response below."
    if error_code == "INVALID_EVENT":
        return "The producer sent a record that is not a Segment event: see the sample."
    if error_code in ("MAPPING_REMOVED", "BUILD_FAILED"):
        return "The config changed under these jobs: replay them after checking the mapping."
    return "See the samples: the request as sent and the destination's answer."


class Sampler:
    """A worker's budget of samples: at most `limit` per (instance, error code) per minute."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._minute = -1
        self._taken: dict[tuple[str, str], int] = {}

    def take(self, instance: str, error_code: str, now: float) -> bool:
        """Whether to keep a sample of this error now (and count it)."""
        if self.limit <= 0:
            return False
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._taken = minute, {}
        n = self._taken.get((instance, error_code), 0)
        if n >= self.limit:
            return False
        self._taken[(instance, error_code)] = n + 1
        return True
