"""`pushstream demo`: the whole pipeline on the embedded default, then a summary.

Starts Tansu and the sandbox on free loopback ports, writes a config (Pushwoosh, Xtremepush and
a webhook instance, all on the sandbox), starts a real worker,
produces ~1,000 mixed Segment events, waits for every expected outcome (the pure router
says how many to expect), prints what happened and stops everything it started.
"""

from __future__ import annotations

import collections
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

from pushstream.codecs.config import load_config
from pushstream.codecs.route import route_record
from pushstream.streams.commands.produce import produce_lines
from pushstream.streams.kafka.admin import ensure_topics, read_topic
from pushstream.streams.local.broker import start_broker
from pushstream.streams.local.samples import sample_events
from pushstream.streams.local.stack import local_config, local_env, start_sandbox, start_worker, webhook_instance

__all__ = ["run_demo"]


def run_demo(n: int = 1000, workdir: Path | None = None) -> int:
    """Run the demo; returns the process exit code (0 when every expected outcome arrived)."""
    own_dir = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="pushstream-demo-")) if workdir is None else workdir
    wd.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    broker = start_broker(log_path=str(wd / "broker.log"))
    procs = []
    try:
        sandbox, url = start_sandbox(wd)
        procs.append(sandbox)
        text = local_config(broker.url, url, extra_destinations=webhook_instance(
            url, subscribe='type = "track" or type = "identify"'))
        (wd / "pushstream.toml").write_text(text)
        config = load_config(text, local_env())
        ensure_topics(config)
        print(f"broker {broker.url}, sandbox {url}, config {wd / 'pushstream.toml'}")
        worker = start_worker(wd, wd / "pushstream.toml", local_env())
        procs.append(worker)
        print(f"worker ready after {time.monotonic() - started:.1f}s")
        lines = [msgspec.json.encode(e) for e in sample_events(n)]
        lines += [b"this is not json", b'{"type": "track", "messageId": "demo-bad-1"}']  # two bad records
        expected = sum(len(r.jobs) + len(r.outcomes)
                       for r in (route_record(line, "demo", 0, i, config, 0.0) for i, line in enumerate(lines)))
        t0 = time.monotonic()
        produce_lines(config, lines)
        statuses: collections.Counter[tuple[str, str]] = collections.Counter()
        seen = 0
        for _, _, _, _, value in read_topic(config.kafka, [config.topic("outcomes")],
                                            idle_timeout=15, max_wait=180):
            o = msgspec.json.decode(value)
            statuses[(o.get("instance") or "(input)", o["status"])] += 1
            seen += 1
            if seen >= expected:
                break
        elapsed = time.monotonic() - t0
        requests = httpx.get(f"{url}/_sandbox/requests", timeout=10).json()
        per_path = collections.Counter(r["path"] for r in requests)
        print(f"\nevents produced: {len(lines)} ({n} sample events + 2 malformed)")
        print(f"outcomes: {seen} of {expected} expected, in {elapsed:.1f}s")
        for (inst, status), count in sorted(statuses.items()):
            print(f"  {inst:22} {status:10} {count}")
        print(f"requests received by the sandbox: {len(requests)}")
        for path, count in sorted(per_path.items()):
            print(f"  {path:45} {count}")
        print(f"total time {time.monotonic() - started:.1f}s")
        return 0 if seen >= expected else 1
    finally:
        for p in reversed(procs):
            p.stop()
        broker.stop()
        if own_dir:
            shutil.rmtree(wd, ignore_errors=True)
