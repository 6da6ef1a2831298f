"""The console store's windowed reads: counts, latency percentiles, reasons and trends over a
window of 10 minutes to 2 weeks, from the per-minute tables and their hourly roll-ups."""

from __future__ import annotations

import sqlite3
from typing import Any

from pushstream.codecs.console import UNMATCHED, percentiles
from pushstream.codecs.records import STATUSES

__all__ = ["WindowQueries"]


class WindowQueries:
    """Mixed into Store: the queries that sum a window of minutes (over `self.db`)."""

    db: sqlite3.Connection

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
            if status == UNMATCHED:
                continue
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
            entry["no_mapping"] = entry["statuses"].get(UNMATCHED, 0)  # events, not outcomes
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
