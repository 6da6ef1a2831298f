"""Turn a batch of delivery jobs into the HTTP requests that carry them (pure).

Batched subscriptions get one request per `batch_size` jobs of one group (`batch_bucket`); the
rest one request per job.
Jobs whose subscription is no longer configured come back in `orphans`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from .config import Instance, Subscription
from .destinations import HttpRequest
from .js import UNDEFINED
from .records import Job
from .route import DELETE_ACTION
from .secret import credential_header

_ABSOLUTE = re.compile(r"^https?://", re.IGNORECASE)

__all__ = ["PlannedRequest", "batch_bucket", "endpoint", "plan_requests", "request_url", "shown_headers"]


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    request: HttpRequest
    jobs: tuple[Job, ...]
    batched: bool


def batch_bucket(sub: Subscription, job: Job) -> tuple[Hashable, int]:
    """The request group a batched job travels in, and the most jobs one request of it carries:
    the mapping, or its action's `batch_group` within it (the webhook's url, method and headers)."""
    if sub.action.batch_group is None:
        return job.mapping, sub.batch_size
    group, size = sub.action.batch_group(job.payload)
    return (job.mapping, group), min(size, sub.batch_size) if size else sub.batch_size


def plan_requests(instance: Instance, jobs: Sequence[Job]) -> tuple[list[PlannedRequest], list[Job]]:
    """Group `jobs` into requests; returns (requests in first-seen order, orphaned jobs)."""
    plans: list[PlannedRequest] = []
    orphans: list[Job] = []
    buckets: dict[Hashable, tuple[Subscription, int, list[Job]]] = {}
    settings = instance.settings
    delete_user = instance.destination.delete_user
    for job in jobs:
        if job.action == DELETE_ACTION:
            if delete_user is None:  # written before the destination type changed
                orphans.append(job)
                continue
            request = delete_user(settings, job.payload.get("userId"), job.payload.get("anonymousId"))
            plans.append(PlannedRequest(request, (job,), False))
            continue
        sub = instance.subscription(job.mapping)
        if sub is None or sub.action.key != job.action:
            orphans.append(job)
        elif job.batched and sub.batched:
            key, size = batch_bucket(sub, job)
            buckets.setdefault(key, (sub, size, []))[2].append(job)
        else:
            plans.append(PlannedRequest(sub.action.build([job.payload], settings, False), (job,), False))
    for sub, size, bucket in buckets.values():
        for start in range(0, len(bucket), size):
            chunk = tuple(bucket[start:start + size])
            request = sub.action.build([j.payload for j in chunk], settings, True)
            plans.append(PlannedRequest(request, chunk, True))
    return plans, orphans


def _masked(name: str, value: str) -> str:
    if not credential_header(name):
        return value
    scheme, space, _ = value.partition(" ")
    return f"{scheme} ********" if space and name.lower() == "authorization" else "********"


def shown_headers(instance: Instance, request: HttpRequest) -> dict[str, str]:
    """The headers `request` of `instance` carries, with credentials masked (for people to read)."""
    headers = {**instance.destination.auth_headers(instance.settings), **request.headers}
    if request.body is not UNDEFINED:
        headers["content-type"] = "application/json"
    return {k: _masked(k, v) for k, v in headers.items()}


def endpoint(request: HttpRequest) -> str:
    """What a request is counted under in metrics: its path, or for an absolute URL (a webhook's,
    from the user's events) its scheme and host alone: a path or query may carry a token, and
    every distinct one would be a metric series of its own."""
    if not _ABSOLUTE.match(request.path):
        return request.path
    scheme, _, rest = request.path.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme.lower()}://{authority.rpartition('@')[2].lower()}"


def request_url(instance: Instance, request: HttpRequest) -> str:
    """The absolute URL `request` goes to, joined as the HTTP client joins base URL and path; a
    query parameter that looks like a credential (`?api_key=`) is masked."""
    if _ABSOLUTE.match(request.path):
        url = request.path
    else:
        url = instance.destination.base_url(instance.settings).rstrip("/") + "/" + request.path.lstrip("/")
    base, mark, query = url.partition("?")
    if not mark:
        return url
    params = [(k, "********" if credential_header(k) else v) for k, v in urllib.parse.parse_qsl(query, True)]
    return base + "?" + urllib.parse.urlencode(params, safe="/:@*")
