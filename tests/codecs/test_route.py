"""Routing: integrations object, rejections, deletions, and no exception for any input."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushstream.codecs.config import Config, load_config
from pushstream.codecs.plan import plan_requests
from pushstream.codecs.route import integrations_allow, route_record

CONFIG = """
[[destinations]]
name = "pw"
type = "pushwoosh"
settings = { pushwooshAPIKey = "K", pushwooshAppCode = "APP" }

[[destinations]]
name = "xp"
type = "xtremepush"
settings = { url = "http://xp.test/", apiKey = "K2" }
"""


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(CONFIG, {})


def _route(config: Config, event: dict[str, Any]) -> Any:
    return route_record(msgspec.json.encode(event), "in", 0, 7, config, 1.0)


TRACK = {"type": "track", "messageId": "m1", "userId": "u1", "event": "E", "timestamp": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize(("integrations", "allowed"), [
    (None, True), ({}, True), ({"All": False}, False), ({"All": False, "Pushwoosh": True}, True),
    ({"All": True, "Pushwoosh": False}, False), ({"Pushwoosh (Actions)": False}, False),
    ({"All": False, "pw": {"some": "options"}}, True), ({"All": 0}, True),  # only `false` turns All off
])
def test_integrations_object(integrations: dict[str, Any] | None, allowed: bool) -> None:
    assert integrations_allow(integrations, ("Pushwoosh", "Pushwoosh (Actions)", "pw")) is allowed


def test_disabled_destination_gets_skipped_outcomes(config: Config) -> None:
    routed = _route(config, {**TRACK, "integrations": {"All": True, "Xtremepush (Actions)": False}})
    assert [(n, j.action) for n, j in routed.jobs] == [("pw", "trackEvent")]
    assert [(o.instance, o.action, o.status) for o in routed.outcomes] == [("xp", "track", "skipped")]


def test_invalid_payload_is_rejected_with_segments_message(config: Config) -> None:
    routed = _route(config, {**TRACK, "userId": None, "anonymousId": "a"})
    reasons = {(o.instance, o.status, o.reason) for o in routed.outcomes}
    assert ("pw", "rejected", "The root value is missing the required field 'external_id'.") in reasons
    assert [n for n, _ in routed.jobs] == ["xp"]  # Xtremepush needs no userId


def test_delete_goes_to_every_instance(config: Config) -> None:
    routed = _route(config, {"type": "delete", "messageId": "d1", "userId": "u9"})
    plans = {n: plan_requests(config.instance(n), [j])[0][0].request for n, j in routed.jobs}
    assert plans["pw"].path == "/integration-segment/v1/delete-user" and plans["pw"].body == {"external_id": "u9"}
    assert plans["xp"].path == "/api/integration/segment/delete" and plans["xp"].body == {"userId": "u9"}


def test_alias_and_group_match_no_preset(config: Config) -> None:
    for event in ({"type": "alias", "messageId": "a", "userId": "u", "previousId": "p"},
                  {"type": "group", "messageId": "g", "userId": "u", "groupId": "o"}):
        routed = _route(config, event)
        assert routed.jobs == [] and routed.outcomes == []


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "messageId", "userId", "event", "properties", "traits", "context", "integrations",
                         "timestamp", "name", "anonymousId", "x"]), c, max_size=6),
    max_leaves=20).map(lambda v: msgspec.json.encode(v) if not isinstance(v, float) or v == v else b"1"))
def test_any_input_gives_outcomes_or_jobs_never_an_exception(config: Config, raw: bytes) -> None:
    routed = route_record(raw, "in", 0, 0, config, 0.0)
    assert all(o.status in ("invalid", "rejected", "skipped") for o in routed.outcomes)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({"type": st.sampled_from(["track", "identify", "page", "screen"]),
                              "messageId": st.text(min_size=1, max_size=5)},
                             optional={"userId": st.text(max_size=5), "event": st.text(max_size=5),
                                       "properties": st.dictionaries(st.text(max_size=3), st.integers() | st.text()),
                                       "traits": st.dictionaries(st.text(max_size=3), st.none() | st.text()),
                                       "timestamp": st.text(max_size=12) | st.integers()}))
def test_events_route_and_plan_without_exceptions(config: Config, event: dict[str, Any]) -> None:
    routed = _route(config, event)
    for name, job in routed.jobs:
        plans, orphans = plan_requests(config.instance(name), [job])
        assert len(plans) == 1 and not orphans


@pytest.mark.parametrize("missing", [{"messageId": ""}, {}])
def test_an_event_without_a_message_id_gets_one_from_its_place_in_kafka(config: Config,
                                                                       missing: dict[str, Any]) -> None:
    event = {**{k: v for k, v in TRACK.items() if k != "messageId"}, **missing}
    routed = route_record(msgspec.json.encode(event), "in", 3, 41, config, 1.0)
    again = route_record(msgspec.json.encode(event), "in", 3, 41, config, 2.0)
    other = route_record(msgspec.json.encode(event), "in", 3, 42, config, 1.0)
    ids = {job.message_id for _, job in routed.jobs}
    assert ids == {"pushstream:in:3:41"} and all(job.message_id_derived for _, job in routed.jobs)
    assert {job.message_id for _, job in again.jobs} == ids  # a re-read: the same id, so dedup absorbs it
    assert {job.message_id for _, job in other.jobs} == {"pushstream:in:3:42"}  # another event: another id
    xtremepush = next(job for name, job in routed.jobs if name == "xp")
    assert xtremepush.payload["messageId"] == "pushstream:in:3:41"  # mappings reading $.messageId see it


def test_an_invalid_outcome_keeps_the_message_id_it_could_read(config: Config) -> None:
    (outcome,) = _route(config, {"type": "track", "messageId": "keep-me", "userId": True}).outcomes
    assert outcome.status == "invalid" and outcome.message_id == "keep-me"
    (outcome,) = _route(config, {"type": "teleport", "messageId": "keep-too"}).outcomes
    assert outcome.message_id == "keep-too"
    assert not _route(config, TRACK).jobs[0][1].message_id_derived
