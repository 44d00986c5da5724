"""The paper's testable predictions, as runnable experiments with numeric outcomes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_memory import synthetic_result

import overlapflow as of
from overlapflow.phenomena import predictions


def test_behaviourally_identical_networks_learn_differently():
    """Paper fig 2 twin (uu = 2.048, mu = 0.8), new task c* = 0.4, 300 epochs: measured output
    distance 4e-18 before and 0.067 after; loss curves up to 0.18 apart."""
    rnn = of.LowRankRNN(rank=1)
    theta = rnn.init(jax.random.key(0), N=500, dtype=jnp.float64)
    out = predictions.behaviourally_identical_networks_diverge(
        rnn, theta, {"uu": 2.048, "um": 0.8}, of.tasks.ExponentialFilter(c=0.4), lr=5e-3, epochs=300
    )
    assert out["output_distance_before"] < 1e-12
    assert out["output_distance_after"] > 1e-2
    assert out["max_loss_gap"] > 1e-2


def test_noise_moves_invisible_structure_but_not_behaviour():
    """From a solution of the filter task, 4000 epochs with target noise 0.1 (lr 1e-2): visible
    overlaps stay within 0.03 of the solution, invisible ones drift 0.06 and keep going (0.10 at
    8000 epochs), while noise-free training moves nothing (5e-7)."""
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2)
    S = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(0), N=500, dtype=jnp.float64))
    solution = of.train(of.OverlapEngine(), rnn, task, S, 5e-3, 2000).history.overlaps.values[-1]
    out = predictions.invisible_drift_under_noise(rnn, task, solution, noise_std=0.1, lr=1e-2, epochs=4000)
    assert out["clean_drift"] < 1e-5
    assert out["visible_drift"] < 0.05
    assert out["invisible_drift"] > 1.5 * out["visible_drift"]


def test_history_decodable_from_connectivity_but_not_from_behaviour():
    result = synthetic_result()  # members differ only in zz, which never changes the output
    probe = of.tasks.Teacher.paper(batch_size=2, t_max=5.0).sample(jax.random.key(5), 0.05).inputs
    accuracy = predictions.history_in_connectivity_not_behaviour(result, probe, resamples=20)
    assert accuracy["invisible"] == pytest.approx(1.0)
    assert accuracy["behaviour"] == 0.5 and accuracy["visible"] == 0.5
    features = predictions.behaviour_features(result, "after_C", probe)
    np.testing.assert_allclose(features[:, 0], features[:, 1], atol=1e-14)
