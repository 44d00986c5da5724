"""Many overlap runs in one compiled call (vmap) equal the separate runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import overlapflow as of


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_batched_overlap_runs_equal_single_runs(optimizer):
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.NoisyTargets(of.tasks.WhiteNoiseFilter(batch_size=2, t_max=5.0), std=0.1)
    S0s = np.stack(
        [
            np.asarray(of.Overlaps.from_params(rnn, rnn.init(jax.random.key(k), N=100, dtype=jnp.float64)).matrix)
            for k in range(3)
        ]
    )
    batch = of.train_batch(of.OverlapEngine(optimizer), rnn, task, S0s, 3e-3, 100, key=jax.random.key(4)).history
    assert batch.loss.dims == ("run", "epoch") and batch.overlaps.shape == (3, 101, 4, 4)
    for k in range(3):
        single = of.train(of.OverlapEngine(optimizer), rnn, task, S0s[k], 3e-3, 100, key=jax.random.key(4)).history
        assert np.abs(batch.overlaps.values[k] - single.overlaps.values).max() <= 1e-12  # measured 1e-14
        assert np.abs(batch.loss.values[k] - single.loss.values).max() <= 1e-12


def test_batched_runs_reject_bad_input():
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2)
    with pytest.raises(ValueError, match=r"start: shape \(4, 4\); must be K starts stacked"):
        of.train_batch(of.OverlapEngine(), rnn, task, np.eye(4), 1e-3, 2)
    bad = np.stack([np.eye(4), -np.eye(4)])
    with pytest.raises(ValueError, match=r"start\[1\]: not positive semi-definite"):
        of.train_batch(of.OverlapEngine(), rnn, task, bad, 1e-3, 2)


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_batched_networks_equal_single_runs(optimizer):
    rnn = of.LowRankRNN(rank=1, phi="erf")
    task = of.tasks.WhiteNoiseFilter(batch_size=2, t_max=3.0)
    thetas = jnp.stack([rnn.init(jax.random.key(k), N=120, dtype=jnp.float64) for k in range(3)])
    keys = jax.random.split(jax.random.key(7), 3)
    batch = of.train_batch(of.NetworkEngine(optimizer), rnn, task, thetas, 1e-2, 40, key=keys).history
    assert batch.loss.dims == ("run", "epoch") and batch.overlaps.shape == (3, 41, 4, 4)
    assert batch.attrs["runs"] == 3 and batch.attrs["N"] == 120
    for k in range(3):
        single = of.train(of.NetworkEngine(optimizer), rnn, task, thetas[k], 1e-2, 40, key=keys[k]).history
        assert np.abs(batch.overlaps.values[k] - single.overlaps.values).max() <= 1e-12
        assert np.abs(batch.loss.values[k] - single.loss.values).max() <= 1e-12
    # different keys really give different batches
    assert np.abs(batch.loss.values[0, 1:] - batch.loss.values[1, 1:]).max() > 1e-3


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_batched_overlap_runs_take_one_key_per_run():
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.WhiteNoiseFilter(batch_size=2, t_max=5.0)
    S0 = np.asarray(of.Overlaps.from_params(rnn, rnn.init(jax.random.key(0), N=100, dtype=jnp.float64)).matrix)
    keys = jax.random.split(jax.random.key(3), 2)
    batch = of.train_batch(of.OverlapEngine(), rnn, task, np.stack([S0, S0]), 3e-3, 30, key=keys).history
    for k in range(2):
        single = of.train(of.OverlapEngine(), rnn, task, S0, 3e-3, 30, key=keys[k]).history
        assert np.abs(batch.overlaps.values[k] - single.overlaps.values).max() <= 1e-12
    assert np.abs(batch.overlaps.values[0, -1] - batch.overlaps.values[1, -1]).max() > 1e-6
    with pytest.raises(ValueError, match=r"key: shape \(3,\)"):
        of.train_batch(
            of.OverlapEngine(), rnn, task, np.stack([S0, S0]), 3e-3, 3, key=jax.random.split(jax.random.key(0), 3)
        )


def test_batched_networks_reject_bad_input():
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2)
    with pytest.raises(ValueError, match=r"start: shape \(10, 4\); must be K starts stacked"):
        of.train_batch(of.NetworkEngine(), rnn, task, np.ones((10, 4)), 1e-3, 2)
