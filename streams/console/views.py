"""What the console shows, computed from its store: the overview, per instance the funnel, the
trend and the error table with samples (the page and the JSON API both read these)."""

from __future__ import annotations

import time
from typing import Any

from pushstream.codecs.config import Config
from pushstream.codecs.console import suggest
from pushstream.streams.console.page import WINDOWS
from pushstream.streams.console.reader import OutcomeReader
from pushstream.streams.console.store import Store

__all__ = ["FUNNEL", "Views"]

#: Statuses the funnel shows after "received", in order, each with its top reasons.
FUNNEL = ("skipped", "filtered", "delivered", "rejected", "failed", "duplicate")


class Views:
    """The console's numbers for one config and store."""

    def __init__(self, config: Config, store: Store, reader: OutcomeReader | None = None) -> None:
        self.config = config
        self.store = store
        self.reader = reader

    def names(self) -> list[str]:
        return [i.name for i in self.config.instances]

    def errors(self, instance: str, window: int, now: float) -> list[dict[str, Any]]:
        """Rejected and failed outcomes of `instance` by (error code, reason), with samples; then
        errors seen only in samples (a refused key parks events: they have no outcome yet)."""
        since = now - window
        out = []
        for row in self.store.reasons(instance, window, now, ("rejected", "failed")):
            samples = self.store.samples(instance, row["error_code"], since)
            status = next((s.get("http_status") for s in samples), None)
            out.append({**row, "suggested_action": suggest(row["error_code"], status, row["reason"]),
                        "samples": [self._sample_view(s) for s in samples]})
        listed = {e["error_code"] for e in out}
        for code, status, reason, first, last, _ in self.store.sampled_codes(instance, since):
            if code not in listed:
                out.append({"status": "waiting", "error_code": code, "reason": reason, "count": 0, "first_at": first,
                            "last_at": last, "suggested_action": suggest(code, status, reason),
                            "samples": [self._sample_view(s) for s in self.store.samples(instance, code, since)]})
        return out

    @staticmethod
    def _sample_view(s: dict[str, Any]) -> dict[str, Any]:
        return {k: s.get(k) for k in ("message_id", "at", "event", "request", "response")}

    def funnel(self, instance: str, window: int, now: float, overview: dict[str, Any]) -> list[dict[str, Any]]:
        """received → invalid (for the whole input) → no mapping → skipped → filtered → delivered /
        rejected / failed / waiting for retry (now) / duplicate, each with its top three reasons.
        Counts are of (event, mapping) outcomes, except "no mapping" (events) and "waiting for
        retry" (jobs on the retry topic now, whatever the window)."""
        by_name = {i["name"]: i for i in overview["instances"]}
        entry = by_name.get(instance, {"statuses": {}, "no_mapping": 0})
        statuses: dict[str, int] = entry["statuses"]
        invalid = by_name.get("", {"statuses": {}})["statuses"].get("invalid", 0)
        reasons = self.store.reasons(instance, window, now, FUNNEL)
        waiting, counted_at = self.store.waiting().get(instance, (0, None))
        steps: list[dict[str, Any]] = [
            {"step": "received", "count": sum(statuses.values()) + entry["no_mapping"], "top_reasons": []},
            {"step": "invalid (all instances)", "count": invalid,
             "top_reasons": self.store.reasons("", window, now, ("invalid",))[:3]},
            {"step": "no mapping", "count": entry["no_mapping"], "top_reasons": []}]
        for status in FUNNEL:
            steps.append({"step": status, "count": statuses.get(status, 0),
                          "top_reasons": [r for r in reasons if r["status"] == status][:3]})
            if status == "failed":
                steps.append({"step": "waiting for retry", "count": waiting, "counted_at": counted_at,
                              "top_reasons": []})
        return steps

    def view(self, window: int) -> dict[str, Any]:
        now = time.time()
        overview = self.store.overview(window, now)
        destinations = {i.name: i.destination.title for i in self.config.instances}
        instances = [{"name": n, "destination": destinations[n], "funnel": self.funnel(n, window, now, overview),
                      "trend": self.store.trend(n, window, now), "errors": self.errors(n, window, now)}
                     for n in self.names()]
        label = next((label for w, label in WINDOWS if w == window), f"{window} s")
        return {"window": window, "window_label": label, "now": now, "overview": overview, "instances": instances,
                "read": self.reader.read if self.reader else 0, "tests": self.store.tests()}

