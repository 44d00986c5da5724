"""A finite-N study kept in a folder: jobs resume, settings are checked, the spans' exponents are fitted."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ANSI, CLI_ENV
from typer.testing import CliRunner

import overlapflow as of
from overlapflow.cli import app, pulses_task
from overlapflow.files import RunError
from overlapflow.run_folder import RunFolder
from overlapflow.validation import fit_power_law, learned_from, make_study, seed_counts, validate_theory
from overlapflow.validation_jobs import Job, run_job

RNN = of.LowRankRNN(rank=1, phi="erf")
TASK = pulses_task(RNN.dt, t_max=1.0)  # 20 steps
S0 = np.asarray(of.Overlaps.from_params(RNN, RNN.init(jax.random.key(1), N=200, dtype=jnp.float64)).matrix)
SMALL = dict(sizes=(20, 40), seeds=(2, 1), nodes=3, right_nodes=2, checkpoint_every=3)


def study(out, epochs=8, **options):
    return validate_theory(RNN, TASK, S0, 0.05, epochs, **{**SMALL, **options}, out=out)


def test_a_stopped_study_continues_to_the_numbers_of_an_uninterrupted_one(tmp_path):
    whole = study(tmp_path / "whole")
    assert whole.attrs["jobs_run"] == 6  # limit, finer limit, closure, 3 networks (float64: no round-off twin)

    out = tmp_path / "stopped"
    study(out, sizes=(20,), seeds=1)  # part of the study: its jobs are reused below
    # a kill after 4 of 8 epochs: the checkpoint holds them, no result yet
    stopped = Job("network", 40, 0, "float64")
    settings = make_study(RNN, TASK, S0, 0.05, 8, nodes=3, right_nodes=2, checkpoint_every=3)
    assert run_job(out, settings, stopped, stop_after=4) is False
    folder = RunFolder(out)
    assert folder.job_checkpoint(stopped.name).is_file() and not folder.job_result(stopped.name).is_file()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "jobs").glob("*.npz")}

    resumed = study(out)
    assert resumed.attrs["jobs_run"] == 2  # N=20 seed 1 (new) and N=40 seed 0 (continued)
    assert not folder.job_checkpoint(stopped.name).exists()
    for name in (
        "limit.npz",
        "limit_finer.npz",
        "closure.npz",
        "N20_seed0_float64.npz",
    ):  # reused, not rewritten (float64 networks)
        assert (out / "jobs" / name).stat().st_mtime_ns == before[name]
    for name in ("distance_to_limit", "overlaps_network", "loss_network", "overlaps_particles", "loss_closure"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values, err_msg=name)

    again = study(out)
    assert again.attrs["jobs_run"] == 0
    np.testing.assert_array_equal(again.distance_to_closure.values, whole.distance_to_closure.values)


def test_a_study_with_other_settings_is_refused_unless_overwritten(tmp_path):
    study(tmp_path, epochs=2, sizes=(20,), seeds=1)
    with pytest.raises(RunError, match=r"holds a study with epochs = 2, not 3; use another output folder"):
        study(tmp_path, epochs=3, sizes=(20,), seeds=1)
    with pytest.raises(RunError, match=r"holds a study with lr = 0.05, not 0.04"):
        validate_theory(RNN, TASK, S0, 0.04, 2, **{**SMALL, "sizes": (20,), "seeds": 1}, out=tmp_path)
    redone = study(tmp_path, epochs=3, sizes=(20,), seeds=1, overwrite=True)
    assert redone.attrs["jobs_run"] == 4 and redone.sizes["epoch"] == 4

    runner = CliRunner()
    args = ["validate-theory", "--quiet", "--task", "pulses", "--out", str(tmp_path / "cli"), "--workers", "1"]
    args += ["--sizes", "20", "--seeds", "1", "--nodes", "3", "--right-nodes", "2", "--dtype", "float64"]
    assert runner.invoke(app, [*args, "--epochs", "2"], env=CLI_ENV).exit_code == 0
    result = runner.invoke(app, [*args, "--epochs", "3"], env=CLI_ENV)
    output = " ".join(ANSI.sub("", result.output).split())
    assert result.exit_code == 2 and "holds a study with epochs = 2, not 3" in output, output


def test_cli_seeds_per_size_and_start_are_checked(tmp_path):
    runner = CliRunner()
    base = ["validate-theory", "--quiet", "--out", str(tmp_path), "--sizes", "20,40"]
    for extra, hint in (
        (["--seeds", "3,1,1"], "--seeds"),
        (["--seeds", "0"], "--seeds"),
        (["--seeds", "2,x"], "--seeds"),
        (["--sizes", "20,20"], "--sizes"),
        (["--task", "pulses", "--start", "fig8"], "--start"),
    ):
        result = runner.invoke(app, [*base, *extra], env=CLI_ENV)
        assert result.exit_code == 2 and hint in ANSI.sub("", result.output), (extra, result.output)
    assert seed_counts([20, 40], 3) == [3, 3] and seed_counts([20, 40], (3, 1)) == [3, 1]
    with pytest.raises(ValueError, match=r"seeds = \(3, 1, 1\): must be an integer >= 1, or one such integer per size"):
        seed_counts([20, 40], (3, 1, 1))


def test_learned_epochs_start_where_the_loss_falls_below_ten_times_its_end():
    loss = np.array([1.0, 0.9, 0.2, 0.09, 0.05, 0.02, 0.01])
    assert learned_from(loss) == 3 and learned_from(loss, factor=30) == 2
    assert learned_from(np.full(5, 0.3)) == 0


def test_the_exponents_fit_the_seed_mean_of_each_span(tmp_path):
    result = study(tmp_path, epochs=8)
    learned, early = result.attrs["learned_from"], result.attrs["early_epochs"]
    assert early == 8 and 0 <= learned <= 8
    d = result.distance_to_limit.values  # (N, seed, epoch), NaN for the missing seed of N = 40
    assert np.isnan(d[1, 1]).all() and np.isfinite(d[0]).all()
    spans = {"exponent_learned": d[..., learned:], "exponent_early": d[..., : early + 1], "exponent": d}
    for name, span in spans.items():
        p, c = fit_power_law([20, 40], np.nanmean(span.max(axis=-1), axis=1))
        assert result.attrs[name] == pytest.approx(p, rel=1e-12), name
    f = result.function_distance_to_limit.values[..., learned:].max(axis=-1)
    assert result.attrs["exponent_learned_function"] == pytest.approx(fit_power_law([20, 40], np.nanmean(f, 1))[0])
    closure = result.closure_deviation.values
    assert result.attrs["closure_to_limit"] == closure[learned:].max()
    # the limit's own error: against one more node per direction (split 3 x 2 -> 4 x 3)
    assert result.attrs["finer_particles"] == "split, 4 x 3 nodes"
    error = result.limit_error.values
    assert result.attrs["limit_error_max"] == error.max() < 0.1 * np.nanmin(result.network_deviation.values)
    assert result.attrs["limit_error_learned"] == error[learned:].max()
    # the distance to the closure is the distance to the limit moved by at most the closure's own
    gap = np.abs(result.distance_to_closure.values - d)
    assert np.nanmax(gap - closure) <= 1e-15
