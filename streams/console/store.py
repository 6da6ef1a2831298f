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

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read per (topic, partition)."""
        return {(t, p): o for t, p, o in self.db.execute("SELECT topic, partition, next FROM offsets")}

    # Reading ---------------------------------------------------------------------------------

    def _span(self, table: str, cols: str, since: int, now: float, where: str = "",
              params: tuple[Any, ...] = ()) -> tuple[str, tuple[Any, ...]]:
        """A subquery of `table`'s rows (with a `minute` column) from minute `since` on: whole
        hours from the hourly table, the ragged ends from the per-minute one; so a 2-week window
        reads at most ~340 rows per key."""
        extra = f" AND {where}" if where else ""
        h0, h1 = -(-since // 60), int(now // 60) // 60
        if h0 >= h1:
            return f"SELECT minute, {cols} FROM {table} WHERE minute >= ?{extra}", (since, *params)
        return (f"SELECT minute, {cols} FROM {table} WHERE (minute < ? OR minute >= ?) AND minute >= ?{extra} "
                f"UNION ALL SELECT hour * 60, {cols} FROM {table}_h WHERE hour >= ? AND hour < ?{extra}",
                (h0 * 60, h1 * 60, since, *params, h0, h1, *params))

    @staticmethod
    def _since(window: int, now: float) -> int:
        return int(now // 60) - (window + 59) // 60 + 1

    def overview(self, window: int, now: float) -> dict[str, Any]:
        """`/api/overview`: per instance, counts per status, latency percentiles, per action/mapping."""
        since = self._since(window, now)
        instances: dict[str, dict[str, Any]] = {}
        span, params = self._span("counts", "instance, destination, action, mapping, status, n", since, now)
        rows = self.db.execute(f"SELECT instance, destination, action, mapping, status, sum(n) FROM ({span}) "
                               "GROUP BY 1, 2, 3, 4, 5", params)
        for instance, destination, action, mapping, status, n in rows:
            entry = instances.setdefault(instance, {"name": instance, "destination": "", "statuses": {},
                                                    "actions": {}})
            entry["destination"] = entry["destination"] or destination
            entry["statuses"][status] = entry["statuses"].get(status, 0) + n
            per = entry["actions"].setdefault((action, mapping), {"action": action, "mapping": mapping,
                                                                  "statuses": {}})
            per["statuses"][status] = per["statuses"].get(status, 0) + n
        hists: dict[str, dict[int, int]] = {}
        span, params = self._span("latency", "instance, bucket, n", since, now)
        for instance, bucket, n in self.db.execute(f"SELECT instance, bucket, sum(n) FROM ({span}) GROUP BY 1, 2",
                                                   params):
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
        marks = ", ".join("?" * len(statuses))
        span, params = self._span("reasons", "status, error_code, reason, n, first_at, last_at",
                                  self._since(window, now), now, f"instance = ? AND status IN ({marks})",
                                  (instance, *statuses))
        rows = self.db.execute(f"SELECT status, error_code, reason, sum(n), min(first_at), max(last_at) FROM ({span}) "
                               "GROUP BY 1, 2, 3 ORDER BY 4 DESC", params)
        return [{"status": s, "error_code": c, "reason": r, "count": n, "first_at": f, "last_at": la}
                for s, c, r, n, f, la in rows]

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

    def trend(self, instance: str, window: int, now: float, points: int = 60) -> list[tuple[int, dict[str, int]]]:
        """Counts per status in up to `points` equal slices of the window (slice start minute,
        counts); slices of an hour or more start on the hour, so hourly rows fall inside one."""
        last = int(now // 60)
        minutes = (window + 59) // 60
        step = max(1, -(-minutes // points))
        if step >= 60:
            step = -(-step // 60) * 60
        first = (last // step) * step - step * (-(-minutes // step) - 1)
        slices: dict[int, dict[str, int]] = {first + i * step: {} for i in range((last - first) // step + 1)}
        span, params = self._span("counts", "status, n", first, now, "instance = ?", (instance,))
        rows = self.db.execute(f"SELECT ((minute - ?) / ?) * ? + ?, status, sum(n) FROM ({span}) GROUP BY 1, 2",
                               (first, step, step, first, *params))
        for start, status, n in rows:
            slices.setdefault(start, {})[status] = n
        return sorted(slices.items())

    def tests(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT at, instance, message_id, body FROM tests ORDER BY id DESC LIMIT ?", (limit,))
        return [{"at": at, "instance": i, "message_id": m, **msgspec.json.decode(b)} for at, i, m, b in rows]
