"""Destination filters (pure): drop, sample, drop and allow properties, Segment's order of kinds,
config mistakes with their location, and what routing makes of them."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from pushstream.codecs.config import ConfigError, load_config
from pushstream.codecs.filters import sampled_in
from pushstream.codecs.route import route_record

PW = 'name = "pw"\ntype = "pushwoosh"\nsettings = { pushwooshAPIKey = "K", pushwooshAppCode = "A" }\n'


def _config(filters: str) -> Any:
    return load_config(f"[[destinations]]\n{PW}{filters}", {})


def _route(config: Any, event: dict[str, Any]) -> Any:
    return route_record(msgspec.json.encode(event), "t", 0, 1, config, time.time())


TRACK = {"type": "track", "messageId": "m1", "userId": "u1", "event": "Debug",
         "properties": {"plan": "pro", "secret": "s", "n": 1}, "context": {"ip": "1.2.3.4", "device": {"id": "d"}},
         "timestamp": "2026-01-01T00:00:00Z"}


def test_a_drop_filter_gives_one_filtered_outcome_naming_it() -> None:
    config = _config('[[destinations.filters]]\ntitle = "No debug events"\nif = \'event = "Debug"\'\n'
                     'actions = [{ type = "drop" }]\n')
    routed = _route(config, TRACK)
    assert not routed.jobs
    (o,) = routed.outcomes
    assert (o.status, o.instance, o.error_code, o.mapping) == ("filtered", "pw", "FILTERED", None)
    assert o.reason == "filter 'No debug events' dropped the event"
    assert len(_route(config, {**TRACK, "event": "Signed Up"}).jobs) == 1  # the condition decides


def test_properties_are_dropped_or_allowed_exactly_before_the_mappings_read_them() -> None:
    config = _config('[[destinations.filters]]\ntitle = "No secrets"\nif = \'type = "track"\'\n'
                     'actions = [{ type = "drop_properties", fields = { properties = ["secret"], context = ["ip"] } }]\n'
                     '[[destinations.filters]]\ntitle = "Keep only plan"\nif = \'type = "track"\'\n'
                     'actions = [{ type = "allow_properties", fields = { properties = ["plan"] } }]\n')
    (job,) = [j for _, j in _route(config, TRACK).jobs]
    assert job.payload["properties"] == {"plan": "pro"}
    filters = config.instances[0].filters
    kept = filters.apply(TRACK, "m1")
    assert kept.tree["context"] == {"device": {"id": "d"}} and TRACK["context"]["ip"] == "1.2.3.4"  # a copy
    assert kept.changes == ["filter 'No secrets' removed properties: secret; removed context: ip",
                            "filter 'Keep only plan' kept only properties: plan"]


def test_kinds_apply_in_segments_order_whatever_the_config_order() -> None:
    """Segment: sample, then drop, then drop properties, then allow properties."""
    config = _config('[[destinations.filters]]\ntitle = "Allow"\nif = \'type = "track"\'\n'
                     'actions = [{ type = "allow_properties", fields = { properties = ["plan"] } }]\n'
                     '[[destinations.filters]]\ntitle = "Drop by secret"\nif = \'properties.secret = "s"\'\n'
                     'actions = [{ type = "drop" }]\n')
    (o,) = _route(config, TRACK).outcomes  # the drop reads the event as it arrived, before the allowlist
    assert o.status == "filtered" and "Drop by secret" in (o.reason or "")


def test_sampling_keeps_about_its_percentage_and_the_same_messages_every_time() -> None:
    ids = [f"msg-{i}" for i in range(20_000)]
    kept = [m for m in ids if sampled_in(m, 0.25)]
    assert 0.23 < len(kept) / len(ids) < 0.27
    assert kept == [m for m in ids if sampled_in(m, 0.25)]
    config = _config('[[destinations.filters]]\ntitle = "Quarter"\nif = \'type = "track"\'\n'
                     'actions = [{ type = "sample", percent = 0.25 }]\n')
    outcomes = [_route(config, {**TRACK, "messageId": m}) for m in ids[:400]]
    assert sum(1 for r in outcomes if r.jobs) == sum(1 for m in ids[:400] if sampled_in(m, 0.25))
    sampled_out = next(r.outcomes[0] for r in outcomes if not r.jobs)
    assert sampled_out.reason == "filter 'Quarter' sampled the event out (it keeps 25% of the events it selects)"


def test_an_event_no_mapping_selects_gets_no_filtered_outcome() -> None:
    config = _config('[[destinations.filters]]\ntitle = "All"\nif = \'type = "group"\'\nactions = [{ type = "drop" }]\n')
    assert _route(config, {"type": "group", "messageId": "g", "userId": "u", "groupId": "o"}).outcomes == []


@pytest.mark.parametrize(("filters", "mistake"), [
    ('[[destinations.filters]]\ntitle = "t"\nif = \'event = "x" AND type = "y"\'\nactions = [{ type = "drop" }]\n',
     "destinations[0] (pw).filters[0] (t).if: column 13: use lowercase `and`"),
    ('[[destinations.filters]]\ntitle = "t"\nif = \'type = "x"\'\nactions = [{ type = "explode" }]\n',
     "destinations[0] (pw).filters[0].actions[0].type: Invalid value 'explode'"),
    ('[[destinations.filters]]\ntitle = "t"\nif = \'type = "x"\'\nactions = [{ type = "sample", percent = 1.5 }]\n',
     "destinations[0] (pw).filters[0].actions[0].percent: Expected `float` <= 1.0"),
    ('[[destinations.filters]]\ntitle = "t"\nif = \'type = "x"\'\nactions = []\n',
     "destinations[0] (pw).filters[0] (t).actions: give at least one action"),
    ('[[destinations.filters]]\ntitle = "t"\nif = \'type = "x"\'\nactions = [{ type = "drop_properties", fields = {} }]\n',
     "destinations[0] (pw).filters[0] (t).actions[0].fields: name the keys"),
    ("".join(f'[[destinations.filters]]\ntitle = "t{i}"\nif = \'type = "x"\'\nactions = [{{ type = "drop" }}]\n'
             for i in range(11)), "destinations[0] (pw).filters: at most 10 filters per destination"),
])
def test_filter_mistakes_are_refused_with_their_location(filters: str, mistake: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(filters)
    assert mistake in str(info.value), str(info.value)
