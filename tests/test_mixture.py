"""Populations: the Gaussian-mixture law of the rows, the mixture closure and every engine with populations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import overlapflow as of
from overlapflow import Mixture
from overlapflow.meanfield import meanfield_forward, meanfield_loss
from overlapflow.network import network_forward

RNG = np.random.default_rng(0)


def random_mixture(rnn, K, scale=0.5, seed=0):
    rng = np.random.default_rng(seed)
    P = rnn.n_vectors
    covs = []
    for _ in range(K):
        A = rng.normal(size=(P, P))
        covs.append(A @ A.T / P * rng.uniform(0.3, 1.0))
    w = rng.uniform(0.5, 1.0, K)
    return Mixture.create(w / w.sum(), rng.normal(size=(K, P)) * scale, covs, rnn)


@pytest.fixture(scope="module")
def linear2():
    return of.LowRankRNN(2, 1, 1, "linear", 0.1), of.tasks.ExponentialFilter(c=0.2, a=1.0, t_max=4.0)


# ------------------------------------------------------------------ the law
@pytest.mark.parametrize(
    "weights, means, covs, message",
    [
        ([0.5, 0.6], np.zeros((2, 4)), np.stack([np.eye(4)] * 2), r"mixture.weights = \[0.5, 0.6\]: sum to 1.1"),
        ([1.2, -0.2], np.zeros((2, 4)), np.stack([np.eye(4)] * 2), "every weight must be a positive"),
        ([1.0], np.zeros((1, 3)), np.eye(4)[None], r"mixture.means: shape \(1, 3\); must be \(1, 4\)"),
        ([1.0], np.zeros((1, 4)), np.eye(3)[None], r"mixture.covariances: shape \(1, 3, 3\)"),
        ([1.0], np.zeros((1, 4)), -np.eye(4)[None], r"mixture.covariances\[0\]: not positive semi-definite"),
    ],
)
def test_bad_mixtures_get_one_line_naming_the_field(weights, means, covs, message):
    rnn = of.LowRankRNN(1, 1, 1, "erf", 0.1)
    with pytest.raises(ValueError, match=message) as error:
        Mixture.create(weights, means, covs, rnn)
    assert "\n" not in str(error.value)


def test_overlaps_are_the_weighted_second_moments():
    rnn = of.LowRankRNN(1, 1, 1, "erf", 0.1)
    mix = random_mixture(rnn, 3)
    S_k = np.asarray(mix.covariances) + np.einsum("ki,kj->kij", mix.means, mix.means)
    np.testing.assert_allclose(mix.second_moments, S_k, atol=1e-15)
    np.testing.assert_allclose(mix.overlaps, np.einsum("k,kij->ij", mix.weights, S_k), atol=1e-15)


def test_exact_samples_have_the_mixtures_moments_and_from_params_reads_them_back():
    rnn = of.LowRankRNN(1, 1, 1, "tanh", 0.1)
    mix = random_mixture(rnn, 3)
    theta, labels = mix.sample(rnn, jax.random.key(1), 500, dtype=jnp.float64, exact=True)
    assert theta.shape == (500, 4) and labels.shape == (500,)
    back = Mixture.from_params(rnn, theta, labels)
    np.testing.assert_allclose(back.means, mix.means, atol=1e-13)
    np.testing.assert_allclose(back.covariances, mix.covariances, atol=1e-13)
    np.testing.assert_allclose(back.weights, np.bincount(labels) / 500)
    np.testing.assert_allclose(back.overlaps, theta.T @ theta / 500, atol=1e-13)


def test_samples_too_small_for_exact_moments_are_refused():
    rnn = of.LowRankRNN(1, 1, 1, "tanh", 0.1)
    with pytest.raises(ValueError, match=r"N = 12: populations of sizes .* at least 5 neurons"):
        random_mixture(rnn, 3).sample(rnn, jax.random.key(0), 12, exact=True)


@pytest.mark.parametrize("width", [0.0, 0.5])
def test_split_keeps_the_moments_and_narrows_inside_phi(width):
    rnn = of.LowRankRNN(1, 1, 1, "erf", 0.1)
    theta = rnn.init(jax.random.key(0), 300, jnp.float64)
    S = np.asarray(theta.T @ theta / 300)
    mix = Mixture.split(rnn, S, 5, width=width)
    assert mix.n_components == 5
    np.testing.assert_allclose(np.einsum("k,ki->i", mix.weights, mix.means), 0, atol=1e-15)
    np.testing.assert_allclose(mix.overlaps, S, atol=1e-14)
    # the components are narrower inside phi (the (m, u) block) than the single Gaussian
    assert np.all(np.linalg.eigvalsh(np.asarray(mix.covariances[:, :2, :2])).min(1) >= -1e-14)
    assert np.trace(mix.covariances[0, :2, :2]) < np.trace(S[:2, :2])
    if width == 0.0:  # fourth moment along the split direction is the Gaussian's (3 sigma^4)
        lam, E = np.linalg.eigh(S[:2, :2])
        d = np.zeros(4)
        d[:2] = E[:, -1]
        m, v = np.asarray(mix.means) @ d, np.einsum("i,kij,j->k", d, mix.covariances, d)
        fourth = np.sum(np.asarray(mix.weights) * (m**4 + 6 * m**2 * v + 3 * v**2))
        np.testing.assert_allclose(fourth, 3 * (d @ S @ d) ** 2, rtol=1e-12)


def test_fit_finds_two_separated_populations():
    pytest.importorskip("sklearn")
    rnn = of.LowRankRNN(1, 1, 1, "tanh", 0.1)
    mix = Mixture.create([0.4, 0.6], [[3, 0, 0, 0], [-3, 0, 0, 0]], [np.eye(4) * 0.2] * 2, rnn)
    theta, labels = mix.sample(rnn, jax.random.key(0), 1000, dtype=jnp.float64)
    fitted, found = Mixture.fit(rnn, theta, 2, key=0)
    agree = max(np.mean(found == np.asarray(labels)), np.mean(found != np.asarray(labels)))
    assert agree == 1.0
    np.testing.assert_allclose(fitted.overlaps, theta.T @ theta / 1000, atol=1e-12)


# ------------------------------------------------------------------ the reduced network
@pytest.mark.parametrize("phi, readout", [("erf", "after"), ("erf", "before"), ("tanh", "after")])
def test_one_centred_component_is_the_gaussian_closure(phi, readout):
    rnn = of.LowRankRNN(1, 1, 1, phi, 0.1, readout=readout)
    theta = rnn.init(jax.random.key(0), 300, jnp.float64)
    S = theta.T @ theta / 300
    x = jax.random.normal(jax.random.key(1), (3, 40, 1))
    np.testing.assert_allclose(
        meanfield_forward(rnn, Mixture.gaussian(S, rnn), x), meanfield_forward(rnn, S, x), atol=1e-15
    )


def test_mixture_forward_is_the_large_network_limit():
    """Networks drawn from a mixture approach its reduced forward pass like N^-1/2."""
    rnn = of.LowRankRNN(1, 1, 1, "erf", 0.1)
    mix = random_mixture(rnn, 2, scale=0.8, seed=3)
    x = jax.random.normal(jax.random.key(1), (4, 40, 1))
    y = meanfield_forward(rnn, mix, x)
    errors = []
    for N in (1000, 100_000):
        thetas = [mix.sample(rnn, jax.random.key(s), N, jnp.float64, exact=True)[0] for s in range(3)]
        errors.append(np.mean([np.abs(network_forward(rnn, t, x) - y).max() for t in thetas]))
    assert errors[1] < errors[0] / 4  # N^-1/2 gives 10x; a single seed's fluctuation not less than 4x
    assert errors[1] < 1e-2 * np.abs(y).max()


# ------------------------------------------------------------------ learning: exactness
@pytest.mark.parametrize("N, lr", [(40, 0.02), (300, 0.06)])
def test_linear_populations_follow_the_mixture_theory_exactly(linear2, N, lr):
    """Any means and covariances, float64: each population's overlaps and mean in the network equal the
    mixture closure's to round-off, at any N and learning rate."""
    rnn, task = linear2
    mix = random_mixture(rnn, 3, seed=N)
    theta, labels = mix.sample(rnn, jax.random.key(N), N, dtype=jnp.float64)
    start = Mixture.from_params(rnn, theta, labels)
    net = of.train(of.NetworkEngine(), rnn, task, theta, lr, 60, populations=labels).history
    thy = of.train(of.OverlapEngine(), rnn, task, start, lr, 60).history
    moved = np.abs(thy.population_overlaps[-1] - thy.population_overlaps[0]).max()
    assert moved > 0.05
    scale = float(np.abs(thy.population_overlaps).max())
    assert np.abs(net.population_overlaps - thy.population_overlaps).max() < 1e-12 * scale
    assert np.abs(net.population_means - thy.population_means).max() < 1e-12 * scale
    np.testing.assert_allclose(net.population_weights, start.weights, rtol=1e-12)
    np.testing.assert_allclose(thy.overlaps, net.overlaps, atol=1e-12 * scale)


def test_linear_populations_with_weight_decay_are_exact(linear2):
    rnn, task = linear2
    mix = random_mixture(rnn, 2, seed=5)
    theta, labels = mix.sample(rnn, jax.random.key(5), 50, dtype=jnp.float64)
    opt = of.Optimizer("sgd", weight_decay=0.1)
    net = of.train(of.NetworkEngine(opt), rnn, task, theta, 0.05, 40, populations=labels).history
    thy = of.train(of.OverlapEngine(opt), rnn, task, Mixture.from_params(rnn, theta, labels), 0.05, 40).history
    assert np.abs(net.population_overlaps - thy.population_overlaps).max() < 1e-12
    assert np.abs(net.population_means - thy.population_means).max() < 1e-12


def test_one_centred_component_learns_as_the_gaussian_closure():
    rnn = of.LowRankRNN(1, 1, 1, "erf", 0.05, readout="before")
    task = of.tasks.FlipFlop(batch_size=4, t_max=4.0)
    theta = rnn.init(jax.random.key(3), 400, jnp.float64)
    S = theta.T @ theta / 400
    closure = of.train(of.OverlapEngine(), rnn, task, S, 0.1, 60).history
    mixture = of.train(of.OverlapEngine(), rnn, task, Mixture.gaussian(S, rnn), 0.1, 60).history
    assert np.abs(closure.overlaps[-1] - closure.overlaps[0]).max() > 0.05
    assert np.abs(closure.overlaps - mixture.overlaps).max() < 1e-13
    assert np.all(mixture.population_means == 0.0)
    assert mixture.attrs["closure"] == "mixture" and mixture.attrs["components"] == 1


def test_point_components_are_the_particle_limit():
    """Splitting every direction into components of zero width turns the mixture closure into the
    particles of the same grid: each point moves by f(point), exactly."""
    rnn = of.LowRankRNN(1, 1, 1, "erf", 0.05, readout="before")
    task = of.tasks.FlipFlop(batch_size=4, t_max=4.0)
    theta = rnn.init(jax.random.key(3), 400, jnp.float64)
    S = np.asarray(theta.T @ theta / 400)
    lam, E = np.linalg.eigh(S)
    points = Mixture.gaussian(S, rnn).refine(0, E, [3, 3, 3, 3])
    assert float(np.abs(points.covariances).max()) < 1e-14
    mixture = of.train(of.OverlapEngine(), rnn, task, points, 0.1, 40).history
    particles = of.train(of.ParticleEngine(rule="gauss-hermite", nodes=3, mirror=False), rnn, task, S, 0.1, 40)
    assert np.abs(mixture.overlaps - particles.history.overlaps).max() < 1e-12


def test_mixture_particles_record_each_component(linear2):
    rnn, task = linear2
    mix = random_mixture(rnn, 2, seed=7)
    thy = of.train(of.OverlapEngine(), rnn, task, mix, 0.1, 30).history
    cloud = of.train(of.ParticleEngine(rule="gauss-hermite", nodes=2), rnn, task, mix, 0.1, 30).history
    assert cloud.population_overlaps.shape == (31, 2, 6, 6)
    assert np.abs(cloud.population_overlaps - thy.population_overlaps).max() < 1e-12
    np.testing.assert_allclose(cloud.population_weights, mix.weights, rtol=1e-13)


def test_mixture_runs_batch_and_continue(linear2):
    rnn, task = linear2
    mixes = [random_mixture(rnn, 2, seed=s) for s in (1, 2)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *mixes)
    engine = of.OverlapEngine()
    batch = of.train_batch(engine, rnn, task, stacked, 0.1, 20)
    assert batch.history.population_overlaps.shape == (2, 21, 2, 6, 6)
    for k, mix in enumerate(mixes):
        one = of.train(engine, rnn, task, mix, 0.1, 10)
        rest = of.train(engine, rnn, task, None, 0.1, 10, state=one.state, epoch_offset=10)
        np.testing.assert_allclose(
            rest.history.population_overlaps[-1], batch.history.population_overlaps[k, -1], atol=1e-12
        )


@pytest.mark.parametrize(
    "engine, message",
    [
        (of.OverlapEngine("momentum"), "a Mixture runs the mixture closure with step 'exact' or 'euler' and SGD"),
        (of.OverlapEngine(step="visible-only"), "got step = 'visible-only'"),
        (of.FlowEngine(), "the gradient flow starts from overlaps S"),
    ],
)
def test_what_the_mixture_closure_does_not_define_is_refused(linear2, engine, message):
    rnn, task = linear2
    with pytest.raises(ValueError, match=message):
        of.train(engine, rnn, task, random_mixture(rnn, 2), 0.1, 2)


def test_populations_for_the_overlap_engine_are_refused(linear2):
    rnn, task = linear2
    with pytest.raises(ValueError, match="populations: the overlaps engine takes its populations from its start"):
        of.train(of.OverlapEngine(), rnn, task, np.eye(6), 0.1, 2, populations=np.zeros(6, int))


def test_meanfield_loss_takes_a_mixture(linear2):
    rnn, task = linear2
    mix = random_mixture(rnn, 3)
    batch = task.sample(jax.random.key(0), rnn.dt)
    assert float(meanfield_loss(rnn, task, mix, batch)) == pytest.approx(
        float(meanfield_loss(rnn, task, mix.overlaps, batch)), rel=1e-13
    )


def test_the_quadrature_check_reads_each_components_own_spread():
    """A narrow majority and a wide minority: the total S hides the wide component's spread, which
    is what the Gauss-Hermite moments of tanh must resolve."""
    rnn = of.LowRankRNN(1, 1, 1, "tanh", 0.05)
    task = of.tasks.DecisionMaking(batch_size=4, fixation=0.1, stimulus=0.5, delay=0.1, response=0.5)
    mix = Mixture.create([0.99, 0.01], np.zeros((2, 4)), np.stack([np.eye(4), 400 * np.eye(4)]), rnn)
    with pytest.warns(RuntimeWarning, match="Gauss-Hermite gain of phi='tanh'"):
        history = of.train(of.OverlapEngine(), rnn, task, mix, 0.01, 1).history
    S_delta = of.train(of.OverlapEngine(), rnn, task, mix.overlaps, 0.01, 1).history.attrs["max_delta"]
    assert history.attrs["max_delta"] > 50 * S_delta
