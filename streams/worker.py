"""Entry module for `faust -A pushstream.streams.worker worker`.

This is the composition root, the one module that reads the process environment: the
config path from PUSHSTREAM_CONFIG (default `pushstream.toml`) and the secrets it refers to.
A config with mistakes stops here with every mistake listed, before Faust starts.
PUSHSTREAM_BROKER, when set, replaces the config's broker URL (handy in containers), and
PUSHSTREAM_STATE_DIR the config's `pipeline.state_dir` (for several workers on one host).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import msgspec

from pushstream.codecs.config import ConfigError, load_config_file

from .app import create_app
from .kafka import ensure_topics
from .transport import tune_gc

CONFIG_ENV = "PUSHSTREAM_CONFIG"
BROKER_ENV = "PUSHSTREAM_BROKER"
STATE_DIR_ENV = "PUSHSTREAM_STATE_DIR"

try:
    config = load_config_file(os.environ.get(CONFIG_ENV, "pushstream.toml"), dict(os.environ))
except ConfigError as exc:
    print(f"pushstream: {exc}", file=sys.stderr)
    sys.exit(2)

if os.environ.get(BROKER_ENV):
    config = dataclasses.replace(config, kafka=msgspec.structs.replace(config.kafka, broker=os.environ[BROKER_ENV]))
if os.environ.get(STATE_DIR_ENV):
    config = dataclasses.replace(
        config, pipeline=msgspec.structs.replace(config.pipeline, state_dir=os.environ[STATE_DIR_ENV]))
ensure_topics(config)
app = create_app(config)

tune_gc()
