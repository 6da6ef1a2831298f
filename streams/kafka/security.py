"""Every Kafka client's connection settings, built from the one `[kafka]` config.

`client_config` gives librdkafka's (the writer, readers, admin, CLI, intake), `faust_settings`
Faust's (worker consumer, producer, admin: aiokafka underneath); both start from
codecs/kafka_config.py's option sets, so TLS and SASL cannot differ between them. `explain`
turns what a client reported into one line that names the cause and never a secret.

A plain broker URL (a `str`) is accepted wherever a config is, meaning PLAINTEXT: the tests,
the bench and the local stack talk to an open local broker that way.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

import httpx
from aiokafka.abc import AbstractTokenProvider

from pushstream.codecs.kafka_config import KafkaConfig, aiokafka_options, librdkafka_options, uses_sasl, uses_tls

__all__ = ["Cluster", "OidcTokenProvider", "TokenError", "as_kafka", "bootstrap", "client_config", "explain",
           "faust_settings", "speaks_tls", "ssl_context"]

#: Where and how to connect: the `[kafka]` config, or a plain broker URL (PLAINTEXT).
Cluster = KafkaConfig | str

#: A token is fetched again once this share of its lifetime has passed (librdkafka refreshes at 80% too).
REFRESH_AT = 0.8


class TokenError(Exception):
    """The OIDC token endpoint did not give a token; the message names the endpoint, never the secret."""


def as_kafka(cluster: Cluster) -> KafkaConfig:
    return KafkaConfig(broker=cluster) if isinstance(cluster, str) else cluster


def bootstrap(broker_url: str) -> str:
    """`kafka://host:port;kafka://host2:port` (Faust style) -> `host:port,host2:port`."""
    parts = [p.strip() for p in broker_url.replace(";", ",").split(",") if p.strip()]
    return ",".join(p.split("://", 1)[-1] for p in parts)


def client_config(cluster: Cluster) -> dict[str, object]:
    """librdkafka's connection properties: the bootstrap servers and the security settings."""
    kafka = as_kafka(cluster)
    return {"bootstrap.servers": bootstrap(kafka.broker), **librdkafka_options(kafka)}


def ssl_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context aiokafka uses, from `aiokafka_options(...)["ssl"]`: the system's trust store
    unless a CA file is given, the client certificate for mTLS, hostname checks as configured."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=options["cafile"])
    context.check_hostname = bool(options["check_hostname"])
    if options["certfile"] is not None:
        context.load_cert_chain(options["certfile"], options["keyfile"], options["password"])
    return context


def faust_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """Faust's `broker_credentials` for `kafka` (empty for PLAINTEXT). Faust hands them to every
    aiokafka client it makes: the worker's consumer, its producer and its topic admin."""
    import faust

    opts = aiokafka_options(kafka)
    context = ssl_context(opts["ssl"]) if "ssl" in opts else None
    if uses_sasl(kafka):
        if opts["sasl_mechanism"] == "OAUTHBEARER":
            oauth = opts["oauth"]
            return {"broker_credentials": faust.OAuthCredentials(
                oauth_cb=OidcTokenProvider(oauth["token_url"], oauth["client_id"], oauth["client_secret"],
                                           oauth["scope"], oauth["extensions"]), ssl_context=context)}
        return {"broker_credentials": faust.SASLCredentials(
            username=opts["sasl_plain_username"], password=opts["sasl_plain_password"], ssl_context=context,
            mechanism=opts["sasl_mechanism"])}
    if context is not None:
        return {"broker_credentials": faust.SSLCredentials(context)}
    return {}


class OidcTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka ships no types
    """OAUTHBEARER tokens from an OIDC token endpoint (client credentials grant, the client id and
    secret as HTTP basic auth, as librdkafka sends them), reused until `REFRESH_AT` of their
    lifetime and fetched again after. aiokafka asks for one on every connection it opens."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str | None = None,
                 extensions: dict[str, str] | None = None, timeout: float = 10.0) -> None:
        self.token_url, self.client_id, self.scope = token_url, client_id, scope
        self._secret = client_secret
        self._extensions = dict(extensions or {})
        self.timeout = timeout
        self._token: tuple[str, float] | None = None  # (token, monotonic time to refresh it)
        self._lock = threading.Lock()  # Faust's consumer runs on its own thread and loop

    def __repr__(self) -> str:
        return f"OidcTokenProvider({self.token_url!r}, client_id={self.client_id!r})"

    async def token(self) -> str:
        with self._lock:
            held = self._token
        if held is not None and time.monotonic() < held[1]:
            return held[0]
        token, lifetime = await self._fetch()
        with self._lock:
            self._token = (token, time.monotonic() + REFRESH_AT * lifetime)
        return token

    def extensions(self) -> dict[str, str]:
        return dict(self._extensions)

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                answer = await client.post(self.token_url, data=form, auth=(self.client_id, self._secret))
        except httpx.HTTPError as exc:
            raise TokenError(f"OIDC token endpoint {self.token_url}: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise TokenError(f"OIDC token endpoint {self.token_url} answered {answer.status_code} "
                             f"for client {self.client_id!r}")
        try:
            body = answer.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"OIDC token endpoint {self.token_url}: no access_token in its answer") from None
        if not isinstance(token, str) or not token:
            raise TokenError(f"OIDC token endpoint {self.token_url}: no access_token in its answer")
        return token, max(1.0, lifetime)


def speaks_tls(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether `host:port` completes a TLS handshake (certificates not checked): tells a TLS port
    a plaintext client was pointed at from a broker that is simply not answering."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return True
    except (OSError, ssl.SSLError):
        return False


# librdkafka error texts -> what a person should check; the first that matches wins.
_CAUSES: tuple[tuple[str, str], ...] = (
    # Also what a certificate from a CA the broker does not name gives: the client then sends none.
    ("certificate required", "the broker requires a client certificate signed by a CA it trusts (mTLS): "
                             "check kafka.ssl_cert_file and kafka.ssl_key_file"),
    ("unknown ca", "the broker does not trust this client's certificate (mTLS: signed by a CA it does not know)"),
    ("bad certificate", "the broker refused this client's certificate (mTLS)"),
    ("certificate verify failed", "the broker's certificate is not trusted: set kafka.ssl_ca_file to the CA "
                                  "that signed it (or check kafka.ssl_check_hostname)"),
    ("wrong version number", "the broker does not speak TLS there: is it a plaintext port? "
                             "(kafka.security_protocol)"),
    ("unexpected eof", "the broker closed the connection during the TLS handshake: is it a plaintext port? "
                       "(kafka.security_protocol)"),
    ("unknown-user", "the broker refused the SASL login (unknown user or wrong password): check "
                     "kafka.sasl_username and kafka.sasl_password"),
    ("authentication failed", "the broker refused the SASL login: check kafka.sasl_username and "
                              "kafka.sasl_password (and kafka.sasl_mechanism)"),
    ("invalid credentials", "the broker refused the SASL login: check kafka.sasl_username and "
                            "kafka.sasl_password"),
    ("broker's supported mechanisms", "the broker does not offer kafka.sasl_mechanism"),
    ("oidc", "no OAUTHBEARER token from kafka.sasl_oauthbearer_token_endpoint_url (check the endpoint, "
             "client id and secret)"),
    ("token", "the broker refused the OAUTHBEARER token (expired or not valid for this cluster)"),
    ("ssl.key.location", "cannot load kafka.ssl_key_file (wrong kafka.ssl_key_password, or not the key of "
                         "kafka.ssl_cert_file)"),
    ("ssl.certificate.location", "cannot load kafka.ssl_cert_file"),
    ("ssl.ca.location", "cannot load kafka.ssl_ca_file"),
)


def explain(reports: list[str], kafka: KafkaConfig) -> str | None:
    """The cause, in one line, of a connection failure from what librdkafka reported (error
    callback texts, exception texts), or None when nothing in them is about security."""
    text = " ".join(reports).lower()
    for needle, cause in _CAUSES:
        if needle in text:
            if needle in ("wrong version number", "unexpected eof") and not uses_tls(kafka):
                continue
            return cause
    if not any(word in text for word in ("disconnected", "brokers are down", "transport failure")):
        return None
    address = bootstrap(kafka.broker).split(",")[0]
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return None
    tls = speaks_tls(host.strip("[]"), int(port))
    if tls and not uses_tls(kafka):
        return (f"{address} speaks TLS, but kafka.security_protocol is {kafka.security_protocol}: "
                f"use {'SASL_SSL' if uses_sasl(kafka) else 'SSL'}")
    if not tls and uses_tls(kafka):
        return (f"{address} does not complete a TLS handshake: is it a plaintext port? "
                f"(kafka.security_protocol is {kafka.security_protocol})")
    return None
