"""The worker's /metrics, /healthz and /readyz: exact counts for a known mix, checked by promtool
and scraped by a real Prometheus server; readiness before the join, after it, and with the
broker gone. A broker of its own (the test stops it), the session's sandbox, a real worker."""

from __future__ import annotations

import collections
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pushstream.codecs.config import load_config
from pushstream.codecs.route import route_record
from pushstream.streams.kafka.admin import ensure_topics
from pushstream.streams.local.broker import free_port, start_broker, wait_for_port
from pushstream.streams.local.samples import sample_events
from pushstream.streams.local.stack import Proc, local_config, local_env, start_worker
from tests.support import OutcomeReader, SandboxClient, needs_tool


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _readyz(url: str) -> tuple[int, str]:
    try:
        r = httpx.get(f"{url}/readyz", timeout=5)
        return r.status_code, r.text
    except httpx.HTTPError as exc:
        return 0, str(exc)


@pytest.fixture(scope="module")
def ops_run(sandbox: SandboxClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A worker on its own broker; /readyz is polled from before its join."""
    workdir = tmp_path_factory.mktemp("ops")
    broker = start_broker(log_path=str(workdir / "broker.log"))
    text = local_config(broker.url, sandbox.url, prefix="ops", app_id="pushstream-ops", input_topic="ops-events",
                        partitions=2, batch_window=0.2)
    (workdir / "ops.toml").write_text(text)
    config = load_config(text, local_env())
    ensure_topics(config)
    worker = start_worker(workdir, workdir / "ops.toml", local_env(), name="ops", wait=False,
                          args=["--log-format", "json"])
    url = worker.ops_url
    assert url is not None
    wait_for_port(int(url.rsplit(":", 1)[1]), timeout=60)
    before = _readyz(url)  # the ops server starts before the consumer joins its group
    worker.wait_ready()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _readyz(url)[0] != 200:
        time.sleep(0.2)
    try:
        yield {"broker": broker, "config": config, "worker": worker, "url": url, "before": before,
               "workdir": workdir}
    finally:
        if broker.process.poll() is None:
            worker.stop()
        else:  # with its broker gone a stop waits out the writer's 30 s flush: nothing is left to keep
            worker.kill()
        broker.stop()


def test_readyz_is_503_before_the_join_200_after_and_503_without_the_broker(ops_run: dict[str, Any]) -> None:
    status, text = ops_run["before"]
    assert status == 503 and "consumer group not joined yet" in text, text
    assert _readyz(ops_run["url"]) == (200, "ready\n")
    assert httpx.get(f"{ops_run['url']}/healthz", timeout=5).status_code == 200


def test_json_logs_are_one_object_per_line(ops_run: dict[str, Any]) -> None:
    lines = [line for line in ops_run["worker"].output().splitlines() if line.strip()]
    entries = [msgspec.json.decode(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(e["message"].endswith("Ready") for e in entries)


def test_metrics_count_a_known_mix_exactly(ops_run: dict[str, Any], tmp_path: Path) -> None:
    config = ops_run["config"]
    lines = [msgspec.json.encode(e) for e in sample_events(300, seed=11, prefix="ops")]
    lines += [b"not json", b'{"type": "track", "messageId": "ops-bad"}']
    expected: collections.Counter[tuple[str, str, str]] = collections.Counter()
    jobs = 0
    for i, line in enumerate(lines):
        routed = route_record(line, "ops-events", 0, i, config, 0.0)
        expected.update((o.instance or "", o.action or "", o.status) for o in routed.outcomes)
        expected.update((name, job.action, "delivered") for name, job in routed.jobs)
        jobs += len(routed.jobs)
    from pushstream.streams.commands.produce import produce_lines

    reader = OutcomeReader(config)
    produce_lines(config, lines)
    reader.wait(lambda o: True, sum(expected.values()), timeout=90)
    reader.consumer.close()
    text = httpx.get(f"{ops_run['url']}/metrics", timeout=5).text
    samples = _samples(text)
    got = collections.Counter({(dict(labels)["instance"], dict(labels)["action"], dict(labels)["status"]): v
                               for (name, labels), v in samples.items() if name == "pushstream_outcomes_total"})
    assert got == expected
    assert samples[("pushstream_events_read_total", frozenset({("topic", "ops-events")}))] == len(lines)
    requests = sum(v for (name, labels), v in samples.items()
                   if name == "pushstream_requests_total" and dict(labels)["status"] == "200")
    events_sent = sum(v for (name, _), v in samples.items() if name == "pushstream_request_events_sum")
    assert requests >= 1 and events_sent == jobs  # every job went in exactly one answered request
    latency = sum(v for (name, _), v in samples.items() if name == "pushstream_delivery_latency_seconds_count")
    assert latency == jobs

    if needs_tool("promtool"):
        (tmp_path / "metrics.txt").write_text(text)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr

    if needs_tool("prometheus"):
        delivered = sum(v for (i, a, s), v in expected.items() if s == "delivered")
        assert _prometheus_query(ops_run["url"], tmp_path, 'sum(pushstream_outcomes_total{status="delivered"})') \
            == delivered


def _prometheus_query(target: str, workdir: Path, query: str) -> float:
    """Start a real Prometheus server scraping `target` every second; the query's value once it has one."""
    port = free_port()
    host = target.split("//", 1)[1]
    (workdir / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pushstream\n"
        f"    static_configs:\n      - targets: ['{host}']\n")
    log = open(workdir / "prometheus.log", "wb")
    server = subprocess.Popen(["prometheus", f"--config.file={workdir / 'prometheus.yml'}",
                               f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=log, stderr=subprocess.STDOUT)
    proc = Proc(server, workdir / "prometheus.log")
    try:
        wait_for_port(port, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=5).json()
            if answer["status"] == "success" and answer["data"]["result"]:
                return float(answer["data"]["result"][0]["value"][1])
            time.sleep(1)
        raise AssertionError(f"Prometheus had no value for {query}:\n{proc.output()[-2000:]}")
    finally:
        server.terminate()
        server.wait(30)


def test_readyz_is_503_once_the_broker_is_gone(ops_run: dict[str, Any]) -> None:
    ops_run["broker"].stop()
    deadline = time.monotonic() + 30
    status, text = _readyz(ops_run["url"])
    while time.monotonic() < deadline and status != 503:
        time.sleep(0.5)
        status, text = _readyz(ops_run["url"])
    assert status == 503 and "cannot reach Kafka" in text, text
    assert httpx.get(f"{ops_run['url']}/healthz", timeout=5).status_code == 200  # the loop still answers
