"""Turn a batch of delivery jobs into the HTTP requests that carry them (pure).

Batched subscriptions get one request per `batch_size` jobs; the rest one request per job.
Jobs whose subscription is no longer configured come back in `orphans`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .config import Instance
from .destinations import HttpRequest
from .records import Job
from .route import DELETE_ACTION

__all__ = ["PlannedRequest", "plan_requests", "request_url", "shown_headers"]


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    request: HttpRequest
    jobs: tuple[Job, ...]
    batched: bool


def plan_requests(instance: Instance, jobs: Sequence[Job]) -> tuple[list[PlannedRequest], list[Job]]:
    """Group `jobs` into requests; returns (requests in first-seen order, orphaned jobs)."""
    plans: list[PlannedRequest] = []
    orphans: list[Job] = []
    buckets: dict[str, list[Job]] = {}
    settings = instance.settings
    for job in jobs:
        if job.action == DELETE_ACTION:
            request = instance.destination.delete_user(settings, job.payload.get("userId"),
                                                       job.payload.get("anonymousId"))
            plans.append(PlannedRequest(request, (job,), False))
            continue
        sub = instance.subscription(job.mapping)
        if sub is None or sub.action.key != job.action:
            orphans.append(job)
        elif job.batched and sub.batched:
            buckets.setdefault(job.mapping, []).append(job)
        else:
            plans.append(PlannedRequest(sub.action.build([job.payload], settings, False), (job,), False))
    for name, bucket in buckets.items():
        sub = instance.subscription(name)
        assert sub is not None
        for start in range(0, len(bucket), sub.batch_size):
            chunk = tuple(bucket[start:start + sub.batch_size])
            request = sub.action.build([j.payload for j in chunk], settings, True)
            plans.append(PlannedRequest(request, chunk, True))
    return plans, orphans


def shown_headers(instance: Instance) -> dict[str, str]:
    """The headers every request of `instance` carries, with credentials masked (for people to read)."""
    headers = {**instance.destination.auth_headers(instance.settings), "content-type": "application/json"}
    return {k: (v.split(" ", 1)[0] + " ********" if k.lower() == "authorization" else v) for k, v in headers.items()}


def request_url(instance: Instance, request: HttpRequest) -> str:
    """The absolute URL `request` goes to, joined as the HTTP client joins base URL and path."""
    return instance.destination.base_url(instance.settings).rstrip("/") + "/" + request.path.lstrip("/")
