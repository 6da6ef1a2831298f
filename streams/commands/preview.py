"""`pushstream preview` and `check`: what events would cause, whether credentials are accepted, and a
real test event with the raw answer (Segment's Event Tester); no Kafka."""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, TextIO

import msgspec

from pushstream.codecs.config import Config
from pushstream.codecs.errors import AuthError, DeliveryError
from pushstream.codecs.plan import plan_requests
from pushstream.codecs.records import Job
from pushstream.codecs.route import Routed, route_record
from pushstream.codecs.spec import decode_event
from pushstream.codecs.tester import plan_test, show_request
from pushstream.streams.delivery.http import DestinationClient

__all__ = ["check_credentials", "preview", "send_test"]

log = logging.getLogger(__name__)


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
        plans, _ = plan_requests(inst, batch)
        for plan in plans:
            out.write(f"\n{name}: ")
            _write_request(show_request(inst, plan), out)


def _write_request(shown: dict[str, Any], out: TextIO) -> None:
    out.write(f"{shown['method']} {shown['url']}  ({shown['events']} event(s))\n")
    for k, v in shown["headers"].items():
        out.write(f"  {k}: {v}\n")
    out.write(msgspec.json.format(msgspec.json.encode(shown["body"]), indent=2).decode() + "\n")


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
        return False, (f"{inst.destination.title} cannot be checked without sending data: its API has no request "
                       f"that only checks the key (Segment's definition has no authentication test either); "
                       f"`pushstream check {name} --send-test` sends one test event")
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



RESPONSE_LIMIT = 4000


async def send_test(config: Config, name: str, events: list[bytes], out: TextIO) -> bool:
    """Send the first of `events` that makes a request for instance `name`, printing each request
    (credentials masked) and the destination's raw answer; True when every answer is a 2xx."""
    inst = config.instance(name)
    run = None
    for raw in events:
        run = plan_test(config, inst, raw)
        if run.invalid is not None:
            out.write(f"{name}: the test event is invalid: {run.invalid}\n")
            return False
        if run.plans:
            break
    assert run is not None
    out.write(f"{name}: test event messageId={run.message_id}\n")
    for o in run.outcomes:
        out.write(f"  {o.mapping or name}: {o.status}: {o.reason}\n")
    if not run.plans:
        out.write(f"{name}: no request to send: no mapping of this instance took the event\n")
        return False
    log.info("sending test event %s to %s: %d request(s)", run.message_id, name, len(run.plans))
    client = DestinationClient(inst, config.pipeline.request_timeout)
    ok = True
    try:
        for plan in run.plans:
            shown = show_request(inst, plan)
            out.write(f"\n-> {', '.join(shown['mappings'])}\n")
            _write_request(shown, out)
            try:
                response = await client.exchange(plan.request)
            except DeliveryError as exc:
                out.write(f"<- no answer: {exc.reason}\n")
                ok = False
                continue
            ok = ok and 200 <= response.status < 300
            text = response.text if len(response.text) <= RESPONSE_LIMIT else (
                response.text[:RESPONSE_LIMIT] + f"... ({len(response.text)} characters)")
            out.write(f"<- {response.status}\n{text}\n")
    finally:
        await client.aclose()
    return ok
