r"""The full N-neuron network: forward pass and loss as functions of theta (N, P).

    h_0     = 0
    h_{t+1} = h_t + alpha (-h_t + U (V^T phi(h_t)) / N + M x_t),   alpha = dt / tau
    y_t     = Z^T phi(h_{t+1}) / N     (rnn.readout "after"; "before": Z^T phi(h_t) / N)

The recurrent product is taken as U (V^T phi(h)) / N: O(B N R) per step. No N x N matrix is
ever formed.

Population averages (1/N) sum_i may be replaced by weighted sums sum_i w_i (``weights``, summing
to 1): rows are then quadrature nodes of a distribution of rows, the infinite-N "particles" of
:mod:`overlapflow.particles`. Equal weights 1/N give the network itself.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .model import LowRankRNN
from .precision import float64
from .tasks import AbstractTask, Batch


@float64
def network_activity(
    rnn: LowRankRNN,
    theta: Float[Array, "N P"],
    inputs: Float[ArrayLike, "B T n_in"],
    weights: Float[Array, " N"] | None = None,
    unroll: int = 8,
) -> tuple[Float[Array, "B T N"], Float[Array, "B T n_out"]]:
    """Hidden states and outputs of the full network, computed in theta's dtype.

    Args:
        theta: (N, P) connectivity in the order [M | U | V | Z].
        inputs: (B, T, n_in).
        weights: (N,) weights of the population averages, or None for 1/N.

    Returns:
        h: (B, T, N), the state h_{t+1} after each step; y: (B, T, n_out).
    """
    return _run(rnn, theta, inputs, weights, unroll, keep_states=True)


@float64
def network_forward(
    rnn: LowRankRNN,
    theta: Float[Array, "N P"],
    inputs: Float[ArrayLike, "B T n_in"],
    weights: Float[Array, " N"] | None = None,
    unroll: int = 8,
) -> Float[Array, "B T n_out"]:
    """Outputs y (B, T, n_out) of the full network for inputs (B, T, n_in), in theta's dtype (weights
    as in :func:`network_activity`)."""
    return _run(rnn, theta, inputs, weights, unroll, keep_states=False)


def _run(rnn: LowRankRNN, theta, inputs, weights, unroll, keep_states):
    sl, phi, alpha = rnn.slices, rnn.nonlinearity.phi, rnn.alpha
    N = theta.shape[0]
    M, U, V, Z = (theta[:, sl[k]] for k in "MUVZ")
    inputs = inputs.astype(theta.dtype)

    def average(rates, vectors):  # (B, N), (N, k) -> (B, k): population average of rates * vectors
        if weights is None:
            return (rates @ vectors) / N
        return (rates * weights) @ vectors

    before = rnn.readout == "before"

    def step(h, x_t):
        rates = phi(h)
        h = h + alpha * (-h + average(rates, V) @ U.T + x_t @ M.T)
        y = average(rates if before else phi(h), Z)
        return h, ((h, y) if keep_states else y)

    h0 = jnp.zeros((inputs.shape[0], N), dtype=theta.dtype)
    _, out = jax.lax.scan(step, h0, jnp.swapaxes(inputs, 0, 1), unroll=unroll)
    if keep_states:
        h, y = out
        return jnp.swapaxes(h, 0, 1), jnp.swapaxes(y, 0, 1)
    return jnp.swapaxes(out, 0, 1)


@float64
@functools.partial(jax.jit, static_argnames=("rnn", "task"))
def network_loss(
    rnn: LowRankRNN,
    task: AbstractTask,
    theta: Float[Array, "N P"],
    batch: Batch,
    weights: Float[Array, " N"] | None = None,
) -> Float[Array, ""]:
    """L(theta): the task's loss of the full network's outputs on one batch (a scalar)."""
    return task.loss(network_forward(rnn, theta, batch.inputs, weights), batch, rnn.dt)


def gram(theta: jax.Array, weights=None) -> jax.Array:
    """Overlaps sum_i w_i theta_i theta_i^T (P, P); theta^T theta / N for weights None."""
    if weights is None:
        return theta.T @ theta / theta.shape[0]
    return theta.T @ (theta * weights[:, None])
