"""Routing, the pure core of the route agent: one input record -> delivery jobs and outcomes.

For each destination instance whose triggers may match the event (dispatch.py): the event's
`integrations` object (`All`, overridden by any of the destination's names or the instance
name) -> each subscription's trigger -> its mapping -> field validation -> a `Job`, or a
`rejected`/`skipped` outcome. A record that is not a Segment event gives one `invalid`
outcome. Nothing here raises for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from .config import Config, Instance, Subscription
from .fields import PayloadInvalid
from .filters import Dropped
from .js import truthy
from .mapping import MappingRuntimeError
from .records import Job, Outcome
from .spec import Delete, Event, InvalidEvent, decode_event

__all__ = ["DELETE_ACTION", "Routed", "integrations_allow", "route_record"]

DELETE_ACTION = "deleteUser"


@dataclass(slots=True)
class Routed:
    """What one input record produced: jobs per instance name, and outcomes."""

    jobs: list[tuple[str, Job]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    #: Instances none of whose mappings took the event (no outcome; the console counts them).
    unmatched: list[str] = field(default_factory=list)


def integrations_allow(integrations: dict[str, Any] | None, keys: tuple[str, ...]) -> bool:
    """Segment's rule: a destination-specific key supersedes `All` (default true); any truthy value enables."""
    if not integrations or type(integrations) is not dict:
        return True  # Segment's filter reads an object; anything else turns nothing off
    for key in keys:
        if key in integrations:
            return truthy(integrations[key])
    return integrations.get("All", True) is not False


def route_record(raw: bytes, topic: str, partition: int, offset: int, config: Config, now: float) -> Routed:
    """Decode and route one record for every instance in `config`."""
    try:
        event = decode_event(raw, config.pipeline.max_event_bytes)
    except InvalidEvent as exc:
        return Routed(outcomes=[Outcome(message_id=exc.message_id, status="invalid", error_code="INVALID_EVENT",
                                        reason=str(exc), at=now, topic=topic, partition=partition, offset=offset)])
    coords: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
    derived = not event.message_id
    if derived:  # as Segment assigns one; stable across re-reads, so dedup still absorbs redeliveries
        event = event.with_message_id(derived_message_id(topic, partition, offset))
    routed = Routed()
    embedded = msgspec.Raw(raw)
    if isinstance(event.header, Delete):
        instances = config.instances
    else:  # the instances whose triggers cannot match it are unmatched, unasked
        instances, passed = config.dispatch.select(event.tree)
        routed.unmatched.extend(passed)
    for instance in instances:
        _route_instance(event, embedded, instance, coords, now, routed, derived)
    return routed


def derived_message_id(topic: str, partition: int, offset: int) -> str:
    """The messageId of an event that has none: its place in Kafka, which a re-read keeps."""
    return f"pushstream:{topic}:{partition}:{offset}"


def _route_instance(event: Event, embedded: msgspec.Raw, instance: Instance, coords: dict[str, Any],
                    now: float, routed: Routed, derived: bool) -> None:
    header, tree = event.header, event.tree
    message_id = event.message_id
    if isinstance(header, Delete):
        if instance.destination.delete_user is None:  # as Segment: a destination without deletions gets none
            routed.unmatched.append(instance.name)
            return
        payload = {k: v for k, v in (("userId", header.user_id), ("anonymousId", header.anonymous_id)) if v}
        routed.jobs.append((instance.name, Job(message_id=message_id, key=event.key, instance=instance.name,
                                                mapping="user deletion", action=DELETE_ACTION, payload=payload,
                                                received_at=now, event=embedded, message_id_derived=derived,
                                                **coords)))
        return
    matched = [s for s in instance.subscriptions if s.trigger.matches(tree)]
    if not matched:
        routed.unmatched.append(instance.name)
        return
    if not integrations_allow(header.integrations, instance.integration_keys):
        routed.outcomes += [Outcome(status="skipped", destination=instance.destination.slug,
                                    error_code="INTEGRATIONS_DISABLED",
                                    reason="the event's integrations object turns this destination off",
                                    at=now, **_names(message_id, instance, sub, derived), **coords) for sub in matched]
        return
    if instance.filters.count:  # most instances have none: no result object per event for them
        filtered = instance.filters.apply(tree, message_id)
        if isinstance(filtered, Dropped):
            routed.outcomes.append(Outcome(message_id=message_id, status="filtered", instance=instance.name,
                                           destination=instance.destination.slug, error_code="FILTERED",
                                           reason=filtered.reason, at=now, message_id_derived=derived, **coords))
            return
        if filtered.tree is not tree:  # the mappings read the event as the filters left it
            tree = filtered.tree
            matched = [s for s in instance.subscriptions if s.trigger.matches(tree)]
            if not matched:
                routed.unmatched.append(instance.name)
    for sub in matched:
        try:
            payload = sub.validate(sub.mapping(tree))
        except (MappingRuntimeError, PayloadInvalid) as exc:
            routed.outcomes.append(Outcome(status="rejected", destination=instance.destination.slug,
                                           error_code="PAYLOAD_VALIDATION_FAILED", reason=str(exc),
                                           at=now, **_names(message_id, instance, sub, derived), **coords))
            continue
        routed.jobs.append((instance.name, Job(
            message_id=message_id, instance=instance.name, action=sub.action.key, mapping=sub.name,
            payload=payload, batched=sub.batched, received_at=now, key=event.key, event=embedded,
            message_id_derived=derived,
            topic=coords["topic"], partition=coords["partition"], offset=coords["offset"])))


def _names(message_id: str, instance: Instance, sub: Subscription, derived: bool) -> dict[str, Any]:
    return {"message_id": message_id, "instance": instance.name, "action": sub.action.key, "mapping": sub.name,
            "message_id_derived": derived}
