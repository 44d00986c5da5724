"""The one process pool: a stopped parent (Ctrl-C, an error) terminates its workers at once instead of
waiting for their jobs (every job checkpoints atomically, so nothing is lost)."""

import time

import pytest

from overlapflow.worker_pool import worker_pool


def test_an_interrupted_parent_stops_its_workers_without_waiting_for_their_jobs():
    with pytest.raises(KeyboardInterrupt), worker_pool(2) as pool:
        assert pool.submit(sum, [1, 2]).result(timeout=60) == 3  # a worker is up
        futures = [pool.submit(time.sleep, 60) for _ in range(3)]
        time.sleep(1)
        started = time.perf_counter()
        raise KeyboardInterrupt
    assert time.perf_counter() - started < 20  # not the 60 s of the running jobs
    assert all(future.cancelled() or future.done() for future in futures)
