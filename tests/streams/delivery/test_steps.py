"""A deliver agent's deliveries: when one starts (`Pending`), and its steps over records that
each hold one job or a pack of them (`delivery_steps`)."""

from __future__ import annotations

from collections.abc import Iterator

from pushstream.streams.delivery.steps import Pending, delivery_steps


def pending(window: float = 1.0, request_size: int = 100, step_size: int = 500) -> Pending[str, int]:
    return Pending(window, request_size, step_size)


def test_nothing_waiting_is_never_due() -> None:
    p = pending()
    assert not p and not p.due(1e9) and not p.full() and p.wait(0.0) is None


def test_a_partial_batch_is_due_when_its_oldest_record_has_waited_the_window() -> None:
    p = pending(window=1.0)
    p.add(["r0"], [[1, 2]], now=10.0)
    p.add(["r1"], [[3]], now=10.6)  # a later record does not restart the window
    assert not p.due(10.99) and p.wait(10.25) == 0.75
    assert p.due(11.0) and p.wait(11.5) == 0.0


def test_a_full_request_is_due_at_once() -> None:
    p = pending(window=60.0, request_size=100)
    p.add([f"r{i}" for i in range(5)], [list(range(20))] * 4 + [list(range(19))], now=0.0)
    assert p.count == 99 and not p.due(0.0)
    p.add(["r5"], [[0]], now=0.0)
    assert p.due(0.0) and not p.full()


def test_step_size_jobs_make_a_delivery_start_as_soon_as_the_one_in_flight_ends() -> None:
    p = pending(request_size=100, step_size=500)
    p.add(["a", "b"], [list(range(300)), list(range(200))], now=0.0)
    assert p.full()


def test_request_size_is_capped_by_step_size() -> None:
    p = pending(window=60.0, request_size=100, step_size=10)
    p.add(["a"], [list(range(10))], now=0.0)
    assert p.due(0.0) and p.full()


def test_a_record_without_jobs_still_waits_and_is_taken() -> None:
    # An unreadable record has no jobs; it must still reach a delivery, which acks it.
    p = pending(window=1.0)
    p.add(["bad"], [[]], now=0.0)
    assert p and p.count == 0 and not p.due(0.5) and p.due(1.0)
    assert p.take() == (["bad"], [[]])


def test_take_empties_and_the_next_record_opens_a_new_window() -> None:
    p = pending(window=1.0)
    p.add(["a", "b"], [[1], [2, 3]], now=0.0)
    assert p.take() == (["a", "b"], [[1], [2, 3]])
    assert not p and p.count == 0
    p.add(["c"], [[4]], now=5.0)
    assert not p.due(5.5) and p.due(6.0)


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


def test_an_iterator_of_records_is_read_as_steps_are_taken() -> None:
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


