"""The worker's metrics counted per batch: each outcome lands under its own labels."""

from __future__ import annotations

import pytest

from pushstream.codecs.records import Outcome
from pushstream.streams.ops.metrics import Metrics


def _sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_a_batch_of_outcomes_is_counted_and_timed_under_each_outcomes_labels() -> None:
    m = Metrics()
    batch = [Outcome(message_id="a", status="delivered", instance="pw", action="trackEvent", latency_ms=40.0, at=1.0),
             Outcome(message_id="b", status="delivered", instance="xp", action="track", latency_ms=300.0, at=1.0),
             Outcome(message_id="c", status="delivered", instance="pw", action="trackEvent", latency_ms=700.0, at=1.0),
             Outcome(message_id="d", status="duplicate", instance="pw", action="trackEvent", latency_ms=9.0, at=1.0),
             Outcome(message_id="e", status="invalid", error_code="INVALID_JSON", at=1.0)]
    m.outcomes(batch)
    m.outcomes(batch[:1])
    assert _sample(m, "pushstream_outcomes_total", instance="pw", action="trackEvent", status="delivered",
                   error_code="") == 3
    assert _sample(m, "pushstream_outcomes_total", instance="", action="", status="invalid",
                   error_code="INVALID_JSON") == 1
    latency = "pushstream_delivery_latency_seconds"
    # Only terminal outcomes are timed: the duplicate is not.
    assert _sample(m, f"{latency}_count", instance="pw", action="trackEvent") == 3
    assert _sample(m, f"{latency}_sum", instance="pw", action="trackEvent") == pytest.approx(0.78)
    assert _sample(m, f"{latency}_bucket", instance="pw", action="trackEvent", le="0.05") == 2
    assert _sample(m, f"{latency}_count", instance="xp", action="track") == 1
    assert _sample(m, f"{latency}_bucket", instance="xp", action="track", le="0.25") == 0
