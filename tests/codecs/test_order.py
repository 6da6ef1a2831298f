"""Per-user order (pure): who waits, which of a take's jobs may go, rounds that keep a user's jobs in
one request, the fall-back to unordered."""

from __future__ import annotations

import pytest

from pushstream.codecs.config import ConfigError, load_config
from pushstream.codecs.order import UserOrder, next_round, place, user_queues
from pushstream.codecs.records import Job

CONFIG = """
[[destinations]]
name = "pw"
type = "pushwoosh"
presets = false
ordering = "per_user"
settings = { pushwooshAPIKey = "k", pushwooshAppCode = "A" }

[[destinations.mappings]]
name = "batched"
action = "trackEvent"
subscribe = 'type = "track"'
mapping = { external_id = { "@path" = "$.userId" }, name = { "@path" = "$.event" }, timestamp = { "@path" = "$.timestamp" } }
enable_batching = true
batch_size = 3

[[destinations.mappings]]
name = "single"
action = "updateUserProfile"
subscribe = 'type = "identify"'
mapping = { external_id = { "@path" = "$.userId" } }
"""


def _job(user: str | None, offset: int, mapping: str = "batched") -> Job:
    return Job(message_id=f"m{offset}", key=user, instance="pw", mapping=mapping,
               action="trackEvent" if mapping == "batched" else "updateUserProfile", payload={},
               batched=mapping == "batched", topic="in", partition=0, offset=offset, received_at=0.0)


def test_the_config_names_the_ordering_and_refuses_an_unknown_one() -> None:
    assert load_config(CONFIG, {}).instances[0].ordering == "per_user"
    with pytest.raises(ConfigError, match=r"destinations\[0\] \(pw\)\.ordering: Invalid enum value 'by_user'"):
        load_config(CONFIG.replace('"per_user"', '"by_user"'), {})


def test_a_user_waits_while_it_has_records_on_the_retry_topic() -> None:
    order = UserOrder()
    head = _job("u", 1)
    assert not order.waits(0, "u")
    order.wrote(0, head)
    assert order.waits(0, "u") and not order.waits(1, "u") and not order.waits(0, "v")
    order.done_with(0, head)
    assert not order.waits(0, "u")


def test_a_job_may_go_only_when_no_earlier_record_of_its_user_is_elsewhere() -> None:
    order = UserOrder()
    jobs = [_job("u", n) for n in (1, 2, 3, 4)]
    for job in jobs:
        order.wrote(0, job)
    assert order.sendable(0, "u", jobs) == 4  # the whole line is in the take
    assert order.sendable(0, "u", jobs[2:]) == 0  # 1 and 2 are still out there
    order.done_with(0, jobs[0])
    assert order.sendable(0, "u", jobs[1:3]) == 2  # 4 comes later: 2 and 3 may go
    order.wrote(0, jobs[1])  # a copy of 2 (read twice after a crash) does not hold 2 back
    assert order.sendable(0, "u", [jobs[1], jobs[2]]) == 1


def test_rounds_keep_a_users_run_in_one_request_and_single_jobs_one_per_round() -> None:
    instance = load_config(CONFIG, {}).instances[0]
    order = UserOrder()
    pairs = [(_job("a", 1), 0), (_job("a", 2), 0), (_job("b", 3), 0), (_job("a", 4, "single"), 0),
             (_job("a", 5), 0), (_job("b", 6), 0), (_job(None, 7), 0)]
    queues, free = user_queues(pairs, lambda p: p[0], order)
    assert [p[0].offset for p in free] == [7]
    rounds = []
    while queues:
        rounds.append([p[0].offset for p in next_round(instance, queues, lambda p: p[0])])
    # batch_size 3: a's run of 1, 2 and b's 3, 6 would make 4 batched jobs; b's run is cut at the
    # request boundary (3 joins a's request, 6 waits), so no user's jobs span two requests
    assert rounds == [[1, 2, 3], [4, 6], [5]]


def test_a_hot_user_falls_back_to_unordered_with_one_warning_until_it_drains() -> None:
    order = UserOrder(max_waiting=3)
    jobs = [_job("hot", n) for n in range(5)]
    warnings = [order.wrote(0, j) for j in jobs]
    assert [w is not None for w in warnings] == [False, False, False, True, False]
    assert not order.ordered("hot") and not order.waits(0, "hot")
    for job in jobs:
        order.done_with(0, job)
    assert order.ordered("hot")


def test_a_user_whose_earliest_record_never_comes_round_falls_back() -> None:
    order = UserOrder()
    lost, later = _job("u", 1), _job("u", 2)
    order.wrote(0, lost)  # counted, but (a bug) never on the topic
    order.wrote(0, later)
    warnings = [order.passed("u", 1, moved=False) for _ in range(20)]
    assert sum(w is not None for w in warnings) == 1 and not order.ordered("u")


def test_forgetting_and_loading_partitions() -> None:
    order = UserOrder()
    order.wrote(0, _job("u", 1))
    order.wrote(1, _job("v", 2))
    order.keep({1})
    assert not order.waits(0, "u") and order.waits(1, "v")
    order.load(0, {"u": [place(_job("u", 9)), place(_job("u", 3))], "w": []})
    assert order.waits(0, "u") and not order.waits(0, "w")
    assert order.sendable(0, "u", [_job("u", 9)]) == 0 and order.sendable(0, "u", [_job("u", 3)]) == 1


HOOKS = """
[[destinations]]
name = "hook"
type = "webhook"
ordering = "per_user"
settings = {}

[[destinations.mappings]]
name = "batched"
action = "send"
subscribe = 'type = "track"'
enable_batching = true
batch_size = 2
mapping = { url = { "@template" = "https://hooks.example.com/{{properties.shop}}" } }
"""


def test_a_users_run_stops_where_its_next_job_goes_to_another_request_group() -> None:
    """A webhook's batches are grouped by URL (and method, headers): a user's next job for another
    URL travels in another request, so it waits for the next round."""
    instance = load_config(HOOKS, {}).instances[0]

    def job(user: str, offset: int, shop: str) -> Job:
        return Job(message_id=f"m{offset}", key=user, instance="hook", mapping="batched", action="send",
                   payload={"url": f"https://hooks.example.com/{shop}", "method": "POST"}, batched=True,
                   topic="in", partition=0, offset=offset, received_at=0.0)

    pairs = [(job("a", 1, "x"), 0), (job("a", 2, "y"), 0), (job("b", 3, "y"), 0), (job("b", 4, "y"), 0),
             (job("b", 5, "y"), 0), (job("a", 6, "x"), 0)]
    queues, _ = user_queues(pairs, lambda p: p[0], UserOrder())
    rounds = []
    while queues:
        rounds.append([p[0].offset for p in next_round(instance, queues, lambda p: p[0])])
    # round 1: a's 1 (group x; its 2 is group y), b's 3 and 4 (group y fills its request of 2)
    assert rounds == [[1, 3, 4], [2, 5], [6]]
