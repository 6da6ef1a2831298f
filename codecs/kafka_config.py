"""The [kafka] section: the brokers, how to connect to them (TLS, SASL, OAUTHBEARER), topics and
group timings; the security settings checked and translated once for both Kafka clients.

The keys and their meanings are the Kafka clients' own (`security.protocol`, `sasl.mechanism`,
`ssl.ca.location`, ... written with underscores). aiokafka (under Faust) and librdkafka (the
writer, readers, admin and CLI) name the same things differently, so both option sets come from
one place here: `librdkafka_options` and `aiokafka_options`, each a plain mapping. Building an
SSL context or fetching an OIDC token is I/O and lives in streams/kafka/security.py.

Secrets (`sasl_password`, `ssl_key_password`, `sasl_oauthbearer_client_secret`) are `Secret`s:
written `"${ENV}"` in the file, or set with `PUSHSTREAM_KAFKA_<KEY>`; they never print.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from .secret import Secret, resolve_env

__all__ = ["ENV_PREFIX", "MECHANISMS", "PROTOCOLS", "SECURITY_KEYS", "Count", "KafkaConfig", "KafkaSecurity", "Seconds",
           "aiokafka_options", "check_security", "env_overrides", "librdkafka_options", "load_kafka", "resolve_files",
           "uses_sasl", "uses_tls"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
#: `PUSHSTREAM_KAFKA_SASL_PASSWORD` sets `kafka.sasl_password`, and so on for every key below.
ENV_PREFIX = "PUSHSTREAM_KAFKA_"

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


class KafkaSecurity(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The connection's security; `[kafka]` (KafkaConfig) carries these keys beside the broker URL."""

    #: How to talk to the brokers: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).
    security_protocol: Protocol = "PLAINTEXT"
    #: The SASL mechanism, for the SASL_* protocols: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    sasl_mechanism: Mechanism | None = None
    #: The SASL user (PLAIN, SCRAM); Confluent Cloud calls it the API key.
    sasl_username: str | None = None
    #: The SASL password (PLAIN, SCRAM); a secret, written "${ENV}".
    sasl_password: Secret | None = None
    #: PEM file of the CA(s) that signed the brokers' certificates; unset: the system's trust store.
    ssl_ca_file: str | None = None
    #: PEM file of this client's certificate, for brokers that require one (mTLS).
    ssl_cert_file: str | None = None
    #: PEM file of the private key of `ssl_cert_file`.
    ssl_key_file: str | None = None
    #: Password of an encrypted `ssl_key_file`; a secret.
    ssl_key_password: Secret | None = None
    #: Check that the broker's certificate names the host connected to (turn off only for testing).
    ssl_check_hostname: bool = True
    #: OAUTHBEARER through OIDC (client credentials): the identity provider's token endpoint.
    sasl_oauthbearer_token_endpoint_url: str | None = None
    #: The OIDC client id.
    sasl_oauthbearer_client_id: str | None = None
    #: The OIDC client secret; a secret.
    sasl_oauthbearer_client_secret: Secret | None = None
    #: The scope asked for with each token (some providers need one, e.g. Aiven's or Azure's).
    sasl_oauthbearer_scope: str | None = None
    #: Extra SASL extensions some brokers ask of OAUTHBEARER clients, e.g. Confluent Cloud's
    #: `logicalCluster=lkc-...,identityPoolId=pool-...`: comma-separated key=value pairs.
    sasl_oauthbearer_extensions: str | None = None


_S = TypeVar("_S", bound=KafkaSecurity)

SECURITY_KEYS: tuple[str, ...] = tuple(f.name for f in msgspec.structs.fields(KafkaSecurity))
_FILES = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file")
_TLS_KEYS = (*_FILES, "ssl_key_password")
_USER_KEYS = ("sasl_username", "sasl_password")
_OAUTH_KEYS = ("sasl_oauthbearer_token_endpoint_url", "sasl_oauthbearer_client_id",
               "sasl_oauthbearer_client_secret", "sasl_oauthbearer_scope", "sasl_oauthbearer_extensions")


def uses_tls(s: KafkaSecurity) -> bool:
    return s.security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(s: KafkaSecurity) -> bool:
    return s.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def env_overrides(env: dict[str, str]) -> dict[str, Any]:
    """The `[kafka]` security keys set by `PUSHSTREAM_KAFKA_<KEY>` variables (empty ones ignored);
    `ssl_check_hostname` reads true/false/1/0/yes/no, anything else is left for the check to refuse."""
    found: dict[str, Any] = {}
    for key in SECURITY_KEYS:
        value = env.get(ENV_PREFIX + key.upper())
        if not value:
            continue
        if key == "ssl_check_hostname":
            flag = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            found[key] = flag.get(value.strip().lower(), value)
        else:
            found[key] = value
    return found


def check_security(s: KafkaSecurity, base_dir: Path, errors: list[str], where: str = "kafka") -> None:
    """Append one line per mistake: a SASL protocol without its mechanism or credentials, settings
    the protocol would ignore, and TLS files that cannot be read (relative paths are taken from
    `base_dir`, the config file's folder)."""
    protocol, mechanism = s.security_protocol, s.sasl_mechanism
    if uses_sasl(s) and mechanism is None:
        errors.append(f"{where}.sasl_mechanism: security_protocol {protocol} needs a mechanism: "
                      f"one of {', '.join(MECHANISMS)}")
    if not uses_sasl(s):
        stray = [k for k in ("sasl_mechanism", *_USER_KEYS, *_OAUTH_KEYS) if getattr(s, k) is not None]
        if stray:
            errors.append(f"{where}.{stray[0]}: SASL settings need security_protocol SASL_SSL or "
                          f"SASL_PLAINTEXT (it is {protocol})")
    elif mechanism == "OAUTHBEARER":
        for key in ("sasl_oauthbearer_token_endpoint_url", "sasl_oauthbearer_client_id",
                    "sasl_oauthbearer_client_secret"):
            if getattr(s, key) is None:
                errors.append(f"{where}.{key}: sasl_mechanism OAUTHBEARER needs it (OIDC client credentials)")
        url = s.sasl_oauthbearer_token_endpoint_url
        if url is not None and not url.startswith(("https://", "http://")):
            errors.append(f"{where}.sasl_oauthbearer_token_endpoint_url: expected an http(s) URL, got {url!r}")
        for key in _USER_KEYS:
            if getattr(s, key) is not None:
                errors.append(f"{where}.{key}: not used by OAUTHBEARER (give the OIDC client instead)")
        _check_extensions(s.sasl_oauthbearer_extensions, f"{where}.sasl_oauthbearer_extensions", errors)
    elif mechanism is not None:
        for key in _USER_KEYS:
            if getattr(s, key) is None:
                errors.append(f"{where}.{key}: sasl_mechanism {mechanism} needs it")
        stray = [k for k in _OAUTH_KEYS if getattr(s, k) is not None]
        if stray:
            errors.append(f"{where}.{stray[0]}: only used with sasl_mechanism OAUTHBEARER")
    if not uses_tls(s):
        stray = [k for k in _TLS_KEYS if getattr(s, k) is not None]
        if stray:
            errors.append(f"{where}.{stray[0]}: TLS settings need security_protocol SSL or SASL_SSL (it is {protocol})")
        return
    if (s.ssl_cert_file is None) != (s.ssl_key_file is None):
        given, missing = ("ssl_cert_file", "ssl_key_file") if s.ssl_key_file is None else ("ssl_key_file",
                                                                                             "ssl_cert_file")
        errors.append(f"{where}.{missing}: {given} is set, so a client certificate needs both (mTLS)")
    if s.ssl_key_password is not None and s.ssl_key_file is None:
        errors.append(f"{where}.ssl_key_password: set without ssl_key_file")
    for key in _FILES:
        path = getattr(s, key)
        if path is None:
            continue
        full = base_dir / path
        try:
            head = full.read_bytes()[:4096]
        except OSError as exc:
            errors.append(f"{where}.{key}: cannot read {full}: {exc.strerror}")
            continue
        if b"-----BEGIN " not in head:
            errors.append(f"{where}.{key}: {full} is not a PEM file (no -----BEGIN line)")


def _check_extensions(text: str | None, where: str, errors: list[str]) -> None:
    if text is None:
        return
    for pair in text.split(","):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip() or not value.strip():
            errors.append(f"{where}: expected key=value pairs separated by commas, got {pair!r}")
            return


def _extensions(text: str | None) -> dict[str, str]:
    pairs = (p.partition("=") for p in (text or "").split(",") if p.strip())
    return {k.strip(): v.strip() for k, _, v in pairs}


def resolve_files(s: _S, base_dir: Path) -> _S:
    """`s` with its TLS file paths made absolute against `base_dir` (so clients started from any
    working directory read the same files the check read)."""
    changes = {k: str((base_dir / getattr(s, k)).resolve()) for k in _FILES if getattr(s, k) is not None}
    return msgspec.structs.replace(s, **changes) if changes else s


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def librdkafka_options(s: KafkaSecurity) -> dict[str, str]:
    """The librdkafka (confluent-kafka) properties for `s`; secrets revealed, so hand the result to
    a client and nowhere else. With TLS and no CA file, `probe` makes librdkafka use the system's
    trust store, as Python's default context does for aiokafka."""
    opts: dict[str, str] = {"security.protocol": s.security_protocol}
    if uses_tls(s):
        opts["ssl.ca.location"] = s.ssl_ca_file or "probe"
        opts["ssl.endpoint.identification.algorithm"] = "https" if s.ssl_check_hostname else "none"
        if s.ssl_cert_file is not None and s.ssl_key_file is not None:
            opts["ssl.certificate.location"] = s.ssl_cert_file
            opts["ssl.key.location"] = s.ssl_key_file
        if s.ssl_key_password is not None:
            opts["ssl.key.password"] = s.ssl_key_password.reveal()
    if uses_sasl(s) and s.sasl_mechanism is not None:
        opts["sasl.mechanism"] = s.sasl_mechanism
        if s.sasl_mechanism == "OAUTHBEARER":
            opts["sasl.oauthbearer.method"] = "oidc"
            opts["sasl.oauthbearer.token.endpoint.url"] = s.sasl_oauthbearer_token_endpoint_url or ""
            opts["sasl.oauthbearer.client.id"] = s.sasl_oauthbearer_client_id or ""
            opts["sasl.oauthbearer.client.secret"] = _reveal(s.sasl_oauthbearer_client_secret) or ""
            if s.sasl_oauthbearer_scope:
                opts["sasl.oauthbearer.scope"] = s.sasl_oauthbearer_scope
            if s.sasl_oauthbearer_extensions:
                opts["sasl.oauthbearer.extensions"] = ",".join(
                    f"{k}={v}" for k, v in _extensions(s.sasl_oauthbearer_extensions).items())
        else:
            opts["sasl.username"] = s.sasl_username or ""
            opts["sasl.password"] = _reveal(s.sasl_password) or ""
    return opts


def aiokafka_options(s: KafkaSecurity) -> dict[str, Any]:
    """The aiokafka (Faust) options for `s`, as data: `ssl` (when TLS) describes the context to
    build (cafile None = the system's trust store) and `oauth` (OAUTHBEARER) the OIDC client the
    token provider uses; streams/kafka/security.py turns both into objects."""
    opts: dict[str, Any] = {"security_protocol": s.security_protocol}
    if uses_tls(s):
        opts["ssl"] = {"cafile": s.ssl_ca_file, "certfile": s.ssl_cert_file, "keyfile": s.ssl_key_file,
                       "password": _reveal(s.ssl_key_password), "check_hostname": s.ssl_check_hostname}
    if uses_sasl(s) and s.sasl_mechanism is not None:
        opts["sasl_mechanism"] = s.sasl_mechanism
        if s.sasl_mechanism == "OAUTHBEARER":
            opts["oauth"] = {"token_url": s.sasl_oauthbearer_token_endpoint_url,
                             "client_id": s.sasl_oauthbearer_client_id,
                             "client_secret": _reveal(s.sasl_oauthbearer_client_secret),
                             "scope": s.sasl_oauthbearer_scope,
                             "extensions": _extensions(s.sasl_oauthbearer_extensions)}
        else:
            opts["sasl_plain_username"] = s.sasl_username
            opts["sasl_plain_password"] = _reveal(s.sasl_password)
    return opts


#: Config numbers that must be positive: a zero batch size or window would stall the stream.
Count = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class KafkaConfig(KafkaSecurity, forbid_unknown_fields=True, kw_only=True):
    """The [kafka] section: the brokers, how to connect to them (KafkaSecurity's keys), topics, group timings."""

    #: Bootstrap brokers, `kafka://host:port`; several separated by `;` or `,`.
    broker: str = "kafka://127.0.0.1:9092"
    #: Topics the route agent reads Segment events from (raw JSON, one event per record).
    input_topics: list[str] = msgspec.field(default_factory=lambda: ["segment-events"])
    #: Prefix of the topics pushstream writes: `<prefix>.outcomes`, `.deadletter`, `.samples`,
    #: `.jobs.<instance>`, `.retry.<instance>`.
    topic_prefix: str = "pushstream"
    #: Partitions of the topics pushstream creates (jobs, retry, outcomes, ...): the most workers that share the
    #: work.
    partitions: int = 8
    #: The Faust app id: the consumer group of the workers, and the prefix of their changelog topics.
    app_id: str = "pushstream"
    #: Group membership timings (seconds). Lower them for tests: a broker holds a first join
    #: for the rebalance timeout.
    session_timeout: float = 30.0
    #: Seconds between the consumer's heartbeats to the group coordinator.
    heartbeat_interval: float = 3.0
    #: Seconds a rebalance waits for every member to rejoin.
    rebalance_timeout: float = 30.0
    #: Seconds between offset commits (only offsets whose records' outcomes are written are committed).
    commit_interval: float = 1.0
    #: Longest a fetch waits for records. Kafka answers as soon as a record arrives, so this
    #: only bounds idle polls; a broker that always waits the full time (Tansu) adds it to
    #: every hop, so the local stack lowers it.
    fetch_max_wait: Seconds = 0.5
    #: Seek a stalled partition (records wait, nothing moved for 30 s, nothing holds it) back to
    #: its committed offset. Off: a stall is a bug to report (logged, exported, in /readyz), and
    #: the crash tests run without this net.
    stall_reread: bool = False
    #: Replicas of the topics pushstream creates (1 suits a one-broker cluster; 3 is usual in production).
    replication_factor: Count = 1


Convert = Callable[[Any, type, str, list[str]], Any]


def load_kafka(raw: dict[str, Any], env: dict[str, str], base_dir: Path, errors: list[str],
               convert: Convert) -> KafkaConfig | None:
    """The [kafka] section from the file's table, with `PUSHSTREAM_KAFKA_<KEY>` overrides and
    `"${ENV}"` values resolved from `env`, checked (`check_security`) and its TLS paths made
    absolute; None (with `errors` filled) when it has mistakes. `convert` is config.py's
    struct converter, which reports every field's mistake with its location."""
    merged = {**raw, **env_overrides(env)}
    resolved = {key: resolve_env(value, f"kafka.{key}", env, errors) for key, value in merged.items()}
    protocol = resolved.get("security_protocol")
    if isinstance(protocol, str):
        resolved["security_protocol"] = protocol = protocol.upper()  # the Kafka clients read it so
    for key, known in (("security_protocol", PROTOCOLS), ("sasl_mechanism", MECHANISMS)):
        value = resolved.get(key)
        if isinstance(value, str) and value not in known:
            errors.append(f"kafka.{key}: unknown {key.split('_')[1]} {value!r}; known: {', '.join(known)}")
            resolved.pop(key)
    kafka: KafkaConfig | None = convert(resolved, KafkaConfig, "kafka", errors)
    if kafka is None:
        return None
    before = len(errors)
    check_security(kafka, base_dir, errors)
    return resolve_files(kafka, base_dir) if len(errors) == before else None
