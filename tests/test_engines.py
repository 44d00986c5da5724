"""The engine protocol: one loop for every engine, batched and resumed; a new engine is one class."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_inputs_task, random_S, random_theta

import overlapflow as of
from overlapflow.engines import Engine, FlowEngine, NetworkEngine, OverlapEngine, ParticleEngine
from overlapflow.history import phase_ends
from overlapflow.phenomena.curriculum import Phase, run_curriculum

RNN = of.LowRankRNN(rank=1, phi="erf")
CHUNK = 16  # one compiled chunk length for every run here: each engine compiles once (the tests are about the protocol)
TASK = of.tasks.NoisyTargets(of.tasks.WhiteNoiseFilter(batch_size=2, t_max=4.0), std=0.1)


ENGINES = [
    NetworkEngine(),
    NetworkEngine("momentum"),
    OverlapEngine(),
    OverlapEngine("nesterov"),
    OverlapEngine(step=of.EulerStep()),
    FlowEngine(),
    ParticleEngine(rule="gauss-hermite", nodes=3),
]


def engine_id(engine) -> str:
    """A test id that is the same in every process (no object addresses): pytest-xdist needs it."""
    step = engine.step.name if isinstance(engine, OverlapEngine) else ""
    return f"{type(engine).__name__}-{step}-{engine.optimizer.kind}"


def _start(engine, seed=0):
    if isinstance(engine, NetworkEngine):
        return random_theta(RNN, seed, N=150)
    return random_S(RNN, seed)


@pytest.mark.parametrize("engine", ENGINES, ids=engine_id)
def test_every_engine_resumes_in_segments_to_round_off(engine):
    """One run of 30 epochs equals 12 + 18 continued from the state (same batches by epoch_offset)."""
    start = _start(engine)
    whole = of.train(engine, RNN, TASK, start, 2e-3, 30, key=jax.random.key(3), chunk=CHUNK)
    first = of.train(engine, RNN, TASK, start, 2e-3, 12, key=jax.random.key(3), chunk=CHUNK)
    rest = of.train(
        engine, RNN, TASK, None, 2e-3, 18, key=jax.random.key(3), state=first.state, epoch_offset=12, chunk=CHUNK
    )
    joined = np.concatenate([first.history.overlaps.values, rest.history.overlaps.values[1:]])
    assert joined.shape == whole.history.overlaps.shape == (31, 4, 4)
    assert np.abs(joined - whole.history.overlaps.values).max() <= 1e-12  # measured 0 to 1e-15
    assert np.abs(np.asarray(whole.overlaps) - whole.history.overlaps.values[-1]).max() <= 1e-12
    assert whole.history.attrs["engine"] == engine.kind


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
@pytest.mark.parametrize(
    "engine", [ParticleEngine(rule="gauss-hermite", nodes=3), FlowEngine(), NetworkEngine("adam")], ids=engine_id
)
def test_every_engine_batches_over_runs(engine):
    """train_batch (vmap) over any engine equals the single runs, particles and the flow included."""
    starts = [_start(engine, seed) for seed in range(2)]
    stacked = jnp.stack([jnp.asarray(s) for s in starts])
    batch = of.train_batch(engine, RNN, TASK, stacked, 2e-3, 10, key=jax.random.key(1), chunk=CHUNK)
    assert batch.history.overlaps.dims == ("run", "epoch", "row", "col") and batch.history.sizes["run"] == 2
    for k, start in enumerate(starts):
        single = of.train(engine, RNN, TASK, start, 2e-3, 10, key=jax.random.key(1), chunk=CHUNK).history
        assert np.abs(batch.history.overlaps.values[k] - single.overlaps.values).max() <= 1e-12


def test_the_result_is_one_typed_object_and_the_old_entry_points_are_warning_aliases():
    theta = _start(NetworkEngine())
    result = of.train(NetworkEngine(), RNN, TASK, theta, 2e-3, 5, chunk=CHUNK)
    assert isinstance(result, of.TrainResult) and result.params.shape == (150, 4)
    assert isinstance(result.state, of.engines.TrainState)
    assert isinstance(result.final, jax.Array) and result.overlaps.shape == (4, 4)
    S0 = random_S(RNN)
    cloud = of.train(ParticleEngine(rule="gauss-hermite", nodes=3), RNN, TASK, S0, 2e-3, 5, chunk=CHUNK).final
    assert isinstance(cloud, of.Particles) and len(cloud) == 81
    aliases = [
        (lambda: of.train_network(RNN, TASK, theta, 2e-3, 5, chunk=CHUNK), NetworkEngine(), theta),
        (
            lambda: of.train_overlaps(RNN, TASK, S0, 2e-3, 5, method="euler", chunk=CHUNK),
            OverlapEngine(step="euler"),
            S0,
        ),
        (lambda: of.train_overlaps(RNN, TASK, S0, 2e-3, 5, method="flow", chunk=CHUNK), FlowEngine(), S0),
        (
            lambda: of.train_particles(RNN, TASK, S0, 2e-3, 5, rule="gauss-hermite", nodes=3, chunk=CHUNK),
            ParticleEngine(rule="gauss-hermite", nodes=3),
            S0,
        ),
    ]
    for alias, engine, start in aliases:
        with pytest.warns(DeprecationWarning, match="is deprecated and will be removed in the next release; use"):
            history = alias()
        assert history.identical(of.train(engine, RNN, TASK, start, 2e-3, 5, chunk=CHUNK).history)
    with pytest.raises(AttributeError, match="no parameters"):
        _ = of.train(OverlapEngine(), RNN, TASK, random_S(RNN), 2e-3, 1, chunk=CHUNK).params


def test_engines_refuse_what_they_cannot_run_in_one_line():
    with pytest.raises(ValueError, match="Adam does not close in overlap space"):
        OverlapEngine("adam")
    with pytest.raises(ValueError, match="momentum is closed in overlap space for step 'exact' only"):
        OverlapEngine("momentum", step="euler")
    with pytest.raises(ValueError, match="the gradient flow is not a step; use overlapflow.FlowEngine"):
        OverlapEngine(step="flow")
    with pytest.raises(ValueError, match="step = 'rk4': unknown; allowed"):
        OverlapEngine(step="rk4")
    with pytest.raises(ValueError, match="SGD-type optimisers only"):
        ParticleEngine("adam")
    with pytest.raises(ValueError, match="rule = 'sobol'"):
        ParticleEngine(rule="sobol")
    with pytest.raises(ValueError, match="theta0: shape"):
        of.train(NetworkEngine(), RNN, TASK, np.zeros((10, 3)), 1e-3, 1)


@dataclasses.dataclass(frozen=True)
class ScaledClosureEngine(OverlapEngine):
    """A closure plugged in: the Gaussian closure's loss times 2 (gradient doubles, so lr/2 is the same run)."""

    closure: object = staticmethod(lambda rnn, task, S, batch: 2 * of.meanfield_loss(rnn, task, S, batch))


@dataclasses.dataclass(frozen=True)
class PreconditionedEngine(Engine):
    """A new engine in a few lines: the exact overlap step with Gamma preconditioned by S^-1 S = I
    (the identity), written from scratch on the protocol; it must equal OverlapEngine("exact")."""

    kind = "preconditioned"

    def init(self, rnn, start):
        return jnp.asarray(start, dtype=jnp.float64)

    def loss_and_gradient(self, rnn, task, state, batch):
        loss, G = jax.value_and_grad(lambda s: of.meanfield_loss(rnn, task, s, batch))(state)
        return loss, (G + G.T) / 2

    def update(self, rnn, state, gradient, lr):
        return of.exact_step(state, gradient, lr)

    def overlaps(self, state):
        return state

    def carry(self, state):
        return state


def test_a_new_engine_or_closure_is_one_class_and_runs_everywhere():
    S0 = random_S(RNN)
    reference = of.train(OverlapEngine(), RNN, TASK, S0, 2e-3, 20, key=jax.random.key(2), chunk=CHUNK).history
    scaled = of.train(ScaledClosureEngine(), RNN, TASK, S0, 1e-3, 20, key=jax.random.key(2), chunk=CHUNK).history
    assert np.abs(scaled.overlaps.values - reference.overlaps.values).max() < 1e-13
    new = of.train(PreconditionedEngine(), RNN, TASK, S0, 2e-3, 20, key=jax.random.key(2), chunk=CHUNK)
    assert np.abs(new.history.overlaps.values - reference.overlaps.values).max() < 1e-13
    assert new.history.attrs["engine"] == "preconditioned"
    starts = np.stack([S0, random_S(RNN, seed=1)])
    batch = of.train_batch(PreconditionedEngine(), RNN, TASK, starts, 2e-3, 20, key=jax.random.key(2), chunk=CHUNK)
    assert np.abs(batch.history.overlaps.values[0] - reference.overlaps.values).max() < 1e-13
    phases = [Phase(TASK, 10, 2e-3, name="A"), Phase(TASK.task, 10, 2e-3, name="B")]
    runs = run_curriculum(RNN, phases, S0=S0, engines=("overlaps", PreconditionedEngine()))
    assert np.abs(runs["preconditioned"].overlaps.values - runs["overlaps"].overlaps.values).max() < 1e-13
    assert phase_ends(runs["preconditioned"]) == [10, 20]


def test_curriculum_histories_hold_the_phase_table_as_data():
    rnn = of.LowRankRNN(rank=1)
    task = random_inputs_task(rnn)
    phases = [Phase(task, 3, 1e-3, name="A, noisy"), Phase(task, 2, 1e-3, name="B")]
    runs = run_curriculum(rnn, phases, S0=np.eye(4), engines=("overlaps", OverlapEngine(step="euler")))
    assert list(runs) == ["overlaps", "overlaps-euler"] and runs["overlaps-euler"].attrs["method"] == "euler"
    again = run_curriculum(rnn, phases, S0=np.eye(4), engines=("overlaps", "overlaps"))
    assert list(again) == ["overlaps", "overlaps-exact"]
    history = runs["overlaps"]
    assert list(history.phase_name.values) == ["A, noisy", "B"]  # a comma in a name is fine: data, not a string
    assert list(history.phase_end.values) == [3, 5] and list(history.phase.values) == [0, 0, 0, 0, 1, 1]
    assert history.phase_lr.dims == ("phases",) and "phases" not in history.attrs


@pytest.mark.parametrize(
    "engine", [NetworkEngine(), OverlapEngine(), ParticleEngine(rule="gauss-hermite", nodes=3)], ids=engine_id
)
def test_epoch_is_one_epoch_of_the_loop(engine):
    """``engine.epoch`` (the protocol's composed step) equals the loop's first epoch."""
    start = _start(engine)
    state = engine.init(RNN, start)
    batch = TASK.sample(jax.random.fold_in(jax.random.key(5), 0), RNN.dt)
    with of.precision.float64_scope():
        new, loss, S = engine.epoch(RNN, TASK, state, batch, 2e-3)
    run = of.train(engine, RNN, TASK, start, 2e-3, 1, key=jax.random.key(5), chunk=CHUNK)
    assert abs(float(loss) - float(run.history.loss.values[0])) <= 1e-12
    assert np.abs(np.asarray(S) - run.history.overlaps.values[0]).max() <= 1e-12
    assert np.abs(np.asarray(engine.overlaps(new)) - run.history.overlaps.values[1]).max() <= 1e-12
