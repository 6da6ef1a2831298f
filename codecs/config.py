"""The config file (TOML): broker, topics, pipeline knobs and destination instances.

`load_config(text, env, base_dir)` checks everything and compiles every trigger and mapping
once. A config with mistakes raises `ConfigError` listing each mistake with its location
(`destinations[1].mappings[0].subscribe: column 9: …`); the worker refuses to start.

Secrets: any string setting may be written `"${NAME}"` and is then read from `env` (passed
in by the caller; this module never reads the process environment). Secret settings are
held as `Secret` and never print.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec

from .console import ConsoleConfig, ConsoleToml, load_console
from .destinations import REGISTRY, Action, Destination
from .dispatch import Dispatch
from .fields import Validator, compile_validator
from .filters import Filters, compile_filters
from .fql import Trigger, TriggerError, compile_trigger
from .intake import IntakeConfig, load_intake
from .kafka_config import Count, KafkaConfig, Seconds, load_kafka
from .mapping import Mapping, MappingError, compile_mapping
from .secret import resolve_env, secret_hook
from .tables import DestinationTable, MappingTable, PresetOptions

__all__ = ["Config", "ConfigError", "Instance", "KafkaConfig", "OpsConfig", "PipelineConfig", "Subscription",
           "load_config", "load_config_file"]

MAX_CUSTOM_MAPPINGS = 50


class ConfigError(ValueError):
    """The config has mistakes; `errors` holds one line per mistake, with its location."""

    def __init__(self, errors: list[str], source: str = "config") -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{source} has {len(errors)} mistake{'s' if len(errors) != 1 else ''}:\n{lines}")


class OpsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Where a worker serves /metrics, /healthz and /readyz (`off` for nowhere); loopback by default.
    listen: str = "127.0.0.1:6066"


class PipelineConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: The longest a job waits for its batch to fill; a full batch goes at once (see streams/delivery/steps.py).
    batch_window: Seconds = 1.0
    #: Input records the route agent takes at once (one write of their jobs and outcomes).
    route_batch: Count = 500
    #: Jobs per deliver step, sent as concurrent requests of up to each mapping's `batch_size`
    #: (100 for Pushwoosh events); with this many waiting, a delivery starts as soon as the one
    #: in flight is done. One step is in flight per instance, so an unbatched instance has at
    #: most this many requests out: with `max_in_flight`, what hides a slow API's latency.
    deliver_batch: Count = 1000
    #: Input records larger than this are `invalid` (32 KiB is Segment's own limit).
    max_event_bytes: Count = 32 * 1024
    #: Seconds an HTTP request to a destination may take before it counts as a timeout (retried).
    request_timeout: Seconds = 10.0
    #: Seconds after an event's first attempt during which it is retried; then `failed` and dead-lettered.
    retry_window: Seconds = 4 * 3600.0
    #: Most attempts per job before it is `failed` and dead-lettered.
    max_attempts: Count = 30
    #: Quick retries inside a delivery step (for waits up to 5 s) before a job goes to the retry topic.
    inline_retries: Annotated[int, msgspec.Meta(ge=0)] = 2
    #: Seconds of the first retry's backoff; it doubles per attempt, with jitter (a Retry-After wins).
    backoff_base: Seconds = 0.5
    #: The longest backoff between two attempts, in seconds.
    backoff_max: Seconds = 300.0
    #: Seconds a delivered or rejected (messageId, instance, action, mapping) is remembered and not sent again
    #: (0: no dedup).
    dedup_window: Annotated[float, msgspec.Meta(ge=0)] = 24 * 3600.0
    #: How far back the outcome topic is read at start-up to close the crash gap between an
    #: outcome and its dedup entry; must exceed how long offsets can stay uncommitted.
    dedup_lookback: Annotated[float, msgspec.Meta(ge=0)] = 600.0
    #: Where a worker keeps its local state (the dedup table's RocksDB files), relative to its
    #: working directory. One per worker process (see docs/operating.md, Dedup).
    state_dir: str = "pushstream-state"


class _Top(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kafka: dict[str, Any] = msgspec.field(default_factory=dict)
    pipeline: dict[str, Any] = msgspec.field(default_factory=dict)
    ops: dict[str, Any] = msgspec.field(default_factory=dict)
    intake: dict[str, Any] | None = None
    console: dict[str, Any] | None = None
    destinations: list[dict[str, Any]] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A preset or custom mapping of one instance, compiled."""

    name: str
    action: Action
    trigger: Trigger
    mapping: Mapping
    batched: bool
    batch_size: int
    preset: bool
    #: `validate_payload` for this action and batching, compiled once.
    validate: Validator


@dataclass(frozen=True, slots=True)
class Instance:
    """A configured destination instance (e.g. "pushwoosh-eu")."""

    name: str
    destination: Destination
    settings: Any
    subscriptions: tuple[Subscription, ...]
    integration_keys: tuple[str, ...]
    max_requests_per_second: float | None
    max_in_flight: int
    #: Instance overrides of the pipeline's retry window / attempt cap (None = pipeline default).
    retry_window: float | None = None
    max_attempts: int | None = None
    #: Destination filters, applied before the mappings (filters.py).
    filters: Filters = field(default_factory=Filters)
    #: "per_user": while a job of a user waits for a retry, its later jobs wait behind it (order.py).
    ordering: str = "unordered"
    #: The hosts requests may go to (`*.example.com` for its subdomains); empty: any.
    allowed_hosts: tuple[str, ...] = ()
    follow_redirects: bool = False

    @property
    def request_size(self) -> int:
        """Most jobs one request carries: the batch size of the largest batched mapping, else 1."""
        return max((s.batch_size for s in self.subscriptions if s.batched), default=1)

    def subscription(self, name: str) -> Subscription | None:
        for s in self.subscriptions:
            if s.name == name:
                return s
        return None


@dataclass(frozen=True, slots=True)
class Config:
    kafka: KafkaConfig
    pipeline: PipelineConfig
    instances: tuple[Instance, ...]
    ops: OpsConfig = OpsConfig()
    intake: IntakeConfig | None = None  # `pushstream intake`'s [intake] section, when there is one
    console: ConsoleConfig = ConsoleConfig()  # `pushstream console`'s [console] section
    #: Which instances an event's triggers can select (dispatch.py); built from `instances`.
    dispatch: Dispatch[Instance] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dispatch", Dispatch(self.instances))

    def instance(self, name: str) -> Instance:
        for i in self.instances:
            if i.name == name:
                return i
        raise KeyError(name)

    def topic(self, kind: str, instance: str | None = None) -> str:
        """Topic names: `<prefix>.outcomes`, `<prefix>.deadletter`, `<prefix>.jobs.<instance>`, …"""
        base = f"{self.kafka.topic_prefix}.{kind}"
        return f"{base}.{instance}" if instance else base


_INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _where(exc: msgspec.ValidationError, prefix: str) -> str:
    text = str(exc)
    if " - at `$" in text:
        message, at = text.rsplit(" - at `$", 1)
        return f"{prefix}{at.rstrip('`')}: {message}"
    return f"{prefix}: {text}"


def _convert(obj: Any, type_: type, where: str, errors: list[str]) -> Any:
    """`obj` as a `type_` struct, reporting every field's mistake (msgspec stops at the first)."""
    if isinstance(obj, dict) and isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        before = len(errors)
        fields = {f.encode_name: f for f in msgspec.structs.fields(type_)}
        errors.extend(f"{where}: Object contains unknown field `{key}`" for key in obj if key not in fields)
        for name, info in fields.items():
            if name not in obj:
                if info.required:
                    errors.append(f"{where}: Object missing required field `{name}`")
            elif not isinstance(obj[name], dict) or not _is_struct(info.type):  # tables are checked whole below
                _convert(obj[name], info.type, f"{where}.{name}", errors)
        if len(errors) > before:
            return None
    try:
        return msgspec.convert(obj, type_, dec_hook=secret_hook)
    except msgspec.ValidationError as exc:
        errors.append(_where(exc, where))
        return None


def _is_struct(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, msgspec.Struct)


def _settings(raw: dict[str, Any], dest: Destination, where: str, env: dict[str, str], errors: list[str]) -> Any:
    resolved = {key: {k: resolve_env(v, f"{where}.settings.{key}.{k}", env, errors) for k, v in value.items()}
                if isinstance(value, dict) else resolve_env(value, f"{where}.settings.{key}", env, errors)
                for key, value in raw.items()}
    return _convert(resolved, dest.settings_type, f"{where}.settings", errors)


def _mapping_json(m: MappingTable, where: str, base_dir: Path, errors: list[str]) -> Any:
    if (m.mapping is None) == (m.mapping_file is None):
        errors.append(f"{where}: give exactly one of `mapping` (inline) or `mapping_file`")
        return None
    if m.mapping is not None or m.mapping_file is None:
        return m.mapping
    path = base_dir / m.mapping_file
    try:
        return msgspec.json.decode(path.read_bytes())
    except OSError as exc:
        errors.append(f"{where}.mapping_file: cannot read {path}: {exc.strerror}")
    except msgspec.DecodeError as exc:
        errors.append(f"{where}.mapping_file: {path} is not valid JSON: {exc}")
    return None


def _compile(
    name: str, action: Action, subscribe: str, mapping_json: Any, batching: bool | None, batch_size: int | None,
    preset: bool, where: str, errors: list[str],
) -> Subscription | None:
    ok = True
    try:
        trigger = compile_trigger(subscribe)
    except TriggerError as exc:
        errors.append(f"{where}.subscribe: {exc}")
        ok = False
    try:
        mapping = compile_mapping(mapping_json)
    except MappingError as exc:
        errors.extend(f"{where}.mapping{path}: {msg}" for path, msg in exc.errors)
        ok = False
    if isinstance(mapping_json, dict):  # Segment keeps these two options in the mapping itself
        literal = mapping_json.get("enable_batching")
        batching = literal if batching is None and isinstance(literal, bool) else batching
        size_literal = mapping_json.get("batch_size")
        if batch_size is None and type(size_literal) is int and size_literal > 0:
            batch_size = size_literal
    if batching and not action.batchable:
        errors.append(f"{where}.enable_batching: action {action.key} does not support batching")
        ok = False
    size = (action.default_batch_size or action.max_batch_size) if batch_size is None else batch_size
    if not 1 <= size <= action.max_batch_size:
        errors.append(f"{where}.batch_size: must be between 1 and {action.max_batch_size}, got {size}")
        ok = False
    if not ok:
        return None
    validate = compile_validator(action.fields, batch=bool(batching))
    if action.check is not None:
        validate = _checked(validate, action.check)
    return Subscription(name, action, trigger, mapping, bool(batching), size, preset, validate)


def _checked(validate: Validator, check: Callable[[dict[str, Any]], None]) -> Validator:
    def validate_and_check(payload: dict[str, Any]) -> dict[str, Any]:
        valid = validate(payload)
        check(valid)
        return valid

    return validate_and_check


#: Mapping keys that are not action fields but Segment reads all the same.
_MAPPING_OPTIONS = frozenset({"enable_batching", "batch_size"})


def _unknown_fields(mapping_json: Any, action: Action, where: str, errors: list[str]) -> None:
    """A mapping key that is no field of the action would be silently dropped: refuse it."""
    if not isinstance(mapping_json, dict):
        return
    known = {f.name for f in action.fields} | _MAPPING_OPTIONS
    for key in mapping_json:
        if key not in known and not key.startswith("__segment"):
            errors.append(f"{where}.mapping/{key}: {action.key} has no field {key!r}; "
                          f"its fields: {', '.join(f.name for f in action.fields)}")


def _instance(raw: dict[str, Any], i: int, env: dict[str, str], base_dir: Path, errors: list[str]) -> Instance | None:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = f"destinations[{i}] ({name})" if isinstance(name, str) else f"destinations[{i}]"
    if isinstance(raw, dict) and "max_connections" in raw:  # the older, fixed-concurrency name
        errors.append(f"{where}.max_connections: now max_in_flight, the most requests in flight (how many are "
                      "adapts to the destination) and the connection pool's size")
        raw = {k: v for k, v in raw.items() if k != "max_connections"}
    cfg: DestinationTable | None = _convert(raw, DestinationTable, where, errors)
    if cfg is None:
        return None
    dest = REGISTRY.get(cfg.type)
    if dest is None:
        errors.append(f"{where}.type: unknown destination {cfg.type!r}; known: {', '.join(sorted(REGISTRY))}")
        return None
    if not _INSTANCE_NAME.match(cfg.name):
        errors.append(f"{where}.name: use letters, digits, '.', '_' or '-' (it becomes part of topic names)")
    settings = _settings(cfg.settings, dest, where, env, errors)
    subs: list[Subscription] = []
    preset_opts = cfg.presets if isinstance(cfg.presets, dict) else {}
    for unknown in sorted(set(preset_opts) - {p.name for p in dest.presets}):
        errors.append(f"{where}.presets: unknown preset {unknown!r}; known: {', '.join(p.name for p in dest.presets)}")
    if cfg.presets is not False:
        for p in dest.presets:
            opts = preset_opts.get(p.name, PresetOptions())
            if not opts.enabled:
                continue
            action = dest.actions[p.action]
            batching = p.enable_batching if opts.enable_batching is None else opts.enable_batching
            sub = _compile(p.name, action, p.subscribe, action.default_mapping, batching, opts.batch_size, True,
                           f"{where}.presets[{p.name!r}]", errors)
            if sub:
                subs.append(sub)
    subs += _custom_mappings(cfg, dest, {s.name for s in subs}, where, base_dir, errors)
    filters = compile_filters(cfg.filters, where, errors)
    if settings is None:
        return None
    return Instance(cfg.name, dest, settings, tuple(subs), (*dest.integration_names, cfg.name),
                    cfg.max_requests_per_second, cfg.max_in_flight, cfg.retry_window, cfg.max_attempts,
                    filters, cfg.ordering, tuple(h.lower() for h in cfg.allowed_hosts or ()), cfg.follow_redirects)


def _custom_mappings(cfg: DestinationTable, dest: Destination, seen: set[str], where: str, base_dir: Path,
                     errors: list[str]) -> list[Subscription]:
    subs: list[Subscription] = []
    if len(cfg.mappings) > MAX_CUSTOM_MAPPINGS:
        errors.append(f"{where}.mappings: at most {MAX_CUSTOM_MAPPINGS} custom mappings, got {len(cfg.mappings)}")
    for j, m in enumerate(cfg.mappings):
        mwhere = f"{where}.mappings[{j}] ({m.name})"
        if m.name in seen:
            errors.append(f"{mwhere}.name: another mapping or preset of this instance is already called {m.name!r}")
        seen.add(m.name)
        if m.action not in dest.actions:
            errors.append(f"{mwhere}.action: {dest.slug} has no action {m.action!r}; known: {', '.join(dest.actions)}")
            continue
        action = dest.actions[m.action]
        mapping_json = _mapping_json(m, mwhere, base_dir, errors)
        if mapping_json is None:  # the trigger's mistakes are still worth reporting now
            try:
                compile_trigger(m.subscribe)
            except TriggerError as exc:
                errors.append(f"{mwhere}.subscribe: {exc}")
            continue
        _unknown_fields(mapping_json, action, mwhere, errors)
        if m.defaults and isinstance(mapping_json, dict):  # as Segment's mapping editor pre-fills them
            mapping_json = {**{k: v for k, v in action.default_mapping.items() if k not in mapping_json},
                            **mapping_json}
        sub = _compile(m.name, action, m.subscribe, mapping_json, m.enable_batching, m.batch_size, False,
                       mwhere, errors)
        if sub:
            subs.append(sub)
    return subs


def load_config(text: str, env: dict[str, str], base_dir: Path | None = None, source: str = "config", *,
                intake: bool = False, console: bool = False) -> Config:
    """Parse, check and compile a TOML config; raises `ConfigError` listing every mistake. The
    [intake] section's write keys must be set only with `intake` (for `pushstream intake`): a
    worker sharing the file needs no intake secrets; the same for [console]'s token and `console`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source) from None
    errors: list[str] = []
    top = _convert(data, _Top, "", errors)
    if top is None:
        raise ConfigError([e.lstrip(": ") for e in errors], source)
    kafka = load_kafka(top.kafka, env, base_dir or Path("."), errors, _convert)
    pipeline = _convert(top.pipeline, PipelineConfig, "pipeline", errors)
    ops = _convert(top.ops, OpsConfig, "ops", errors)
    intake_config = load_intake(top.intake, env, errors, secrets=intake) if top.intake is not None else None
    console_toml = _convert(top.console or {}, ConsoleToml, "console", errors)
    console_config = load_console(console_toml, env, errors, console) if console_toml else ConsoleConfig()
    if not top.destinations:
        errors.append("destinations: name at least one destination instance ([[destinations]])")
    instances = [_instance(d, i, env, base_dir or Path("."), errors) for i, d in enumerate(top.destinations)]
    names = [i.name for i in instances if i]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"destinations: two instances are called {dup!r}")
    if kafka is not None and not kafka.input_topics:
        errors.append("kafka.input_topics: name at least one topic")
    if errors or kafka is None:
        raise ConfigError(errors, source)
    return Config(kafka, pipeline, tuple(i for i in instances if i), ops, intake_config, console_config)


def load_config_file(path: str | Path, env: dict[str, str], *, intake: bool = False, console: bool = False) -> Config:
    """Read and load a config file; mapping files are resolved relative to it."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read {p}: {exc.strerror}"], str(p)) from None
    return load_config(text, env, p.parent, str(p), intake=intake, console=console)
