"""The console's store and web app in-process: counts over windows, a token, bad requests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from pushstream.codecs.config import load_config
from pushstream.codecs.console import Tally
from pushstream.codecs.records import Outcome
from pushstream.streams.console.store import Store
from pushstream.streams.console.web import ConsoleApp
from tests.support import serve

CONFIG = """
[[destinations]]
name = "pw"
type = "pushwoosh"
settings = { pushwooshAPIKey = "pw-secret", pushwooshAppCode = "A", baseUrl = "http://127.0.0.1:1" }
[console]
listen = "0.0.0.0:8089"
token = "${TOKEN}"
"""


def _store(path: Path, now: float) -> Store:
    store = Store(path)
    tally = Tally()
    for age, status in ((30, "delivered"), (30, "delivered"), (900, "delivered"), (7200, "rejected"),
                        (13 * 86_400, "failed")):
        tally.add(Outcome(message_id="m", status=status, instance="pw", destination="Pushwoosh", action="trackEvent",
                          mapping="Track Events", latency_ms=40.0, at=now - age, error_code="X", reason="r"))
    store.add(tally, [], {("t", 0): 5})
    return store


def test_windows_sum_minutes_and_a_restart_keeps_counts_and_offsets(tmp_path: Path) -> None:
    now = time.time()
    _store(tmp_path / "c.db", now).close()
    store = Store(tmp_path / "c.db")  # reopened: what a restarted console sees
    statuses = {w: store.overview(w, now)["instances"][0]["statuses"] for w in (600, 3600, 86_400, 14 * 86_400)}
    assert statuses == {600: {"delivered": 2}, 3600: {"delivered": 3}, 86_400: {"delivered": 3, "rejected": 1},
                        14 * 86_400: {"delivered": 3, "rejected": 1, "failed": 1}}
    assert store.offsets() == {("t", 0): 5}
    assert store.overview(3600, now)["instances"][0]["latency_ms"]["p50"] is not None
    assert sorted(r["status"] for r in store.reasons("pw", 14 * 86_400, now, ("rejected", "failed"))) == [
        "failed", "rejected"]


def test_off_localhost_every_route_but_healthz_wants_the_token(tmp_path: Path) -> None:
    config = load_config(CONFIG, {"TOKEN": "tok-123"}, console=True)
    app = ConsoleApp(config, _store(tmp_path / "c.db", time.time()))

    async def main() -> None:
        async with serve(app.app) as url, httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/healthz")).status_code == 200
            for path in ("/", "/api/overview", "/api/errors?instance=pw"):
                assert (await http.get(path)).status_code == 401
            assert (await http.get("/api/overview", headers={"Authorization": "Bearer wrong"})).status_code == 401
            ok = await http.get("/api/overview?window=600", headers={"Authorization": "Bearer tok-123"})
            assert ok.status_code == 200 and ok.json()["instances"][0]["statuses"] == {"delivered": 2}
            page = await http.get("/?token=tok-123")  # a browser: once in the URL, then the cookie
            assert page.status_code == 200 and "pushstream console" in page.text
            assert (await http.get("/api/overview")).status_code == 200
            assert "pw-secret" not in page.text and "tok-123" not in page.text
            bad = await http.get("/api/overview?window=60")
            assert bad.status_code == 400 and "between 600 and 1209600" in bad.json()["error"]
            assert (await http.get("/api/errors?instance=nope")).json()["error"].startswith("no instance 'nope'")
            test = await http.post("/api/test", content=b"{")
            assert test.status_code == 400 and test.json()["error"].startswith("body is not JSON")
            invalid = await http.post("/api/test", json={"instance": "pw", "event": {"type": 3}})
            assert invalid.status_code == 400 and invalid.json()["error"].startswith("the event is invalid")

    asyncio.run(main())


def test_whole_hours_and_ragged_minutes_add_up_to_the_exact_window(tmp_path: Path) -> None:
    """Windows read hourly rows for whole hours and minute rows at the ends: the counts equal
    counting the outcomes themselves, for every window and trend."""
    import random

    rng = random.Random(9)
    now = 1_800_000_000.0 + 1234.5
    ats = [now - rng.random() * 15 * 86_400 for _ in range(5_000)]
    store = Store(tmp_path / "h.db")
    for chunk in (ats[:2_000], ats[2_000:]):  # two batches: upserts add up
        tally = Tally()
        for at in chunk:
            tally.add(Outcome(message_id="m", status="delivered", instance="pw", latency_ms=5.0, at=at))
        store.add(tally, [], {})
    for window in (600, 3_599, 3_600, 7_300, 86_400, 5 * 86_400 + 77, 14 * 86_400):
        since = (int(now // 60) - (window + 59) // 60 + 1) * 60
        exact = sum(1 for at in ats if at >= since)
        assert store.overview(window, now)["instances"][0]["statuses"] == {"delivered": exact}, window
        trend = store.trend("pw", window, now)
        assert len(trend) <= 61 and sum(c.get("delivered", 0) for _, c in trend) == sum(
            1 for at in ats if at >= trend[0][0] * 60)
