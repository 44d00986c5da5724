"""Sweeps on Dask: expansion of grid x points, validation of every point before any work (errors name
the sweep field), one zarr store equal to running each point alone, resume of the missing points
only, failures recorded without stopping the others, and the ``sweep`` command."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import invoke, write_sweep

from overlapflow.experiments import (
    ConfigError,
    load_config,
    load_sweep,
    read_sweep,
    run_experiment,
    run_sweep,
    sweep_status,
)

# A run of a second or less once compiled: rank-1 linear network, N = 16, 8 epochs, 40 time steps.
# The network engine only (float64): the workers compile one program for every point below.
BASE = """
name = "tiny"
N = 16
dtype = "float64"
seed = 0
checkpoint_every = 4
epochs = 8
lr = 5e-3
[task]
kind = "exponential_filter"
c = 0.2
t_max = 2.0
[engines]
network = true
overlaps = false
"""


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 single-threaded worker processes, shared by the tests."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def status_stamps(output) -> dict:
    """{point id: mtime_ns of its status.json} of the points that have one."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (output / "points").glob("*/status.json")}


# ---------------------------------------------------------------------------- expansion and validation
def test_grid_and_points_expand_to_their_product(tmp_path):
    path = write_sweep(
        tmp_path,
        BASE,
        set={"phases.0.epochs": 6},
        grid={"seed": [3, 1], "phases.0.lr": [2e-3, 5e-3]},
        points=[{"init.seed": 7, "network.dt": 0.1}, {"init.seed": 2, "network.dt": 0.05}],
    )
    sweep = read_sweep(path)
    assert sweep.dims == {"seed": (3, 1), "phases.0.lr": (2e-3, 5e-3), "init.seed": (2, 7), "network.dt": (0.05, 0.1)}
    assert len(sweep.points) == 2 * 2 * 2
    assert [p.coords for p in sweep.points[:3]] == [
        {"seed": 3, "phases.0.lr": 2e-3, "init.seed": 7, "network.dt": 0.1},
        {"seed": 3, "phases.0.lr": 2e-3, "init.seed": 2, "network.dt": 0.05},
        {"seed": 3, "phases.0.lr": 5e-3, "init.seed": 7, "network.dt": 0.1},
    ]
    for point in sweep.points:
        config = point.config
        assert (config.seed, config.phases[0].lr, config.init.seed, config.network.dt) == tuple(point.coords.values())
        assert config.phases[0].epochs == 6 and config.N == 16
        assert config.output == str(tmp_path / "out" / "points" / point.id)
    assert len({p.id for p in sweep.points}) == 8
    assert [p.id for p in read_sweep(path).points] == [p.id for p in sweep.points]  # ids are stable
    changed = read_sweep(write_sweep(tmp_path, BASE, set={"phases.0.epochs": 5}, grid={"seed": [3, 1]}))
    assert not {p.id for p in changed.points} & {p.id for p in sweep.points}  # another config: other points
    assert sweep.records == 7 and sweep.engines == ("network",) and sweep.vector_names == ("m", "u", "v", "z")


BAD = [
    ({"grid": {"N": [1, 16]}}, "grid.N: value 1: "),
    ({"grid": {"seed": 3}}, "grid.seed: value 3: must be a valid list"),
    ({"grid": {"seed": [0, 0]}}, "grid.seed: value [0, 0]: must not repeat a value"),
    ({"grid": {"seed": [0, "a"]}}, "grid.seed: value [0, 'a']: must be numbers, strings or booleans"),
    ({"grid": {"phases.3.lr": [1e-3]}}, 'grid."phases.3.lr": value 0.001: phases is an array of 1 entries'),
    ({"grid": {"phases.0.lr": [-1.0]}}, 'grid."phases.0.lr": value -1.0: must be greater than 0'),
    ({"grid": {"nope": [1]}}, "grid.nope: value 1: unknown key; allowed keys here: name, description"),
    ({"grid": {"lr": [1e-3]}}, "grid.lr: value 'lr': use phases.<j>.lr"),
    ({"grid": {"output": ["x"]}}, "grid.output: value 'output': is set by the sweep"),
    ({"set": {"seed": 1}, "grid": {"seed": [0]}}, "set.seed: value 'seed': is also given in grid"),
    ({"points": [{"seed": 0}, {"N": 16}]}, "points.1: value {'N': 16}: sets keys ['N']; points.0 sets ['seed']"),
    ({"points": [{"seed": 0}, {"seed": 0}]}, "points.1: value {'seed': 0}: repeats points.0"),
    ({"grid": {"seed": [0]}, "bogus": 1}, "bogus: value 1: unknown key; allowed keys: name, base, output, set"),
    ({"grid": {"seed": [0]}, "base": "missing.toml"}, "base: value 'missing.toml': no such file"),
    ({}, "grid: value {}: give a [grid] table and/or a points array"),
]


@pytest.mark.parametrize("sweep, expected", BAD, ids=[e.split(":")[0] for _, e in BAD])
def test_bad_sweep_files_raise_config_error_naming_the_field(tmp_path, sweep, expected, sweep_app):
    path = write_sweep(tmp_path, BASE, **sweep)
    with pytest.raises(ConfigError) as caught:
        read_sweep(path)
    assert expected in str(caught.value), str(caught.value)
    assert str(caught.value).startswith(f"invalid sweep {path}")
    result, output = invoke(sweep_app, path)
    assert result.exit_code == 2 and expected in " ".join(output.split()), output
    assert not (tmp_path / "out").exists()  # checked before any work


def test_shipped_example_is_valid_and_tiny():
    sweep = read_sweep("sweep_example")
    assert sweep.dims == {"N": (100, 200), "seed": (0, 1, 2)}
    assert all(p.config.total_epochs == 100 and p.config.name == "fig5" for p in sweep.points)


# ---------------------------------------------------------------------------- running on Dask
@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_store_holds_every_point_equal_to_running_it_alone(tmp_path, scheduler):
    path = write_sweep(tmp_path, BASE, grid={"seed": [0, 1, 2], "init.seed": [5, 6]})
    results = run_sweep(path, scheduler=scheduler)
    assert dict(results.loss.sizes) == {"seed": 3, "init.seed": 2, "engine": 1, "epoch": 9}
    assert results.overlaps.dims == ("seed", "init.seed", "engine", "epoch", "row", "col")
    assert list(results.row.values) == ["m", "u", "v", "z"] and list(results.engine.values) == ["network"]
    assert not np.isnan(results.loss.values).any() and not np.isnan(results.overlaps.values).any()
    assert sweep_status(path).counts == {"done": 6, "failed": 0, "pending": 0}
    for other in (tmp_path / "out", tmp_path / "out" / "sweep.zarr"):
        assert load_sweep(other).identical(results)

    point = read_sweep(path).points[3]
    assert point.coords == {"seed": 1, "init.seed": 6}
    alone = run_experiment(load_config(tmp_path / "base.toml").replace(seed=1, init={"seed": 6}), tmp_path / "alone")
    stored = results.sel(seed=1, engine="network").sel({"init.seed": 6})
    assert str(stored.point.values) == point.id
    deviation = max(
        np.max(np.abs(stored.loss.values - alone["network"].loss.values)),
        np.max(np.abs(stored.overlaps.values - alone["network"].overlaps.values)),
    )
    assert deviation == 0.0  # float64, same programs: bit for bit
    assert float(results.loss.sel(seed=1, engine="network").sel({"init.seed": 5})[-1]) != float(stored.loss[-1])


def test_a_rerun_runs_only_the_missing_points(tmp_path, scheduler):
    path = write_sweep(tmp_path, BASE, grid={"seed": [0, 1, 2]})
    output = tmp_path / "out"
    first = run_sweep(path, scheduler=scheduler).load()
    stamps = status_stamps(output)
    assert len(stamps) == 3

    run_sweep(path, scheduler=scheduler)  # everything done: nothing runs
    assert status_stamps(output) == stamps

    # killed midway: one point had not ended (no status, a checkpoint after its first segment of 4 epochs);
    # the grid gains two seeds (the store is rebuilt from the points' Histories)
    lost = read_sweep(path).points[1]
    shutil.rmtree(output / "points" / lost.id)
    run_experiment(lost.config, output / "points" / lost.id, stop_after_segments=1)
    path = write_sweep(tmp_path, BASE, grid={"seed": [0, 1, 2, 3, 4]})
    assert sweep_status(path).counts == {"done": 2, "failed": 0, "pending": 3}
    second = run_sweep(path, scheduler=scheduler)
    after = status_stamps(output)
    ran = {point_id for point_id in after if after[point_id] != stamps.get(point_id)}
    sweep = read_sweep(path)
    assert ran == {lost.id, sweep.points[3].id, sweep.points[4].id}
    assert "resumed from the checkpoint at epoch 4" in (output / "points" / lost.id / "summary.txt").read_text()
    assert second.loss.sel(seed=[0, 1, 2]).identical(first.loss)  # refilled, resumed: the same bits
    assert not np.isnan(second.loss.values).any()


def test_a_failing_point_is_recorded_and_the_others_finish(tmp_path, scheduler, sweep_app):
    # a list of points (the dims are the product of their values: lr 1e4 with seed 1 is not a point)
    points = [{"phases.0.lr": 5e-3, "seed": 0}, {"phases.0.lr": 5e-3, "seed": 1}, {"phases.0.lr": 1e4, "seed": 0}]
    path = write_sweep(tmp_path, BASE, points=points)
    results = run_sweep(path, scheduler=scheduler)
    status = sweep_status(tmp_path / "out")
    assert status.counts == {"done": 2, "failed": 1, "pending": 0}
    for failed in status.with_state("failed"):
        assert failed.coords["phases.0.lr"] == 1e4
        assert failed.error.startswith("ExperimentDiverged: network diverged")
        assert "Traceback (most recent call last)" in failed.traceback and "run_experiment" in failed.traceback
    assert dict(results.loss.sizes) == {"phases.0.lr": 2, "seed": 2, "engine": 1, "epoch": 9}
    assert np.isnan(results.loss.sel({"phases.0.lr": 1e4}).values).all()
    assert not np.isnan(results.loss.sel({"phases.0.lr": 5e-3}).values).any()
    assert list(results.point.sel({"phases.0.lr": 1e4}).values)[1] == ""  # no such point

    result, output = invoke(sweep_app, path, "--status")
    assert result.exit_code == 0, output
    for state, count in (("done", 2), ("failed", 1), ("pending", 0), ("total", 3)):
        assert re.search(rf"\b{state}\s+{count}\b", output), output
    assert all(p.id in output for p in status.with_state("failed")) and "ExperimentDiverged" in output

    stamps = status_stamps(tmp_path / "out")
    result, output = invoke(sweep_app, path, "--scheduler", scheduler, "--quiet")  # failed points are not retried
    assert result.exit_code == 1 and status_stamps(tmp_path / "out") == stamps, output
    result, output = invoke(sweep_app, path, "--scheduler", scheduler, "--quiet", "--retry-failed")
    assert result.exit_code == 1, output
    retried = {k for k, v in status_stamps(tmp_path / "out").items() if v != stamps[k]}
    assert retried == {p.id for p in status.with_state("failed")}
    stored = json.loads((tmp_path / "out" / "points" / next(iter(retried)) / "status.json").read_text())
    assert stored["state"] == "failed" and stored["coords"]["phases.0.lr"] == 1e4


def test_status_of_a_sweep_not_run_yet_and_option_conflicts(tmp_path, sweep_app):
    path = write_sweep(tmp_path, BASE, grid={"seed": [0, 1, 2]})
    result, output = invoke(sweep_app, path, "--status")
    assert result.exit_code == 0 and re.search(r"\bpending\s+3\b", output), output
    result, output = invoke(sweep_app, path, "--scheduler", "tcp://127.0.0.1:1", "--workers", "2")
    assert result.exit_code == 2 and "--workers" in output, output
    assert not (tmp_path / "out").exists()


def test_without_a_scheduler_the_points_run_in_this_machines_worker_pool(tmp_path, scheduler):
    """The one process pool (overlapflow.worker_pool) runs a sweep given no scheduler, with the numbers
    of the same sweep on Dask to round-off (its workers run XLA on one thread: another summation order,
    measured 2.2e-16)."""
    (tmp_path / "local").mkdir()
    (tmp_path / "dask").mkdir()
    local = write_sweep(tmp_path / "local", BASE, grid={"seed": [0, 1]})
    on_dask = write_sweep(tmp_path / "dask", BASE, grid={"seed": [0, 1]})
    results = run_sweep(local, workers=2)
    assert sweep_status(local).counts == {"done": 2, "failed": 0, "pending": 0}
    workers = {
        json.loads(p.read_text())["worker"] for p in (tmp_path / "local" / "out" / "points").glob("*/status.json")
    }
    assert all(worker.split(" pid ")[1] != str(os.getpid()) for worker in workers)  # not this process
    reference = run_sweep(on_dask, scheduler=scheduler)
    np.testing.assert_allclose(results.loss.values, reference.loss.values, rtol=0, atol=1e-13)
    np.testing.assert_allclose(results.overlaps.values, reference.overlaps.values, rtol=0, atol=1e-13)
