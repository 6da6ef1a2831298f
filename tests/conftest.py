"""Shared fixtures: one broker, one sandbox and one worker for the whole session (helpers they use are
in support.py).

Integration tests isolate themselves by the messageIds and userIds they produce (each test
uses its own prefix), so they can share the processes and the suite stays fast.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from pushstream.streams.local.broker import LocalBroker, start_broker
from pushstream.streams.local.stack import local_config, start_sandbox
from tests.secure_broker import Certs, SecureBroker, make_certs, start_sasl_broker, start_tls_broker
from tests.support import (
    EXTRA_DESTINATIONS,
    FAULTY_APP_CODES,
    HOOK_INSTANCES,
    ORDER_MAPPING,
    SandboxClient,
    Stack,
    close,
    launch,
    needs_tool,
    targeted_instances,
    write_track_mapping,
)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def broker(workdir: Path) -> Iterator[LocalBroker]:
    b = start_broker(log_path=str(workdir / "broker.log"))
    yield b
    b.stop()


@pytest.fixture(scope="session")
def sandbox(workdir: Path) -> Iterator[SandboxClient]:
    proc, url = start_sandbox(workdir, app_codes=FAULTY_APP_CODES)
    yield SandboxClient(url)
    proc.stop()


@pytest.fixture(scope="session")
def stack(broker: LocalBroker, sandbox: SandboxClient, workdir: Path) -> Iterator[Stack]:
    """The main worker: the two sandbox instances with presets, plus one with a custom mapping."""
    write_track_mapping(workdir)
    (workdir / "order-mapping.json").write_bytes(msgspec.json.encode(ORDER_MAPPING))
    text = local_config(broker.url, sandbox.url, partitions=4,
                        extra_pipeline="inline_retries = 1\nbackoff_base = 0.2\nbackoff_max = 2.0",
                        extra_destinations=EXTRA_DESTINATIONS.replace("SANDBOX_URL", sandbox.url))
    s = launch(text, "worker", sandbox, workdir)
    yield s
    close(s)


@pytest.fixture(scope="session")
def faulty(broker: LocalBroker, sandbox: SandboxClient, workdir: Path) -> Iterator[Stack]:
    """A second worker (own group and topics) whose instances the delivery tests make fail."""
    write_track_mapping(workdir)
    instances = targeted_instances(sandbox.url, ("flaky", "short", "slow", "fast", "paced"),
                                   {"short": "retry_window = 4.0", "paced": "max_requests_per_second = 2.0"})
    text = local_config(broker.url, sandbox.url, prefix="faulty", app_id="pushstream-faulty",
                        input_topic="faulty-events", partitions=4, batch_window=0.5,
                        extra_pipeline="inline_retries = 1\nbackoff_base = 0.5\nbackoff_max = 4.0\nmax_attempts = 100")
    # pw-rotated's key is not accepted until a test rotates it in at the sandbox (a wrong key, fixed).
    instances += targeted_instances(sandbox.url, ("rotated",)).replace('"${PUSHWOOSH_API_KEY}"', '"rotated-key"')
    instances += HOOK_INSTANCES.replace("SANDBOX_URL", sandbox.url)
    # Keep only the [kafka] and [pipeline] parts of the local config: the instances are the targeted ones.
    text = text.split("[[destinations]]")[0] + instances
    s = launch(text, "faulty", sandbox, workdir)
    yield s
    sandbox.clear_faults()
    close(s)


@pytest.fixture(scope="session")
def certs(workdir: Path) -> Certs:
    """A private CA with the broker's and a client's certificates (and an untrusted CA)."""
    needs_tool("openssl")
    return make_certs(workdir / "certs")


def _tls_front(workdir: Path, certs: Certs, mtls: bool) -> Iterator[SecureBroker]:
    needs_tool("stunnel")
    b = start_tls_broker(workdir, certs, mtls=mtls)
    yield b
    b.stop()


@pytest.fixture(scope="session")
def tls_broker(workdir: Path, certs: Certs) -> Iterator[SecureBroker]:
    """A broker reachable only over TLS (its certificate signed by the private CA)."""
    yield from _tls_front(workdir, certs, mtls=False)


@pytest.fixture(scope="session")
def mtls_broker(workdir: Path, certs: Certs) -> Iterator[SecureBroker]:
    """A broker reachable only over TLS with a client certificate the private CA signed."""
    yield from _tls_front(workdir, certs, mtls=True)


@pytest.fixture(scope="session")
def sasl_broker(workdir: Path) -> Iterator[SecureBroker]:
    """A broker that requires a SASL/SCRAM login before any request (and accepts none: see secure_broker.py)."""
    b = start_sasl_broker(workdir)
    yield b
    b.stop()


@pytest.fixture
def no_faults_left(sandbox: SandboxClient) -> Iterator[None]:
    """Clears the sandbox's faults after the test (use in modules that inject them)."""
    yield
    sandbox.clear_faults()


@pytest.fixture
def prefix() -> str:
    """A unique id prefix for one test's events."""
    return f"t{uuid.uuid4().hex[:8]}"


def pytest_report_header(config: pytest.Config) -> str:
    return f"pushstream tests (cpu count {os.cpu_count()})"



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two processes) the tests of the shared `faulty` worker
    run in one process, so only one of them starts that worker (the others share the broker only)."""
    for item in items:
        if "faulty" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("faulty"))
