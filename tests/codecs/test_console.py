"""The console's pure half: folding outcomes, percentiles, suggestions, the sample budget, its config."""

from __future__ import annotations

import random

import pytest

from pushstream.codecs.config import ConfigError, load_config
from pushstream.codecs.console import LATENCY_BOUNDS_MS, Sampler, Tally, is_loopback, percentiles, suggest
from pushstream.codecs.records import Outcome

BASE = """
[[destinations]]
name = "pw"
type = "pushwoosh"
settings = { pushwooshAPIKey = "k", pushwooshAppCode = "A" }
"""


def test_outcomes_fold_per_minute_instance_mapping_and_status() -> None:
    tally = Tally()
    for at, status, reason in ((60.0, "delivered", None), (61.0, "delivered", None), (119.9, "rejected", "bad"),
                               (120.0, "rejected", "bad"), (125.0, "duplicate", None)):
        tally.add(Outcome(message_id="m", status=status, instance="pw", destination="Pushwoosh", action="trackEvent",
                          mapping="Track Events", reason=reason, error_code="BAD_REQUEST" if reason else None,
                          latency_ms=12.0, at=at))
    tally.add(Outcome(message_id=None, status="invalid", reason="not JSON", error_code="INVALID_EVENT", at=61.0))
    assert tally.counts == {(1, "pw", "Pushwoosh", "trackEvent", "Track Events", "delivered"): 2,
                            (1, "pw", "Pushwoosh", "trackEvent", "Track Events", "rejected"): 1,
                            (2, "pw", "Pushwoosh", "trackEvent", "Track Events", "rejected"): 1,
                            (2, "pw", "Pushwoosh", "trackEvent", "Track Events", "duplicate"): 1,
                            (1, "", "", "", "", "invalid"): 1}
    assert tally.reasons[(1, "pw", "rejected", "BAD_REQUEST", "bad")] == [1, 119.9, 119.9]
    assert tally.reasons[(1, "", "invalid", "INVALID_EVENT", "not JSON")] == [1, 61.0, 61.0]
    assert sum(tally.latency.values()) == 4 and tally.records == 6  # a duplicate's latency is not a delivery's


def test_percentiles_stay_within_a_bucket_of_the_exact_value() -> None:
    rng = random.Random(3)
    values = sorted(rng.lognormvariate(4, 1.2) for _ in range(20_000))
    tally = Tally()
    for v in values:
        tally.add(Outcome(message_id="m", status="delivered", instance="pw", latency_ms=v, at=0.0))
    hist = {b: n for (_, _, b), n in tally.latency.items()}
    got = percentiles(hist)
    for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = values[int(q * len(values)) - 1]
        value = got[key]
        assert value is not None and exact / 1.6 < value < exact * 1.6, (key, exact, value)
    assert percentiles({}) == {"p50": None, "p95": None, "p99": None}
    assert LATENCY_BOUNDS_MS[-1] == float("inf") and percentiles({len(LATENCY_BOUNDS_MS) - 1: 1})["p50"]


def test_suggested_actions_name_what_to_look_at() -> None:
    assert "credentials" in suggest("INVALID_AUTHENTICATION", 401, "")
    assert "max_requests_per_second" in suggest("TOO_MANY_REQUESTS", 429, "")
    assert "circuit" in suggest("SERVICE_UNAVAILABLE", 503, "")
    assert "field" in suggest("PAYLOAD_VALIDATION", None, "The root value is missing the required field 'x'.")
    assert "named field" in suggest("BAD_REQUEST", 400, "400 name is required")


def test_the_sampler_keeps_a_few_per_instance_and_error_per_minute() -> None:
    sampler = Sampler(2)
    assert [sampler.take("pw", "BAD_REQUEST", 60.0 + i) for i in range(3)] == [True, True, False]
    assert sampler.take("pw", "SERVICE_UNAVAILABLE", 61.0) and sampler.take("xp", "BAD_REQUEST", 61.0)
    assert sampler.take("pw", "BAD_REQUEST", 120.0)  # a new minute
    assert not Sampler(0).take("pw", "X", 0.0)


def test_console_config_is_checked_and_its_token_is_a_secret() -> None:
    config = load_config(BASE + '[console]\nlisten = "0.0.0.0:9"\ntoken = "${T}"\n', {"T": "s3cret"}, console=True)
    assert config.console.token is not None and config.console.token.reveal() == "s3cret"
    assert "s3cret" not in repr(config.console)
    with pytest.raises(ConfigError) as err:
        load_config(BASE + '[console]\ntoken = "${T}"\nsamples_per_minute = -1\n', {}, console=True)
    assert "console.token: environment variable T is not set" in str(err.value)
    assert "console.samples_per_minute: must be 0 or more" in str(err.value)
    assert load_config(BASE + '[console]\ntoken = "${T}"\n', {}).console.token is not None  # a worker needs none
    with pytest.raises(ConfigError, match=r"console.lisen|console: Object contains unknown field `lisen`"):
        load_config(BASE + '[console]\nlisen = "x"\n', {})
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.com")
