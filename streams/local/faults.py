"""Fault runs on the local stack: a stream whose every delivery can be counted, workers killed,
stopped and restarted on their state, and the verdict (lost, doubled, sent twice, how long it took).

Used by the crash tests and `make soak` (bench/soak.py); never a production path. Counting is by
records read, never by end offsets (the local broker's lag): each (event, action) pair the
config routes must end with exactly one terminal outcome (`delivered`, `rejected`, `failed` or,
for events no action takes, the route's own `invalid`/`skipped`); `duplicate` outcomes are a
redelivery absorbed by dedup and counted apart. Sends are counted at the sandbox from the
bodies it accepted: Xtremepush's and a webhook's carry the messageId, Pushwoosh's the `seq`
this corpus puts in every event's properties and traits.
"""

from __future__ import annotations

import collections
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from pushstream.codecs.config import Config, load_config
from pushstream.codecs.route import route_record
from pushstream.streams.commands.produce import produce_lines
from pushstream.streams.kafka.admin import ensure_topics, make_reader
from pushstream.streams.local.samples import sample_events
from pushstream.streams.local.sandbox import HOOK_PREFIX, PW_PREFIX, XP_PREFIX
from pushstream.streams.local.stack import Proc, local_config, local_env, start_worker

__all__ = ["FaultRun", "OutcomeTally", "Pair", "SCENARIOS", "Verdict", "expected_pairs", "fault_corpus", "sends"]

Pair = tuple[str, str, str, str]  # message id, instance, action, mapping


def fault_corpus(n: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """`n` mixed sample events, each with a `seq` (its index) in its properties and traits, so a
    destination's request body says which events it carried."""
    events = sample_events(n, seed=seed, prefix=prefix)
    for i, ev in enumerate(events):
        ev.setdefault("traits" if ev["type"] in ("identify", "group") else "properties", {})["seq"] = i
    return events


def expected_pairs(config: Config, lines: list[bytes]) -> set[Pair]:
    """Every (event, action) pair the config makes of these records, routed as the worker routes them."""
    pairs: set[Pair] = set()
    now = time.time()
    for i, line in enumerate(lines):
        routed = route_record(line, "expected", 0, i, config, now)
        pairs.update((job.message_id, name, job.action, job.mapping) for name, job in routed.jobs)
        pairs.update((o.message_id or "", o.instance or "", o.action or "", o.mapping or "") for o in routed.outcomes)
    return pairs


class OutcomeTally:
    """Reads the outcome topic from its beginning (partitions assigned, no group) and counts."""

    def __init__(self, config: Config, prefix: str) -> None:
        self.prefix = prefix
        self.consumer = make_reader(config.kafka, f"tally-{prefix}", log_level=0)
        topic = config.topic("outcomes")
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.terminal: collections.Counter[Pair] = collections.Counter()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.last_at = 0.0

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, 0.1):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                o = msgspec.json.decode(value)
                if not (o.get("message_id") or "").startswith(self.prefix):
                    continue
                self.statuses[o["status"]] += 1
                if o["status"] == "duplicate":
                    continue
                self.terminal[(o["message_id"], o.get("instance") or "", o.get("action") or "",
                               o.get("mapping") or "")] += 1
                self.last_at = max(self.last_at, o["at"])

    def wait(self, done: Callable[[OutcomeTally], bool], timeout: float) -> bool:
        """Poll until `done(self)` or `timeout`; whether it is done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self):
                return True
            self.poll(0.25)
        return done(self)

    def close(self) -> None:
        self.consumer.close()


def sends(sandbox_url: str, prefix: str) -> dict[str, collections.Counter[str]]:
    """Per destination ("pushwoosh", "xtremepush", "webhook"): how often the sandbox accepted each event."""
    records = httpx.get(f"{sandbox_url}/_sandbox/requests", timeout=60).json()
    out: dict[str, collections.Counter[str]] = {"pushwoosh": collections.Counter(),
                                                "xtremepush": collections.Counter(), "webhook": collections.Counter()}
    for r in records:
        body = r.get("body")
        if r.get("status") == 200 and r["path"].startswith(HOOK_PREFIX):
            for item in body if isinstance(body, list) else [body]:
                if isinstance(item, dict) and str(item.get("messageId", "")).startswith(prefix):
                    out["webhook"][item["messageId"]] += 1
            continue
        if r.get("status") != 200 or not isinstance(body, dict):
            continue
        if r["path"].startswith(XP_PREFIX):
            if str(body.get("messageId", "")).startswith(prefix):
                out["xtremepush"][body["messageId"]] += 1
        elif r["path"].startswith(PW_PREFIX):
            for item in body.get("events", [body]):
                seq = (item.get("attributes") or {}).get("seq")
                if seq is not None and str(item.get("user_id", "")).startswith(prefix):
                    out["pushwoosh"][str(seq)] += 1
    return out


@dataclass
class Verdict:
    """What a fault run came to."""

    expected: int
    lost: int
    doubled: int
    sent_twice: dict[str, int]
    statuses: dict[str, int]
    after_fault: float  # seconds from the last fault to the last outcome
    after_ready: float  # seconds from the last worker start being ready to the last outcome
    faults: list[str] = field(default_factory=list)

    def problems(self, deliver_batch: int, kills: int, within: float = 30.0) -> list[str]:
        """What this run broke of the promise: every pair once, at most one delivery step sent twice
        per instance per kill (none after a clean stop), done within `within` s of the last fault."""
        found = [f"{self.lost} pairs without an outcome"] if self.lost else []
        found += [f"{self.doubled} pairs with two terminal outcomes"] if self.doubled else []
        found += [f"{n} events sent twice to {dest} (at most {kills * deliver_batch})"
                  for dest, n in self.sent_twice.items() if n > kills * deliver_batch]
        if not kills and self.statuses.get("duplicate"):
            found.append(f"{self.statuses['duplicate']} redelivered after a clean stop")
        if self.after_fault > within:
            found.append(f"done {self.after_fault:.1f} s after the last fault (at most {within:.0f})")
        return found

    def line(self) -> str:
        return (f"{self.expected} pairs: lost {self.lost}, doubled {self.doubled}, sent twice {self.sent_twice}, "
                f"done {self.after_fault:.1f} s after the last fault ({self.after_ready:.1f} s after ready); "
                f"outcomes {self.statuses}; faults {self.faults}")


class FaultRun:
    """One scenario's config (topics and group named after it), stream, workers and tally."""

    def __init__(self, broker_url: str, sandbox_url: str, workdir: Path, name: str, prefix: str, events: int,
                 seed: int, extra_kafka: str = "", env: dict[str, str] | None = None,
                 extra_destinations: str = "") -> None:
        self.sandbox_url, self.workdir, self.name, self.prefix = sandbox_url, workdir, name, prefix
        text = local_config(broker_url, sandbox_url, prefix=name, app_id=f"pushstream-{name}",
                            input_topic=f"{name}-events", extra_kafka=extra_kafka,
                            extra_destinations=extra_destinations)
        self.path = workdir / f"{name}.toml"
        self.path.write_text(text)
        self.env = {**local_env(), **(env or {})}
        self.config = load_config(text, self.env, workdir)
        ensure_topics(self.config)
        self.lines = [msgspec.json.encode(e) for e in fault_corpus(events, seed=seed, prefix=prefix)]
        self.expected = expected_pairs(self.config, self.lines)
        self.tally = OutcomeTally(self.config, prefix)
        self.faults: list[str] = []
        self.ready_at = self.fault_at = 0.0

    def start(self, worker: str, wait: bool = True) -> Proc:
        proc = start_worker(self.workdir, self.path, self.env, name=worker, wait=wait)
        self.ready_at = time.time()
        return proc

    def produce(self, background: bool = False) -> threading.Thread | None:
        if not background:
            produce_lines(self.config, self.lines)
            return None
        thread = threading.Thread(target=produce_lines, args=(self.config, self.lines), daemon=True)
        thread.start()
        return thread

    def until(self, fraction: float, timeout: float = 120.0) -> None:
        """Wait until `fraction` of the pairs have their terminal outcome."""
        if not self.tally.wait(lambda t: len(t.terminal) >= fraction * len(self.expected), timeout):
            raise AssertionError(f"{self.name}: {len(self.tally.terminal)} of {len(self.expected)} pairs after "
                                 f"{timeout:.0f} s ({self.tally.statuses})")

    def fault(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        self.faults.append(f"{signal.Signals(sig).name} at {len(self.tally.terminal)}/{len(self.expected)}")
        proc.stop(sig)
        self.fault_at = time.time()

    def verdict(self, timeout: float = 120.0) -> Verdict:
        """Once every pair has an outcome (or `timeout`), and a little longer for any sent twice."""
        self.tally.wait(lambda t: set(t.terminal) >= self.expected, timeout)
        self.tally.poll(2.0)
        self.tally.close()
        sent = sends(self.sandbox_url, self.prefix)
        t = self.tally
        return Verdict(expected=len(self.expected), lost=len(self.expected - set(t.terminal)),
                       doubled=sum(1 for n in t.terminal.values() if n > 1),
                       sent_twice={d: sum(n - 1 for n in counts.values() if n > 1) for d, counts in sent.items()},
                       statuses=dict(t.statuses), after_fault=round(t.last_at - self.fault_at, 1),
                       after_ready=round(t.last_at - self.ready_at, 1), faults=self.faults)


def kill_at(run: FaultRun, fractions: tuple[float, ...]) -> Verdict:
    """kill -9 at each fraction of the stream; the worker restarted on its state each time."""
    worker = run.start(run.name)
    run.produce()
    for fraction in fractions:
        run.until(fraction)
        run.fault(worker)
        worker = run.start(run.name)
    try:
        return run.verdict()
    finally:
        worker.stop()


def kill_in_recovery(run: FaultRun, fraction: float = 0.4) -> Verdict:
    """kill -9; the restarted worker killed again while its dedup table recovers (its /readyz
    says so), then started again."""
    worker = run.start(run.name)
    run.produce()
    run.until(fraction)
    run.fault(worker)
    worker = run.start(run.name, wait=False)
    deadline, seen = time.monotonic() + 60, ""
    while "recovering" not in seen and time.monotonic() < deadline:
        try:
            seen = httpx.get(f"{worker.ops_url}/readyz", timeout=1).text
        except httpx.HTTPError:
            time.sleep(0.02)
    if "recovering" not in seen:
        worker.stop()
        raise AssertionError(f"{run.name}: never saw the restarted worker recover: {seen!r}")
    run.fault(worker)
    worker = run.start(run.name)
    try:
        return run.verdict()
    finally:
        worker.stop()


def kill_one_of_two(run: FaultRun, fraction: float = 0.3) -> Verdict:
    """Two workers in the group; one is killed -9 and stays down: the survivor takes over."""
    first, second = run.start(f"{run.name}-a"), run.start(f"{run.name}-b")
    try:
        run.produce()
        run.until(fraction)
        run.fault(first)
        return run.verdict()
    finally:
        second.stop()


def sigterm_at(run: FaultRun, fraction: float = 0.4) -> Verdict:
    """SIGTERM while events still arrive, then a restart: a clean stop finishes and commits what it read."""
    worker = run.start(run.name)
    producer = run.produce(background=True)
    run.until(fraction)
    run.fault(worker, signal.SIGTERM)
    if worker.process.returncode != 0:
        raise AssertionError(f"{run.name}: the stopped worker exited with {worker.process.returncode}:\n"
                             f"{worker.output()[-2000:]}")
    worker = run.start(run.name)
    assert producer is not None
    producer.join()
    try:
        return run.verdict()
    finally:
        worker.stop()


#: name -> (scenario, kills it makes): the crash tests run each once on a short stream, `make soak` many times.
SCENARIOS: dict[str, tuple[Callable[[FaultRun], Verdict], int]] = {
    "kill-0.2-0.5-0.8": (lambda run: kill_at(run, (0.2, 0.5, 0.8)), 3),
    "kill-0.3": (lambda run: kill_at(run, (0.3,)), 1),
    "kill-0.6": (lambda run: kill_at(run, (0.6,)), 1),
    "kill-in-recovery": (kill_in_recovery, 2),
    "kill-one-of-two": (kill_one_of_two, 1),
    "sigterm": (sigterm_at, 0),
}
