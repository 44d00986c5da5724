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
# subprocesses.
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


def random_overlaps(rnn, seed=0, N=200):
    """Overlaps of a random network (float64)."""
    return of.Overlaps.from_params(rnn, rnn.init(jax.random.key(seed), N=N, dtype=jnp.float64))


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
