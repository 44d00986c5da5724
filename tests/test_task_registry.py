"""Tasks and nonlinearities are usable from experiment configs once registered: a new task is one
frozen dataclass registered under its TOML kind, and its fields are the config's schema for it."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Literal

import jax
import jax.numpy as jnp
import pytest
from conftest import config_problems

from overlapflow import LowRankRNN
from overlapflow.experiments.config import load_config_text, task_config_model
from overlapflow.nonlinearity import REGISTRY, Nonlinearity, register_nonlinearity
from overlapflow.tasks import TASKS, AbstractTask, Batch, FixedBatch, NoisyTargets, n_steps, setting, task_kinds


@dataclasses.dataclass(frozen=True)
class Ramp(AbstractTask, kind="toy_ramp"):
    """Impulse x_0 = 1/dt; target y*_t = slope t dt (``"ramp"``) or slope (``"step"``), B identical trials."""

    slope: float = setting(doc="slope of the target")
    t_max: float = setting(5.0, doc="trial length", gt=0)
    batch_size: int = setting(1, doc="trials per batch B", ge=1)
    shape: Literal["ramp", "step"] = setting("ramp", doc="the target's shape")
    levels: tuple[float, ...] = setting((0.0, 1.0), doc="unused levels", ge=0, min_length=1)
    loss_kind: str = "sum_sq_dt"

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: True)

    def sample(self, key: jax.Array, dt: float) -> Batch:
        T, B = n_steps(self.t_max, dt), self.batch_size
        inputs = jnp.zeros((B, T, 1)).at[:, 0, 0].set(1.0 / dt)
        ramp = self.slope * dt * jnp.arange(T) if self.shape == "ramp" else jnp.full(T, self.slope)
        targets = jnp.broadcast_to(ramp[None, :, None], (B, T, 1))
        return Batch(inputs, targets, jnp.ones_like(targets))


def ramp_config(**settings: str) -> str:
    """A one-phase config of the toy task; settings as TOML values (slope = 0.5 unless given; None: left out)."""
    table = {"kind": '"toy_ramp"', "slope": "0.5", **settings}
    return "epochs = 3\nlr = 1e-3\n[task]\n" + "\n".join(f"{k} = {v}" for k, v in table.items() if v is not None)


# ---------------------------------------------------------------------------- the registry
def test_a_task_class_registers_under_its_kind():
    assert TASKS["toy_ramp"] is Ramp and Ramp.kind == "toy_ramp" and "toy_ramp" in task_kinds()
    assert {"exponential_filter", "flipflop", "decision_making", "teacher"} <= set(task_kinds())
    assert FixedBatch.kind is None and NoisyTargets.kind is None
    assert FixedBatch not in TASKS.values() and NoisyTargets not in TASKS.values()
    with pytest.raises(ValueError, match=r"kind = 'flipflop' is taken by FlipFlop"):

        class Other(AbstractTask, kind="flipflop"):
            pass

    with pytest.raises(TypeError):
        TASKS["mine"] = Ramp  # read-only: tasks join by their class keyword


def test_the_constructor_checks_the_settings():
    assert Ramp(slope=1.0, levels=[2, 3]).levels == (2, 3)  # a list is stored as a tuple
    for change, match in [
        (dict(t_max=0.0), r"Ramp\.t_max = 0\.0: must be a finite number > 0"),
        (dict(batch_size=True), r"Ramp\.batch_size = True: must be an integer >= 1"),
        (dict(shape="saw"), r"Ramp\.shape = 'saw': unknown; allowed: \['ramp', 'step'\]"),
        (dict(levels=()), r"Ramp\.levels = \(\): must be a tuple of length >= 1, each entry a finite number >= 0"),
        (dict(levels=(1.0, -1.0)), r"Ramp\.levels = \(1\.0, -1\.0\)"),
        (dict(slope=float("nan")), r"Ramp\.slope = nan: must be a finite number"),
    ]:
        with pytest.raises(ValueError, match=match):
            Ramp(**{"slope": 1.0, **change})


# ---------------------------------------------------------------------------- the config schema
def test_a_new_task_is_usable_from_toml_with_its_defaults():
    config = load_config_text(ramp_config())
    table = config.phases[0].task
    assert table.model_dump() == {
        "kind": "toy_ramp",
        "slope": 0.5,
        "t_max": 5.0,
        "batch_size": 1,
        "shape": "ramp",
        "levels": [0.0, 1.0],
    }
    task = table.build(config.build_network())
    assert task == Ramp(slope=0.5)
    batch = task.sample(jax.random.key(0), 0.05)
    assert batch.inputs.shape == batch.targets.shape == (1, 100, 1)
    assert float(task.loss(batch.targets, batch, 0.05)) == 0
    assert load_config_text(config.to_toml()).resolved() == config.resolved()
    assert pickle.loads(pickle.dumps(config)).resolved() == config.resolved()  # the table is re-validated
    schema = task_config_model(Ramp).model_fields
    assert schema["t_max"].description == "trial length" and schema["slope"].is_required()


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("t_max", "0", "task.t_max: value 0: must be greater than 0 (trial length)"),
        ("t_max", "nan", "task.t_max: value nan: must be a finite number (trial length)"),
        ("slope", '"a"', "task.slope: value 'a': must be a valid number (slope of the target)"),
        ("slope", None, "task.slope: value (missing): required (slope of the target)"),
        ("batch_size", "1.5", "task.batch_size: value 1.5: must be a valid integer (trials per batch B)"),
        ("shape", '"saw"', "task.shape: value 'saw': must be 'ramp' or 'step' (the target's shape)"),
        ("levels", "[]", "task.levels: value []: List should have at least 1 item after validation, not 0"),
        ("levels", "[1, -2]", "task.levels.1: value -2: must be greater than or equal to 0 (unused levels)"),
        (
            "slop",
            "1",
            "task.slop: value 1: unknown key; allowed keys here: kind, slope, t_max, batch_size, shape, levels",
        ),
        ("kind", '"toy_rump"', "task.kind: value 'toy_rump': unknown task kind; allowed: "),
    ],
)
def test_a_new_tasks_problems_are_reported_at_their_path(key, value, problem):
    assert config_problems(ramp_config(**{key: value}))[0].startswith(problem)


@pytest.mark.parametrize("kind", task_kinds())
def test_a_table_of_defaults_builds_the_dataclass_defaults(kind):
    """The config's defaults are the dataclass's (the teacher's network: rank 1, erf, the student's sizes)."""
    task = TASKS[kind]
    model = task_config_model(task)
    required = {name: 0.5 for name, info in model.model_fields.items() if info.is_required() and name != "kind"}
    assert model.model_validate({"kind": kind, **required}).build(LowRankRNN()) == task(**required)


# ---------------------------------------------------------------------------- nonlinearities
@pytest.fixture
def softsign():
    phi = register_nonlinearity(Nonlinearity("softsign", lambda x: x / (1 + jnp.abs(x))))
    yield phi
    del REGISTRY["softsign"]


def test_a_registered_nonlinearity_is_usable_from_toml(softsign):
    assert register_nonlinearity(softsign) is softsign  # registering it again does nothing
    with pytest.raises(ValueError, match="already registered"):
        register_nonlinearity(Nonlinearity("softsign", jnp.tanh))
    config = load_config_text(
        'epochs = 1\nlr = 1e-3\nnetwork = {phi = "softsign"}\n'
        'task = {kind = "teacher", phi = "softsign", batch_size = 2, t_max = 1.0}\n'
    )
    rnn = config.build_network()
    teacher = config.phases[0].task.build(rnn)
    assert rnn.nonlinearity is softsign and teacher.rnn.nonlinearity is softsign
    unknown = config_problems('epochs = 1\nlr = 1e-3\nnetwork = {phi = "softsine"}\ntask = {kind = "teacher"}\n')
    assert unknown[0].startswith("network.phi: value 'softsine': unknown nonlinearity; allowed: linear, erf")
    assert "softsign" in unknown[0]
