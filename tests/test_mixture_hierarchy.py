"""The adaptive mixture closure: stretch, split directions, and splits that keep the overlaps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import overlapflow as of
from overlapflow import Mixture
from overlapflow.mixture_hierarchy import Hierarchy, component_stretch, split_direction, train_adaptive


@pytest.fixture(scope="module")
def flipflop():
    rnn = of.LowRankRNN(1, 1, 1, "erf", 0.05, readout="before")
    theta = rnn.init(jax.random.key(3), 400, jnp.float64)
    return rnn, of.tasks.FlipFlop(batch_size=4, t_max=3.0), np.asarray(theta.T @ theta / 400)


def test_stretch_grows_with_the_components_width(flipflop):
    rnn, task, S = flipflop
    inputs = task.sample(jax.random.key(0), rnn.dt).inputs * 10
    wide, _ = component_stretch(rnn, Mixture.gaussian(2 * S, rnn), inputs)
    narrow, _ = component_stretch(rnn, Mixture.gaussian(0.5 * S, rnn), inputs)
    point, _ = component_stretch(rnn, Mixture.create([1.0], S[:1] * 0, np.zeros((1, 4, 4)), rnn), inputs)
    assert wide[0] > narrow[0] > 0 and point[0] == pytest.approx(0.0, abs=1e-15)


def test_the_split_direction_is_whitened_inside_phi(flipflop):
    rnn, task, S = flipflop
    mixture = Mixture.gaussian(S, rnn)
    M = np.diag([1.0, 0.0])  # only k_in spreads the currents: the split follows m
    D = split_direction(rnn, mixture, 0, M)
    assert np.all(D[2:] == 0)
    x_variance = D @ S @ D
    assert x_variance == pytest.approx(1.0, rel=1e-12)


def test_adaptive_runs_split_and_keep_the_overlaps(flipflop):
    rnn, task, S = flipflop
    history, final = train_adaptive(rnn, task, S, 0.1, 30, Hierarchy(every=10, threshold=0.0, max_components=9))
    K = history.components.values
    assert list(K[[0, 9, 10, 19, 20, 30]]) == [1, 1, 3, 3, 9, 9] and final.n_components == 9
    np.testing.assert_allclose(history.overlaps[-1], final.overlaps, atol=1e-14)
    closure = of.train(of.OverlapEngine(), rnn, task, S, 0.1, 30).history
    np.testing.assert_allclose(history.overlaps[:11], closure.overlaps[:11], atol=1e-13)  # K = 1 before the first split
    steps = np.abs(np.diff(history.overlaps.values, axis=0)).max(axis=(1, 2))
    assert steps[10] < 3 * steps[9]  # a split keeps the overlaps: no jump where K changes


def test_bad_hierarchy_settings_name_the_field():
    with pytest.raises(ValueError, match="Hierarchy.nodes = 1: must be an integer >= 2"):
        Hierarchy(nodes=1)
