"""How `pushstream worker` logs: a few lines of its own at start, then warnings; text or JSON.

Faust's worker prints a ~130-line banner and logs every table, subscription and rebalance step
at INFO. Our handler passes pushstream's own INFO lines, Faust's one "Ready" line (tests and the
benchmark wait for it) and every WARNING or worse from anyone; `--loglevel debug` passes all.
`--log-format json` writes one JSON object per line (time, level, logger, message, exception).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec
from faust.worker import Worker

from pushstream.streams.kafka.faust_compat import READY_LINE

__all__ = ["JsonFormatter", "KeepOwnInfo", "QuietWorker", "handler"]

log = logging.getLogger("pushstream.worker")

TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"


class KeepOwnInfo(logging.Filter):
    """INFO from pushstream's own loggers and Faust's Ready line; WARNING and above from everyone.
    Services' "[^--Name]: Starting..." lines are Faust's chatter even when the service is ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        if message.startswith("[^"):
            return record.levelno == logging.INFO and message.endswith(READY_LINE)
        return record.name.startswith("pushstream")


class QuietWorker(Worker):
    """Faust's worker without its banner, logging `intro` lines once logging is set up."""

    def __init__(self, *args: Any, intro: list[str], **kwargs: Any) -> None:
        self.intro = intro
        super().__init__(*args, **kwargs)

    async def on_start(self) -> None:
        for line in self.intro:  # logging is set up by now (mode's Worker.on_first_start)
            log.info("%s", line)
        self.intro = []
        await super().on_start()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for log shippers."""

    _encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "pid": record.process}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encode(entry).decode()


def handler(log_format: str, everything: bool = False) -> logging.Handler:
    """The worker's stderr handler: `log_format` is "text" or "json"; `everything` skips the filter.

    httpx logs every request at INFO; at thousands of requests a second that line costs more
    than the request (the deliverer logs one line per delivery), so httpx logs warnings only."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    if not everything:
        h.addFilter(KeepOwnInfo())
    return h
