"""pushstream under faults, for minutes (not part of `make test`):

    python bench/soak.py --matrix [--repeat 10]   # the crash scenarios on 20,000 events, each N times
    python bench/soak.py [--minutes 15]           # a steady stream with a fault drawn every minute

The matrix runs streams/local/faults.py's scenarios (kill -9 at 0.2/0.5/0.8 of one stream, at
0.3 and at 0.6 on other seeds, during the restart's recovery, of one of two workers; SIGTERM)
and prints one line per run and a table: every run must lose nothing, double nothing, send at
most `deliver_batch` events twice per instance per kill and be done within 30 s of the last kill.

The soak produces at `--rate` events/s and, each minute, draws one fault: kill -9 of the worker
(restarted on its state), SIGTERM (restarted), a 503 burst or a 429 burst at one destination
(20 s), or the broker frozen for 10 s (SIGSTOP/SIGCONT). At the end: every pair exactly one
terminal outcome, and the redeliveries (duplicate outcomes) per kill.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import msgspec

from pushstream.streams.commands.produce import produce_lines
from pushstream.streams.local.broker import start_broker
from pushstream.streams.local.faults import SCENARIOS, FaultRun, OutcomeTally, expected_pairs, fault_corpus
from pushstream.streams.local.sandbox import PW_PREFIX, XP_PREFIX
from pushstream.streams.local.stack import local_config, local_env, start_sandbox, start_worker


def matrix(workdir: Path, repeat: int, events: int, only: list[str]) -> int:
    """Each scenario `repeat` times, each run on a broker and sandbox of its own; 1 if any run broke the promise."""
    rows: dict[str, list[tuple[list[str], float, int]]] = {}
    for n in range(repeat):
        for i, (name, (scenario, kills)) in enumerate(SCENARIOS.items()):
            if only and name not in only:
                continue
            run_dir = workdir / f"{name}-{n}"
            run_dir.mkdir()
            broker = start_broker(log_path=str(run_dir / "broker.log"))
            sandbox, url = start_sandbox(run_dir)
            try:
                run = FaultRun(broker.url, url, run_dir, "soak", f"m{n}s{i}", events, seed=100 * n + i)
                verdict = scenario(run)
                problems = verdict.problems(run.config.pipeline.deliver_batch, kills)
                worst = max(verdict.sent_twice.values()) / max(kills, 1)
            except AssertionError as exc:
                problems, worst, verdict = [str(exc)], 0.0, None
            finally:
                sandbox.stop()
                broker.stop()
            print(f"{name} #{n + 1}: {'ok' if not problems else 'FAILED ' + '; '.join(problems)} | "
                  f"{verdict.line() if verdict else ''}", flush=True)
            rows.setdefault(name, []).append((problems, verdict.after_fault if verdict else float('nan'), int(worst)))
    print(f"\n{'scenario':<20}{'runs':>6}{'failed':>8}{'max sent twice/kill':>21}{'max done after fault (s)':>26}")
    failed = 0
    for name, results in rows.items():
        bad = sum(1 for p, _, _ in results if p)
        failed += bad
        print(f"{name:<20}{len(results):>6}{bad:>8}{max(w for _, _, w in results):>21}"
              f"{max(d for _, d, _ in results):>26.1f}")
    return 1 if failed else 0


def soak(workdir: Path, minutes: float, rate: float, seed: int) -> int:
    """A steady stream with a random fault each minute; 1 if any pair was lost or doubled."""
    rng = random.Random(seed)
    broker = start_broker(log_path=str(workdir / "broker.log"))
    sandbox, url = start_sandbox(workdir)
    client = httpx.Client(base_url=url, timeout=10)
    text = local_config(broker.url, url, prefix="soak", app_id="pushstream-soak", input_topic="soak-events")
    path = workdir / "soak.toml"
    path.write_text(text)
    from pushstream.codecs.config import load_config
    from pushstream.streams.kafka.admin import ensure_topics

    config = load_config(text, local_env(), workdir)
    ensure_topics(config)
    total = int(minutes * 60 * rate)
    lines = [msgspec.json.encode(e) for e in fault_corpus(total, seed=seed, prefix="soak")]
    expected = expected_pairs(config, lines)
    tally = OutcomeTally(config, "soak")
    worker = start_worker(workdir, path, local_env(), name="soak")
    faults: list[tuple[float, str]] = []
    started = time.time()

    def produce() -> None:
        step = max(1, int(rate / 10))
        for i in range(0, total, step):
            produce_lines(config, lines[i:i + step])
            time.sleep(max(0.0, started + (i + step) / rate - time.time()))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    kills = 0
    try:
        while producer.is_alive():
            tally.poll(min(60.0, max(1.0, started + (len(faults) + 1) * 60 - time.time())))
            if not producer.is_alive():
                break
            fault = rng.choice(["kill", "sigterm", "503", "429", "freeze"])
            faults.append((time.time() - started, fault))
            print(f"{time.time() - started:6.0f} s: {fault}; {len(tally.terminal)}/{len(expected)} pairs", flush=True)
            if fault in ("kill", "sigterm"):
                worker.stop(signal.SIGKILL if fault == "kill" else signal.SIGTERM)
                kills += fault == "kill"
                worker = start_worker(workdir, path, local_env(), name="soak")
            elif fault in ("503", "429"):
                client.post("/_sandbox/faults", json={"status": int(fault), "duration": 20, "retry_after": "2",
                                                      "path_prefix": rng.choice([PW_PREFIX, XP_PREFIX])})
            else:
                broker.process.send_signal(signal.SIGSTOP)
                time.sleep(10)
                broker.process.send_signal(signal.SIGCONT)
        tally.wait(lambda t: set(t.terminal) >= expected, 300)
        tally.poll(3)
        lost = len(expected - set(tally.terminal))
        doubled = sum(1 for n in tally.terminal.values() if n > 1)
        duplicates = tally.statuses.get("duplicate", 0)
        print(json.dumps({"minutes": minutes, "rate": rate, "pairs": len(expected), "lost": lost, "doubled": doubled,
                          "duplicates": duplicates, "kills": kills, "duplicates_per_kill":
                          round(duplicates / kills) if kills else None, "faults": faults,
                          "done_after_stream_s": round(tally.last_at - started - total / rate, 1)}))
        return 1 if lost or doubled else 0
    finally:
        tally.close()
        worker.stop()
        sandbox.stop()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", action="store_true", help="the crash scenarios, each --repeat times")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--only", action="append", default=[], help="a scenario of the matrix (repeatable)")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs, state)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pushstream-soak-"))
    print(f"logs and state in {workdir}", flush=True)
    code = (matrix(workdir, args.repeat, args.events, args.only) if args.matrix
            else soak(workdir, args.minutes, args.rate, args.seed))
    if not args.keep and code == 0:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
