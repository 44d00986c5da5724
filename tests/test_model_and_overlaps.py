"""Architecture, overlaps, visible/invisible split, parameter sampling and input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_inputs_task, random_overlaps

import overlapflow as of


def test_vector_names_and_sizes():
    rnn = of.LowRankRNN(rank=2, n_in=3, n_out=2)
    assert rnn.n_vectors == 3 + 4 + 2
    assert rnn.vector_names == ("m1", "m2", "m3", "u1", "u2", "v1", "v2", "z1", "z2")
    assert of.LowRankRNN(rank=1).vector_names == ("m", "u", "v", "z")


def test_init_columns_have_squared_norm_N():
    rnn = of.LowRankRNN(rank=2)
    theta = rnn.init(jax.random.key(3), N=300, dtype=jnp.float64)
    assert theta.shape == (300, 6)
    np.testing.assert_allclose(np.sum(np.asarray(theta) ** 2, axis=0), 300.0, rtol=1e-12)
    assert rnn.init(jax.random.key(3), N=300).dtype == jnp.float32


@pytest.mark.parametrize(
    "rnn, n_visible, n_invisible",
    [
        (of.LowRankRNN(rank=1), 4, 6),
        (of.LowRankRNN(rank=1, phi="erf"), 7, 3),
        (of.LowRankRNN(rank=2), 9, 12),
        (of.LowRankRNN(rank=2, phi="tanh"), 15, 6),
    ],
)
def test_visible_invisible_counts(rnn, n_visible, n_invisible):
    assert len(of.visible_names(rnn)) == n_visible
    assert len(of.invisible_names(rnn)) == n_invisible


def test_paper_labels_rank1():
    assert of.visible_names(of.LowRankRNN(rank=1)) == ["zm", "zu", "vm", "vu"]
    assert of.invisible_names(of.LowRankRNN(rank=1, phi="erf")) == ["zv", "zz", "vv"]


@pytest.mark.parametrize("rnn", [of.LowRankRNN(rank=1), of.LowRankRNN(rank=2, n_in=2, n_out=3, phi="erf")])
def test_gradient_is_supported_on_visible_entries(rnn):
    """Gamma from autodiff vanishes outside the structural visible mask (derived, not assumed)."""
    S = random_overlaps(rnn, seed=1).matrix
    _, Gamma = of.symmetric_gradient(rnn, random_inputs_task(rnn), S, random_inputs_task(rnn).sample(None, rnn.dt))
    Gamma = np.asarray(Gamma)
    mask = of.visible_mask(rnn)
    assert np.max(np.abs(Gamma[~mask])) == 0.0
    assert np.min(np.abs(Gamma[mask])) > 0.0  # every visible overlap matters for this task


def test_overlaps_access():
    rnn = of.LowRankRNN(rank=2)
    S = random_overlaps(rnn)
    M = np.asarray(S.matrix)
    assert float(S["z", "m"]) == M[5, 0]
    assert float(S["zm"]) == float(S["mz"]) == float(S["m", "z"])
    assert float(S["u2", "v1"]) == M[2, 3]
    with pytest.raises(KeyError, match="vector names"):
        S["q", "m"]


def test_sample_params_has_exact_gram():
    rnn = of.LowRankRNN(rank=2, n_in=2)
    S = random_overlaps(rnn, seed=4).matrix
    theta = of.sample_params(rnn, S, 500, jax.random.key(9))
    assert theta.shape == (500, rnn.n_vectors)
    np.testing.assert_allclose(np.asarray(theta.T @ theta / 500), np.asarray(S), atol=1e-12)


def test_sample_params_rejects_bad_matrices(rank1):
    S = np.eye(4)
    S[0, 1] = 0.5
    with pytest.raises(ValueError, match="not symmetric"):
        of.sample_params(rank1, S, 100, jax.random.key(0))
    S = np.eye(4)
    S[0, 1] = S[1, 0] = 2.0
    with pytest.raises(ValueError, match="not positive semi-definite.*smallest eigenvalue -1"):
        of.sample_params(rank1, S, 100, jax.random.key(0))
    with pytest.raises(ValueError, match="N = 3"):
        of.sample_params(rank1, np.eye(4), 3, jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        of.Overlaps.from_matrix(rank1, np.eye(3))


def test_invisible_change_leaves_loss_unchanged():
    """Networks that differ only in invisible overlaps have the same loss (linear: exactly)."""
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2)
    batch = task.sample(None, rnn.dt)
    S = np.asarray(random_overlaps(rnn, seed=2).matrix)
    twin = S.copy()
    for a, b, value in [(1, 1, 2.048), (0, 1, 0.3), (2, 3, -0.2), (3, 3, 1.5)]:  # uu, mu, vz, zz
        twin[a, b] = twin[b, a] = value
    assert np.linalg.eigvalsh(twin)[0] > 0
    losses = [
        float(of.network_loss(rnn, task, of.sample_params(rnn, s, 400, jax.random.key(k)), batch))
        for k, s in enumerate([S, twin])
    ]
    assert abs(losses[0] - losses[1]) <= 1e-12 * abs(losses[0])
    # The nonlinear reduced loss ignores S[A, A] entirely.
    erf = of.LowRankRNN(rank=1, phi="erf")
    twin_erf = S.copy()
    twin_erf[3, 3] = 1.7
    twin_erf[2, 3] = twin_erf[3, 2] = 0.4
    l1, l2 = (float(of.meanfield_loss(erf, task, jnp.asarray(s), batch)) for s in (S, twin_erf))
    assert abs(l1 - l2) <= 1e-14


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rank=0), "rank = 0"),
        (dict(rank=1.5), "rank = 1.5"),
        (dict(phi="sigmoidish"), "phi = 'sigmoidish'"),
        (dict(dt=-0.1), "dt = -0.1"),
        (dict(n_in=0, n_out=0), "n_in = n_out = 0"),
    ],
)
def test_bad_architecture_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        of.LowRankRNN(**kwargs)


def test_bad_training_arguments(rank1):
    task = of.tasks.ExponentialFilter(c=0.2)
    S0 = random_overlaps(rank1)
    with pytest.raises(ValueError, match="lr = -1"):
        of.train(of.OverlapEngine(), rank1, task, S0, -1, 3)
    with pytest.raises(ValueError, match="method = 'rk4'"):
        of.train(of.engines.overlap_engine("rk4"), rank1, task, S0, 1e-3, 3)
    with pytest.raises(ValueError, match="epochs = 2.5"):
        of.train(of.OverlapEngine(), rank1, task, S0, 1e-3, 2.5)
    with pytest.raises(ValueError, match="n_in = 2"):
        of.train(of.OverlapEngine(), of.LowRankRNN(rank=1, n_in=2), task, np.eye(5), 1e-3, 3)
    with pytest.raises(ValueError, match="theta0: shape"):
        of.train(of.NetworkEngine(), rank1, task, np.zeros((10, 3)), 1e-3, 3)
    with pytest.raises(ValueError, match="kind = 'sgdd'"):
        of.train(of.NetworkEngine("sgdd"), rank1, task, rank1.init(jax.random.key(0), 20), 1e-3, 3)


def test_divergence_keeps_last_good_history(rank1):
    task = of.tasks.ExponentialFilter(c=0.2)
    with pytest.raises(of.DivergenceError, match="NaN/Inf at epoch") as info:
        of.train(of.OverlapEngine(), rank1, task, random_overlaps(rank1), 100.0, 50)
    history = info.value.history
    assert 0 < history.sizes["epoch"] < 51
    assert np.all(np.isfinite(history.overlaps.values)) and np.all(np.isfinite(history.loss.values))


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_history_layout_and_netcdf_roundtrip(rank1, tmp_path):
    task = of.tasks.ExponentialFilter(c=0.2, t_max=5.0)
    history = of.train(of.OverlapEngine(), rank1, task, random_overlaps(rank1), 1e-3, 7).history
    assert history.sizes == {"epoch": 8, "row": 4, "col": 4}
    assert list(history.row.values) == ["m", "u", "v", "z"]
    assert history.attrs["engine"] == "overlaps" and history.attrs["method"] == "exact"
    assert history.attrs["lr"] == 1e-3 and history.attrs["epochs"] == 7
    history.to_netcdf(tmp_path / "h.nc")
    loaded = of.load_history(tmp_path / "h.nc")
    np.testing.assert_array_equal(loaded.overlaps.values, history.overlaps.values)
    assert loaded.visible.dtype == bool and of.overlap_labels(loaded, "visible") == ["zm", "zu", "vm", "vu"]
    assert of.history.rnn_from_history(loaded) == rank1
    # entry k is the state after k updates and its loss
    S1 = of.exact_step(
        jnp.asarray(history.overlaps.values[0]),
        of.symmetric_gradient(rank1, task, jnp.asarray(history.overlaps.values[0]), task.sample(None, rank1.dt))[1],
        1e-3,
    )
    np.testing.assert_allclose(history.overlaps.values[1], np.asarray(S1), atol=1e-15)
    assert history.loss.values[1] == pytest.approx(
        float(of.meanfield_loss(rank1, task, S1, task.sample(None, 0.05))), rel=1e-13
    )


def test_network_forward_never_builds_an_N_by_N_matrix():
    rnn = of.LowRankRNN(rank=2, phi="tanh")
    N = 777
    theta = rnn.init(jax.random.key(0), N=N)
    task = random_inputs_task(rnn)
    batch = task.sample(None, rnn.dt)
    jaxpr = jax.make_jaxpr(jax.grad(lambda th: of.network_loss(rnn, task, th, batch)))(theta)

    def shapes(jaxpr):
        for eqn in jaxpr.eqns:
            for var in eqn.outvars:
                yield getattr(var.aval, "shape", ())
            for sub in jax.core.subjaxprs(eqn) if hasattr(jax.core, "subjaxprs") else ():
                yield from shapes(sub)
            for param in eqn.params.values():
                inner = getattr(param, "jaxpr", None)
                if inner is not None:
                    yield from shapes(getattr(inner, "jaxpr", inner))

    all_shapes = list(shapes(jaxpr.jaxpr))
    assert any(N in s for s in all_shapes)  # the walk does see N-sized arrays
    assert not any(list(s).count(N) >= 2 for s in all_shapes)
