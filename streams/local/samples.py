"""Deterministic, realistic Segment events for the demo, tests and benchmarks."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["sample_events"]

_EVENTS = ["Order Completed", "Product Viewed", "Product Added", "Checkout Started", "Signed Up"]
_PAGES = ["Home", "Pricing", "Docs", "Checkout"]
_DEVICES = [("ios", "iPhone15,2"), ("android", "Pixel 8"), ("ios", "iPad13,1")]


def sample_events(n: int, seed: int = 7, prefix: str = "demo", mix: str = "mixed") -> list[dict[str, Any]]:
    """`n` events; `mix="mixed"` is mostly track with some identify/page/screen/group/alias, `"track"` only track."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        user = f"{prefix}-user-{rng.randrange(max(1, n // 10))}"
        kind = "track" if mix == "track" else rng.choices(
            ["track", "identify", "page", "screen", "group", "alias"], [70, 10, 8, 6, 3, 3])[0]
        platform, model = rng.choice(_DEVICES)
        ev: dict[str, Any] = {
            "type": kind, "messageId": f"{prefix}-{i:07d}", "userId": user, "anonymousId": f"anon-{user}",
            "timestamp": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(7 * i) % 60:02d}.000Z",
            "context": {"device": {"id": f"dev-{user}", "type": platform, "model": model},
                        "os": {"version": "17.1"}, "locale": "en-US", "timezone": "Europe/Berlin",
                        "app": {"version": "4.2.0"}, "traits": {"email": f"{user}@example.com"},
                        "library": {"name": "analytics.js", "version": "2.11.1"}},
        }
        if kind == "track":
            ev["event"] = rng.choice(_EVENTS)
            ev["properties"] = {"revenue": round(rng.uniform(5, 500), 2), "currency": "EUR",
                                "sku": f"SKU-{rng.randrange(1000)}", "quantity": rng.randrange(1, 5)}
        elif kind == "identify":
            ev["traits"] = {"email": f"{user}@example.com", "plan": rng.choice(["free", "pro"]),
                            "name": f"User {i}", "vip_audience": rng.random() < 0.2}
        elif kind in ("page", "screen"):
            ev["name"] = rng.choice(_PAGES)
            ev["properties"] = {"path": f"/{ev['name'].lower()}", "referrer": "https://example.com"}
        elif kind == "group":
            ev["groupId"] = f"org-{rng.randrange(20)}"
            ev["traits"] = {"name": "Acme"}
        else:
            ev["previousId"] = f"anon-{user}"
        out.append(ev)
    return out
