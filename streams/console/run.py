"""Running `pushstream console`: check where it may listen, open the store, start the reader,
serve the app until interrupted."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from aiohttp import web

from pushstream.codecs.config import Config
from pushstream.codecs.console import is_loopback
from pushstream.streams.console.reader import OutcomeReader
from pushstream.streams.console.store import Store
from pushstream.streams.console.web import ConsoleApp

__all__ = ["ConsoleRefused", "db_path", "serve"]

log = logging.getLogger(__name__)


class ConsoleRefused(Exception):
    """The console must not start with this config (said in one line)."""


def db_path(config: Config) -> Path:
    """Where the console keeps its store: `[console] db`, else `<state_dir>/console.sqlite3`."""
    return Path(config.console.db) if config.console.db else Path(config.pipeline.state_dir) / "console.sqlite3"


def listen_address(config: Config) -> tuple[str, int]:
    """(host, port) of `[console] listen`; refuses a non-loopback address without a token: the
    console shows event payloads."""
    host, _, port = config.console.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConsoleRefused(f"console.listen: expected HOST:PORT, got {config.console.listen!r}")
    if not is_loopback(host.strip("[]")) and config.console.token is None:
        raise ConsoleRefused(f"console.listen is {config.console.listen}, off this machine, and the console shows "
                             "event payloads: set console.token (e.g. token = \"${PUSHSTREAM_CONSOLE_TOKEN}\")")
    return host.strip("[]"), int(port)


def serve(config: Config, loglevel: str = "INFO") -> None:
    """Read outcomes into the store and serve the console until interrupted."""
    host, port = listen_address(config)
    logging.basicConfig(level=loglevel, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    path = db_path(config)
    try:  # before the reader opens it: one connection sets the schema and WAL up
        store = Store(path)
    except (OSError, sqlite3.Error) as exc:
        raise ConsoleRefused(f"cannot open the console's store {path}: {exc}") from None
    reader = OutcomeReader(config, path)
    reader.start()
    console = ConsoleApp(config, store, reader)
    log.info("console on http://%s:%d/ (store %s, reading %s)", host, port, path, ", ".join(reader.topics))
    try:
        web.run_app(console.app, host=host, port=port, print=None, access_log=None)
    finally:
        reader.stop()
