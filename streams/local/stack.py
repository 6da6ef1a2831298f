"""Start the local stack (broker, sandbox, worker) as real processes: for the demo, tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from pushstream.streams.kafka.faust_compat import READY_LINE
from pushstream.streams.local.broker import free_port, wait_for_port

__all__ = ["Proc", "local_config", "mapped_instance", "start_intake", "start_sandbox", "start_server", "start_worker",
           "webhook_instance"]

SANDBOX_PW_KEY = "sandbox-pushwoosh-key"
SANDBOX_PW_APP = "SANDBOX-APP"
SANDBOX_XP_KEY = "sandbox-xtremepush-key"
SANDBOX_HOOK_SECRET = "sandbox-webhook-secret"


def _pw_settings(app_code: str = SANDBOX_PW_APP) -> str:
    return f'pushwooshAPIKey = "${{PUSHWOOSH_API_KEY}}", pushwooshAppCode = "{app_code}"'


def local_config(broker_url: str, sandbox_url: str, *, prefix: str = "pushstream", app_id: str = "pushstream",
                 input_topic: str = "segment-events", partitions: int = 4, batch_window: float = 1.0,
                 extra_pipeline: str = "", extra_destinations: str = "", extra_kafka: str = "") -> str:
    """A config for the local stack: one Pushwoosh and one Xtremepush instance on the sandbox.
    Secrets come from the environment, as in production (see `local_env`); `extra_kafka` adds
    [kafka] keys (a TLS or SASL broker's)."""
    return f"""
[kafka]
broker = "{broker_url}"
input_topics = ["{input_topic}"]
topic_prefix = "{prefix}"
app_id = "{app_id}"
partitions = {partitions}
session_timeout = 3.0
heartbeat_interval = 1.0
rebalance_timeout = 3.0
commit_interval = 0.5
fetch_max_wait = 0.02
{extra_kafka}

[pipeline]
batch_window = {batch_window}
{extra_pipeline}

[[destinations]]
name = "pushwoosh-sandbox"
type = "pushwoosh"
settings = {{ {_pw_settings()}, baseUrl = "{sandbox_url}" }}

[[destinations]]
name = "xtremepush-sandbox"
type = "xtremepush"
settings = {{ url = "{sandbox_url}/", apiKey = "${{XTREMEPUSH_API_KEY}}" }}
{extra_destinations}
"""


def mapped_instance(sandbox_url: str, name: str, app_code: str, subscribe: str, *, mapping: str = "mapped",
                    options: str = "") -> str:
    """A Pushwoosh instance on the sandbox with presets off and one batched custom Track Event
    mapping (`track-mapping.json` beside the config) taking the events `subscribe` selects;
    `options` adds instance keys (`ordering = "per_user"`, ...)."""
    return f"""
[[destinations]]
name = "{name}"
type = "pushwoosh"
presets = false
{options}
settings = {{ {_pw_settings(app_code)}, baseUrl = "{sandbox_url}" }}

[[destinations.mappings]]
name = "{mapping}"
action = "trackEvent"
subscribe = '{subscribe}'
mapping_file = "track-mapping.json"
enable_batching = true
"""


def webhook_instance(sandbox_url: str, name: str = "webhook-sandbox", subscribe: str = 'type = "track"', *,
                     path: str = "demo", options: str = "", mapping: str = "", batch_size: int = 100,
                     secret: str = "${WEBHOOK_SHARED_SECRET}") -> str:
    """A webhook instance on the sandbox's receiver, signed with `secret`: the events `subscribe`
    selects, whole, batched, to `/hooks/{path}/{type}` (one group per event type); `mapping`
    adds mapping keys (`headers = {...}`), `options` instance keys."""
    url = f'url = {{ "@template" = "{sandbox_url}/hooks/{path}/{{{{type}}}}" }}'
    fields = f"{url}, {mapping}" if mapping else url
    return f"""
[[destinations]]
name = "{name}"
type = "webhook"
{options}
settings = {{ sharedSecret = "{secret}" }}

[[destinations.mappings]]
name = "Events"
action = "send"
subscribe = '{subscribe}'
enable_batching = true
batch_size = {batch_size}
mapping = {{ {fields} }}
"""


def local_env() -> dict[str, str]:
    return {"PUSHWOOSH_API_KEY": SANDBOX_PW_KEY, "XTREMEPUSH_API_KEY": SANDBOX_XP_KEY,
            "WEBHOOK_SHARED_SECRET": SANDBOX_HOOK_SECRET}


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    log: Path
    #: A worker's /metrics, /healthz and /readyz base URL.
    ops_url: str | None = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait for a worker's Ready line; raise (and stop it) if it exits or takes longer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if READY_LINE in text:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{text[-4000:]}")
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.output()[-4000:]}")


def start_sandbox(workdir: Path, port: int | None = None, app_codes: tuple[str, ...] = ()) -> tuple[Proc, str]:
    """Start the sandbox; it accepts the sandbox Pushwoosh key with SANDBOX-APP and `app_codes`."""
    port = port or free_port()
    log = workdir / "sandbox.log"
    extra = [arg for code in app_codes for arg in ("--pushwoosh", f"{SANDBOX_PW_KEY}={code}")]
    proc = subprocess.Popen([sys.executable, "-m", "pushstream.streams", "sandbox", "--port", str(port), *extra],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port)
    url = f"http://127.0.0.1:{port}"
    httpx.get(f"{url}/_sandbox/health", timeout=5).raise_for_status()
    return Proc(proc, log), url


def start_worker(workdir: Path, config_path: Path, env: dict[str, str] | None = None, name: str = "worker",
                 ready_timeout: float = 90.0, *, args: Sequence[str] = (), wait: bool = True) -> Proc:
    """Start `pushstream worker` (with `args`) and, with `wait`, wait until it says it is ready.
    Its local state lives in `<workdir>/<name>.state`, so workers of different names are like
    workers on different hosts and a worker started again under its name finds its state. Its
    ops endpoints get a free port (`Proc.ops_url`)."""
    log = workdir / f"{name}.log"
    log.write_bytes(b"")
    ops = f"127.0.0.1:{free_port()}"
    full_env = {**os.environ, "PUSHSTREAM_STATE_DIR": str(workdir / f"{name}.state"), "PUSHSTREAM_OPS_LISTEN": ops,
                **(env or {}), "PUSHSTREAM_CONFIG": str(config_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pushstream.streams", "worker", "--config", str(config_path),
                             *args], stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=full_env,
                            cwd=workdir, start_new_session=True)
    worker = Proc(proc, log, f"http://{ops}")
    if wait:
        worker.wait_ready(ready_timeout)
    return worker


def start_intake(workdir: Path, config_path: Path, env: dict[str, str], port: int, timeout: float = 60.0) -> Proc:
    """Start `pushstream intake` (its config listens on `port`) and wait until /healthz answers."""
    return start_server("intake", workdir, config_path, env, port, timeout)


def start_server(command: str, workdir: Path, config_path: Path, env: dict[str, str], port: int,
                 timeout: float = 60.0) -> Proc:
    """Start `pushstream COMMAND` (intake, console: its config listens on `port`) and wait until
    its /healthz answers."""
    log = workdir / f"{command}-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "pushstream.streams", command, "--config", str(config_path)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, cwd=workdir, start_new_session=True)
    server = Proc(proc, log, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command} exited with {proc.returncode}:\n{server.output()[-4000:]}")
        try:
            if httpx.get(f"{server.ops_url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"{command} not up after {timeout}s:\n{server.output()[-4000:]}")
