"""Dedup's table changelog records, read back the way Faust's table recovery reads them."""

from __future__ import annotations

import faust

from pushstream.codecs.records import Outcome
from pushstream.streams.dedup import Dedup, dedup_key

KEYS = ["pw|track|m|plain-1", 'with "quotes" and \\ backslash', "ünïcödé-✓", "", "tab\tnewline\n"]


def test_changelog_records_decode_as_faust_table_recovery_decodes_them() -> None:
    app = faust.App("t", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False,
                    value_serializer="raw", key_serializer="raw")
    dedup = Dedup(app, window=60.0, partitions=4)
    topic = dedup.table.changelog_topic
    outcomes = [Outcome(message_id=m, status="delivered", instance="pw", action="a", mapping="m", at=1.0)
                for m in KEYS]
    partitions = {dedup_key(o): i % 4 for i, o in enumerate(outcomes)}
    records = dedup.remember(outcomes, partitions, now=100.0)
    assert [r.partition for r in records] == [i % 4 for i in range(len(KEYS))]
    for outcome, record in zip(outcomes, records, strict=True):
        key = app.serializers.loads_key(topic.key_type, record.key, serializer=topic.key_serializer)
        value = app.serializers.loads_value(topic.value_type, record.value, serializer=topic.value_serializer)
        assert key == dedup_key(outcome) and value == f"100.000:{partitions[key]}"
        assert record.key == topic.prepare_key(key, None)[0] or not key.isascii()  # byte-equal where Faust's is ASCII
    tombstones = dedup.expire(now=100.0 + 61)
    assert sorted(app.serializers.loads_key(topic.key_type, t.key, serializer=topic.key_serializer)
                  for t in tombstones) == sorted(partitions) and {t.value for t in tombstones} == {None}
    assert not dedup.table.data
