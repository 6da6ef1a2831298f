"""Kafka over TLS (private CA), mTLS and SASL, on brokers that enforce them (tests/secure_broker.py):
a worker, the intake, the console and the CLI end to end over TLS and mTLS, a kill -9 and restart over mTLS, and
each failure as one line with exit code 5, nothing consumed or committed, no secret printed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiohttp import web
from confluent_kafka import TopicPartition

from pushstream.codecs.config import load_config
from pushstream.streams.kafka.admin import BrokerRefused, check_broker, ensure_topics, make_reader, read_topic
from pushstream.streams.kafka.security import OidcTokenProvider, TokenError
from pushstream.streams.kafka.writer import Writer
from pushstream.streams.local.broker import LocalBroker, free_port
from pushstream.streams.local.faults import FaultRun, kill_at
from pushstream.streams.local.samples import sample_events
from pushstream.streams.local.stack import local_config, local_env, start_intake, start_server, start_worker
from tests.secure_broker import KEY_PASSWORD, SecureBroker
from tests.support import SandboxClient, serve

SASL_PASSWORD = "sasl-pw-never-printed-93c1"
WRITE_KEY = "wk-security-test"
EXIT_SECURITY = 5


def _env(**extra: str) -> dict[str, str]:
    return {**local_env(), "KAFKA_KEY_PASSWORD": KEY_PASSWORD, "SASL_PASSWORD": SASL_PASSWORD, **extra}


def _cli(config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pushstream.streams", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or _env())})


def _write(workdir: Path, name: str, broker_url: str, sandbox_url: str, kafka: str, extra: str = "") -> Path:
    path = workdir / f"{name}.toml"
    path.write_text(local_config(broker_url, sandbox_url, prefix=name, app_id=f"pushstream-{name}",
                                 input_topic=f"{name}-events", extra_kafka=kafka) + extra)
    return path


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert KEY_PASSWORD not in text and SASL_PASSWORD not in text


# --- end to end -----------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["tls_broker", "mtls_broker"])
def tls_stack(request: pytest.FixtureRequest, sandbox: SandboxClient, workdir: Path) -> Iterator[dict[str, Any]]:
    """A worker, an intake and a console, all on the TLS-only broker (private CA), then on the mTLS one."""
    broker: SecureBroker = request.getfixturevalue(request.param)
    name = request.param.replace("_broker", "e2e")
    intake_port, console_port = free_port(), free_port()
    extra = (f'\n[intake]\nlisten = "127.0.0.1:{intake_port}"\n[[intake.sources]]\nname = "web"\n'
             f'write_key = "${{SEGMENT_WRITE_KEY}}"\ntopic = "{name}-events"\n'
             f'\n[console]\nlisten = "127.0.0.1:{console_port}"\ndb = "{workdir / f"{name}-console.sqlite3"}"\n')
    path = _write(workdir, name, broker.url, sandbox.url, broker.kafka_toml(), extra)
    env = _env(SEGMENT_WRITE_KEY=WRITE_KEY)
    config = load_config(path.read_text(), env, workdir)
    ensure_topics(config)
    worker = start_worker(workdir, path, env, name=name)
    intake = start_intake(workdir, path, env, intake_port)
    console = start_server("console", workdir, path, env, console_port)
    yield {"path": path, "config": config, "env": env, "worker": worker, "intake": intake, "console": console}
    for proc in (console, intake, worker):
        proc.stop()
    _no_secret(worker.output(), intake.output(), console.output())


def test_worker_intake_console_and_every_command_over_tls_and_mtls(tls_stack: dict[str, Any], tmp_path: Path,
                                                          prefix: str) -> None:
    from segment.analytics import Client

    path, env = tls_stack["path"], tls_stack["env"]
    checked = _cli(path, "check", env=env)
    assert checked.returncode == 0 and "connected" in checked.stdout, checked.stderr
    events = sample_events(40, seed=3, prefix=prefix, mix="track")
    (tmp_path / "events.jsonl").write_text("".join(msgspec.json.encode(e).decode() + "\n" for e in events))
    produced = subprocess.run([sys.executable, "-m", "pushstream.streams", "produce", str(tmp_path / "events.jsonl"),
                               "--config", str(path)], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **env})
    assert produced.returncode == 0 and "produced 40 records" in produced.stdout, produced.stderr
    errors: list[Any] = []
    client = Client(WRITE_KEY, host=tls_stack["intake"].ops_url, on_error=lambda e, batch: errors.append(e),
                    max_retries=2)
    for i in range(10):
        client.track(user_id=f"{prefix}-sdk-{i}", event="Signed Up", properties={"i": i},
                     message_id=f"{prefix}-sdk-{i:03d}")
    client.flush()
    client.join()
    assert not errors
    want = {e["messageId"] for e in events} | {f"{prefix}-sdk-{i:03d}" for i in range(10)}
    delivered: set[str] = set()
    for _ in range(40):
        out = _cli(path, "outcomes", "--status", "delivered", "--idle", "2", env=env)
        assert out.returncode == 0, out.stderr
        delivered = {msgspec.json.decode(line)["message_id"] for line in out.stdout.splitlines() if line.strip()}
        if want <= delivered:
            break
    assert want <= delivered, f"{len(want - delivered)} of {len(want)} not delivered"
    status = _cli(path, "status", "--json", env=env)
    assert status.returncode == 0 and msgspec.json.decode(status.stdout)["instances"], status.stderr
    replay = _cli(path, "replay", "--dry-run", env=env)
    assert replay.returncode == 0 and "would replay 0" in replay.stdout, replay.stderr
    overview: dict[str, Any] = {}
    for _ in range(60):
        overview = httpx.get(f"{tls_stack['console'].ops_url}/api/overview?window=3600", timeout=5).json()
        if "delivered" in str(overview):
            break
        asyncio.run(asyncio.sleep(0.5))
    assert "pushwoosh-sandbox" in str(overview) and "delivered" in str(overview)
    _no_secret(checked.stdout + checked.stderr, produced.stderr, out.stderr, status.stdout, replay.stdout,
               str(overview))


def test_kill_9_and_restart_over_mtls(mtls_broker: SecureBroker, sandbox: SandboxClient, workdir: Path,
                                      prefix: str) -> None:
    run = FaultRun(mtls_broker.url, sandbox.url, workdir, "mtls-kill", prefix, 1_500, seed=29,
                   extra_kafka=mtls_broker.kafka_toml(), env=_env())
    verdict = kill_at(run, (0.5,))
    print(f"\nmTLS kill -9: {verdict.line()}")
    assert not verdict.problems(run.config.pipeline.deliver_batch, 1), verdict.line()


# --- failures: one line, exit 5, nothing consumed or committed -----------------------------------------

def _refused(path: Path, *needles: str, command: str = "check") -> str:
    result = _cli(path, command, timeout=90)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EXIT_SECURITY, result.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert all(n in lines[0] for n in needles), lines[0]
    _no_secret(result.stdout, result.stderr)
    return lines[0]


def test_an_untrusted_broker_certificate(tls_broker: SecureBroker, sandbox: SandboxClient, workdir: Path,
                                         certs: Any) -> None:
    path = _write(workdir, "untrusted", tls_broker.url, sandbox.url, tls_broker.kafka_toml(ssl_ca_file=certs.rogue_ca))
    _refused(path, "not trusted", "ssl_ca_file")


def test_plaintext_spoken_to_a_tls_port(tls_broker: SecureBroker, sandbox: SandboxClient, workdir: Path) -> None:
    path = _write(workdir, "plain-to-tls", tls_broker.url, sandbox.url, "")
    _refused(path, "speaks TLS", "use SSL")


def test_tls_spoken_to_a_plaintext_port(broker: LocalBroker, sandbox: SandboxClient, workdir: Path,
                                        certs: Any) -> None:
    path = _write(workdir, "tls-to-plain", broker.url, sandbox.url,
                  f'security_protocol = "SSL"\nssl_ca_file = "{certs.ca}"')
    _refused(path, "plaintext port")


def test_mtls_without_a_client_certificate(mtls_broker: SecureBroker, sandbox: SandboxClient, workdir: Path) -> None:
    path = _write(workdir, "mtls-nocert", mtls_broker.url, sandbox.url,
                  mtls_broker.kafka_toml(ssl_cert_file=None, ssl_key_file=None, ssl_key_password=None))
    _refused(path, "requires a client certificate")


def test_mtls_with_a_certificate_the_broker_does_not_trust(mtls_broker: SecureBroker, sandbox: SandboxClient,
                                                           workdir: Path, certs: Any) -> None:
    path = _write(workdir, "mtls-rogue", mtls_broker.url, sandbox.url,
                  mtls_broker.kafka_toml(ssl_cert_file=certs.rogue_client_cert, ssl_key_file=certs.rogue_client_key,
                                         ssl_key_password=None))
    # librdkafka sends no certificate the broker's CA list does not name; the broker asks for one.
    _refused(path, "requires a client certificate signed by a CA it trusts")


def test_a_wrong_key_password(mtls_broker: SecureBroker, sandbox: SandboxClient, workdir: Path) -> None:
    path = _write(workdir, "mtls-keypw", mtls_broker.url, sandbox.url,
                  mtls_broker.kafka_toml(ssl_key_password="not-the-password"))
    _refused(path, "cannot load kafka.ssl_key_file")


def test_a_refused_sasl_login(sasl_broker: SecureBroker, sandbox: SandboxClient, workdir: Path) -> None:
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        path = _write(workdir, f"sasl-{mechanism.lower()}", sasl_broker.url, sandbox.url,
                      sasl_broker.kafka_toml(sasl_mechanism=mechanism, sasl_username="alice",
                                             sasl_password="${SASL_PASSWORD}"))
        _refused(path, "refused the SASL login", "sasl_password")
    path = _write(workdir, "sasl-plain", sasl_broker.url, sandbox.url,
                  sasl_broker.kafka_toml(sasl_mechanism="PLAIN", sasl_username="alice", sasl_password="${SASL_PASSWORD}"))
    _refused(path, "does not offer kafka.sasl_mechanism")


def test_a_worker_that_cannot_authenticate_consumes_and_commits_nothing(
        mtls_broker: SecureBroker, sandbox: SandboxClient, workdir: Path, prefix: str) -> None:
    good = _write(workdir, "mtls-refused", mtls_broker.url, sandbox.url, mtls_broker.kafka_toml())
    config = load_config(good.read_text(), _env(), workdir)
    ensure_topics(config)
    events = sample_events(20, seed=4, prefix=prefix, mix="track")
    from pushstream.streams.commands.produce import produce_lines
    produce_lines(config, [msgspec.json.encode(e) for e in events])
    bad = _write(workdir, "mtls-refused", mtls_broker.url, sandbox.url,
                 mtls_broker.kafka_toml(ssl_cert_file=None, ssl_key_file=None, ssl_key_password=None))
    line = _refused(bad, "requires a client certificate", command="worker")
    assert "mtls-refused" not in line or "kafka://" in line
    reader = make_reader(config.kafka, config.kafka.app_id)
    try:
        parts = [TopicPartition("mtls-refused-events", p) for p in range(config.kafka.partitions)]
        assert all(tp.offset < 0 for tp in reader.committed(parts, timeout=10))  # nothing committed
    finally:
        reader.close()
    assert not list(read_topic(config.kafka, [config.topic("outcomes")], idle_timeout=2))  # nothing consumed


def test_the_readiness_reason_names_a_refused_login(sasl_broker: SecureBroker) -> None:
    """What /readyz shows (Writer.unreachable) when the broker refuses the worker's login later."""
    config = load_config(local_config(sasl_broker.url, "http://127.0.0.1:1", extra_kafka=sasl_broker.kafka_toml(
        sasl_mechanism="SCRAM-SHA-512", sasl_username="alice", sasl_password="${SASL_PASSWORD}")), _env())

    async def reason() -> str | None:
        writer = Writer(config.kafka)
        try:
            return await writer.unreachable()
        finally:
            await writer.close()

    why = asyncio.run(reason())
    assert why is not None and "refused the SASL login" in why, why
    _no_secret(why, repr(config.kafka))
    with pytest.raises(BrokerRefused):
        check_broker(config.kafka)


# --- OAUTHBEARER's token provider, against a real local token endpoint ------------------------------

def test_oidc_tokens_are_fetched_reused_and_refreshed() -> None:
    seen: list[dict[str, Any]] = []

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        seen.append({"form": form, "auth": request.headers.get("Authorization", "")})
        if form.get("scope") == "refuse":
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response({"access_token": f"tok-{len(seen)}", "expires_in": 1, "token_type": "bearer"})

    async def body() -> None:
        app = web.Application()
        app.router.add_post("/token", token)
        async with serve(app) as url:
            provider = OidcTokenProvider(f"{url}/token", "client-1", "oidc-secret-77", "kafka", {"logicalCluster": "x"})
            assert await provider.token() == "tok-1"
            assert await provider.token() == "tok-1"  # reused while fresh
            await asyncio.sleep(0.9)  # past 80% of its 1 s life
            assert await provider.token() == "tok-2"
            assert provider.extensions() == {"logicalCluster": "x"}
            assert seen[0]["form"] == {"grant_type": "client_credentials", "scope": "kafka"}
            assert seen[0]["auth"].startswith("Basic ")
            refused = OidcTokenProvider(f"{url}/token", "client-1", "oidc-secret-77", "refuse")
            with pytest.raises(TokenError) as err:
                await refused.token()
            assert "401" in str(err.value) and "oidc-secret-77" not in str(err.value) + repr(refused)

    asyncio.run(body())


# --- what Faust hands aiokafka is what librdkafka gets -------------------------------------------------

@pytest.mark.parametrize("protocol, mechanism", [("PLAINTEXT", None), ("SSL", None), ("SASL_PLAINTEXT", "PLAIN"),
                                                 ("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "OAUTHBEARER")])
def test_faust_gives_aiokafka_the_same_security(protocol: str, mechanism: str | None, certs: Any) -> None:
    import ssl

    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from pushstream.codecs.kafka_config import KafkaConfig, librdkafka_options
    from pushstream.codecs.secret import Secret
    from pushstream.streams.kafka.security import faust_settings

    tls = protocol.endswith("SSL")
    settings: dict[str, Any] = {"security_protocol": protocol}
    if tls:
        settings.update(ssl_ca_file=str(certs.ca), ssl_cert_file=str(certs.client_cert),
                        ssl_key_file=str(certs.client_key), ssl_key_password=Secret(KEY_PASSWORD))
    if mechanism == "OAUTHBEARER":
        settings.update(sasl_mechanism=mechanism, sasl_oauthbearer_token_endpoint_url="https://idp.example/token",
                        sasl_oauthbearer_client_id="cid", sasl_oauthbearer_client_secret=Secret("csecret"))
    elif mechanism:
        settings.update(sasl_mechanism=mechanism, sasl_username="svc", sasl_password=Secret(SASL_PASSWORD))
    kafka = KafkaConfig(**settings)
    auth = credentials_to_aiokafka_auth(faust_settings(kafka).get("broker_credentials"))
    lib = librdkafka_options(kafka)
    assert auth["security_protocol"] == lib["security.protocol"] == protocol
    assert auth.get("sasl_mechanism") == lib.get("sasl.mechanism")
    if mechanism in ("PLAIN", "SCRAM-SHA-512"):
        assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == (lib["sasl.username"], lib["sasl.password"])
    if mechanism == "OAUTHBEARER":
        assert isinstance(auth["sasl_oauth_token_provider"], OidcTokenProvider)
    context = auth.get("ssl_context")
    assert (context is not None) == tls
    if context is not None:
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert [dict(x[0] for x in c["subject"]) for c in context.get_ca_certs()] == [{"commonName": "pushstream ca"}]
    _no_secret(repr(faust_settings(kafka)), repr(kafka))


def test_the_intake_refuses_to_start_when_kafka_refuses_it(mtls_broker: SecureBroker, sandbox: SandboxClient,
                                                            workdir: Path) -> None:
    """Unlike a broker that is down (the intake serves 503s until it is back), a refusal does not heal by waiting."""
    extra = (f'\n[intake]\nlisten = "127.0.0.1:{free_port()}"\n[[intake.sources]]\nname = "web"\n'
             f'write_key = "wk-literal"\ntopic = "mtls-intake-events"\n')
    path = _write(workdir, "mtls-intake", mtls_broker.url, sandbox.url,
                  mtls_broker.kafka_toml(ssl_cert_file=None, ssl_key_file=None, ssl_key_password=None), extra)
    _refused(path, "requires a client certificate", command="intake")
