import os
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import overlapflow as of
from overlapflow import compilation_cache

# The suite runs with float64 enabled for the whole process, as a user may (importing overlapflow no
# longer does it: overlapflow.precision). tests/test_precision.py checks the library without it, in
# subprocesses and inside jax.enable_x64(False) (a float32 network next to the float64 theory).
jax.config.update("jax_enable_x64", True)

# The suite's compiled programs go to a cache under .pytest_cache: the pytest-xdist workers (pytest runs
# on every core, pyproject.toml) compile a program once between them, and a second run starts at once.
# The commands the tests run in-process turn the cache on as well: the same folder (not the user's).
os.environ[compilation_cache.DIRECTORY_VARIABLE] = str(
    pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"
)
compilation_cache.enable()

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def rank1():
    return of.LowRankRNN(rank=1)


def random_theta(rnn, seed=0, N=200):
    """The vectors (N, P) of a random network ``rnn.init(key(seed), N)``, in float64."""
    return rnn.init(jax.random.key(seed), N=N, dtype=jnp.float64)


def random_overlaps(rnn, seed=0, N=200):
    """Overlaps of a random network (float64): ``Overlaps.from_params`` of :func:`random_theta`."""
    return of.Overlaps.from_params(rnn, random_theta(rnn, seed, N))


def random_S(rnn, seed=0, N=200):
    """The overlap matrix S = theta^T theta / N (P, P) of a random network, as a float64 numpy array."""
    return np.asarray(random_overlaps(rnn, seed, N).matrix)


def pulse_task(T=100):
    """The two-pulse trial (a flip-flop-like FixedBatch, mse): +1 at steps 5-14, -1 at steps 50-59;
    the target is 0.5 sign(the pulses' running sum)."""
    x = np.zeros((T, 1))
    x[5:15, 0] = 1.0
    x[50:60, 0] = -1.0
    return of.tasks.FixedBatch(x, 0.5 * np.sign(np.cumsum(x[:, 0]))[:, None], loss="mse")


def as_np(batch):
    """A task's Batch (inputs, targets, mask) as a tuple of numpy arrays."""
    return tuple(np.asarray(a) for a in batch)


def config_problems(config) -> list[str]:
    """The problem lines, stripped, of the ConfigError that reading ``config`` raises (TOML text:
    ``load_config_text``; a dict: ``parse_config``); the error's first line, naming the config, left out."""
    from overlapflow.experiments import ConfigError, load_config_text, parse_config

    read = load_config_text if isinstance(config, str) else parse_config
    with pytest.raises(ConfigError) as caught:
        read(config)
    return [line.strip() for line in str(caught.value).splitlines()[1:]]


def write_sweep(folder, base_text, **sweep):
    """``folder``/base.toml holding ``base_text`` and ``folder``/sweep.toml with the settings ``sweep``
    (base "base.toml" and output ``folder``/out unless given there); returns the sweep file's path."""
    from overlapflow.experiments.config import dumps_toml

    (folder / "base.toml").write_text(base_text)
    path = folder / "sweep.toml"
    path.write_text(dumps_toml({"base": "base.toml", "output": str(folder / "out"), **sweep}))
    return path


def random_inputs_task(rnn, T=60, B=2, seed=0, loss="sum_sq_dt"):
    """A FixedBatch with smooth random inputs and targets (any n_in, n_out)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, rnn.n_in)) * (rng.random((B, T, 1)) < 0.2)
    y = np.sin(np.linspace(0, 3, T))[None, :, None] * rng.normal(size=(B, 1, rnn.n_out))
    return of.tasks.FixedBatch(x, y, loss=loss)


CLI_ENV = {"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def command_app(register) -> typer.Typer:
    """A typer app holding the commands that ``register(app)`` adds."""
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """The commands run, plot, validate and reproduce (``overlapflow.experiments.commands``) in a typer app."""
    from overlapflow.experiments import commands

    return command_app(commands.register)


@pytest.fixture(scope="module")
def sweep_app() -> typer.Typer:
    """The ``sweep`` command (``overlapflow.experiments.sweep_commands``) in a typer app."""
    from overlapflow.experiments import sweep_commands

    return command_app(sweep_commands.register)


def invoke(app, *args):
    """Run a command of ``app``: (click Result, its output without ANSI codes)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=CLI_ENV)
    return result, ANSI.sub("", result.output)


# A run of a few seconds: 30 epochs in 3 checkpointed segments, network and overlap theory (the CLI tests).
SMALL_RUN = """
name = "small"
N = 60
seed = 3
checkpoint_every = 10

[[phases]]
name = "A"
epochs = 30
lr = 5e-3
task = {kind = "exponential_filter", c = 0.2, t_max = 2.0}

[engines]
network = true
overlaps = "exact"
"""


def invoke_streams(app, *args):
    """Run a command of ``app``: (exit code, stdout, stderr), without colours."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", "COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def two_population_rows(rnn, N: int, seed: int = 0):
    """Rows theta (N, P) in two populations of N/2 (alternating), their u means at +4 and -4 (clearly
    apart), the rest standard normal: (theta, labels)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(N) % 2
    theta = rng.standard_normal((N, rnn.n_vectors))
    theta[:, rnn.slices["U"]] += np.where(labels == 0, 4.0, -4.0)[:, None]
    return theta, labels
