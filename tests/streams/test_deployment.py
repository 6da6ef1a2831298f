"""The shipped config, docker-compose file and worker start-up agree with the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pushstream.codecs.config import load_config_file

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PUSHWOOSH_API_KEY": "k", "PUSHWOOSH_APP_CODE": "A", "XTREMEPUSH_API_KEY": "x"}


def test_example_config_loads_with_its_mapping_file() -> None:
    config = load_config_file(ROOT / "examples" / "pushstream.toml", ENV)
    names = {i.name: [s.name for s in i.subscriptions] for i in config.instances}
    assert names == {"pushwoosh-prod": ["Track Events", "Create or Update User Profile", "Big orders"],
                     "xtremepush-prod": ["Send Analytics Events", "Send User Profile Data"]}


def test_compose_runs_the_worker_module_with_the_example_config() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    worker = compose["services"]["worker"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"pushstream.streams.worker"' in dockerfile
    assert worker["environment"]["PUSHSTREAM_CONFIG"] == "/config/pushstream.toml"
    assert "./examples:/config:ro" in worker["volumes"]
    assert worker["environment"]["PUSHSTREAM_BROKER"] == "kafka://kafka:9092"
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka")
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # Every secret the example config refers to is passed in by compose.
    text = (ROOT / "examples" / "pushstream.toml").read_text()
    for name in ENV:
        assert f"${{{name}}}" in text and name in worker["environment"]


def test_worker_refuses_a_bad_config_with_every_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("""
[kafka]
brokers = "kafka://x:1"
[[destinations]]
name = "pw"
type = "pushwoosh"
settings = { pushwooshAPIKey = "${MISSING_KEY}", pushwooshAppCode = "A" }
[[destinations.mappings]]
name = "m"
action = "trackEvent"
subscribe = 'anonymousId = "a"'
mapping = { external_id = { "@path" = 5 } }
""")
    env = {k: v for k, v in os.environ.items() if k != "MISSING_KEY"}
    result = subprocess.run([sys.executable, "-m", "pushstream.streams.cli", "worker", "--config", str(bad)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "has 4 mistakes" in result.stderr
    assert "kafka: Object contains unknown field `brokers`" in result.stderr
    assert "settings.pushwooshAPIKey: environment variable MISSING_KEY is not set" in result.stderr
    assert "subscribe: column 1: unknown field `anonymousId`" in result.stderr
    assert "mapping/external_id/@path: should be a string or a mapping directive but it is a number" in result.stderr
