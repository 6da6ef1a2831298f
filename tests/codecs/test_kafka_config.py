"""[kafka]'s security settings: every mistake refused with its location, PUSHSTREAM_KAFKA_* overrides,
secrets never printed, and librdkafka's and aiokafka's options saying the same for every combination."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pushstream.codecs.config import ConfigError, load_config
from pushstream.codecs.kafka_config import (
    MECHANISMS,
    PROTOCOLS,
    SECURITY_KEYS,
    KafkaConfig,
    aiokafka_options,
    librdkafka_options,
)
from pushstream.codecs.secret import Secret

DESTINATION = """
[[destinations]]
name = "pw"
type = "pushwoosh"
settings = { pushwooshAPIKey = "k", pushwooshAppCode = "A" }
"""
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _load(kafka: str, tmp_path: Path, env: dict[str, str] | None = None) -> KafkaConfig:
    return load_config(f"[kafka]\n{kafka}\n{DESTINATION}", env or {}, tmp_path).kafka


def _mistakes(kafka: str, tmp_path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _load(kafka, tmp_path, env)
    return err.value.errors


def test_plaintext_by_default_and_nothing_to_set(tmp_path: Path) -> None:
    kafka = _load("", tmp_path)
    assert kafka.security_protocol == "PLAINTEXT"
    assert librdkafka_options(kafka) == {"security.protocol": "PLAINTEXT"}
    assert aiokafka_options(kafka) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("kafka, mistake", [
    ('security_protocol = "SASL_SSL"', "kafka.sasl_mechanism: security_protocol SASL_SSL needs a mechanism: one of "
                                       "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"),
    ('security_protocol = "SASL_SSL"\nsasl_mechanism = "GSSAPI"', "kafka.sasl_mechanism: unknown mechanism 'GSSAPI'; "
                                                                  "known: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"),
    ('security_protocol = "TLS"', "kafka.security_protocol: unknown protocol 'TLS'; known: PLAINTEXT, SSL, "
                                  "SASL_PLAINTEXT, SASL_SSL"),
    ('security_protocol = "SSL"\nssl_ca_file = "missing.pem"', "kafka.ssl_ca_file: cannot read {dir}/missing.pem: "
                                                               "No such file or directory"),
    ('security_protocol = "SSL"\nssl_ca_file = "not.pem"', "kafka.ssl_ca_file: {dir}/not.pem is not a PEM file "
                                                           "(no -----BEGIN line)"),
    ('security_protocol = "SSL"\nssl_cert_file = "ca.pem"', "kafka.ssl_key_file: ssl_cert_file is set, so a client "
                                                            "certificate needs both (mTLS)"),
    ('security_protocol = "SSL"\nssl_key_password = "x"', "kafka.ssl_key_password: set without ssl_key_file"),
    ('sasl_mechanism = "PLAIN"', "kafka.sasl_mechanism: SASL settings need security_protocol SASL_SSL or "
                                 "SASL_PLAINTEXT (it is PLAINTEXT)"),
    ('security_protocol = "SASL_SSL"\nsasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "u"',
     "kafka.sasl_password: sasl_mechanism SCRAM-SHA-512 needs it"),
    ('security_protocol = "SASL_SSL"\nsasl_mechanism = "OAUTHBEARER"\nsasl_oauthbearer_client_id = "c"',
     "kafka.sasl_oauthbearer_token_endpoint_url: sasl_mechanism OAUTHBEARER needs it (OIDC client credentials)"),
    ('security_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\nsasl_username = "u"\nsasl_password = "p"\n'
     'sasl_oauthbearer_scope = "s"', "kafka.sasl_oauthbearer_scope: only used with sasl_mechanism OAUTHBEARER"),
    ('ssl_ca_file = "ca.pem"', "kafka.ssl_ca_file: TLS settings need security_protocol SSL or SASL_SSL "
                               "(it is PLAINTEXT)"),
    ('security_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\nsasl_username = "u"\nsasl_password = "${KAFKA_PW}"',
     "kafka.sasl_password: environment variable KAFKA_PW is not set"),
])
def test_mistakes_are_refused_with_their_location(kafka: str, mistake: str, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text(PEM)
    (tmp_path / "not.pem").write_text("hello")
    assert mistake.format(dir=tmp_path) in _mistakes(kafka, tmp_path)


def test_environment_overrides_and_secrets(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text(PEM)
    env = {"PUSHSTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "PUSHSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
           "PUSHSTREAM_KAFKA_SASL_USERNAME": "svc", "PUSHSTREAM_KAFKA_SASL_PASSWORD": "pw-from-env-31",
           "PUSHSTREAM_KAFKA_SSL_CA_FILE": "ca.pem", "PUSHSTREAM_KAFKA_SSL_CHECK_HOSTNAME": "false"}
    kafka = _load('security_protocol = "SSL"', tmp_path, env)
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username) == ("SASL_SSL", "SCRAM-SHA-256", "svc")
    assert kafka.sasl_password == Secret("pw-from-env-31") and kafka.ssl_check_hostname is False
    assert kafka.ssl_ca_file == str(tmp_path / "ca.pem")  # absolute: clients may start elsewhere
    assert "pw-from-env-31" not in repr(kafka) + str(kafka)
    assert set(SECURITY_KEYS) <= {f.name for f in msgspec.structs.fields(KafkaConfig)}
    assert _mistakes('security_protocol = "SSL"', tmp_path, {"PUSHSTREAM_KAFKA_SSL_CHECK_HOSTNAME": "maybe"}) == [
        "kafka.ssl_check_hostname: Expected `bool`, got `str`"]


def _normal_librdkafka(o: dict[str, str]) -> dict[str, Any]:
    ca = o.get("ssl.ca.location")
    return {"protocol": o["security.protocol"], "mechanism": o.get("sasl.mechanism"),
            "user": o.get("sasl.username"), "password": o.get("sasl.password"),
            "ca": None if ca == "probe" else ca, "tls": "ssl.ca.location" in o,
            "cert": o.get("ssl.certificate.location"), "key": o.get("ssl.key.location"),
            "key_password": o.get("ssl.key.password"),
            "check_hostname": o.get("ssl.endpoint.identification.algorithm") == "https" if "ssl.ca.location" in o
            else None,
            "oauth": (o["sasl.oauthbearer.token.endpoint.url"], o["sasl.oauthbearer.client.id"],
                      o["sasl.oauthbearer.client.secret"], o.get("sasl.oauthbearer.scope"),
                      o.get("sasl.oauthbearer.extensions", "")) if o.get("sasl.oauthbearer.method") == "oidc" else None}


def _normal_aiokafka(o: dict[str, Any]) -> dict[str, Any]:
    tls, oauth = o.get("ssl"), o.get("oauth")
    return {"protocol": o["security_protocol"], "mechanism": o.get("sasl_mechanism"),
            "user": o.get("sasl_plain_username"), "password": o.get("sasl_plain_password"),
            "ca": tls["cafile"] if tls else None, "tls": tls is not None,
            "cert": tls["certfile"] if tls else None, "key": tls["keyfile"] if tls else None,
            "key_password": tls["password"] if tls else None,
            "check_hostname": tls["check_hostname"] if tls else None,
            "oauth": (oauth["token_url"], oauth["client_id"], oauth["client_secret"], oauth["scope"],
                      ",".join(f"{k}={v}" for k, v in oauth["extensions"].items())) if oauth else None}


def _combinations() -> list[dict[str, Any]]:
    out = []
    for protocol in PROTOCOLS:
        sasl = protocol.startswith("SASL")
        tls = protocol.endswith("SSL")
        for mechanism, ca, mtls, key_password, hostname, scope in itertools.product(
                MECHANISMS if sasl else [None], [None, "/ca.pem"] if tls else [None], [False, True] if tls else [False],
                [None, "kpw"], [True, False] if tls else [True], [None, "kafka"]):
            if key_password and not mtls or scope and mechanism != "OAUTHBEARER":
                continue
            s: dict[str, Any] = {"security_protocol": protocol, "ssl_check_hostname": hostname}
            if mechanism == "OAUTHBEARER":
                s.update(sasl_mechanism=mechanism, sasl_oauthbearer_token_endpoint_url="https://idp/token",
                         sasl_oauthbearer_client_id="cid", sasl_oauthbearer_client_secret=Secret("csecret"),
                         sasl_oauthbearer_scope=scope, sasl_oauthbearer_extensions="logicalCluster=lkc-1" if scope
                         else None)
            elif mechanism is not None:
                s.update(sasl_mechanism=mechanism, sasl_username="u", sasl_password=Secret("p"))
            if ca:
                s["ssl_ca_file"] = ca
            if mtls:
                s.update(ssl_cert_file="/c.pem", ssl_key_file="/k.pem",
                         ssl_key_password=Secret(key_password) if key_password else None)
            out.append(s)
    return out


COMBINATIONS = _combinations()


def test_every_combination_is_covered() -> None:
    assert len(COMBINATIONS) == 78
    assert {c["security_protocol"] for c in COMBINATIONS} == set(PROTOCOLS)
    assert {c.get("sasl_mechanism") for c in COMBINATIONS} == {None, *MECHANISMS}


@pytest.mark.parametrize("settings", COMBINATIONS, ids=lambda s: "-".join(str(v) for v in s.values() if v))
def test_both_clients_get_the_same_settings(settings: dict[str, Any]) -> None:
    kafka = KafkaConfig(**settings)
    ours = _normal_librdkafka(librdkafka_options(kafka))
    assert ours == _normal_aiokafka(aiokafka_options(kafka))
    assert ours["protocol"] == settings["security_protocol"] and ours["mechanism"] == settings.get("sasl_mechanism")
