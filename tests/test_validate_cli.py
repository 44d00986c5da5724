"""`overlapflow validate-theory` (finite networks vs the particle limit vs the closure) and its figure."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from typer.testing import CliRunner

import overlapflow as of
from overlapflow.cli import app, pulses_task
from overlapflow.validation import validate_theory
from overlapflow.validation_plot import plot_validation

runner = CliRunner()
# A wide, colourless console whatever the caller's terminal, so the output is parseable.
ENV = {"COLUMNS": "160", "NO_COLOR": "1", "FORCE_COLOR": None}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FILES = ("validation.nc", "validation.png", "validation.pdf", "summary.txt")


@pytest.mark.slow
def test_validate_theory_command_writes_its_files(tmp_path):
    out = tmp_path / "validation"
    # --quick, shrunk further by explicit options (which override the quick settings).
    args = ["validate-theory", "--quick", "--quiet", "--task", "pulses", "--out", str(out)]
    args += ["--sizes", "100,400", "--seeds", "2", "--epochs", "20", "--nodes", "4"]
    result = runner.invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output + repr(result.exception)
    output = ANSI.sub("", result.output)

    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with xr.open_dataset(out / "validation.nc") as ds:
        study = ds.load()
    assert list(study.N.values) == [100, 400]
    assert study.sizes["seed"] == 2 and study.sizes["epoch"] == 21
    assert study.attrs["task_name"] == "pulses" and study.attrs["rnn_phi"] == "erf"

    match = re.search(r"fitted exponent:\s*([-+0-9.eE]+|nan)", output)
    assert match, output
    exponent = float(match.group(1))
    assert math.isfinite(exponent)
    assert exponent == pytest.approx(study.attrs["exponent"], abs=1e-3)
    assert re.search(r"closure max deviation:\s*[0-9.]+e[-+]\d+", output), output
    # one table row per N and one for the closure; the same numbers in summary.txt
    for label in ("N=100", "N=400", "closure", "epoch 1", "epoch 2", "epoch 10", "epoch 20"):
        assert label in output, label
    summary = (out / "summary.txt").read_text()
    assert f"fitted exponent: {exponent:.3f}" in summary and "N=400" in summary
    assert str(out / "validation.png") in output


def test_validate_theory_command_rejects_bad_options(tmp_path):
    for args in (["--sizes", "100,abc"], ["--sizes", "2"], ["--lr", "-1"], ["--task", "sine"]):
        result = runner.invoke(app, ["validate-theory", "--quiet", "--out", str(tmp_path), *args], env=ENV)
        assert result.exit_code == 2, (args, result.output)
    result = runner.invoke(app, ["validate-theory", "--help"], env=ENV)
    assert result.exit_code == 0 and "--quick" in ANSI.sub("", result.output)


def test_pulses_task_is_the_two_pulse_trial():
    """As pulse_task in conftest.py (the setting of the measured -0.52 exponent)."""
    batch = pulses_task(0.05).sample(jax.random.key(0), 0.05)
    x, y = np.asarray(batch.inputs)[0, :, 0], np.asarray(batch.targets)[0, :, 0]
    assert x.shape == (100,) and x[5:15].tolist() == [1.0] * 10 and x[50:60].tolist() == [-1.0] * 10
    assert np.abs(x).sum() == 20 and y[0] == 0 and y[10] == y[55] == 0.5 and y[59] == y[99] == 0


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_plot_validation_draws_four_panels(tmp_path):
    rnn = of.LowRankRNN(rank=1, phi="erf")
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(1), N=200, dtype=jnp.float64))
    task = pulses_task(rnn.dt, t_max=2.0)
    result = validate_theory(rnn, task, S0, lr=0.05, epochs=5, sizes=(100, 400), seeds=1, nodes=4)
    for name in ("validation.png", "validation.pdf"):
        fig = plot_validation(result, path=tmp_path / name)
        assert isinstance(fig, Figure) and len(fig.axes) == 4
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "validation.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "validation.png").read_bytes()[:4] == b"\x89PNG"
    ax_n = fig.axes[2]
    assert ax_n.get_xscale() == "log" and ax_n.get_yscale() == "log"
    assert any("Gaussian closure" in text.get_text() for text in ax_n.get_legend().get_texts())
    with pytest.raises(ValueError, match="unknown figure format"):
        plot_validation(result, path=tmp_path / "validation.xyz")
    with pytest.raises(TypeError, match="validate_theory"):
        plot_validation(xr.Dataset())


def test_worker_processes_give_the_same_numbers_as_one_process():
    """The networks and the limit of validate_theory in 2 worker processes, largest N first: the
    same Dataset as in this process, to round-off (a single-threaded XLA sums in another order)."""
    rnn = of.LowRankRNN(rank=1, phi="erf")
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(1), N=200, dtype=jnp.float64))
    task = pulses_task(rnn.dt, t_max=1.0)
    run = lambda workers: validate_theory(
        rnn, task, S0, lr=0.05, epochs=3, sizes=(40, 80), seeds=2, nodes=3, right_nodes=2, workers=workers
    )
    here, pooled = run(1), run(2)
    assert pooled.attrs["workers"] == 2
    for name in ("network_deviation", "overlaps_network", "overlaps_particles", "loss_network"):
        np.testing.assert_allclose(pooled[name].values, here[name].values, rtol=1e-11, atol=1e-14)


def test_float32_networks_differ_from_float64_far_less_than_from_the_limit():
    """The study's networks in float32 (the CLI's default): their round-off in S stays far below
    their distance from the limit, the quantity measured."""
    rnn = of.LowRankRNN(rank=1, phi="erf")
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(1), N=200, dtype=jnp.float64))
    task = pulses_task(rnn.dt, t_max=2.0)
    run = lambda dtype: validate_theory(
        rnn, task, S0, lr=0.05, epochs=40, sizes=(300,), seeds=1, nodes=4, right_nodes=2, network_dtype=dtype
    )
    single, double = run("float32"), run("float64")
    assert single.attrs["network_dtype"] == "float32"
    round_off = np.abs(single.overlaps_network.values - double.overlaps_network.values).max()
    assert round_off < 1e-5
    assert float(double.network_deviation.max()) > 100 * round_off
    with pytest.raises(ValueError, match="network_dtype = 'float16'"):
        run("float16")
