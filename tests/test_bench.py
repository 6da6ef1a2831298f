"""The benchmark harness runs end to end at tiny sizes (numbers are not checked: no timed assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    for section in ("transform", "floor", "end_to_end", "per_user", "two_workers", "intake", "console"):
        assert data[section]["events_per_s"] > 0, section
    assert data["end_to_end"]["latency_p99_ms"] >= data["end_to_end"]["latency_p50_ms"] > 0
    assert data["requests_sent"] > 0
    assert set(data["two_workers"]["cores_busy"]) == {"workers", "broker", "sandbox", "bench"}
    assert "end to end, 1 worker" in result.stdout and "intake, /v1/batch" in result.stdout
    assert data["intake"]["bare_producer_events_per_s"] > 0 and data["intake"]["latency_p99_ms"] > 0
    assert data["console"]["ingest"]["read"] == data["console"]["ingest"]["outcomes"]
    assert data["console"]["answer"]["outcomes"] > 0 and "console, answering" in result.stdout
    assert data["slow_api"]["50ms"]["outcomes_per_s"] > 0 and data["slow_api"]["50ms"]["in_flight_limit"]
    assert data["many_instances"]["20"]["events_per_s"] > 0 and "20 instances, 1 worker" in result.stdout
    hook = data["webhook"]["webhook"]
    assert hook["events_per_s"] > 0 and hook["requests"] > 0 and hook["refused_signatures"] == 0
    assert "webhook, 1 worker" in result.stdout
