"""The event tester's pure half: what one event makes for one instance, as people read it.

`pushstream preview`, `pushstream check --send-test` and the console's tester all show requests
through `show_requests`, so what is shown is what the worker would send (same router, same
planner, same JSON writer); only the credentials are masked.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .config import Config, Instance
from .js import UNDEFINED, js_json_bytes
from .plan import PlannedRequest, plan_requests, request_url, shown_headers
from .records import Job, Outcome
from .route import route_record

__all__ = ["TesterRun", "builtin_events", "plan_test", "show_request"]

TEST_TOPIC = "pushstream-test"


@dataclass
class TesterRun:
    """One event routed for one instance: its messageId, the requests it makes, and what else
    happened to it there (filtered, a mapping's field refused, no mapping fired)."""

    message_id: str | None
    plans: list[PlannedRequest] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    invalid: str | None = None


def builtin_events(now: float | None = None) -> list[dict[str, Any]]:
    """The test events `check --send-test` tries in turn when given none: a track, then an identify."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))
    base = {"userId": "pushstream-test-user", "anonymousId": "pushstream-test-anon", "timestamp": stamp,
            "context": {"device": {"id": "pushstream-test-device", "type": "ios"}, "traits": {}}}
    tag = uuid.uuid4().hex[:12]
    return [
        {**base, "type": "track", "event": "Pushstream Test Event", "messageId": f"pushstream-test-{tag}-t",
         "properties": {"source": "pushstream check --send-test"}},
        {**base, "type": "identify", "messageId": f"pushstream-test-{tag}-i",
         "traits": {"pushstream_test": True}},
    ]


def plan_test(config: Config, instance: Instance, raw: bytes, now: float | None = None) -> TesterRun:
    """Route `raw` and plan the requests it makes for `instance` (no I/O)."""
    routed = route_record(raw, TEST_TOPIC, 0, 0, config, time.time() if now is None else now)
    if routed.outcomes and routed.outcomes[0].status == "invalid":
        return TesterRun(routed.outcomes[0].message_id, invalid=routed.outcomes[0].reason)
    jobs: list[Job] = [job for name, job in routed.jobs if name == instance.name]
    outcomes = [o for o in routed.outcomes if o.instance == instance.name]
    ids = [j.message_id for j in jobs] + [o.message_id for o in outcomes]
    plans, _ = plan_requests(instance, jobs)
    return TesterRun(next((i for i in ids if i), None), plans, outcomes)


def show_request(instance: Instance, plan: PlannedRequest) -> dict[str, Any]:
    """A planned request as sent (method, URL and headers with credentials masked, JSON body or
    None for none) and the mappings it carries."""
    request = plan.request
    body = None if request.body is UNDEFINED else msgspec.json.decode(js_json_bytes(request.body))
    return {"method": request.method, "url": request_url(instance, request),
            "headers": shown_headers(instance, request), "body": body,
            "mappings": sorted({f"{j.mapping} ({j.action})" for j in plan.jobs}), "events": len(plan.jobs)}
