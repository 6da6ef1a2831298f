"""Dispatch: instances whose triggers cannot match an event are passed over, and routing with it
is routing that asks every instance."""

from __future__ import annotations

import collections
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushstream.codecs.config import Config, load_config
from pushstream.codecs.dispatch import Dispatch
from pushstream.codecs.route import Routed, route_record

PW = 'type = "pushwoosh"\npresets = false\nsettings = { pushwooshAPIKey = "K", pushwooshAppCode = "APP" }\n'


def _instance(name: str, *subscribes: str, options: str = "") -> str:
    mappings = "".join(f"[[destinations.mappings]]\nname = \"m{n}\"\naction = \"trackEvent\"\nsubscribe = '{s}'\n"
                       f"mapping = {{}}\n" for n, s in enumerate(subscribes))
    return f"[[destinations]]\nname = \"{name}\"\n{PW}{options}{mappings}"


BRANDS = [_instance(f"b{i}", f'type = "track" and properties.brand = "b{i}"') for i in range(5)]
CONFIG = "".join([
    *BRANDS,
    _instance("b0-or-b1-pages", 'type = "page" and properties.brand = "b0"', 'properties.brand = "b1"'),
    _instance("tracks-or-pages", 'type = "track" or type = "page"'),
    _instance("order-or-b4", 'event = "Order" or properties.brand = "b4"'),
    _instance("not-b2", 'type = "track" and properties.brand != "b2"'),
    _instance("filtered-b3", 'properties.brand = "b3" and event = "Order"',
              options="filters = [{ title = \"no brand\", if = 'event = \"Order\"', actions = [\n"
                      '  { type = "drop_properties", fields = { properties = ["brand"] } }] }]\n'),
    _instance("number-3", "properties.brand = 3"),
    "[[destinations]]\nname = \"xp\"\ntype = \"xtremepush\"\nsettings = { url = \"http://xp.test/\", apiKey = \"K\" }\n",
])


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(CONFIG, {})


def _asking_all(config: Config) -> Config:
    unindexed = Dispatch(config.instances)
    unindexed.fields = ()
    everyone = load_config(CONFIG, {})
    object.__setattr__(everyone, "dispatch", unindexed)
    return everyone


def _summary(routed: Routed) -> tuple[Any, ...]:
    return ([(n, msgspec.json.encode(j)) for n, j in routed.jobs], [msgspec.json.encode(o) for o in routed.outcomes],
            collections.Counter(routed.unmatched))


def test_instances_of_one_kind_are_indexed_by_the_field_that_tells_them_apart(config: Config) -> None:
    d = config.dispatch
    assert d.indexed
    picked, passed = d.select({"type": "track", "event": "E", "properties": {"brand": "b3"}})
    assert [i.name for i in picked] == ["b3", "tracks-or-pages", "order-or-b4", "not-b2", "filtered-b3", "number-3",
                                        "xp"]
    assert set(passed) == {"b0", "b1", "b2", "b4", "b0-or-b1-pages"}
    # No brand: no brand instance can match; not a track: nor not-b2 (indexed under `type`).
    picked, passed = d.select({"type": "identify", "traits": {}})
    assert [i.name for i in picked] == ["tracks-or-pages", "order-or-b4", "number-3", "xp"]
    # A brand that is not a string is no brand string: only the instances asked every time.
    assert [i.name for i in d.select({"type": "track", "properties": {"brand": 3}})[0]] == [
        "tracks-or-pages", "order-or-b4", "not-b2", "number-3", "xp"]


def test_an_instance_whose_subscriptions_need_one_field_is_indexed_by_each_string(config: Config) -> None:
    # b0-or-b1-pages: one subscription needs brand "b0", the other brand "b1".
    assert "b0-or-b1-pages" in [i.name for i in config.dispatch.select({"type": "x", "properties": {"brand": "b1"}})[0]]
    assert "b0-or-b1-pages" in config.dispatch.select({"type": "x", "properties": {"brand": "b2"}})[1]


def test_one_or_two_unrelated_instances_are_not_indexed() -> None:
    text = _instance("a", 'type = "track"') + _instance("b", 'event = "X"')
    d = load_config(text, {}).dispatch
    assert not d.indexed
    assert [i.name for i in d.select({"type": "page"})[0]] == ["a", "b"]


EVENTS = st.fixed_dictionaries({
    "type": st.sampled_from(["track", "page", "identify", "screen", "delete"]),
    "messageId": st.sampled_from(["m1", "m2"]),
    "userId": st.sampled_from(["u1", "u2"]),
    "event": st.sampled_from(["Order", "E"]),
    "properties": st.dictionaries(st.just("brand"), st.sampled_from(["b0", "b1", "b2", "b3", "b4", "B1", "", 3, 3.0,
                                                                      None, True, ["b1"], {"b": 1}])),
})


@settings(max_examples=400, deadline=None)
@given(events=st.lists(EVENTS, min_size=1, max_size=5))
def test_routing_with_dispatch_is_routing_that_asks_every_instance(events: list[dict[str, Any]]) -> None:
    config = load_config(CONFIG, {})
    everyone = _asking_all(config)
    for n, event in enumerate(events):
        raw = msgspec.json.encode(event)
        assert _summary(route_record(raw, "in", 0, n, config, 1.0)) == \
            _summary(route_record(raw, "in", 0, n, everyone, 1.0))


def test_answers_are_kept_but_bounded(config: Config) -> None:
    d = Dispatch(config.instances)
    for i in range(10_000):
        d.select({"type": "track", "properties": {"brand": f"x{i}"}})
    assert len(d.answers) == 1  # strings no instance names are one answer
