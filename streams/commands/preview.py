"""`pushstream preview` and `check`: what events would cause, and whether credentials are accepted (no Kafka)."""

from __future__ import annotations

import collections
import time
from typing import TextIO

import msgspec

from pushstream.codecs.config import Config
from pushstream.codecs.errors import AuthError, DeliveryError
from pushstream.codecs.js import js_json_bytes
from pushstream.codecs.plan import plan_requests
from pushstream.codecs.records import Job
from pushstream.codecs.route import Routed, route_record
from pushstream.codecs.spec import decode_event
from pushstream.streams.delivery.http import DestinationClient

__all__ = ["check_credentials", "preview"]


def _mask(headers: dict[str, str]) -> dict[str, str]:
    return {k: (v.split(" ", 1)[0] + " ********" if k.lower() == "authorization" else v) for k, v in headers.items()}


def preview(config: Config, lines: list[bytes], out: TextIO) -> None:
    """Print, per event and instance, which mappings fired and the exact requests that would be sent."""
    jobs: dict[str, list[Job]] = collections.defaultdict(list)
    now = time.time()
    for i, line in enumerate(lines):
        routed = route_record(line, "preview", 0, i, config, now)
        out.write(f"event #{i}: ")
        if routed.outcomes and routed.outcomes[0].status == "invalid":
            out.write(f"invalid: {routed.outcomes[0].reason}\n")
            continue
        ids = {o.message_id for o in routed.outcomes} | {j.message_id for _, j in routed.jobs}
        out.write(f"messageId={next(iter(ids), '-')}\n")
        for name, change in _filter_changes(config, line, routed):
            out.write(f"  {name}: {change}\n")
        for name, job in routed.jobs:
            out.write(f"  {name} / {job.mapping} ({job.action}): {'batched' if job.batched else 'sent alone'}\n")
            jobs[name].append(job)
        for o in routed.outcomes:
            where = f"{o.instance} / {o.mapping} ({o.action})" if o.mapping else f"{o.instance}"
            out.write(f"  {where}: {o.status}: {o.reason}\n")
        if not routed.jobs and not routed.outcomes:
            out.write("  no mapping fired\n")
    for name, batch in jobs.items():
        inst = config.instance(name)
        headers = _mask({**inst.destination.auth_headers(inst.settings), "content-type": "application/json"})
        plans, _ = plan_requests(inst, batch)
        for plan in plans:
            url = inst.destination.base_url(inst.settings) + plan.request.path
            out.write(f"\n{name}: {plan.request.method} {url}  ({len(plan.jobs)} event(s))\n")
            for k, v in headers.items():
                out.write(f"  {k}: {v}\n")
            out.write(msgspec.json.format(js_json_bytes(plan.request.body), indent=2).decode() + "\n")


def _filter_changes(config: Config, line: bytes, routed: Routed) -> list[tuple[str, str]]:
    """What the destination filters changed in the event, per instance it goes to."""
    names = {name for name, _ in routed.jobs}
    if not any(config.instance(n).filters for n in names):
        return []
    event = decode_event(line, config.pipeline.max_event_bytes)
    return [(n, change) for n in sorted(names)
            for change in getattr(config.instance(n).filters.apply(event.tree, event.message_id), "changes", [])]


async def check_credentials(config: Config, name: str) -> tuple[bool, str]:
    """Call the instance's credential check (Pushwoosh ping); returns (accepted, explanation)."""
    inst = config.instance(name)
    if inst.destination.ping is None:
        return False, f"{inst.destination.title} has no credential check endpoint; send a test event instead"
    client = DestinationClient(inst, config.pipeline.request_timeout)
    try:
        response = await client.send(inst.destination.ping(inst.settings))
        return True, f"credentials accepted ({response.status})"
    except AuthError as exc:
        return False, f"credentials rejected: {exc.reason}"
    except DeliveryError as exc:
        return False, f"could not check: {exc.reason}"
    finally:
        await client.aclose()


