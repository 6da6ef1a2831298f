"""Jobs-topic records: route's packs of jobs, and the reader that takes packs and single jobs."""

from __future__ import annotations

import msgspec
import pytest

from pushstream.codecs.records import Job, decode_jobs, encode, pack_jobs


def job(i: int, key: str | None = "u1", size: int = 0) -> Job:
    return Job(message_id=f"m{i}", key=key, instance="pw", mapping="m", action="trackEvent",
               payload={"pad": "x" * size}, topic="in", partition=0, offset=i, received_at=1.0)


def by_key(topic: str, j: Job) -> int | None:
    return None if j.key is None else {"u1": 0, "u2": 1, "u3": 0}[j.key]


def test_jobs_of_one_topic_and_partition_share_a_pack_in_arrival_order() -> None:
    jobs = [("jobs.a", job(0, "u1")), ("jobs.a", job(1, "u2")), ("jobs.b", job(2, "u1")),
            ("jobs.a", job(3, "u3")), ("jobs.a", job(4, None)), ("jobs.a", job(5, None))]
    packs = {(t, p): [j.message_id for j in decode_jobs(v)] for t, p, v in pack_jobs(jobs, by_key)}
    # u1 and u3 hash to partition 0; keyless jobs are left to the producer (None), together.
    assert packs == {("jobs.a", 0): ["m0", "m3"], ("jobs.a", 1): ["m1"], ("jobs.b", 0): ["m2"],
                     ("jobs.a", None): ["m4", "m5"]}


def test_a_pack_decodes_to_the_jobs_that_went_in() -> None:
    jobs = [job(i, size=i) for i in range(5)]
    [(_, _, value)] = pack_jobs([("t", j) for j in jobs], by_key)
    assert decode_jobs(value) == jobs


@pytest.mark.parametrize(("max_jobs", "max_bytes", "sizes"), [
    (3, 1 << 20, [3, 3, 3, 1]),  # by count
    (100, 3 * 500, [2, 2, 2, 2, 2]),  # by bytes: three ~500-byte jobs do not fit
])
def test_packs_are_capped_and_keep_order_across_packs(max_jobs: int, max_bytes: int, sizes: list[int]) -> None:
    jobs = [("t", job(i, size=400)) for i in range(10)]
    packs = pack_jobs(jobs, by_key, max_jobs=max_jobs, max_bytes=max_bytes)
    assert [len(decode_jobs(v)) for _, _, v in packs] == sizes
    assert all(len(v) <= max_bytes for _, _, v in packs)
    assert [j.message_id for _, _, v in packs for j in decode_jobs(v)] == [f"m{i}" for i in range(10)]


def test_a_job_larger_than_the_byte_cap_goes_alone() -> None:
    jobs = [("t", job(0, size=10)), ("t", job(1, size=5000)), ("t", job(2, size=10))]
    packs = pack_jobs(jobs, by_key, max_bytes=1000)
    assert [[j.message_id for j in decode_jobs(v)] for _, _, v in packs] == [["m0"], ["m1"], ["m2"]]


def test_a_single_job_record_still_reads_as_one_job() -> None:
    """Retries, replays and records written before packs are single jobs."""
    assert decode_jobs(encode(job(7))) == [job(7)]


@pytest.mark.parametrize("value", [b"[1]", b'{"message_id": 3}', b"[", b'"text"'])
def test_a_record_that_is_neither_raises_a_decode_error(value: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_jobs(value)
