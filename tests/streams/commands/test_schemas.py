"""docs/schemas/ is what `pushstream schema` generates, and records a real worker wrote (outcomes of
every kind, a dead letter, a failed request's sample, the input events) are valid against it
(jsonschema, draft 2020-12), so the schemas cannot drift from what is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from pushstream.streams.commands.schemas import KINDS, schema
from pushstream.streams.kafka.admin import read_topic
from pushstream.streams.local.samples import sample_events
from tests.support import SandboxClient, Stack, mine

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_files_are_the_generated_schemas(kind: str) -> None:
    on_file = json.loads((ROOT / "docs" / "schemas" / f"{kind}.schema.json").read_text())
    assert on_file == schema(kind), f"docs/schemas/{kind}.schema.json is stale: pushstream schema {kind} > it"
    jsonschema.Draft202012Validator.check_schema(on_file)
    printed = subprocess.run([sys.executable, "-m", "pushstream.streams", "schema", kind], capture_output=True,
                             text=True, timeout=60)
    assert printed.returncode == 0 and json.loads(printed.stdout) == on_file


def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((ROOT / "docs" / "schemas" / f"{kind}.schema.json").read_text()))


def _valid(kind: str, records: list[Any]) -> None:
    validator = _validator(kind)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{kind}: {errors[0].message} at {list(errors[0].absolute_path)} in {record}"


def test_records_a_worker_wrote_are_valid(stack: Stack, sandbox: SandboxClient, no_faults_left: None,
                                          prefix: str) -> None:
    sandbox.fault(status=400, body_contains=f"{prefix}-poison", path_prefix="/integration-segment")
    events = sample_events(30, seed=11, prefix=prefix)
    track = next(e for e in events if e["type"] == "track")
    track["properties"] = {"note": f"{prefix}-poison"}
    no_user = {"type": "track", "messageId": f"{prefix}-nouser", "event": "E", "timestamp": "2026-11-01T00:00:00Z"}
    stack.produce([*events, no_user, b'{"type": "track", "messageId": 17}'])
    outcomes = stack.outcomes.wait(mine(prefix), len(events))
    assert {"delivered", "rejected"} <= {o["status"] for o in outcomes}
    _valid("outcome", outcomes + [o for o in stack.outcomes.seen if o["status"] == "invalid"][-5:])
    letters = [msgspec.json.decode(v) for *_, v in read_topic(stack.config.kafka, [stack.config.topic("deadletter")],
                                                                idle_timeout=2)]
    mine_letters = [d for d in letters if d["job"]["message_id"].startswith(prefix)]
    assert mine_letters and all(d["status"] == "rejected" for d in mine_letters)
    _valid("deadletter", mine_letters)
    samples = [msgspec.json.decode(v) for *_, v in read_topic(stack.config.kafka, [stack.config.topic("samples")],
                                                                idle_timeout=2)]
    assert any(s.get("message_id", "").startswith(prefix) for s in samples)
    assert any(s.get("type") == "unmatched" for s in samples)
    _valid("sample", samples)
    ours = [v for *_, v in read_topic(stack.config.kafka, stack.config.kafka.input_topics, idle_timeout=2)
            if prefix.encode() in v]  # other tests' records on the shared topic include non-JSON ones
    _valid("event", [msgspec.json.decode(v) for v in ours if v.startswith(b"{") and b'"messageId": 17' not in v])
