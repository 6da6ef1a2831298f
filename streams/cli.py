"""The `pushstream` command: worker, produce, outcomes, preview, check, replay, sandbox, broker, demo."""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import msgspec

from pushstream.codecs.config import Config, ConfigError, load_config_file
from pushstream.codecs.plan import plan_requests
from pushstream.codecs.records import Job, decode_dead_letter, decode_outcome, encode
from pushstream.codecs.route import route_record

from .kafka import ensure_topics, make_producer, read_topic
from .produce import produce_lines

__all__ = ["main"]


def _config(path: str) -> Config:
    try:
        return load_config_file(path, dict(os.environ))
    except ConfigError as exc:
        sys.exit(f"pushstream: {exc}")


def _lines(source: str) -> list[bytes]:
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    with stream:
        return [line.rstrip(b"\r\n") for line in stream if line.strip()]


def cmd_worker(args: argparse.Namespace) -> None:
    """Run the agents: `faust -A pushstream.streams.worker worker` with this config."""
    os.environ["PUSHSTREAM_CONFIG"] = args.config
    from faust.cli.faust import cli

    sys.argv = ["faust", "-A", "pushstream.streams.worker", "worker", "--without-web", "--loglevel", args.loglevel]
    cli(prog_name="pushstream worker")


def cmd_produce(args: argparse.Namespace) -> None:
    config = _config(args.config)
    ensure_topics(config)
    n = sum(c is not None for c in produce_lines(config, _lines(args.file), args.topic, sys.stderr))
    print(f"produced {n} records to {args.topic or config.kafka.input_topics[0]}")


def cmd_outcomes(args: argparse.Namespace) -> None:
    config = _config(args.config)
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for _, _, _, _, value in read_topic(config.kafka.broker, [config.topic("outcomes")],
                                        idle_timeout=args.idle, max_wait=args.max_wait):
        o = decode_outcome(value)
        counts[(o.instance or "-", o.action or "-", o.status)] += 1
        if not args.summary:
            print(value.decode())
    if args.summary:
        for (inst, action, status), n in sorted(counts.items()):
            print(f"{inst:24} {action:20} {status:10} {n}")


def _mask(headers: dict[str, str]) -> dict[str, str]:
    return {k: (v.split(" ", 1)[0] + " ********" if k.lower() == "authorization" else v) for k, v in headers.items()}


def preview(config: Config, lines: list[bytes], out: TextIO) -> None:
    """Print, per event and instance, which mappings fired and the exact requests that would be sent."""
    jobs: dict[str, list[Job]] = collections.defaultdict(list)
    now = time.time()
    for i, line in enumerate(lines):
        routed = route_record(line, "preview", 0, i, config, now)
        out.write(f"event #{i}: ")
        if routed.outcomes and routed.outcomes[0].status == "invalid":
            out.write(f"invalid: {routed.outcomes[0].reason}\n")
            continue
        ids = {o.message_id for o in routed.outcomes} | {j.message_id for _, j in routed.jobs}
        out.write(f"messageId={next(iter(ids), '-')}\n")
        for name, job in routed.jobs:
            out.write(f"  {name} / {job.mapping} ({job.action}): {'batched' if job.batched else 'sent alone'}\n")
            jobs[name].append(job)
        for o in routed.outcomes:
            out.write(f"  {o.instance} / {o.mapping} ({o.action}): {o.status}: {o.reason}\n")
        if not routed.jobs and not routed.outcomes:
            out.write("  no mapping fired\n")
    for name, batch in jobs.items():
        inst = config.instance(name)
        headers = _mask({**inst.destination.auth_headers(inst.settings), "content-type": "application/json"})
        plans, _ = plan_requests(inst, batch)
        for plan in plans:
            url = inst.destination.base_url(inst.settings) + plan.request.path
            out.write(f"\n{name}: {plan.request.method} {url}  ({len(plan.jobs)} event(s))\n")
            for k, v in headers.items():
                out.write(f"  {k}: {v}\n")
            out.write(msgspec.json.format(msgspec.json.encode(plan.request.body), indent=2).decode() + "\n")


def cmd_preview(args: argparse.Namespace) -> None:
    preview(_config(args.config), _lines(args.file), sys.stdout)


async def check_credentials(config: Config, name: str) -> tuple[bool, str]:
    """Call the instance's credential check (Pushwoosh ping); returns (accepted, explanation)."""
    from .http import AuthError, DeliveryError, DestinationClient

    inst = config.instance(name)
    if inst.destination.ping is None:
        return False, f"{inst.destination.title} has no credential check endpoint; send a test event instead"
    client = DestinationClient(inst, config.pipeline.request_timeout)
    try:
        response = await client.send(inst.destination.ping(inst.settings))
        return True, f"credentials accepted ({response.status})"
    except AuthError as exc:
        return False, f"credentials rejected: {exc.reason}"
    except DeliveryError as exc:
        return False, f"could not check: {exc.reason}"
    finally:
        await client.aclose()


def cmd_check(args: argparse.Namespace) -> None:
    ok, text = asyncio.run(check_credentials(_config(args.config), args.instance))
    print(f"{args.instance}: {text}")
    sys.exit(0 if ok else 1)


def replay(config: Config, *, instance: str | None = None, action: str | None = None, since: float | None = None,
           until: float | None = None, error: str | None = None, idle: float = 2.0) -> int:
    """Re-send dead-lettered jobs (matching the filters) to their jobs topic; returns how many."""
    producer = make_producer(config.kafka.broker)
    names = {i.name for i in config.instances}
    sent = 0
    for _, _, _, _, value in read_topic(config.kafka.broker, [config.topic("deadletter")], idle_timeout=idle):
        dl = decode_dead_letter(value)
        job = dl.job
        if (instance and job.instance != instance) or (action and job.action != action) or job.instance not in names:
            continue
        if (since and dl.failed_at < since) or (until and dl.failed_at > until):
            continue
        if error and error not in f"{dl.error_code} {dl.reason}":
            continue
        fresh = msgspec.structs.replace(job, attempts=0, first_attempt_at=None, due_at=None, last_error=None)
        producer.produce(config.topic("jobs", job.instance), value=encode(fresh),
                         key=job.key.encode() if job.key else None)
        producer.poll(0)
        sent += 1
    if producer.flush(30):
        raise RuntimeError("not every replayed job was acknowledged by the broker")
    return sent


def cmd_replay(args: argparse.Namespace) -> None:
    n = replay(_config(args.config), instance=args.instance, action=args.action, since=args.since,
               until=args.until, error=args.error)
    print(f"replayed {n} dead-lettered job(s)")


def cmd_sandbox(args: argparse.Namespace) -> None:
    from .local.sandbox import SandboxConfig, run_sandbox

    config = SandboxConfig()
    for pair in args.pushwoosh or []:
        key, _, app_code = pair.partition("=")
        config.pushwoosh.add((key, app_code))
    config.xtremepush.update(args.xtremepush or [])
    print(f"sandbox on http://127.0.0.1:{args.port}", flush=True)
    run_sandbox(args.port, config)


def cmd_broker(args: argparse.Namespace) -> None:
    from .local.broker import start_broker

    broker = start_broker(args.port)
    print(f"broker on {broker.url} (Ctrl-C stops it)", flush=True)
    try:
        broker.process.wait()
    except KeyboardInterrupt:
        broker.stop()


def cmd_demo(args: argparse.Namespace) -> None:
    from .local.demo import run_demo

    sys.exit(run_demo(args.events, Path(args.workdir) if args.workdir else None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pushstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Any, help_: str, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        if config:
            p.add_argument("--config", default=os.environ.get("PUSHSTREAM_CONFIG", "pushstream.toml"))
        p.set_defaults(fn=fn)
        return p

    add("worker", cmd_worker, "run the agents (faust worker)").add_argument("--loglevel", default="info")
    p = add("produce", cmd_produce, "produce JSONL events (file or -) to the input topic")
    p.add_argument("file", nargs="?", default="-")
    p.add_argument("--topic")
    p = add("outcomes", cmd_outcomes, "print outcome records (or a summary) from the beginning")
    p.add_argument("--summary", action="store_true")
    p.add_argument("--idle", type=float, default=3.0, help="stop after this many seconds without a record")
    p.add_argument("--max-wait", type=float, default=300.0)
    p = add("preview", cmd_preview, "show the HTTP requests events would cause (no Kafka)")
    p.add_argument("file", nargs="?", default="-")
    p = add("check", cmd_check, "check an instance's credentials")
    p.add_argument("instance")
    p = add("replay", cmd_replay, "re-send dead-lettered jobs")
    for opt in ("--instance", "--action", "--error"):
        p.add_argument(opt)
    p.add_argument("--since", type=float, help="unix time")
    p.add_argument("--until", type=float, help="unix time")
    p = add("sandbox", cmd_sandbox, "run the local destination sandbox", config=False)
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--pushwoosh", action="append", metavar="KEY=APPCODE", help="also accept these credentials")
    p.add_argument("--xtremepush", action="append", metavar="KEY", help="also accept this API key")
    add("broker", cmd_broker, "run a local Kafka-compatible broker (Tansu)", config=False).add_argument(
        "--port", type=int, default=9092)
    p = add("demo", cmd_demo, "broker + sandbox + worker + 1,000 events, then a summary", config=False)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--workdir")
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
