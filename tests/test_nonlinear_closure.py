"""Nonlinear (erf) networks: how close the Gaussian closure follows the full network."""

import jax
import numpy as np
import pytest
from conftest import pulse_task, random_S

import overlapflow as of


@pytest.mark.slow
def test_gaussian_closure_vs_full_network_at_two_sizes():
    """Measured (rank 1, erf, lr 0.05, 200 epochs, overlaps moving by 0.8): max deviation
    1.2e-3 at N = 1000 and 1.4e-3 at N = 8000. The closure's error comes from rows becoming
    non-Gaussian during learning, so it does not shrink with N (theory.md section 3)."""
    rnn = of.LowRankRNN(rank=1, phi="erf")
    task = pulse_task()
    S0 = random_S(rnn, seed=1)
    closure = of.train(of.OverlapEngine(), rnn, task, S0, 0.05, 200).history
    deviations = {}
    for N in (1000, 8000):
        theta = of.sample_params(rnn, S0, N, jax.random.key(2))
        network = of.train(of.NetworkEngine(), rnn, task, theta, 0.05, 200).history
        deviations[N] = of.max_overlap_deviation(network, closure)
        first_step = np.max(np.abs(network.overlaps.values[1] - closure.overlaps.values[1]))
        assert first_step < 1e-4  # exact at initialisation up to finite-N fluctuations
    assert max(deviations.values()) <= 3e-3
    assert np.max(np.abs(closure.overlaps.values[-1] - S0)) > 0.5  # learning moved the overlaps
    assert deviations[8000] > 0.5 * deviations[1000]  # no N^(-1/2) shrinkage (that would be 0.35)
