"""Dedup's table: entries on disk per held partition, read back the way Faust's recovery reads them;
and a worker restarted on its state always comes up, also when the broker forgot the changelog."""

from __future__ import annotations

import collections
import uuid
from pathlib import Path

import faust
import msgspec
import pytest

from pushstream.codecs.config import load_config
from pushstream.codecs.records import Job, Outcome
from pushstream.streams.commands.produce import produce_lines
from pushstream.streams.kafka.admin import ensure_topics
from pushstream.streams.kafka.dedup import Dedup, dedup_key
from pushstream.streams.local.broker import start_broker
from pushstream.streams.local.stack import local_config, local_env, start_worker
from tests.support import OutcomeReader, SandboxClient, mine, targeted_events

KEYS = ["pw|track|m|plain-1", 'with "quotes" and \\ backslash', "ünïcödé-✓", "", "tab\tnewline\n"]


def _app(datadir: Path) -> faust.App:
    return faust.App("t", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False, datadir=datadir,
                     value_serializer="raw", key_serializer="raw")


def _job(message_id: str) -> Job:
    return Job(message_id=message_id, instance="pw", mapping="m", action="a", payload={}, topic="in", partition=0,
               offset=0, received_at=1.0)


def _outcome(message_id: str) -> Outcome:
    return Outcome(message_id=message_id, status="delivered", instance="pw", action="a", mapping="m", at=1.0)


@pytest.fixture
def dedup(tmp_path: Path) -> Dedup:
    dedup = Dedup(_app(tmp_path), window=60.0, partitions=4)
    for partition in (0, 1, 2):  # what Faust's store does when these partitions are assigned; 3 is not held
        dedup.table.data._db_for_partition(partition)
    return dedup


def test_changelog_records_decode_as_faust_table_recovery_decodes_them(dedup: Dedup) -> None:
    app, topic = dedup.table.app, dedup.table.changelog_topic
    outcomes = [_outcome(m) for m in KEYS]
    partitions = {dedup_key(o): i % 4 for i, o in enumerate(outcomes)}
    records = dedup.remember(outcomes, partitions, now=100.0)
    assert [r.partition for r in records] == [i % 4 for i in range(len(KEYS))]
    for outcome, record in zip(outcomes, records, strict=True):
        key = app.serializers.loads_key(topic.key_type, record.key, serializer=topic.key_serializer)
        value = app.serializers.loads_value(topic.value_type, record.value, serializer=topic.value_serializer)
        assert key == dedup_key(outcome) and value == f"100.000:{partitions[key]}"
        assert record.key == topic.prepare_key(key, None)[0] or not key.isascii()  # byte-equal where Faust's is ASCII


def test_remembered_jobs_are_duplicates_within_the_window_on_held_partitions(dedup: Dedup) -> None:
    ids = [f"m{i}" for i in range(8)]
    partitions = {dedup_key(_outcome(m)): i % 4 for i, m in enumerate(ids)}
    rejected = Outcome(message_id="r", status="rejected", instance="pw", action="a", mapping="m", at=1.0)
    failed = Outcome(message_id="f", status="failed", instance="pw", action="a", mapping="m", at=1.0)
    partitions |= {dedup_key(rejected): 0, dedup_key(failed): 0}
    dedup.remember([*map(_outcome, ids), rejected, failed], partitions, now=100.0)
    pairs = [(_job(m), i % 4) for i, m in enumerate(ids)] + [(_job("r"), 0), (_job("f"), 0)]

    fresh, _, duplicates = dedup.split(pairs, now=159.0)
    # Partition 3 is not held here: its entries are its owner's, read from the changelog.
    assert sorted(j.message_id for j in fresh) == ["f", "m3", "m7"]
    assert sorted(d.message_id for d in duplicates) == ["m0", "m1", "m2", "m4", "m5", "m6", "r"]
    assert {d.status for d in duplicates} == {"duplicate"}

    fresh, _, duplicates = dedup.split(pairs, now=161.0)  # past the window: stale entries are ignored
    assert len(fresh) == len(pairs) and not duplicates


def test_the_same_job_twice_in_one_batch_is_sent_once(dedup: Dedup) -> None:
    fresh, partitions, duplicates = dedup.split([(_job("x"), 1), (_job("x"), 1), (_job("y"), 1)], now=1.0)
    assert [j.message_id for j in fresh] == ["x", "y"] and [d.message_id for d in duplicates] == ["x"]
    assert set(partitions.values()) == {1}


def test_entries_outlive_the_process_on_disk(tmp_path: Path) -> None:
    first = Dedup(_app(tmp_path), window=60.0, partitions=2)
    first.table.data._db_for_partition(1)
    first.remember([_outcome("kept")], {dedup_key(_outcome("kept")): 1}, now=100.0)
    first.table.data._dbs[1].close()

    second = Dedup(_app(tmp_path), window=60.0, partitions=2)
    second.table.data._db_for_partition(1)
    fresh, _, duplicates = second.split([(_job("kept"), 1), (_job("new"), 1)], now=110.0)
    assert [j.message_id for j in fresh] == ["new"] and [d.message_id for d in duplicates] == ["kept"]


def test_warm_up_entries_expire_with_the_window(dedup: Dedup) -> None:
    dedup.recent = {"old": 10.0, "young": 90.0}
    dedup.expire(now=100.0)
    assert dedup.recent == {"young": 90.0}


def test_the_changelog_expires_with_the_window(dedup: Dedup) -> None:
    config = dedup.table.changelog_topic.config or {}
    assert config["cleanup.policy"] == "compact,delete" and config["retention.ms"] == "60000"


def test_worker_restarts_on_the_same_state_always_come_up_also_after_a_broker_restart(
        sandbox: SandboxClient, tmp_path: Path) -> None:
    """Stop and start a worker 6 times on its state directory, then once more after the memory
    broker restarted (it forgot every topic, the state did not): it comes up every time (it
    used to stop with Faust's ConsistencyError, 2 restarts in 4 and after every broker restart)
    and every event gets one terminal outcome."""
    broker = start_broker(log_path=str(tmp_path / "broker.log"))
    text = local_config(broker.url, sandbox.url, prefix="restarts", app_id="pushstream-restarts",
                        input_topic="restarts-events", partitions=4, batch_window=0.2)
    text = text.split('[[destinations]]\nname = "xtremepush-sandbox"')[0]  # Pushwoosh only
    path = tmp_path / "restarts.toml"
    path.write_text(text)
    config = load_config(text, local_env())
    try:
        for round_ in range(7):
            if round_ == 6:  # the memory broker forgets everything; the worker's state stays
                port = broker.port
                broker.stop()
                broker = start_broker(port, log_path=str(tmp_path / "broker-2.log"))
            ensure_topics(config)
            worker = start_worker(tmp_path, path, local_env(), name="restarts")
            reader = OutcomeReader(config)
            try:
                events = targeted_events(f"r{round_}-{uuid.uuid4().hex[:6]}", 30, "none")
                produce_lines(config, [msgspec.json.encode(e) for e in events])
                prefix = events[0]["messageId"].rsplit("-", 1)[0]
                outcomes = reader.wait(mine(prefix), 30, timeout=60, linger=0)
                assert collections.Counter(o["status"] for o in outcomes) == {"delivered": 30}, round_
            finally:
                reader.consumer.close()
                worker.stop()
        logs = (tmp_path / "restarts.log").read_text()
        assert "ConsistencyError" not in logs and "Traceback" not in logs
    finally:
        broker.stop()
