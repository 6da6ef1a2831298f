"""The deliver agent's steps over records that each hold one job or a pack of them."""

from __future__ import annotations

from collections.abc import Iterator

from pushstream.streams.app import delivery_steps


def records_of(sizes: list[int]) -> list[list[tuple[int, int]]]:
    """Records holding `sizes[r]` jobs each; a job is (record, index within the record)."""
    return [[(r, i) for i in range(n)] for r, n in enumerate(sizes)]


def test_a_pack_split_across_steps_is_acked_after_its_last_job() -> None:
    # Records of 3, 4 and 2 jobs in steps of 4: record 1 spans steps 1-2, record 2 steps 2-3.
    steps = [([r for r, _ in jobs], done) for jobs, done in delivery_steps(records_of([3, 4, 2]), 4)]
    assert steps == [([0, 0, 0, 1], 1), ([1, 1, 1, 2], 2), ([2], 3)]


def test_every_job_is_in_exactly_one_step_and_every_record_is_acked_once_finished() -> None:
    for sizes in ([1] * 7, [5], [0, 2, 0, 3, 0], [100, 1, 250, 0], [3, 3, 3], [0, 0], [4, 4]):
        records = records_of(sizes)
        last = {r: n - 1 for r, n in enumerate(sizes) if n}
        for size in (1, 2, 3, 4, 100, 500):
            steps = list(delivery_steps(records, size))
            jobs = [job for step, _ in steps for job in step]
            assert jobs == [job for record in records for job in record]
            assert all(len(step) <= size for step, _ in steps) and all(steps[i][0] for i in range(len(steps) - 1))
            dones = [done for _, done in steps]
            assert dones == sorted(dones) and dones[-1] == len(sizes)
            delivered = 0
            for step, done in steps:
                delivered += len(step)
                left = jobs[delivered:]
                assert all(r >= done for r, _ in left)  # an acked record has no job left
                assert all(r < done for r, i in jobs[:delivered] if i == last[r])  # a finished one is acked now


def test_records_are_decoded_as_steps_are_taken() -> None:
    taken: list[int] = []

    def lazily() -> Iterator[list[tuple[int, int]]]:
        for record in records_of([3, 3, 3, 3]):
            taken.append(record[0][0])
            yield record

    steps = delivery_steps(lazily(), 4)
    next(steps)
    assert taken == [0, 1]


def test_no_records_no_steps() -> None:
    assert list(delivery_steps([], 500)) == []


def test_a_deliver_agent_queues_one_take_of_packs_not_the_app_default() -> None:
    """A jobs record holds up to 20 jobs: Faust's default queue (8,192 records) could hold
    160k jobs per instance in memory."""
    from pushstream.codecs.config import load_config
    from pushstream.streams.app import create_app
    from pushstream.streams.stack import local_config, local_env

    config = load_config(local_config("kafka://127.0.0.1:1", "http://127.0.0.1:1"), local_env())
    agents = create_app(config).agents
    for instance in config.instances:
        queue = agents[f"deliver-{instance.name}"].channel.clone(is_iterator=True).queue
        assert queue.maxsize == config.pipeline.deliver_batch
