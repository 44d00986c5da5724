"""Curricula: phases run in sequence with the state carried over, in every engine."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import overlapflow as of
from overlapflow.history import phase_ends, phase_names
from overlapflow.phenomena.curriculum import Phase, aba_curriculum, adam_curriculum, run_curriculum


@pytest.mark.slow
def test_aba_curriculum_network_overlaps_and_particles_agree():
    rnn = of.LowRankRNN(rank=1)
    theta = rnn.init(jax.random.key(0), N=300, dtype=jnp.float64)
    phases = aba_curriculum(scale=0.05)  # 150, 50, 50, 50, 200 epochs; the last with target noise
    runs = run_curriculum(
        rnn, phases, theta0=theta, engines=("network", "overlaps", "particles"), particle_options={"nodes": 2}
    )
    total = sum(p.epochs for p in phases)
    for history in runs.values():
        assert history.sizes["epoch"] == total + 1
        assert phase_names(history) == ["A", "B1", "A2", "B2", "A+noise"]
        assert phase_ends(history) == [150, 200, 250, 300, 500]
        assert list(history.phase.values[[0, 150, 151, 200, 201, 500]]) == [0, 0, 1, 1, 2, 4]
    # paired batches (the noisy phase included) keep the engines together to round-off
    assert of.max_overlap_deviation(runs["network"], runs["overlaps"]) <= 1e-9
    assert of.max_overlap_deviation(runs["particles"], runs["overlaps"]) <= 1e-9


def test_phases_continue_from_the_previous_state():
    rnn = of.LowRankRNN(rank=1)
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(1), N=100, dtype=jnp.float64)).matrix
    A = of.tasks.ExponentialFilter(c=0.2, t_max=10.0)
    one = run_curriculum(rnn, [Phase(A, 60, 5e-3)], S0=S0, engines=("overlaps",))["overlaps"]
    two = run_curriculum(rnn, [Phase(A, 30, 5e-3), Phase(A, 30, 5e-3)], S0=S0, engines=("overlaps",))["overlaps"]
    np.testing.assert_allclose(two.overlaps.values, one.overlaps.values, atol=1e-14)


def test_after_aba_visible_overlaps_return_but_invisible_ones_remember():
    """A for 3000 epochs vs A 1500 / B 500 / A 1000: the same visible solution (to 1.4e-5), invisible
    overlaps differ by 1.1e-3 (measured)."""
    rnn = of.LowRankRNN(rank=1)
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(0), N=300, dtype=jnp.float64)).matrix
    A, B = of.tasks.ExponentialFilter(c=0.2), of.tasks.ExponentialFilter(c=0.4)
    only_a = run_curriculum(rnn, [Phase(A, 3000, 5e-3)], S0=S0, engines=("overlaps",))["overlaps"]
    aba = run_curriculum(
        rnn, [Phase(A, 1500, 5e-3), Phase(B, 500, 5e-3), Phase(A, 1000, 5e-3)], S0=S0, engines=("overlaps",)
    )["overlaps"]
    diff = np.abs(only_a.overlaps.values[-1] - aba.overlaps.values[-1])
    visible = only_a.visible.values
    assert diff[visible].max() < 1e-4
    assert diff[~visible].max() > 5e-4


def test_curriculum_errors():
    rnn = of.LowRankRNN(rank=1)
    A = of.tasks.ExponentialFilter(c=0.2)
    with pytest.raises(ValueError, match="Phase.epochs = 0"):
        Phase(A, 0, 1e-3)
    with pytest.raises(ValueError, match="theta0 is None"):
        run_curriculum(rnn, [Phase(A, 1, 1e-3)], S0=np.eye(4))
    with pytest.raises(ValueError, match="engines = "):
        run_curriculum(rnn, [Phase(A, 1, 1e-3)], S0=np.eye(4), engines=("magic",))
    with pytest.raises(ValueError, match="Adam does not close"):
        run_curriculum(rnn, adam_curriculum(scale=0.001), S0=np.eye(4), engines=("overlaps",))


def test_a_curriculum_carries_populations_through_its_phases():
    """Phase 2 restarts every engine from the previous state, populations included: a linear network
    with labelled rows, the mixture closure and particles from the mixture stay together."""
    rnn = of.LowRankRNN(rank=1)
    mixture = of.Mixture.create([0.3, 0.7], [[0.5, 0, -1, 0], [0, 0.3, 0, 0.2]], [np.eye(4), 0.5 * np.eye(4)], rnn)
    theta, labels = mixture.sample(rnn, jax.random.key(0), 40, dtype=jnp.float64, exact=True)
    A, B = of.tasks.ExponentialFilter(c=0.2, t_max=2.0), of.tasks.ExponentialFilter(c=0.4, t_max=2.0)
    runs = run_curriculum(
        rnn,
        [Phase(A, 4, 5e-3), Phase(B, 3, 5e-3)],
        theta0=theta,
        engines=("network", "overlaps", "particles"),
        particle_options={"rule": "gauss-hermite", "nodes": 2},
        populations=labels,
    )
    closure = runs["overlaps"]
    assert closure.attrs["closure"] == "mixture" and closure.population_overlaps.shape == (8, 2, 4, 4)
    for name in ("network", "particles"):
        np.testing.assert_allclose(runs[name].population_overlaps, closure.population_overlaps, rtol=0, atol=1e-12)
        np.testing.assert_allclose(runs[name].population_means, closure.population_means, rtol=0, atol=1e-12)
        np.testing.assert_allclose(runs[name].population_weights, [0.3, 0.7], atol=1e-15)
