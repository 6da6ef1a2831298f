"""Entry module for `faust -A pushstream.streams.worker worker` (and `pushstream worker`).

The composition root: the config comes from PUSHSTREAM_CONFIG with the environment's overrides
(see environ.py). A config with mistakes stops here with every mistake listed, before Faust
starts. Importing this module reads the config file and builds the app, nothing more: topics
are created when the worker starts (`PushstreamApp.prepare`).
"""

from __future__ import annotations

import sys

from pushstream.codecs.config import ConfigError

from . import environ
from .app import create_app
from .transport import tune_gc

try:
    config = environ.load()
except ConfigError as exc:
    print(f"pushstream: {exc}", file=sys.stderr)
    sys.exit(2)

app = create_app(config)

tune_gc()
