"""The gauge U -> U G, V -> V G^{-T}: its action on overlaps, function and gauge coordinates."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from conftest import random_S, random_theta

import overlapflow as of
from overlapflow import gauge

ARCHS = [
    (rank, n_in, n_out, phi)
    for rank, n_in, n_out, phi in itertools.product((1, 2), (1, 2), (1, 2), ("linear", "erf", "tanh"))
]


def arch_params():
    """All 24 architectures; the default suite runs the 12 with rank + n_in + n_out odd (every phi,
    rank, input and output count still among them), the slow job the other 12."""
    return [
        arch if sum(arch[:3]) % 2 else pytest.param(arch, marks=pytest.mark.slow, id=arch_id(arch)) for arch in ARCHS
    ]


def arch_id(arch):
    return "R{}-in{}-out{}-{}".format(*arch)


def random_G(R, seed=0):
    rng = np.random.default_rng(seed)
    return np.eye(R) + 0.5 * rng.normal(size=(R, R))


def n_visible(rnn):
    return len(of.visible_names(rnn))


def output_jacobian_rank(rnn, S, trials=3, T=40, seed=0):
    """Numerical rank of d outputs / d visible overlaps (meanfield_forward on random input trials)."""
    rng = np.random.default_rng(seed)
    inputs = jnp.asarray(rng.normal(size=(trials, T, rnn.n_in)))
    pairs = of.overlaps.visible_pairs(rnn)
    rows, cols = (np.array(ix) for ix in zip(*pairs, strict=True))
    S = jnp.asarray(S)

    def outputs(x):
        return of.meanfield_forward(rnn, S.at[rows, cols].set(x).at[cols, rows].set(x), inputs).ravel()

    jac = np.asarray(jax.jit(jax.jacfwd(outputs))(S[rows, cols]))
    sv = np.linalg.svd(jac, compute_uv=False)
    return int(np.sum(sv > 1e-9 * sv[0])), sv


@pytest.mark.parametrize("arch", arch_params(), ids=arch_id)
def test_transform_is_the_gauge_of_an_explicit_network_and_keeps_the_outputs(arch):
    rank, n_in, n_out, phi = arch
    rnn = of.LowRankRNN(rank, n_in, n_out, phi, dt=0.2)
    S, theta = random_S(rnn), np.asarray(random_theta(rnn))
    G = random_G(rank)
    sl = rnn.slices
    moved = theta.copy()
    moved[:, sl["U"]] = theta[:, sl["U"]] @ G
    moved[:, sl["V"]] = theta[:, sl["V"]] @ np.linalg.inv(G).T
    S2 = np.asarray(gauge.transform(rnn, S, G))
    np.testing.assert_allclose(S2, moved.T @ moved / theta.shape[0], rtol=0, atol=1e-12)
    inputs = jnp.asarray(np.random.default_rng(1).normal(size=(2, 30, n_in)))
    forward = jax.jit(of.meanfield_forward, static_argnums=0)
    y1, y2 = (np.asarray(forward(rnn, jnp.asarray(s), inputs)) for s in (S, S2))
    np.testing.assert_allclose(y2, y1, rtol=0, atol=1e-12 * max(1.0, np.abs(y1).max()))


@pytest.mark.parametrize("arch", arch_params(), ids=arch_id)
def test_function_coordinates_are_invariant_and_count_the_outputs_rank(arch):
    rank, n_in, n_out, phi = arch
    rnn = of.LowRankRNN(rank, n_in, n_out, phi, dt=0.2)
    S = random_S(rnn, seed=2)
    values, labels = gauge.function_coordinates(rnn, S)
    F = n_visible(rnn) - rank**2
    assert values.shape == (F,) and len(labels) == F == len(set(labels))
    for seed in range(3):
        moved, _ = gauge.function_coordinates(rnn, gauge.transform(rnn, S, random_G(rank, seed)))
        np.testing.assert_allclose(moved, values, rtol=1e-10, atol=1e-12)
    rank_out, sv = output_jacobian_rank(rnn, S)
    assert rank_out == F, sv


@pytest.mark.parametrize(
    "arch, expected",
    [((1, "linear"), (3, 4)), ((1, "erf"), (6, 7)), ((2, "linear"), (5, 9)), ((2, "erf"), (11, 15))],
)
def test_the_measured_ranks(arch, expected):
    rnn = of.LowRankRNN(arch[0], phi=arch[1])
    assert (len(gauge.function_coordinates(rnn, random_S(rnn))[1]), n_visible(rnn)) == expected


def test_rank_one_labels():
    erf, linear = of.LowRankRNN(phi="erf"), of.LowRankRNN()
    S = random_S(erf)
    assert set(gauge.function_coordinates(erf, S)[1]) == {"zm", "mm", "vu", "zu vm", "mu vm", "vm uu vm"}
    assert set(gauge.function_coordinates(linear, S)[1]) == {"zm", "vu", "zu vm"}
    assert gauge.gauge_coordinates(erf, S)[1] == ["uu"]
    values, _ = gauge.function_coordinates(erf, S)
    s = of.Overlaps(jnp.asarray(S), erf.vector_names)
    expected = {
        "zm": s["zm"],
        "mm": s["mm"],
        "vu": s["vu"],
        "zu vm": s["zu"] * s["vm"],
        "mu vm": s["mu"] * s["vm"],
        "vm uu vm": s["uu"] * s["vm"] ** 2,
    }
    labels = gauge.function_coordinates(erf, S)[1]
    np.testing.assert_allclose(values, [expected[label] for label in labels], rtol=1e-14)


@pytest.mark.parametrize("arch", [(1, 1, 1, "erf"), (2, 1, 1, "linear"), (2, 2, 1, "tanh"), (2, 1, 2, "erf")])
def test_gauge_coordinates_move_and_complete_the_function_coordinates(arch):
    rank, n_in, n_out, phi = arch
    rnn = of.LowRankRNN(rank, n_in, n_out, phi)
    S = random_S(rnn, seed=3)
    values, labels = gauge.gauge_coordinates(rnn, S)
    assert values.shape == (rank**2,) and set(labels) <= set(of.visible_names(rnn))
    moved, _ = gauge.gauge_coordinates(rnn, gauge.transform(rnn, S, random_G(rank, 4)))
    assert np.abs(moved - values).max() > 1e-3

    def both(S1):
        return jnp.concatenate([gauge.function_coordinates(rnn, S1)[0], gauge.gauge_coordinates(rnn, S1)[0]])

    jac = gauge.visible_jacobian(rnn, both, S)
    assert jac.shape == (n_visible(rnn),) * 2
    assert np.linalg.matrix_rank(jac) == n_visible(rnn)


def test_batches_jit_and_vmap():
    rnn = of.LowRankRNN(rank=2, phi="erf")
    batch = np.stack([np.stack([random_S(rnn, seed=3 * i + j) for j in range(3)]) for i in range(2)])
    values, labels = gauge.function_coordinates(rnn, batch)
    assert values.shape == (2, 3, len(labels))
    single = gauge.function_coordinates(rnn, batch[1, 2])[0]
    np.testing.assert_allclose(values[1, 2], single, rtol=1e-13)
    jitted = jax.jit(lambda S: gauge.function_coordinates(rnn, S)[0])
    np.testing.assert_allclose(jitted(batch), values, rtol=1e-13)
    mapped = jax.vmap(lambda S: gauge.gauge_coordinates(rnn, S)[0])(jnp.asarray(batch[0]))
    np.testing.assert_allclose(mapped, gauge.gauge_coordinates(rnn, batch[0])[0])
    G = random_G(2, 5)
    np.testing.assert_allclose(gauge.transform(rnn, batch, G)[1, 2], gauge.transform(rnn, batch[1, 2], G))


def test_bad_G_and_S():
    rnn = of.LowRankRNN(rank=1)
    S = random_S(rnn)
    with pytest.raises(ValueError, match=r"^G: shape \(2, 3\); must be \(R, R\) = \(1, 1\) for this network$"):
        gauge.transform(rnn, S, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^G: singular \(condition number .*\); the gauge acts by invertible R x R"):
        gauge.transform(of.LowRankRNN(rank=2), random_S(of.LowRankRNN(rank=2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"^G: singular"):
        gauge.transform(rnn, S, [[0.0]])
    with pytest.raises(ValueError, match=r"^G: contains NaN or Inf"):
        gauge.transform(rnn, S, [[np.nan]])
    with pytest.raises(ValueError, match=r"^S: shape \(3, 3\); must be \(\.\.\., P, P\) with P = 4"):
        gauge.function_coordinates(rnn, np.eye(3))


def fake_result(rnn, pairs=4, seed=0, attrs=True):
    """A tiny stand-in for run_ab_to_c's result Dataset."""
    names = list(rnn.vector_names)
    S = np.stack(
        [
            np.stack(
                [np.stack([random_S(rnn, seed=seed + 100 * s + 10 * p + m) for m in range(2)]) for p in range(pairs)]
            )
            for s in range(3)
        ]
    )
    return xr.Dataset(
        {
            "overlaps": (("stage", "pair", "member", "row", "col"), S),
            "visible": (("row", "col"), of.visible_mask(rnn)),
        },
        coords={
            "stage": ["start", "after_AB", "after_C"],
            "pair": np.arange(pairs),
            "member": ["A", "B"],
            "row": names,
            "col": names,
        },
        attrs={f"rnn_{k}": v for k, v in rnn.describe().items()} if attrs else {},
    )


@pytest.mark.parametrize("attrs", [True, False])
def test_overlap_features_accepts_the_four_sets(attrs):
    from overlapflow.phenomena.memory import FEATURE_SETS, overlap_features

    assert FEATURE_SETS == ("visible", "invisible", "function", "gauge")
    rnn = of.LowRankRNN(rank=1, phi="erf")
    result = fake_result(rnn, attrs=attrs)
    sizes = {}
    for which in FEATURE_SETS:
        features, labels = overlap_features(result, "after_C", which)
        assert features.shape == (4, 2, len(labels))
        sizes[which] = len(labels)
    assert sizes == {"visible": 7, "invisible": 3, "function": 6, "gauge": 1}
    np.testing.assert_allclose(
        overlap_features(result, "after_C", "function")[0],
        gauge.function_coordinates(rnn, result.overlaps.sel(stage="after_C").values)[0],
    )
    with pytest.raises(ValueError, match=r"^which = 'all': allowed \['visible', 'invisible', 'function', 'gauge'\]$"):
        overlap_features(result, "after_C", "all")


def test_overlap_features_reads_a_linear_result_without_attrs():
    from overlapflow.phenomena.memory import overlap_features, result_rnn

    rnn = of.LowRankRNN(rank=2, n_in=1, n_out=1)
    result = fake_result(rnn, attrs=False)
    assert result_rnn(result).is_linear and result_rnn(result).rank == 2
    assert overlap_features(result, "start", "function")[1] == gauge.function_coordinates(rnn, np.eye(rnn.n_vectors))[1]
