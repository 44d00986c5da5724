"""The Gram map (paper fig 11): which visible gradients move which overlaps, and by how much."""

import jax
import numpy as np
import pytest
from conftest import random_S

import overlapflow as of
from overlapflow.gram_map import gradient_vector, gram_map, plot_gram_map
from overlapflow.overlaps import canonical_pairs

LINEAR = of.LowRankRNN(rank=1)
ERF = of.LowRankRNN(rank=1, phi="erf")
RANK2 = of.LowRankRNN(rank=2)


def test_rank1_linear_zm_row_matches_the_theory_formula():
    """d sigma_zm = -eta [(mm + zz) d_zm + mu d_zu + zv d_vm] (theory section 5)."""
    pattern = gram_map(LINEAR)
    row = pattern.sel(overlap="zm")
    assert list(row.gradient.values[row.values]) == ["zm", "zu", "vm"]
    assert list(row.coefficient.values) == ["mm + zz", "um", "zv", ""]
    S = random_S(LINEAR, seed=1, N=9)  # a few strongly correlated vectors: no entry near 0 or 1
    s = of.Overlaps(S, LINEAR.vector_names)
    numeric = gram_map(LINEAR, S).sel(overlap="zm")
    expected = [float(s["mm"] + s["zz"]), float(s["mu"]), float(s["zv"]), 0.0]
    assert np.allclose(numeric.values, expected, rtol=1e-12, atol=1e-12)
    assert numeric.values[-1] == 0.0


@pytest.mark.parametrize(
    "rnn, task",
    [
        (LINEAR, of.tasks.ExponentialFilter(c=0.2)),
        (ERF, of.tasks.ExponentialFilter(c=0.2)),
        (RANK2, of.tasks.DampedOscillator()),
    ],
    ids=["linear-rank1", "erf-rank1", "linear-rank2"],
)
def test_numeric_map_reproduces_the_flow_velocity(rnn, task):
    """-eta G d equals -2 eta (S Gamma + Gamma S) on every overlap (measured: 4e-16 of 3.6 at rank 1)."""
    S = random_S(rnn, seed=2, N=50)
    _, Gamma = of.symmetric_gradient(rnn, task, S, task.sample(jax.random.key(0), rnn.dt))
    velocity = np.asarray(of.flow_velocity(S, Gamma, 1.0))
    expected = np.array([velocity[i, j] for i, j in canonical_pairs(rnn.n_vectors)])
    predicted = -gram_map(rnn, S).values @ gradient_vector(rnn, Gamma)
    assert np.max(np.abs(predicted - expected)) <= 1e-12 * max(1.0, np.max(np.abs(expected)))
    assert np.max(np.abs(expected)) > 1e-3


@pytest.mark.parametrize(
    "rnn, shape",
    [(LINEAR, (10, 4)), (ERF, (10, 7)), (RANK2, (21, 9))],
    ids=["linear-rank1", "erf-rank1", "linear-rank2"],
)
def test_shapes_labels_and_invisible_rows(rnn, shape):
    pattern = gram_map(rnn)
    assert pattern.shape == shape and pattern.dims == ("overlap", "gradient") and pattern.dtype == bool
    assert list(pattern.gradient.values) == of.visible_names(rnn)
    assert len(set(pattern.overlap.values)) == shape[0]
    # learning moves invisible overlaps: every invisible row has a non-zero entry, also at a random S
    invisible = of.invisible_names(rnn)
    assert pattern.sel(overlap=invisible).any(dim="gradient").all()
    numeric = gram_map(rnn, random_S(rnn, seed=3, N=30))
    assert np.all(np.max(np.abs(numeric.sel(overlap=invisible).values), axis=1) > 0)
    # the structural pattern is exactly where a generic S gives a non-zero entry
    assert np.array_equal(numeric.values != 0, pattern.values)


def test_nonlinear_map_adds_the_S_BB_gradients():
    linear, erf = gram_map(LINEAR), gram_map(ERF)
    assert np.array_equal(erf.sel(gradient=linear.gradient.values).values, linear.values)
    assert list(erf.gradient.values[4:]) == ["um", "uu", "mm"]
    assert str(erf.coefficient.sel(overlap="uu", gradient="uu").values) == "4 uu"
    assert not erf.sel(overlap=["zv", "vv", "zz"], gradient=["um", "uu", "mm"]).values.any()  # S[A, A] rows


def test_plot_gram_map(tmp_path):
    fig = plot_gram_map(LINEAR, ERF, path=tmp_path / "gram.png")
    assert (tmp_path / "gram.png").stat().st_size > 10_000
    assert len(fig.axes) == 2
    assert [len(ax.get_xticks()) for ax in fig.axes] == [10, 10]
    with pytest.raises(ValueError, match="unknown figure format"):
        plot_gram_map(LINEAR, ERF, path=tmp_path / "gram.xyz")
    with pytest.raises(TypeError, match="rnn_nonlinear"):
        plot_gram_map(LINEAR, "erf")


def test_errors():
    with pytest.raises(ValueError, match=r"S: shape \(3, 3\)"):
        gram_map(LINEAR, np.eye(3))
    with pytest.raises(ValueError, match="not positive semi-definite"):
        gram_map(LINEAR, -np.eye(4))
    with pytest.raises(ValueError, match=r"Gamma: shape"):
        gradient_vector(LINEAR, np.eye(3))
