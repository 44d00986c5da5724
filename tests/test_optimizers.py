"""Optimisers in both engines: momentum and weight decay close in overlap space, Adam does not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_inputs_task

import overlapflow as of


@pytest.mark.parametrize(
    "optimizer",
    [
        of.Optimizer("momentum", momentum=0.9),
        of.Optimizer("nesterov", momentum=0.8),
        of.Optimizer("sgd", weight_decay=0.05),
        of.Optimizer("momentum", momentum=0.5, weight_decay=0.02),
    ],
    ids=["heavy-ball", "nesterov", "weight-decay", "momentum+decay"],
)
def test_momentum_and_weight_decay_close_in_overlap_space(optimizer):
    rnn = of.LowRankRNN(rank=2, n_in=2)
    task = random_inputs_task(rnn, T=60)
    theta = rnn.init(jax.random.key(4), N=300, dtype=jnp.float64)
    sim = of.train(of.NetworkEngine(optimizer), rnn, task, theta, 2e-3, 150).history
    thy = of.train(of.OverlapEngine(optimizer), rnn, task, of.Overlaps.from_params(rnn, theta), 2e-3, 150).history
    assert of.max_overlap_deviation(sim, thy) <= 1e-9
    assert np.abs(thy.overlaps.values[-1] - thy.overlaps.values[0]).max() > 0.05


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_momentum_differs_from_sgd():
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2, t_max=10.0)
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(0), N=100, dtype=jnp.float64))
    plain = of.train(of.OverlapEngine(), rnn, task, S0, 2e-3, 50).history
    heavy = of.train(of.OverlapEngine("momentum"), rnn, task, S0, 2e-3, 50).history
    assert of.max_overlap_deviation(plain, heavy) > 1e-2


def test_adam_is_refused_in_overlap_space_with_the_reason():
    rnn = of.LowRankRNN(rank=1)
    with pytest.raises(ValueError, match="Adam does not close in overlap space"):
        of.train(of.OverlapEngine("adam"), rnn, of.tasks.ExponentialFilter(c=0.2), np.eye(4), 1e-3, 1)
    with pytest.raises(ValueError, match="step 'exact' only"):
        of.train(of.OverlapEngine("momentum", step="euler"), rnn, of.tasks.ExponentialFilter(c=0.2), np.eye(4), 1e-3, 1)
    with pytest.raises(ValueError, match="momentum = 1.5"):
        of.Optimizer("momentum", momentum=1.5)
    with pytest.raises(ValueError, match="kind = 'rmsprop'"):
        of.Optimizer("rmsprop")


def test_adam_network_trains_and_leaves_the_closure():
    """Adam on the full network learns, but two networks with the same overlaps diverge under it."""
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2, t_max=10.0)
    theta = rnn.init(jax.random.key(1), N=200, dtype=jnp.float64)
    rotated = of.sample_params(rnn, of.Overlaps.from_params(rnn, theta), 200, jax.random.key(2))
    runs = [of.train(of.NetworkEngine("adam"), rnn, task, th, 1e-2, 200).history for th in (theta, rotated)]
    assert runs[0].loss.values[-1] < 0.5 * runs[0].loss.values[0]
    # same initial overlaps, different neuron-space orientation: SGD would give identical overlaps
    assert of.max_overlap_deviation(*runs) > 1e-3


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_learning_rate_drop_once_the_loss_is_low_in_both_engines():
    """The paper's A/B -> C schedule: lr divided by 5 from the first epoch with loss < threshold."""
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2, t_max=10.0)
    theta = rnn.init(jax.random.key(0), N=100, dtype=jnp.float64)
    S0 = of.Overlaps.from_params(rnn, theta)
    opt = of.Optimizer("sgd", lr_drop_below=0.3, lr_drop_factor=5.0)
    dropped = of.train(of.OverlapEngine(opt), rnn, task, S0, 5e-3, 300).history
    assert (
        of.max_overlap_deviation(of.train(of.NetworkEngine(opt), rnn, task, theta, 5e-3, 300).history, dropped) <= 1e-9
    )
    first = int(np.argmax(dropped.loss.values < 0.3))
    assert 0 < first < 300
    batch = task.sample(None, rnn.dt)
    for k, lr in ((first - 1, 5e-3), (first, 1e-3)):
        S = jnp.asarray(dropped.overlaps.values[k])
        expected = of.exact_step(S, of.symmetric_gradient(rnn, task, S, batch)[1], lr)
        np.testing.assert_allclose(dropped.overlaps.values[k + 1], np.asarray(expected), atol=1e-13)
    with pytest.raises(ValueError, match="for SGD and Adam only"):
        of.Optimizer("momentum", lr_drop_below=0.1)


def test_the_lr_drop_is_optimiser_state_and_resumes_with_the_run():
    """The drop is an optax transformation of the rate that sees the loss; its flag lives in the run's
    TrainState, so a run continued after the drop fired equals the run in one piece, bitwise."""
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2, t_max=10.0)
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(0), N=100, dtype=jnp.float64))
    engine = of.OverlapEngine(of.Optimizer("sgd", lr_drop_below=0.3, lr_drop_factor=5.0))
    whole = of.train(engine, rnn, task, S0, 5e-3, 300)
    first = int(np.argmax(whole.history.loss.values < 0.3))
    head = of.train(engine, rnn, task, S0, 5e-3, first + 10)
    assert bool(head.state.schedule.dropped)
    tail = of.train(engine, rnn, task, None, 5e-3, 300 - first - 10, state=head.state, epoch_offset=first + 10)
    assert np.array_equal(tail.history.overlaps.values[-1], whole.history.overlaps.values[-1])
    already = of.engines.TrainState(engine.init(rnn, S0), of.optimizers.LrDropState(jnp.asarray(True)))
    slow = of.train(engine, rnn, task, None, 5e-3, 300, state=already).history  # the state is read: lr / 5 throughout
    fifth = of.train(of.OverlapEngine(), rnn, task, S0, 1e-3, 300).history
    assert np.abs(slow.overlaps.values - fifth.overlaps.values).max() <= 1e-15
    drop = of.optimizers.lr_drop(0.3, 5.0)
    rate, state = drop.update(1.0, drop.init(None), value=0.5)
    assert float(rate) == 1.0 and not bool(state.dropped)
    rate, state = drop.update(1.0, state, value=0.2)
    assert float(rate) == 0.2 and bool(state.dropped)
    rate, state = drop.update(1.0, state, value=0.9)  # once dropped, it stays dropped
    assert float(rate) == 0.2 and bool(state.dropped)
