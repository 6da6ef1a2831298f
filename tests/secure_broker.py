"""Brokers that enforce TLS, mTLS and SASL, for the security tests (fixtures in conftest.py).

- TLS and mTLS: the local broker (Tansu) listens on a loopback port nobody is told about and
  advertises the port of a TLS front (Debian's stunnel4) placed before it, so every client
  follows the metadata to the front. The front holds a certificate signed by a private CA made
  here with `openssl`; with `mtls` it also requires a client certificate signed by that CA.
  Tansu's own `--cert/--key` were not used: the flags refused each other in 0.6.
- SASL: Tansu started with `--authentication` runs the SCRAM exchange and refuses every other
  request before a login. Its bundled storage (memory/S3 "dynostore") stores no SCRAM
  credentials (`user_scram_credential` answers None in 0.6's source), so every login is
  refused as an unknown user: a real enforcing broker for the failure paths, none for a
  successful SCRAM login (docs/operating.md says so).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from pushstream.streams.local.broker import LocalBroker, free_port, start_broker, wait_for_port

KEY_PASSWORD = "client-key-pw-5e1f"  # the client key's passphrase: the tests check it never prints


@dataclass(frozen=True)
class Certs:
    """A private CA, the broker's certificate (localhost, 127.0.0.1), a client certificate with an
    encrypted key, and a second CA that signed nothing the broker shows (an untrusted one)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_client_cert: Path
    rogue_client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(d: Path, name: str, ca: str, subject: str, san: str | None, password: str | None) -> None:
    key_args = ["-passout", f"pass:{password}"] if password else ["-nodes"]
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", *key_args,
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    ext: list[str] = []
    if san:
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        ext = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", *ext, cwd=d)


def make_certs(d: Path) -> Certs:
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=pushstream {ca}", cwd=d)
    _signed(d, "server", "ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1", None)
    _signed(d, "client", "ca", "/CN=pushstream-client", None, KEY_PASSWORD)
    _signed(d, "rogue-client", "rogue-ca", "/CN=someone-else", None, None)
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key",
                 d / "rogue-ca.pem", d / "rogue-client.pem", d / "rogue-client.key")


@dataclass
class SecureBroker:
    """A broker clients reach only through its TLS front (or, for SASL, only after a login)."""

    broker: LocalBroker
    front: subprocess.Popen[bytes] | None
    port: int
    protocol: str
    certs: Certs | None = None
    mtls: bool = False

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def kafka_toml(self, **overrides: object) -> str:
        """The [kafka] security lines a client of this broker needs (`overrides` replace or, as
        None, drop keys), paths absolute."""
        keys: dict[str, object] = {"security_protocol": self.protocol}
        if self.certs is not None:
            keys["ssl_ca_file"] = str(self.certs.ca)
        if self.mtls and self.certs is not None:
            keys.update(ssl_cert_file=str(self.certs.client_cert), ssl_key_file=str(self.certs.client_key),
                        ssl_key_password="${KAFKA_KEY_PASSWORD}")
        keys.update(overrides)
        return "\n".join(f"{k} = {_toml(v)}" for k, v in keys.items() if v is not None)

    def stop(self) -> None:
        if self.front is not None and self.front.poll() is None:
            self.front.terminate()
            self.front.wait(10)
        self.broker.stop()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_tls_broker(workdir: Path, certs: Certs, *, mtls: bool) -> SecureBroker:
    """Tansu behind a stunnel TLS front on loopback; `mtls` makes the front require a client
    certificate signed by the private CA."""
    name = "mtls" if mtls else "tls"
    port, inner = free_port(), free_port()
    broker = start_broker(inner, log_path=str(workdir / f"broker-{name}.log"), advertised_port=port)
    lines = ["foreground = yes", "pid =", "debug = 4", f"output = {workdir / f'stunnel-{name}.log'}", f"[{name}]",
             f"accept = 127.0.0.1:{port}", f"connect = 127.0.0.1:{inner}", f"cert = {certs.server_cert}",
             f"key = {certs.server_key}"]
    if mtls:
        lines += [f"CAfile = {certs.ca}", "verifyChain = yes", "requireCert = yes"]
    conf = workdir / f"stunnel-{name}.conf"
    conf.write_text("\n".join(lines) + "\n")
    front = subprocess.Popen(["stunnel", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        wait_for_port(port)
    except BaseException:
        front.kill()
        broker.stop()
        raise
    return SecureBroker(broker, front, port, "SSL", certs, mtls)


def start_sasl_broker(workdir: Path) -> SecureBroker:
    """Tansu with `--authentication` (SCRAM-SHA-256/512 enforced, plaintext transport)."""
    broker = start_broker(log_path=str(workdir / "broker-sasl.log"), authentication=True)
    return SecureBroker(broker, None, broker.port, "SASL_PLAINTEXT")
