"""The process environment's say over a config, read in this one place.

PUSHSTREAM_CONFIG names the config file (default `pushstream.toml`); PUSHSTREAM_BROKER replaces
its broker URL (handy in containers), PUSHSTREAM_STATE_DIR its `pipeline.state_dir` (several
workers on one host), PUSHSTREAM_OPS_LISTEN its `ops.listen`, PUSHSTREAM_REPLICATION_FACTOR its
`kafka.replication_factor`, PUSHSTREAM_INTAKE_LISTEN its `intake.listen`, PUSHSTREAM_CONSOLE_LISTEN its
`console.listen`. Every command and the worker
module load their config through `load`, so the overrides hold everywhere. Secrets named
`"${NAME}"` in the file are read from the same environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import msgspec

from pushstream.codecs.config import Config, ConfigError, load_config_file

__all__ = ["BROKER_ENV", "CONFIG_ENV", "CONSOLE_LISTEN_ENV", "INTAKE_LISTEN_ENV", "OPS_LISTEN_ENV", "REPLICATION_ENV",
           "STATE_DIR_ENV", "config_path", "load"]

CONFIG_ENV = "PUSHSTREAM_CONFIG"
BROKER_ENV = "PUSHSTREAM_BROKER"
STATE_DIR_ENV = "PUSHSTREAM_STATE_DIR"
OPS_LISTEN_ENV = "PUSHSTREAM_OPS_LISTEN"
REPLICATION_ENV = "PUSHSTREAM_REPLICATION_FACTOR"
INTAKE_LISTEN_ENV = "PUSHSTREAM_INTAKE_LISTEN"
CONSOLE_LISTEN_ENV = "PUSHSTREAM_CONSOLE_LISTEN"


def config_path(env: Mapping[str, str] | None = None) -> str:
    return (os.environ if env is None else env).get(CONFIG_ENV) or "pushstream.toml"


def load(path: str | None = None, env: Mapping[str, str] | None = None, *, intake: bool = False,
         console: bool = False) -> Config:
    """The config at `path` (default: PUSHSTREAM_CONFIG) with the environment's overrides;
    raises `ConfigError` listing every mistake (with `intake`, also unset intake write keys; with
    `console`, an unset console token)."""
    env = dict(os.environ if env is None else env)
    config = load_config_file(path or config_path(env), env, intake=intake, console=console)
    if env.get(CONSOLE_LISTEN_ENV):
        console_config = dataclasses.replace(config.console, listen=env[CONSOLE_LISTEN_ENV])
        config = dataclasses.replace(config, console=console_config)
    if env.get(BROKER_ENV):
        config = dataclasses.replace(config, kafka=msgspec.structs.replace(config.kafka, broker=env[BROKER_ENV]))
    if env.get(STATE_DIR_ENV):
        config = dataclasses.replace(
            config, pipeline=msgspec.structs.replace(config.pipeline, state_dir=env[STATE_DIR_ENV]))
    if env.get(REPLICATION_ENV):
        try:
            factor = int(env[REPLICATION_ENV])
        except ValueError:
            raise ConfigError([f"{REPLICATION_ENV}: expected a whole number, got {env[REPLICATION_ENV]!r}"]) from None
        config = dataclasses.replace(config, kafka=msgspec.structs.replace(config.kafka, replication_factor=factor))
    if env.get(INTAKE_LISTEN_ENV) and config.intake is not None:
        config = dataclasses.replace(config, intake=dataclasses.replace(config.intake, listen=env[INTAKE_LISTEN_ENV]))
    if env.get(OPS_LISTEN_ENV):
        config = dataclasses.replace(config, ops=msgspec.structs.replace(config.ops, listen=env[OPS_LISTEN_ENV]))
    return config
