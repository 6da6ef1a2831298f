"""The console's rows of `make bench`: how fast it reads outcomes, how fast it answers, what a
worker's samples cost.

- ingest: `n` outcome records produced to a fresh outcome topic, then one OutcomeReader (the
  console's) on a fresh store; outcomes/s from its start until it has stored all of them;
- answer: a store holding 1,000,000 outcomes spread over two weeks (4 instances x 3 mappings x 7
  statuses, latencies and reasons), `/api/overview`'s query for the 2-week window and the page's
  whole view, median of 5;
- samples: what a worker pays per failed request (the sampler's check) and per sample kept.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from pushstream.codecs.config import Config, load_config
from pushstream.codecs.console import Sampler, Tally
from pushstream.codecs.errors import PermanentError
from pushstream.codecs.plan import plan_requests
from pushstream.codecs.records import STATUSES, Outcome, encode
from pushstream.codecs.route import route_record
from pushstream.streams.console.reader import OutcomeReader
from pushstream.streams.console.store import Store
from pushstream.streams.console.views import Views
from pushstream.streams.delivery.deliverer import sample_of
from pushstream.streams.kafka.admin import ensure_topics, make_producer
from pushstream.streams.local.samples import sample_events

INSTANCES = ("pushwoosh-a", "pushwoosh-b", "xtremepush-a", "xtremepush-b")
MAPPINGS = ("Track Events", "Create or Update User Profile", "Big orders")


def _outcomes(n: int, now: float, span: float, seed: int = 1) -> list[Outcome]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        status = rng.choice(STATUSES) if rng.random() < 0.2 else "delivered"
        out.append(Outcome(message_id=f"m{i}", status=status, instance=rng.choice(INSTANCES), destination="Pushwoosh",
                           action="trackEvent", mapping=rng.choice(MAPPINGS), latency_ms=rng.lognormvariate(4, 1),
                           error_code=None if status == "delivered" else f"E{rng.randrange(5)}",
                           reason=None if status == "delivered" else f"reason {rng.randrange(20)}",
                           at=now - rng.random() * span))
    return out


def _ingest(config: Config, workdir: Path, n: int) -> dict[str, Any]:
    topic = config.topic("outcomes")
    ensure_topics(config)  # the reader waits for all it reads: outcomes, samples, retry topics
    producer = make_producer(config.kafka)
    for o in _outcomes(n, time.time(), 3600):
        while True:
            try:
                producer.produce(topic, encode(o))
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    reader = OutcomeReader(config, workdir / f"ingest-{uuid.uuid4().hex[:6]}.sqlite3")
    started = time.monotonic()
    reader.start()
    while reader.read < n and time.monotonic() - started < 300:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    reader.stop()
    return {"outcomes": n, "read": reader.read, "seconds": round(elapsed, 2),
            "outcomes_per_s": round(reader.read / elapsed)}


def _answer(config: Config, workdir: Path, n: int) -> dict[str, Any]:
    store = Store(workdir / "answer.sqlite3")
    now = time.time()
    for start in range(0, n, 100_000):
        tally = Tally()
        for o in _outcomes(min(100_000, n - start), now, 14 * 86_400, seed=start):
            tally.add(o)
        store.add(tally, [], {})
    views = Views(config, store)

    def median_ms(fn: Any) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        return round(statistics.median(times), 1)

    total = sum(sum(i["statuses"].values()) for i in store.overview(14 * 86_400, now)["instances"])
    return {"outcomes": total, "overview_ms": median_ms(lambda: store.overview(14 * 86_400, now)),
            "page_view_ms": median_ms(lambda: views.view(14 * 86_400))}


def _samples(config: Config) -> dict[str, Any]:
    inst = config.instances[0]
    routed = route_record(msgspec.json.encode(sample_events(1, seed=3, mix="track")[0]), "t", 0, 0, config,
                          time.time())
    plans, _ = plan_requests(inst, [job for name, job in routed.jobs if name == inst.name])
    error = PermanentError("400 bad", status=400, code="BAD_REQUEST", body='{"error": "bad"}')
    sampler, rounds = Sampler(3), 100_000
    t = time.perf_counter()
    for i in range(rounds):
        sampler.take(inst.name, "BAD_REQUEST", 1_000_000.0 + i * 1e-4)
    take_ns = (time.perf_counter() - t) / rounds * 1e9
    t = time.perf_counter()
    for _ in range(1000):
        sample_of(inst, plans[0], error)
    return {"take_ns": round(take_ns), "sample_us": round((time.perf_counter() - t) / 1000 * 1e6, 1),
            "per_minute": 3}


def run_console(config_text: str, quick: bool) -> dict[str, Any]:
    """The console's figures (see the module's docstring); `config_text` names fresh topics."""
    config = load_config(config_text, {"PUSHWOOSH_API_KEY": "k", "XTREMEPUSH_API_KEY": "k"})
    with tempfile.TemporaryDirectory(prefix="pushstream-console-bench-") as tmp:
        workdir = Path(tmp)
        ingest = _ingest(config, workdir, 20_000 if quick else 300_000)
        answer = _answer(config, workdir, 20_000 if quick else 1_000_000)
    return {"ingest": ingest, "answer": answer, "samples": _samples(config),
            "events_per_s": ingest["outcomes_per_s"]}
