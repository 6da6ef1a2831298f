"""The console's store: per-minute aggregates, samples, tests and read offsets in one SQLite file.

The reader adds a batch of folded outcomes and the offsets it read up to in one transaction, so
a restarted console resumes where the store says and counts every outcome exactly once; the
page and the API read the same file (WAL: readers never wait for the writer).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from pushstream.codecs.console import Tally
from pushstream.codecs.records import Sample
from pushstream.streams.console.queries import WindowQueries

__all__ = ["Store"]

_AGGREGATES = """
CREATE TABLE IF NOT EXISTS counts{h} ({t} INTEGER, instance TEXT, destination TEXT, action TEXT, mapping TEXT,
    status TEXT, n INTEGER, PRIMARY KEY ({t}, instance, destination, action, mapping, status)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latency{h} ({t} INTEGER, instance TEXT, bucket INTEGER, n INTEGER,
    PRIMARY KEY ({t}, instance, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reasons{h} ({t} INTEGER, instance TEXT, status TEXT, error_code TEXT, reason TEXT,
    n INTEGER, first_at REAL, last_at REAL, PRIMARY KEY ({t}, instance, status, error_code, reason)) WITHOUT ROWID;
"""
#: Per minute, and the same rolled up per hour (`_h`, keyed by `hour`).
_SCHEMA = _AGGREGATES.format(h="", t="minute") + _AGGREGATES.format(h="_h", t="hour") + """
CREATE TABLE IF NOT EXISTS samples (id INTEGER PRIMARY KEY, instance TEXT, error_code TEXT, at REAL, body BLOB);
CREATE INDEX IF NOT EXISTS samples_by_error ON samples (instance, error_code, at);
CREATE TABLE IF NOT EXISTS tests (id INTEGER PRIMARY KEY, at REAL, instance TEXT, message_id TEXT, body BLOB);
CREATE TABLE IF NOT EXISTS waiting (instance TEXT PRIMARY KEY, n INTEGER, at REAL);
CREATE TABLE IF NOT EXISTS offsets (topic TEXT, partition INTEGER, next INTEGER,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
"""
#: Samples kept per (instance, error code); older ones are dropped as new ones come.
SAMPLES_KEPT = 20
_ADD_COUNT = "ON CONFLICT DO UPDATE SET n = n + excluded.n"
_ADD_REASON = ("ON CONFLICT DO UPDATE SET n = n + excluded.n, first_at = min(first_at, excluded.first_at), "
               "last_at = max(last_at, excluded.last_at)")


def _hourly(rows: dict[tuple[Any, ...], Any], merge: Any) -> dict[tuple[Any, ...], Any]:
    """Per-minute keys (minute first) rolled up per hour."""
    out: dict[tuple[Any, ...], Any] = {}
    for key, value in rows.items():
        hk = (key[0] // 60, *key[1:])
        out[hk] = merge(out[hk], value) if hk in out else value
    return out


def _merge_reason(a: list[float], b: list[float]) -> list[float]:
    return [a[0] + b[0], min(a[1], b[1]), max(a[2], b[2])]


class Store(WindowQueries):
    """One SQLite file; open one Store per thread (the reader's, the web app's)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # Writing ---------------------------------------------------------------------------------

    def add(self, tally: Tally, samples: Iterable[Sample], offsets: dict[tuple[str, int], int]) -> None:
        """Add folded outcomes and samples, and move the read offsets, in one transaction."""
        db = self.db
        db.execute("BEGIN")
        try:
            for suffix, counts, latency, reasons in (
                    ("", tally.counts, tally.latency, tally.reasons),
                    ("_h", _hourly(tally.counts, int.__add__), _hourly(tally.latency, int.__add__),
                     _hourly(tally.reasons, _merge_reason))):
                db.executemany(f"INSERT INTO counts{suffix} VALUES (?, ?, ?, ?, ?, ?, ?) {_ADD_COUNT}",
                               [(*k, n) for k, n in counts.items()])
                db.executemany(f"INSERT INTO latency{suffix} VALUES (?, ?, ?, ?) {_ADD_COUNT}",
                               [(*k, n) for k, n in latency.items()])
                db.executemany(f"INSERT INTO reasons{suffix} VALUES (?, ?, ?, ?, ?, ?, ?, ?) {_ADD_REASON}",
                               [(*k, int(v[0]), v[1], v[2]) for k, v in reasons.items()])
            touched = set()
            for s in samples:
                db.execute("INSERT INTO samples (instance, error_code, at, body) VALUES (?, ?, ?, ?)",
                           (s.instance, s.error_code, s.at, msgspec.json.encode(s)))
                touched.add((s.instance, s.error_code))
            for instance, code in touched:
                db.execute("DELETE FROM samples WHERE instance = ? AND error_code = ? AND id NOT IN (SELECT id FROM "
                           "samples WHERE instance = ? AND error_code = ? ORDER BY at DESC LIMIT ?)",
                           (instance, code, instance, code, SAMPLES_KEPT))
            db.executemany("INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET next = excluded.next",
                           [(t, p, o) for (t, p), o in offsets.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add_test(self, instance: str, message_id: str | None, body: dict[str, Any]) -> None:
        """Record a test event sent from the tester (what was sent and answered)."""
        self.db.execute("INSERT INTO tests (at, instance, message_id, body) VALUES (?, ?, ?, ?)",
                        (time.time(), instance, message_id, msgspec.json.encode(body)))

    def set_waiting(self, waiting: dict[str, int], at: float) -> None:
        """How many jobs wait for a retry per instance, as of `at`."""
        self.db.executemany("INSERT INTO waiting VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = excluded.n, "
                            "at = excluded.at", [(i, n, at) for i, n in waiting.items()])

    def waiting(self) -> dict[str, tuple[int, float]]:
        """Per instance: (jobs waiting for a retry, when that was counted)."""
        return {i: (n, at) for i, n, at in self.db.execute("SELECT instance, n, at FROM waiting")}

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read per (topic, partition)."""
        return {(t, p): o for t, p, o in self.db.execute("SELECT topic, partition, next FROM offsets")}

    # Reading ---------------------------------------------------------------------------------

    def samples(self, instance: str, error_code: str, since: float, limit: int = 3) -> list[dict[str, Any]]:
        """The newest samples of an instance's error code taken since `since`."""
        rows = self.db.execute("SELECT body FROM samples WHERE instance = ? AND error_code = ? AND at >= ? "
                               "ORDER BY at DESC LIMIT ?", (instance, error_code, since, limit))
        return [msgspec.json.decode(b) for (b,) in rows]

    def sample_event(self, message_id: str) -> Any:
        """The event of the newest sample of `message_id` (None when there is none)."""
        for (body,) in self.db.execute("SELECT body FROM samples ORDER BY at DESC"):
            sample = msgspec.json.decode(body)
            if sample.get("message_id") == message_id:
                return sample.get("event")
        return None

    def sampled_codes(self, instance: str, since: float) -> list[tuple[str, int | None, str, float, float, int]]:
        """(error code, http status, reason, first, last, samples) of samples taken since `since`."""
        rows = self.db.execute("SELECT error_code, min(at), max(at), count(*), body FROM samples WHERE instance = ? "
                               "AND at >= ? GROUP BY error_code", (instance, since))
        out = []
        for code, first, last, n, body in rows:
            sample = msgspec.json.decode(body)
            out.append((code, sample.get("http_status"), sample.get("reason", ""), first, last, n))
        return out

    def tests(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT at, instance, message_id, body FROM tests ORDER BY id DESC LIMIT ?", (limit,))
        return [{"at": at, "instance": i, "message_id": m, **msgspec.json.decode(b)} for at, i, m, b in rows]
