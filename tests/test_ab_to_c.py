"""The paper-scale A/B -> C runner: jobs in processes, checkpoints, and the same numbers as run_ab_to_c."""

import dataclasses

import numpy as np
import pytest

from overlapflow.experiments.ab_to_c import ABtoCSettings, assemble, run_ab_to_c_parallel, run_job
from overlapflow.experiments.runner import RunError
from overlapflow.phenomena.memory import run_ab_to_c

SMALL = ABtoCSettings(n_pairs=2, epochs=12, c_epochs=9, batch_size=4, segment=5, record_every=4)


@pytest.fixture(scope="module")
def reference():
    import jax

    return run_ab_to_c(n_pairs=2, epochs=12, c_epochs=9, batch_size=4, key=jax.random.key(0))


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_jobs_equal_run_ab_to_c(tmp_path, reference):
    """Jobs run in this process, in segments of 5 epochs, give run_ab_to_c's numbers."""
    result = run_ab_to_c_parallel(SMALL, tmp_path, workers=0)
    np.testing.assert_allclose(result.overlaps.values, reference.overlaps.values, rtol=0, atol=1e-13)
    np.testing.assert_allclose(result.loss.values, reference.loss.values, rtol=0, atol=1e-13)
    assert list(result.record.values) == [0, 4, 8, 12, 16, 20, 21]
    np.testing.assert_array_equal(result.trajectory.values[:, :, -1], result.overlaps.sel(stage="after_C").values)
    assert (result.visible == reference.visible).all()


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_stopped_jobs_continue_to_the_same_numbers(tmp_path, reference):
    """A job stopped midway (its checkpoint kept) and a missing result are completed by running again."""
    assert not run_job(tmp_path, SMALL, 0, "A", budget=7)  # stopped after 7 of 12 epochs
    assert (tmp_path / "jobs" / "pair0_A.partial.npz").is_file()
    with pytest.raises(RunError, match="jobs not done yet: pair0_A, pair0_B"):
        assemble(tmp_path, SMALL)
    result = run_ab_to_c_parallel(SMALL, tmp_path, workers=0)
    assert not list((tmp_path / "jobs").glob("*.partial.npz"))
    np.testing.assert_allclose(result.overlaps.values, reference.overlaps.values, rtol=0, atol=1e-13)
    np.testing.assert_allclose(result.loss.values, reference.loss.values, rtol=0, atol=1e-13)


@pytest.mark.slow
def test_worker_processes(tmp_path, reference):
    """Two spawned worker processes give the same numbers."""
    result = run_ab_to_c_parallel(SMALL, tmp_path, workers=2)
    np.testing.assert_allclose(result.overlaps.values, reference.overlaps.values, rtol=0, atol=1e-13)


def test_a_longer_phase_c_continues(tmp_path):
    """c_epochs may grow in the same folder: C continues from where it ended, and the result equals
    a run with the longer C from the start."""
    run_ab_to_c_parallel(SMALL, tmp_path / "grown", workers=0)
    longer = dataclasses.replace(SMALL, c_epochs=14)
    grown = run_ab_to_c_parallel(longer, tmp_path / "grown", workers=0)
    direct = run_ab_to_c_parallel(longer, tmp_path / "direct", workers=0)
    # other segment boundaries compile other chunk lengths: equal to round-off (observed 1.8e-15)
    np.testing.assert_allclose(grown.loss.values, direct.loss.values, rtol=0, atol=1e-13)
    np.testing.assert_allclose(grown.trajectory.values, direct.trajectory.values, rtol=0, atol=1e-13)
    with pytest.raises(RunError, match="only c_epochs may grow"):
        run_ab_to_c_parallel(SMALL, tmp_path / "grown", workers=0)


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_settings_errors(tmp_path):
    run_ab_to_c_parallel(ABtoCSettings(n_pairs=1, epochs=2, batch_size=2), tmp_path, workers=0)
    with pytest.raises(RunError, match="other settings"):
        run_ab_to_c_parallel(ABtoCSettings(n_pairs=1, epochs=3, batch_size=2), tmp_path, workers=0)
    with pytest.raises(ValueError, match=r"ABtoCSettings\.segment = 0: must be an integer >= 1"):
        ABtoCSettings(segment=0)
    with pytest.raises(ValueError, match=r"LowRankRNN\.readout = 'late'"):
        ABtoCSettings(readout="late")
