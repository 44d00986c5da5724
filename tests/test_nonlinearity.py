"""Gaussian gains: closed forms, quadrature accuracy, derivatives at Delta = 0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import overlapflow as of
from overlapflow.nonlinearity import ERF, TANH


def test_quadrature_gain_matches_erf_closed_form_on_unit_range():
    deltas = np.linspace(0.0, 1.0, 41)
    error = np.max(np.abs(np.asarray(ERF.quadrature_gain(deltas)) - np.asarray(ERF.gain(deltas))))
    assert error <= 1e-10


def test_quadrature_accuracy_degrades_at_large_delta_and_is_estimated():
    """Documented accuracy (nonlinearity.py): 128 nodes ~1e-7 at Delta = 10, ~1e-3 at 30."""
    exact = float(ERF.gain(10.0))
    assert abs(float(ERF.quadrature_gain(10.0, 128)) - exact) < 1e-6
    assert abs(float(ERF.quadrature_gain(10.0, 40)) - exact) > 1e-3
    user_erf = of.Nonlinearity("erf-by-quadrature", ERF.phi)
    assert user_erf.gain_error(2.0) < 1e-14
    estimate, truth = user_erf.gain_error(30.0), abs(float(user_erf.gain(30.0)) - float(ERF.gain(30.0)))
    assert 0.3 * truth < estimate < 3 * truth
    with pytest.warns(RuntimeWarning, match="raise n_nodes"):
        user_erf.check_gain_accuracy(30.0)


@pytest.mark.parametrize("delta", [0.0, 0.3, 2.0])
def test_gain_derivatives_match_closed_form_including_zero(delta):
    quad = lambda d: ERF.quadrature_gain(d)
    for order in (1, 2):
        f_quad, f_exact = quad, ERF.gain
        for _ in range(order):
            f_quad, f_exact = jax.grad(f_quad), jax.grad(f_exact)
        assert abs(float(f_quad(delta)) - float(f_exact(delta))) < 1e-10


def test_tanh_gain_and_slope_at_zero():
    assert float(TANH.gain(0.0)) == pytest.approx(1.0, abs=1e-14)
    assert float(jax.grad(TANH.gain)(0.0)) == pytest.approx(-1.0, abs=1e-12)  # phi'''(0) / 2
    # Monte-Carlo check of E[tanh'(sqrt(D) xi)] at D = 1.5
    xi = jax.random.normal(jax.random.key(0), (2_000_000,))
    mc = float(jnp.mean(1 - jnp.tanh(jnp.sqrt(1.5) * xi) ** 2))
    assert float(TANH.gain(1.5)) == pytest.approx(mc, abs=2e-3)


def test_user_function_gain_is_differentiable():
    rnn = of.LowRankRNN(rank=1, phi=lambda x: jnp.sin(x))
    assert rnn.nonlinearity.name == "user"
    # E[cos(sqrt(D) xi)] = exp(-D / 2)
    deltas = np.array([0.0, 0.5, 2.0])
    np.testing.assert_allclose(np.asarray(rnn.nonlinearity.gain(deltas)), np.exp(-deltas / 2), atol=1e-13)
    assert float(jax.grad(rnn.nonlinearity.gain)(0.0)) == pytest.approx(-0.5, abs=1e-12)
