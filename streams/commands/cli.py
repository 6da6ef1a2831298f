"""The `pushstream` command: worker, intake, console, produce, outcomes, status, preview, check, replay, sandbox,
broker, config, schema, demo.

A user error ends a command with one line on stderr and a documented exit code, never a
traceback: 2 a bad config or usage, 3 Kafka unreachable, 4 an input file that cannot be read
or an unknown instance, 5 Kafka refused the connection's security (TLS, SASL: the line names
the cause), 1 records Kafka refused or anything else that failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import msgspec
from rich.console import Console

from pushstream.codecs.config import Config, ConfigError
from pushstream.codecs.records import STATUSES
from pushstream.streams import environ
from pushstream.streams.kafka.admin import BrokerRefused, BrokerUnreachable, check_broker, ensure_topics

__all__ = ["main"]

EXIT_FAILED, EXIT_CONFIG, EXIT_BROKER, EXIT_INPUT, EXIT_SECURITY = 1, 2, 3, 4, 5
BUILTIN = "<built-in>"
Parser = argparse.ArgumentParser


class UserError(Exception):
    """A mistake of the user's: one line and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _config(args: argparse.Namespace, broker: bool = False, intake: bool = False, console: bool = False) -> Config:
    """The config (environment overrides applied); with `broker`, also check Kafka answers."""
    try:
        config = environ.load(args.config, intake=intake, console=console)
    except ConfigError as exc:
        raise UserError(str(exc), EXIT_CONFIG) from None
    if broker:
        check_broker(config.kafka)
    return config


def _instance(config: Config, name: str | None) -> None:
    if name is not None and name not in {i.name for i in config.instances}:
        known = ", ".join(i.name for i in config.instances)
        raise UserError(f"no instance {name!r} in the config (instances: {known})", EXIT_INPUT)


def cmd_worker(args: argparse.Namespace) -> None:
    """Run the agents with a short start and our log format (the config loaded and checked once, here)."""
    config = _config(args, broker=True)
    from pushstream.streams.app import create_app
    from pushstream.streams.kafka.faust_app import tune_process
    from pushstream.streams.ops import logs

    app = create_app(config)
    tune_process(config)
    level = args.loglevel.upper()
    app.conf.loghandlers = [logs.handler(args.log_format, everything=level == "DEBUG")]
    instances = ", ".join(f"{i.name} ({i.destination.slug})" for i in config.instances)
    intro = [f"pushstream worker: config {args.config}, broker {config.kafka.broker}",
             f"instances: {instances}; reading {', '.join(config.kafka.input_topics)}",
             f"joining consumer group {config.kafka.app_id}; Ready follows"]
    logging_config = {"version": 1, "disable_existing_loggers": False, "root": {"level": level}}
    worker = logs.QuietWorker(app, intro=intro, loglevel=level, quiet=True, logging_config=logging_config)
    worker.execute_from_commandline()


def cmd_intake(args: argparse.Namespace) -> None:
    """Serve Segment's Tracking API for the config's [intake] sources."""
    import mode

    from pushstream.streams.intake import IntakeServer
    from pushstream.streams.ops import logs

    config = _config(args, intake=True)
    if config.intake is None:
        raise UserError(f"{args.config} has no [intake] section (listen, and [[intake.sources]] with name, "
                        "write_key, topic)", EXIT_CONFIG)
    try:
        check_broker(config.kafka)
    except BrokerRefused:  # credentials and certificates do not heal by waiting: refuse to start
        raise
    except BrokerUnreachable as exc:  # requests will get 503 until it answers; say so, keep serving
        print(f"pushstream: warning: {exc}", file=sys.stderr)
    level = args.loglevel.upper()
    worker = mode.Worker(IntakeServer(config, config.intake), loglevel=level, quiet=True,
                         loghandlers=[logs.handler(args.log_format, everything=level == "DEBUG")],
                         logging_config={"version": 1, "disable_existing_loggers": False, "root": {"level": level}})
    worker.execute_from_commandline()


def cmd_console(args: argparse.Namespace) -> None:
    """Serve the delivery console, read from the outcome and samples topics."""
    from pushstream.streams.console.run import ConsoleRefused, serve

    config = _config(args, broker=True, console=True)
    try:
        serve(config, args.loglevel.upper())
    except ConsoleRefused as exc:
        raise UserError(str(exc), EXIT_CONFIG) from None


def cmd_produce(args: argparse.Namespace) -> None:
    from pushstream.streams.commands.produce import ProduceError, produce_lines, read_lines

    config = _config(args)
    try:
        lines, numbers = read_lines(args.file)
    except OSError as exc:
        raise UserError(f"cannot read {args.file}: {exc.strerror or exc}", EXIT_INPUT) from None
    check_broker(config.kafka)
    ensure_topics(config)
    topic = args.topic or config.kafka.input_topics[0]
    try:
        produce_lines(config, lines, topic, progress=sys.stderr.isatty(), numbers=numbers)
    except ProduceError as exc:
        raise UserError(str(exc)) from None
    print(f"produced {len(lines)} records to {topic}")


def cmd_outcomes(args: argparse.Namespace) -> None:
    from pushstream.streams.commands.outcomes import OutcomeFilter, Summary, read_outcomes

    config = _config(args, broker=True)
    _instance(config, args.instance)
    since = time.time() - args.since if args.since is not None else None
    keep = OutcomeFilter(args.instance, args.status, args.action, since)
    summary = Summary()
    console = Console(stderr=True)
    with console.status("reading outcomes…") if args.summary and console.is_terminal else contextlib.nullcontext():
        for outcome, raw in read_outcomes(config.kafka, config.topic("outcomes"), since=since,
                                          follow=args.follow, idle=args.idle, max_wait=args.max_wait):
            if outcome is None or not keep(outcome):
                continue
            if args.summary:
                summary.add(outcome)
            else:
                print(raw.decode(errors="replace"), flush=args.follow)
    if args.summary:
        summary.render(Console())


def cmd_status(args: argparse.Namespace) -> None:
    from pushstream.streams.commands.status import gather, render

    config = _config(args, broker=True)
    status = gather(config)
    if args.json:
        print(msgspec.json.encode(status).decode())
    else:
        render(status, Console())


def cmd_preview(args: argparse.Namespace) -> None:
    from pushstream.streams.commands.preview import preview
    from pushstream.streams.commands.produce import read_lines

    config = _config(args)
    try:
        lines, _ = read_lines(args.file)
    except OSError as exc:
        raise UserError(f"cannot read {args.file}: {exc.strerror or exc}", EXIT_INPUT) from None
    preview(config, lines, sys.stdout)


def cmd_check(args: argparse.Namespace) -> None:
    from pushstream.codecs.tester import builtin_events
    from pushstream.streams.commands.preview import check_credentials, send_test

    if args.instance is None:
        config = _config(args, broker=True)
        k = config.kafka
        how = k.security_protocol + (f", {k.sasl_mechanism}" if k.sasl_mechanism else "")
        print(f"kafka: {k.broker} ({how}): connected and authorised to list topics")
        return
    config = _config(args)
    _instance(config, args.instance)
    if args.send_test is None:
        ok, text = asyncio.run(check_credentials(config, args.instance))
        print(f"{args.instance}: {text}")
        sys.exit(0 if ok else EXIT_FAILED)
    if args.send_test == BUILTIN:
        events = [msgspec.json.encode(e) for e in builtin_events()]
    else:
        events = [_one_event(args.send_test)]
    ok = asyncio.run(send_test(config, args.instance, events, sys.stdout))
    sys.exit(0 if ok else EXIT_FAILED)


def _one_event(path: str) -> bytes:
    """The bytes of a file holding one JSON object (on one line or pretty-printed)."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}", EXIT_INPUT) from None
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise UserError(f"{path}: not one JSON event: {exc}", EXIT_INPUT) from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: a test event is a JSON object, not {type(value).__name__}", EXIT_INPUT)
    return data


def cmd_replay(args: argparse.Namespace) -> None:
    from pushstream.streams.commands.replay import replay

    config = _config(args, broker=True)
    _instance(config, args.instance)
    counts = replay(config, instance=args.instance, action=args.action, since=args.since, until=args.until,
                    error=args.error, status=args.status, dry_run=args.dry_run)
    verb = "would replay" if args.dry_run else "replayed"
    for name, n in sorted(counts.items()):
        print(f"{name}: {n}")
    print(f"{verb} {sum(counts.values())} {'' if args.status == 'all' else args.status + ' '}job(s)")


def cmd_sandbox(args: argparse.Namespace) -> None:
    from pushstream.streams.local.sandbox import SandboxConfig, run_sandbox

    config = SandboxConfig()
    for pair in args.pushwoosh or []:
        key, _, app_code = pair.partition("=")
        config.pushwoosh.add((key, app_code))
    config.xtremepush.update(args.xtremepush or [])
    print(f"sandbox on http://127.0.0.1:{args.port}", flush=True)
    run_sandbox(args.port, config)


def cmd_broker(args: argparse.Namespace) -> None:
    from pushstream.streams.local.broker import serve_broker

    try:
        serve_broker(args.port, lambda b: print(f"broker on {b.url} (Ctrl-C or SIGTERM stops it)", flush=True))
    except RuntimeError as exc:  # the dev extra is missing
        raise UserError(str(exc)) from None


def cmd_config(args: argparse.Namespace) -> None:
    from pushstream.streams.commands.reference import reference

    if not args.reference:
        raise UserError("say what to print: pushstream config --reference", EXIT_CONFIG)
    print(reference())


def cmd_schema(args: argparse.Namespace) -> None:
    from pushstream.streams.commands.schemas import schema

    print(msgspec.json.format(msgspec.json.encode(schema(args.kind)), indent=2).decode())


def cmd_demo(args: argparse.Namespace) -> None:
    from pathlib import Path

    from pushstream.streams.local.demo import run_demo

    sys.exit(run_demo(args.events, Path(args.workdir) if args.workdir else None))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushstream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], None], help_: str, config: bool = True) -> Parser:
        p = sub.add_parser(name, help=help_)
        if config:
            p.add_argument("--config", default=environ.config_path(), help="config file (or PUSHSTREAM_CONFIG)")
        p.set_defaults(fn=fn)
        return p

    for name, fn, help_ in (("worker", cmd_worker, "run the agents"),
                            ("intake", cmd_intake, "serve Segment's HTTP Tracking API in front of Kafka")):
        p = add(name, fn, help_)
        p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
        p.add_argument("--log-format", default="text", choices=["text", "json"])
    p = add("produce", cmd_produce, "produce JSONL events (file or -) to the input topic")
    p.add_argument("file", nargs="?", default="-")
    p.add_argument("--topic")
    p = add("outcomes", cmd_outcomes, "print outcome records (or a summary), oldest first")
    p.add_argument("--summary", action="store_true", help="totals, top reasons and latency percentiles")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new outcomes until Ctrl-C")
    p.add_argument("--instance")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--action")
    p.add_argument("--since", type=float, metavar="SECONDS", help="only outcomes of the last SECONDS")
    p.add_argument("--idle", type=float, default=3.0, help="stop after this many seconds without a record")
    p.add_argument("--max-wait", type=float, default=None, help="stop after this many seconds in any case")
    add("console", cmd_console, "serve the delivery console (overview, errors with samples, event tester)") \
        .add_argument("--loglevel", default="info")
    p = add("status", cmd_status, "per instance: lag, recent outcomes, last error, paused")
    p.add_argument("--json", action="store_true")
    p = add("preview", cmd_preview, "show the HTTP requests events would cause (no Kafka)")
    p.add_argument("file", nargs="?", default="-")
    p = add("check", cmd_check, "check an instance's credentials, or send it a test event; without an "
                                "instance, check the connection to Kafka (TLS, SASL)")
    p.add_argument("instance", nargs="?")
    p.add_argument("--send-test", nargs="?", const=BUILTIN, metavar="FILE",
                   help="send one real test event (built in, or FILE's) and print requests and raw responses")
    p = add("replay", cmd_replay, "send failed (or, after a fix, rejected) jobs again, past dedup")
    for opt in ("--instance", "--action", "--error"):
        p.add_argument(opt)
    p.add_argument("--since", type=float, help="unix time")
    p.add_argument("--until", type=float, help="unix time")
    p.add_argument("--status", default="failed", choices=["failed", "rejected", "all"],
                   help="failed (retries ran out; the default) or rejected (refused by the destination)")
    p.add_argument("--dry-run", action="store_true", help="count per instance, send nothing")
    _local_and_reference(add)
    return parser


def _local_and_reference(add: Callable[..., Parser]) -> None:
    """The commands that need no config: the local stack and the generated references."""
    p = add("sandbox", cmd_sandbox, "run the local destination sandbox", config=False)
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--pushwoosh", action="append", metavar="KEY=APPCODE", help="also accept these credentials")
    p.add_argument("--xtremepush", action="append", metavar="KEY", help="also accept this API key")
    add("broker", cmd_broker, "run a local Kafka-compatible broker (Tansu)", config=False).add_argument(
        "--port", type=int, default=9092)
    add("config", cmd_config, "print the configuration reference: every key, its default and meaning",
        config=False).add_argument("--reference", action="store_true", help="every key of every section (Markdown)")
    add("schema", cmd_schema, "print the JSON Schema of a record kind pushstream writes for others",
        config=False).add_argument("kind", choices=["outcome", "deadletter", "sample", "event"])
    p = add("demo", cmd_demo, "broker + sandbox + worker + 1,000 events, then a summary", config=False)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--workdir")


def _fail(message: str, code: int) -> NoReturn:
    print(f"pushstream: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    args: Any = _parser().parse_args(argv)
    try:
        args.fn(args)
    except UserError as exc:
        _fail(str(exc), exc.code)
    except BrokerRefused as exc:
        _fail(str(exc), EXIT_SECURITY)
    except BrokerUnreachable as exc:
        _fail(str(exc), EXIT_BROKER)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:  # `pushstream outcomes | head`
        sys.stderr.close()
        sys.exit(0)


if __name__ == "__main__":
    main()
