"""Entry module for `faust -A pushstream.streams.worker worker`: the app, built when Faust asks for it.

Importing this module does nothing. The first access to its `app` (Faust's `-A` looks it up
once) loads the config from PUSHSTREAM_CONFIG with the environment's overrides (environ.py),
builds the app, tunes the garbage collector and raises the open-files limit as far as the
instances' connections need; a config with mistakes stops there with every
mistake listed, before Faust starts. `pushstream worker` builds the app itself from the config
it has already checked (commands/cli.py), without this module.
"""

from __future__ import annotations

import sys
from typing import Any

from pushstream.codecs.config import ConfigError
from pushstream.streams import environ

__all__ = ["build"]

_app: Any = None


def build() -> Any:
    """The worker's app for PUSHSTREAM_CONFIG (built once; exits with the mistakes of a bad config)."""
    global _app
    if _app is None:
        from pushstream.streams.app import create_app
        from pushstream.streams.kafka.faust_app import tune_process

        try:
            config = environ.load()
        except ConfigError as exc:
            print(f"pushstream: {exc}", file=sys.stderr)
            sys.exit(2)
        _app = create_app(config)
        tune_process(config)
    return _app


def __getattr__(name: str) -> Any:
    if name == "app":
        return build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
