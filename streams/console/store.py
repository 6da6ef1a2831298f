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

from pushstream.codecs.console import Tally, percentiles
from pushstream.codecs.records import STATUSES, Sample

__all__ = ["Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counts (minute INTEGER, instance TEXT, destination TEXT, action TEXT, mapping TEXT,
    status TEXT, n INTEGER, PRIMARY KEY (minute, instance, destination, action, mapping, status)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latency (minute INTEGER, instance TEXT, bucket INTEGER, n INTEGER,
    PRIMARY KEY (minute, instance, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reasons (minute INTEGER, instance TEXT, status TEXT, error_code TEXT, reason TEXT,
    n INTEGER, first_at REAL, last_at REAL,
    PRIMARY KEY (minute, instance, status, error_code, reason)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples (id INTEGER PRIMARY KEY, instance TEXT, error_code TEXT, at REAL, body BLOB);
CREATE INDEX IF NOT EXISTS samples_by_error ON samples (instance, error_code, at);
CREATE TABLE IF NOT EXISTS tests (id INTEGER PRIMARY KEY, at REAL, instance TEXT, message_id TEXT, body BLOB);
CREATE TABLE IF NOT EXISTS offsets (topic TEXT, partition INTEGER, next INTEGER,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
"""
#: Samples kept per (instance, error code); older ones are dropped as new ones come.
SAMPLES_KEPT = 20


class Store:
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
            db.executemany("INSERT INTO counts VALUES (?, ?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT DO UPDATE SET n = n + excluded.n",
                           [(*k, n) for k, n in tally.counts.items()])
            db.executemany("INSERT INTO latency VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                           [(*k, n) for k, n in tally.latency.items()])
            db.executemany("INSERT INTO reasons VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                           "n = n + excluded.n, first_at = min(first_at, excluded.first_at), "
                           "last_at = max(last_at, excluded.last_at)",
                           [(*k, int(v[0]), v[1], v[2]) for k, v in tally.reasons.items()])
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

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read per (topic, partition)."""
        return {(t, p): o for t, p, o in self.db.execute("SELECT topic, partition, next FROM offsets")}

    # Reading ---------------------------------------------------------------------------------

    def overview(self, window: int, now: float) -> dict[str, Any]:
        """`/api/overview`: per instance, counts per status, latency percentiles, per action/mapping."""
        since = int(now // 60) - (window + 59) // 60 + 1
        instances: dict[str, dict[str, Any]] = {}
        rows = self.db.execute("SELECT instance, destination, action, mapping, status, sum(n) FROM counts "
                               "WHERE minute >= ? GROUP BY 1, 2, 3, 4, 5", (since,))
        for instance, destination, action, mapping, status, n in rows:
            entry = instances.setdefault(instance, {"name": instance, "destination": "", "statuses": {},
                                                    "actions": {}})
            entry["destination"] = entry["destination"] or destination
            entry["statuses"][status] = entry["statuses"].get(status, 0) + n
            per = entry["actions"].setdefault((action, mapping), {"action": action, "mapping": mapping,
                                                                  "statuses": {}})
            per["statuses"][status] = per["statuses"].get(status, 0) + n
        hists: dict[str, dict[int, int]] = {}
        for instance, bucket, n in self.db.execute("SELECT instance, bucket, sum(n) FROM latency WHERE minute >= ? "
                                                   "GROUP BY 1, 2", (since,)):
            hists.setdefault(instance, {})[bucket] = n
        out = []
        for name in sorted(instances):
            entry = instances[name]
            entry["statuses"] = {s: entry["statuses"][s] for s in STATUSES if s in entry["statuses"]}
            entry["latency_ms"] = percentiles(hists.get(name, {}))
            entry["actions"] = [entry["actions"][k] for k in sorted(entry["actions"])]
            out.append(entry)
        return {"window": window, "instances": out}

    def reasons(self, instance: str, window: int, now: float, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        """Per (status, error code, reason) of `instance` in the window: count, first and last time."""
        since = int(now // 60) - (window + 59) // 60 + 1
        marks = ", ".join("?" * len(statuses))
        rows = self.db.execute(
            f"SELECT status, error_code, reason, sum(n), min(first_at), max(last_at) FROM reasons "
            f"WHERE minute >= ? AND instance = ? AND status IN ({marks}) GROUP BY 1, 2, 3 ORDER BY 4 DESC",
            (since, instance, *statuses))
        return [{"status": s, "error_code": c, "reason": r, "count": n, "first_at": f, "last_at": la}
                for s, c, r, n, f, la in rows]

    def samples(self, instance: str, error_code: str, since: float, limit: int = 3) -> list[dict[str, Any]]:
        """The newest samples of an instance's error code taken since `since`."""
        rows = self.db.execute("SELECT body FROM samples WHERE instance = ? AND error_code = ? AND at >= ? "
                               "ORDER BY at DESC LIMIT ?", (instance, error_code, since, limit))
        return [msgspec.json.decode(b) for (b,) in rows]

    def sampled_codes(self, instance: str, since: float) -> list[tuple[str, int | None, str, float, float, int]]:
        """(error code, http status, reason, first, last, samples) of samples taken since `since`."""
        rows = self.db.execute("SELECT error_code, min(at), max(at), count(*), body FROM samples WHERE instance = ? "
                               "AND at >= ? GROUP BY error_code", (instance, since))
        out = []
        for code, first, last, n, body in rows:
            sample = msgspec.json.decode(body)
            out.append((code, sample.get("http_status"), sample.get("reason", ""), first, last, n))
        return out

    def trend(self, instance: str, window: int, now: float, points: int = 60) -> list[tuple[int, dict[str, int]]]:
        """Counts per status in `points` equal slices of the window (slice start minute, counts)."""
        last = int(now // 60)
        minutes = (window + 59) // 60
        step = max(1, -(-minutes // points))
        first = last - step * (-(-minutes // step)) + 1
        slices: dict[int, dict[str, int]] = {first + i * step: {} for i in range(-(-minutes // step))}
        rows = self.db.execute("SELECT ((minute - ?) / ?) * ? + ?, status, sum(n) FROM counts WHERE minute >= ? "
                               "AND instance = ? GROUP BY 1, 2", (first, step, step, first, first, instance))
        for start, status, n in rows:
            slices.setdefault(start, {})[status] = n
        return sorted(slices.items())

    def tests(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT at, instance, message_id, body FROM tests ORDER BY id DESC LIMIT ?", (limit,))
        return [{"at": at, "instance": i, "message_id": m, **msgspec.json.decode(b)} for at, i, m, b in rows]
