"""The shipped config, docker-compose file and worker start-up agree with the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pushstream.codecs.config import load_config_file
from pushstream.streams.local.stack import local_env
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
    assert set(services) == {"kafka", "worker", "intake", "console", "prometheus", "sandbox", "worker-sandbox",
                             "kafka-secure", "sandbox-secure", "worker-secure", "grafana"}  # 1.29 lists every profile
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
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["dns_sd_configs"][0]["port"] == 6066
    assert str(services["prometheus"]["volumes"][0]).endswith("deploy/prometheus:/etc/prometheus:ro")


def test_the_local_example_loads_with_the_sandbox_keys() -> None:
    config = load_config_file(ROOT / "examples" / "local.toml", local_env())
    assert [i.name for i in config.instances] == ["pushwoosh-sandbox", "xtremepush-sandbox", "webhook-sandbox"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["worker-sandbox"]["environment"] | local_env() == compose["services"][
        "worker-sandbox"]["environment"]  # the compose sandbox worker has every key local.toml reads
    assert (ROOT / "examples" / "events.jsonl").read_text().count("\n") >= 20


KAFKA_EXAMPLES_ENV = {"PUSHWOOSH_API_KEY": "k", "PUSHWOOSH_APP_CODE": "a", "CONFLUENT_API_KEY": "ck",
                      "CONFLUENT_API_SECRET": "cs", "MSK_USERNAME": "mu", "MSK_PASSWORD": "mp", "KAFKA_USERNAME": "ku",
                      "KAFKA_PASSWORD": "kp", "OIDC_CLIENT_ID": "oi", "OIDC_CLIENT_SECRET": "os",
                      "KAFKA_SCRAM_PASSWORD": "sp"}


def test_the_kafka_examples_load_with_their_env_vars(tmp_path: Path) -> None:
    """Each managed-Kafka example is a whole config that loads once its env vars and files exist."""
    examples = sorted((ROOT / "examples" / "kafka").glob("*.toml"))
    assert {p.stem for p in examples} >= {"confluent-cloud", "msk-scram", "aiven-mtls", "scram-redpanda-strimzi",
                                         "oauthbearer-oidc", "compose-secure"}
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    for name in ("aiven/ca.pem", "aiven/service.cert", "aiven/service.key", "strimzi/ca.crt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(pem)
    seen = {}
    for example in examples:
        text = example.read_text().replace('"/certs/ca.pem"', f'"{tmp_path / "aiven/ca.pem"}"')
        for var in KAFKA_EXAMPLES_ENV:  # every variable the example reads is named in its header
            if f"${{{var}}}" in text and not var.startswith("PUSHWOOSH"):
                assert var in text.split("[kafka]")[0], f"{example.name}: {var} not in the header"
        (tmp_path / example.name).write_text(text)
        seen[example.stem] = load_config_file(tmp_path / example.name, KAFKA_EXAMPLES_ENV).kafka
    assert seen["confluent-cloud"].sasl_mechanism == "PLAIN" and seen["msk-scram"].sasl_mechanism == "SCRAM-SHA-512"
    assert seen["aiven-mtls"].security_protocol == "SSL" and seen["aiven-mtls"].ssl_cert_file
    assert seen["oauthbearer-oidc"].sasl_mechanism == "OAUTHBEARER"
    assert all(k.security_protocol in ("SSL", "SASL_SSL") for k in seen.values())


def test_docker_compose_secure_profile_is_sasl_ssl_only() -> None:
    """The secure profile's broker listens for SASL_SSL (SCRAM-SHA-512) only, and its worker uses the example."""
    needs_tool("docker-compose")
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "--profile", "secure",
                             "config"], capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], "KAFKA_SCRAM_PASSWORD": "pw"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"kafka-secure", "sandbox-secure", "worker-secure"} <= set(services)
    worker = services["worker-secure"]
    assert worker["environment"]["PUSHSTREAM_CONFIG"] == "/config/kafka/compose-secure.toml"
    assert worker["environment"]["KAFKA_SCRAM_PASSWORD"] == "pw"
    assert "--add-scram" in " ".join(services["kafka-secure"]["command"])
    props = (ROOT / "deploy" / "kafka-secure" / "server.properties").read_text()
    assert "listener.security.protocol.map=SECURE:SASL_SSL,HOST:SASL_SSL,CONTROLLER:PLAINTEXT" in props
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in props
    assert (ROOT / "deploy" / "kafka-secure" / "make-certs.sh").stat().st_mode & 0o111


def test_the_compose_certificate_script_makes_what_the_broker_reads(tmp_path: Path) -> None:
    import shutil
    needs_tool("openssl")
    shutil.copy(ROOT / "deploy" / "kafka-secure" / "make-certs.sh", tmp_path / "make-certs.sh")
    subprocess.run(["bash", str(tmp_path / "make-certs.sh")], check=True, capture_output=True, timeout=60)
    keystore = (tmp_path / "certs" / "broker-keystore.pem").read_text()
    assert "BEGIN CERTIFICATE" in keystore and "BEGIN PRIVATE KEY" in keystore
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "certs" / "ca.pem"),
                             str(tmp_path / "certs" / "broker.pem")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr


PROMETHEUS = ROOT / "deploy" / "prometheus"


def test_the_alerts_fire_and_stay_quiet_where_they_should() -> None:
    """promtool (Debian's) runs every alert's unit tests on synthetic series, and checks the
    compose file's Prometheus config loads the rules."""
    needs_tool("promtool")
    tested = subprocess.run(["promtool", "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    checked = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=PROMETHEUS, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0 and "2 rule files found" in checked.stdout, checked.stdout + checked.stderr


def test_every_alert_has_a_test_and_a_runbook_entry() -> None:
    alerts = [r["alert"] for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    tests = (PROMETHEUS / "alerts.test.yml").read_text()
    runbook = (ROOT / "docs" / "operating.md").read_text()
    assert len(alerts) >= 8
    for name in alerts:
        assert f"alertname: {name}" in tests, f"{name} has no promtool test"
        assert f"### {name}" in runbook, f"{name} has no runbook entry in docs/operating.md"


def _exposed_metric_names() -> set[str]:
    """Every series name a worker's /metrics can serve (counters' _total, histograms' _bucket ...)."""
    from pushstream.streams.ops.metrics import Metrics

    names: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "stateset": [""],
                    "gauge": [""], "info": ["_info"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_the_dashboard_reads_series_that_exist_and_is_provisioned() -> None:
    import json
    import re

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "pushstream.json").read_text())
    recorded = {r["record"] for g in yaml.safe_load((PROMETHEUS / "recording.yml").read_text())["groups"]
                for r in g["rules"]}
    known = _exposed_metric_names() | recorded
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:pushstream|instance|topic|instance_status)[a-z0-9_:]*)", e)
            if m.startswith("pushstream_") or ":" in m}
    assert used and used <= known, sorted(used - known)
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for signal in ("outcomes by status", "success rate", "latency", "retry backlog", "circuit", "lag", "in flight"):
        assert signal in titles, signal
    source = yaml.safe_load((ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in compose["services"]["grafana"]["volumes"]
