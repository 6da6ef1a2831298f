"""The shipped config, docker-compose file and worker start-up agree with the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pushstream.codecs.config import load_config_file
from tests.support import needs_tool

ROOT = Path(__file__).resolve().parents[1]
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
    assert worker["environment"]["PUSHSTREAM_BROKER"] == "kafka://kafka:29092"  # the containers' listener
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
    result = subprocess.run([sys.executable, "-m", "pushstream.streams", "worker", "--config", str(bad)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "has 4 mistakes" in result.stderr
    assert "kafka: Object contains unknown field `brokers`" in result.stderr
    assert "settings.pushwooshAPIKey: environment variable MISSING_KEY is not set" in result.stderr
    assert "subscribe: column 1: unknown field `anonymousId`" in result.stderr
    assert "mapping/external_id/@path: should be a string or a mapping directive but it is a number" in result.stderr


def test_docker_compose_accepts_the_file_and_wires_health_metrics_and_the_sandbox_profile() -> None:
    """Debian's docker-compose validates and resolves the file (no engine needed for `config`)."""
    needs_tool("docker-compose")
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "--profile", "sandbox",
                             "config"], capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], "PUSHWOOSH_API_KEY": "k", "PUSHWOOSH_APP_CODE": "a",
                                 "XTREMEPUSH_API_KEY": "x", "KAFKA_REPLICATION_FACTOR": "3"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"kafka", "worker", "intake", "console", "prometheus", "sandbox", "worker-sandbox"}
    console = services["console"]
    assert console["entrypoint"] == ["pushstream", "console"] and "/healthz" in " ".join(console["healthcheck"]["test"])
    assert console["environment"]["PUSHSTREAM_CONSOLE_LISTEN"] == "0.0.0.0:8089"
    assert "PUSHSTREAM_CONSOLE_TOKEN" in console["environment"] and console["environment"]["PUSHSTREAM_STATE_DIR"] == "/data"
    assert services["intake"]["environment"]["PUSHSTREAM_INTAKE_LISTEN"] == "0.0.0.0:8088"
    assert "/readyz" in " ".join(services["intake"]["healthcheck"]["test"])
    for name in ("worker", "worker-sandbox"):
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"]) and services[name]["restart"]
        assert services[name]["environment"]["PUSHSTREAM_OPS_LISTEN"] == "0.0.0.0:6066"
    kafka = services["kafka"]["environment"]
    assert "HOST://localhost:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]  # what examples/*.toml use from the host
    assert kafka["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and services["worker"]["environment"][
        "PUSHSTREAM_REPLICATION_FACTOR"] == "3"
    assert services["worker-sandbox"]["network_mode"] == "service:sandbox"
    assert services["worker-sandbox"]["environment"]["PUSHSTREAM_CONFIG"] == "/config/local.toml"
    prometheus = yaml.safe_load((ROOT / "examples" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["dns_sd_configs"][0]["port"] == 6066


def test_the_local_example_loads_with_the_sandbox_keys() -> None:
    config = load_config_file(ROOT / "examples" / "local.toml",
                              {"PUSHWOOSH_API_KEY": "sandbox-pushwoosh-key", "XTREMEPUSH_API_KEY": "sandbox-xtremepush-key"})
    assert [i.name for i in config.instances] == ["pushwoosh-sandbox", "xtremepush-sandbox"]
    assert (ROOT / "examples" / "events.jsonl").read_text().count("\n") >= 20
