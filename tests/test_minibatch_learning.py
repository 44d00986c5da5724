"""Minibatches shared by both engines, target noise, and the rank-2 damped oscillator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import overlapflow as of


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_paired_minibatches_match_to_round_off_and_independent_ones_do_not():
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.NoisyTargets(of.tasks.WhiteNoiseFilter(batch_size=4), std=0.1)
    theta = rnn.init(jax.random.key(1), N=300, dtype=jnp.float64)
    S0 = of.Overlaps.from_params(rnn, theta)
    sim = of.train(of.NetworkEngine(), rnn, task, theta, 5e-3, 300, key=jax.random.key(7)).history
    paired = of.train(of.OverlapEngine(), rnn, task, S0, 5e-3, 300, key=jax.random.key(7)).history
    independent = of.train(of.OverlapEngine(), rnn, task, S0, 5e-3, 300, key=jax.random.key(8)).history
    assert of.max_overlap_deviation(sim, paired) <= 1e-9  # measured 4e-15
    assert of.max_overlap_deviation(sim, independent) > 1e-3  # measured 9e-3
    assert sim.loss.values[-1] < 0.5 * sim.loss.values[0]


def test_noisy_targets_are_the_base_targets_plus_gaussian_noise():
    base = of.tasks.WhiteNoiseFilter(batch_size=256)
    noisy = of.tasks.NoisyTargets(base, std=0.3)
    key = jax.random.key(3)
    clean = base.sample(jax.random.fold_in(key, 0), 0.05)
    batch = noisy.sample(key, 0.05)
    np.testing.assert_array_equal(batch.inputs, clean.inputs)
    residual = np.asarray(batch.targets - clean.targets)
    assert abs(residual.std() - 0.3) < 0.01 and abs(residual.mean()) < 0.01
    assert not noisy.deterministic and noisy.n_in == 1 and noisy.loss_kind == "sum_sq_dt"


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_rank2_damped_oscillator_is_learned_by_both_engines():
    """Paper fig 12 task (c* 0.3, omega* 2, lr 5e-3): loss 0.87 -> 1.1e-7 by epoch 5000."""
    rnn = of.LowRankRNN(rank=2)
    task = of.tasks.DampedOscillator(c=0.3, omega=2.0)
    theta = rnn.init(jax.random.key(0), N=200, dtype=jnp.float64)
    sim = of.train(of.NetworkEngine(), rnn, task, theta, 5e-3, 5000).history
    thy = of.train(of.OverlapEngine(), rnn, task, of.Overlaps.from_params(rnn, theta), 5e-3, 5000).history
    assert thy.loss.values[-1] < 1e-6 and sim.loss.values[-1] < 1e-6
    assert of.max_overlap_deviation(sim, thy) <= 1e-9
    assert len(of.overlap_labels(thy, "visible")) == 9 and len(of.overlap_labels(thy, "invisible")) == 12
