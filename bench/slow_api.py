"""Slow destinations: the same mixed events through one worker with one Pushwoosh and one Xtremepush
instance (presets on, every other setting its default), the sandbox answering each request at once
and after 50, 200 and 500 ms (its latency fault). Prints outcomes/s, the ratio to the at-once run,
the in-flight limit each instance settled on and the most requests the sandbox had open at once.

Xtremepush's Segment definition sends one event per request, so it is the latency-bound instance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pushstream.streams.local.stack import local_config

LATENCIES = (0.0, 0.05, 0.2, 0.5)


def run_slow_api(broker: Any, sandbox_url: str, workdir: Path, run_stack: Callable[..., dict[str, Any]],
                 corpus: Callable[..., list[bytes]], quick: bool) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    control = httpx.Client(base_url=sandbox_url, timeout=30)
    for latency in LATENCIES[1:2] if quick else LATENCIES:  # quick: the harness only
        name = f"slow{int(latency * 1000)}"
        text = local_config(broker.url, sandbox_url, prefix=name, app_id=name, input_topic=f"{name}-in",
                            partitions=8).replace("batch_window = 1.0\n", "")  # the default window
        control.delete("/_sandbox/faults").raise_for_status()
        control.delete("/_sandbox/requests").raise_for_status()  # also resets the sandbox's peak
        if latency:
            control.post("/_sandbox/faults", json={"latency": latency}).raise_for_status()
        try:
            result = run_stack(broker, sandbox_url, workdir, name, corpus(300 if quick else 20_000, seed=3), 1, 0,
                               window=1.0, text=text)
        finally:
            control.delete("/_sandbox/faults").raise_for_status()
        peak = control.get("/_sandbox/stats").json()["peak_in_flight"]
        outcomes_per_s = round(result["events_per_s"] * result["outcomes"] / result["events"])
        rows[f"{int(latency * 1000)}ms"] = {"latency_ms": int(latency * 1000), "outcomes_per_s": outcomes_per_s,
                                             "in_flight_limit": result["in_flight_limit"], "peak_open": peak,
                                             "seconds": result["seconds"], "outcomes": result["outcomes"]}
    at_once = rows["0ms"]["outcomes_per_s"] if "0ms" in rows else None
    for row in rows.values():
        row["ratio_vs_at_once"] = round(row["outcomes_per_s"] / at_once, 2) if at_once else None
    return rows


def slow_api_rows(rows: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table's lines for `run_slow_api`'s result."""
    out = []
    for key, row in rows.items():
        limits = ", ".join(f"{k.split('-')[0]} {v}" for k, v in sorted(row["in_flight_limit"].items()))
        out.append((f"slow API, {key} per request", f"{row['outcomes_per_s']:,} out/s",
                    f"{row['ratio_vs_at_once']}x at once; in-flight limits {limits}; {row['peak_open']} open at most"))
    return out
