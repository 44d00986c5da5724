"""The infinite-N particle engine: exact for linear networks, converged in the grid, the limit of
finite networks, and the yardstick for the Gaussian closure."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import pulse_task, random_inputs_task, random_S

import overlapflow as of
from overlapflow import train
from overlapflow.engines import ParticleEngine
from overlapflow.particles import (
    RULES,
    Particles,
    fold,
    gauss_hermite_particles,
    make_particles,
    smolyak_nodes,
    unfold,
)
from overlapflow.validation import fit_power_law, per_epoch_deviation, validate_theory


@pytest.mark.parametrize("rule", RULES)
def test_rules_have_the_exact_second_moments_and_are_mirror_symmetric(rule):
    rnn = of.LowRankRNN(rank=2, n_in=2)
    S0 = random_S(rnn, seed=1)
    cloud = make_particles(S0, rule, nodes=3, n=256, level=3, right_nodes=2, left=rnn.n_left)
    assert abs(float(cloud.weights.sum()) - 1) < 1e-14
    np.testing.assert_allclose(np.asarray(cloud.overlaps), S0, atol=1e-13)
    half, at_zero = fold(cloud)
    whole = unfold(half, at_zero)
    assert len(whole) == len(cloud) and 2 * len(half) - at_zero == len(cloud)
    np.testing.assert_allclose(np.asarray(whole.overlaps), S0, atol=1e-13)
    assert fold(Particles(cloud.theta.at[0, 0].add(0.1), cloud.weights)) is None  # no longer symmetric


def test_singular_overlaps_use_only_their_directions():
    S0 = np.diag([1.0, 2.0, 0.0, 0.5])
    assert len(gauss_hermite_particles(S0, nodes=4)) == 4**3
    with pytest.raises(ValueError, match="use fewer nodes or rule='qmc'"):
        gauss_hermite_particles(np.eye(8), nodes=20)
    with pytest.raises(ValueError, match="rule = 'sparse'"):
        make_particles(np.eye(4), "sparse")


def test_split_rule_samples_the_right_block_given_the_left_one():
    """Degenerate S0 (a zero input vector, a readout equal to v): the split rule keeps only the
    directions with variance and still has the exact second moments; node counts per block."""
    rnn = of.LowRankRNN(rank=1)  # theta = (m, u | v, z)
    theta = np.random.default_rng(0).normal(size=(500, 4))
    theta[:, 0] = 0.0
    theta[:, 3] = theta[:, 2]
    S0 = theta.T @ theta / 500
    cloud = make_particles(S0, "split", nodes=5, right_nodes=3, left=rnn.n_left)
    assert len(cloud) == 5 * 3  # one direction inside phi (u), one outside given it (v = z)
    np.testing.assert_allclose(np.asarray(cloud.overlaps), S0, atol=1e-13)
    with pytest.raises(ValueError, match="rule = 'split' needs left"):
        make_particles(S0, "split")
    with pytest.raises(ValueError, match="right_nodes = 0: must be an integer >= 1"):
        make_particles(S0, "split", right_nodes=0, left=2)


def test_smolyak_rule_is_exact_to_total_degree_2_level_minus_1():
    d, level = 4, 3
    xi, w = smolyak_nodes(d, level)
    assert len(w) == 41 and (w < 0).any()
    moment = lambda k: 0.0 if k % 2 else float(np.prod(np.arange(k - 1, 0, -2)))  # E xi^k, xi ~ N(0, 1)
    errors = {}
    for powers in itertools.product(range(2 * level + 1), repeat=d):
        if sum(powers) <= 2 * level:
            value = (np.prod(xi ** np.array(powers), axis=1) * w).sum()
            errors[sum(powers)] = max(errors.get(sum(powers), 0.0), abs(value - np.prod([moment(k) for k in powers])))
    assert max(errors[k] for k in range(2 * level)) < 1e-12
    assert errors[2 * level] > 1e-3  # and not beyond


def test_cheap_rules_match_the_product_grid_on_a_moving_nonlinear_run():
    """erf flip-flop (batch 4, 5 s trials), 60 epochs at lr 0.05, the overlaps move by > 0.05.
    Against the 7^4 product grid (2401 particles; itself 1e-9 from 9^4), measured: split 5 x 3 (225
    particles, run as 113 mirrored) 1e-8, 5 x 2 (100) 1.2e-6, 6 x 3 (324) 4e-10; the mirrored half
    gives the whole cloud's numbers to round-off."""
    rnn = of.LowRankRNN(rank=1, phi="erf", dt=0.025, readout="before")
    task = of.tasks.FlipFlop(batch_size=4, t_max=5.0)
    S0 = random_S(rnn, seed=1)
    run = lambda **rule: of.train(ParticleEngine(of.Optimizer("sgd"), **rule), rnn, task, S0, 0.05, 60).history
    product = run(rule="gauss-hermite", nodes=7)
    assert np.abs(product.overlaps.values[-1] - S0).max() > 0.05
    cheap, cheap_whole = (
        run(rule="split", nodes=5, right_nodes=3),
        run(rule="split", nodes=5, right_nodes=3, mirror=False),
    )
    assert cheap.attrs["n_particles"] == 225 and cheap.attrs["mirrored"] == 1
    assert of.max_overlap_deviation(cheap, product) < 1e-7
    assert of.max_overlap_deviation(cheap, cheap_whole) < 1e-13
    assert of.max_overlap_deviation(run(rule="split", nodes=5, right_nodes=2), product) < 3e-6
    assert of.max_overlap_deviation(run(rule="split", nodes=6, right_nodes=3), product) < 1e-8


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
@pytest.mark.parametrize("rnn", [of.LowRankRNN(rank=1), of.LowRankRNN(rank=2, n_in=2, n_out=2)])
def test_linear_particles_equal_the_exact_overlap_engine(rnn):
    task = random_inputs_task(rnn, T=60)
    S0 = random_S(rnn, seed=1)
    exact = of.train(of.OverlapEngine(), rnn, task, S0, 3e-3, 200).history
    for rule in ("gauss-hermite", "qmc"):
        particles = train(ParticleEngine(rule=rule, nodes=2, n=64), rnn, task, S0, 3e-3, 200).history
        assert of.max_overlap_deviation(particles, exact) <= 1e-12


def test_linear_particles_with_momentum_equal_the_momentum_closure():
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2, t_max=10.0)
    S0 = random_S(rnn, seed=1)
    opt = of.Optimizer("momentum", momentum=0.9)
    exact = of.train(of.OverlapEngine(opt), rnn, task, S0, 2e-3, 100).history
    assert (
        of.max_overlap_deviation(
            train(ParticleEngine(optimizer=opt, rule="gauss-hermite", nodes=2), rnn, task, S0, 2e-3, 100).history, exact
        )
        <= 1e-12
    )


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_gauss_hermite_grid_refinement_converges():
    """erf rank 1, 100 epochs: 6^4 vs 8^4 particles differ by < 1e-6 (measured 5e-7 at 200
    epochs vs 12^4; 8^4 vs 12^4: 1e-8; 10^4 vs 12^4: 1e-10)."""
    rnn = of.LowRankRNN(rank=1, phi="erf")
    S0 = random_S(rnn, seed=1)
    coarse, fine = (
        train(ParticleEngine(rule="gauss-hermite", nodes=k), rnn, pulse_task(), S0, 0.05, 100).history for k in (6, 8)
    )
    assert of.max_overlap_deviation(coarse, fine) < 1e-6
    assert np.abs(fine.overlaps.values[-1] - S0).max() > 0.3


@pytest.mark.slow
def test_finite_networks_converge_to_the_particle_limit_like_inverse_sqrt_N():
    """Mean over 3 seeds of max_t |S_N - S_inf|: N^(-1/2) predicts a factor 4 from N = 250 to 4000;
    we require at least 2 (measured 4.1; exponent -0.52 over N = 250..16000, see the closing note).
    The Gaussian closure misses the limit by more than the N = 4000 network does."""
    rnn = of.LowRankRNN(rank=1, phi="erf")
    S0 = random_S(rnn, seed=1)
    result = validate_theory(rnn, pulse_task(), S0, lr=0.05, epochs=200, sizes=(250, 4000), seeds=3, nodes=8)
    mean = result.network_deviation.mean("seed").values
    assert mean[0] / mean[1] > 2.0
    assert -0.8 < result.attrs["exponent"] < -0.3
    closure = result.closure_deviation.values
    assert (
        closure.max() > 0.5 * mean[1]
    )  # as far off as a network of a few thousand neurons (measured 1.5e-3 vs 1.3e-3 to 1.6e-3)
    assert 1e-4 < closure.max() < 5e-3
    assert closure[1] < 1e-6 < closure[200]  # exact at the first step, then grows (about t^2)
    assert closure[200] > 20 * closure[20]


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_closure_error_is_the_non_gaussianity_it_neglects():
    """The closure and the limit share the first step (Stein's lemma holds at N(0, S0))."""
    rnn = of.LowRankRNN(rank=1, phi="tanh")
    S0 = random_S(rnn, seed=1)
    limit = train(ParticleEngine(rule="gauss-hermite", nodes=8), rnn, pulse_task(), S0, 0.05, 30).history
    closure = of.train(of.OverlapEngine(), rnn, pulse_task(), S0, 0.05, 30).history
    dev = per_epoch_deviation(closure, limit)
    assert dev[1] < 1e-6 and dev[30] > 10 * dev[1]


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_user_nonlinearity_goes_through_closure_and_particles():
    rnn = of.LowRankRNN(rank=1, phi=lambda x: jnp.tanh(x) + 0.1 * jnp.sin(2 * x))
    S0 = random_S(rnn, seed=1)
    task = pulse_task(T=60)
    limit = train(ParticleEngine(rule="gauss-hermite", nodes=8), rnn, task, S0, 0.05, 20).history
    closure = of.train(of.OverlapEngine(), rnn, task, S0, 0.05, 20).history
    assert per_epoch_deviation(closure, limit)[1] < 1e-6
    assert of.max_overlap_deviation(closure, limit) < 1e-3
    assert np.isfinite(closure.attrs["gain_error"]) and closure.attrs["max_delta"] > 0


def test_fit_power_law():
    p, c = fit_power_law([10, 100, 1000], [2 * 10**-0.5, 2 * 100**-0.5, 2 * 1000**-0.5])
    assert p == pytest.approx(-0.5, abs=1e-12) and c == pytest.approx(2, rel=1e-12)


def test_adam_is_refused_by_the_particle_engine():
    with pytest.raises(ValueError, match="SGD-type optimisers only"):
        train(ParticleEngine(optimizer="adam"), of.LowRankRNN(rank=1), pulse_task(), np.eye(4), 1e-3, 1)
