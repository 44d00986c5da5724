r"""The full N-neuron network: forward pass and loss as functions of theta (N, P).

    h_0     = 0
    h_{t+1} = h_t + alpha (-h_t + U (V^T phi(h_t)) / N + M x_t),   alpha = dt / tau
    y_t     = Z^T phi(h_{t+1}) / N

The recurrent product is taken as U (V^T phi(h)) / N: O(B N R) per step. No N x N matrix is
ever formed.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .model import LowRankRNN
from .tasks import AbstractTask, Batch


def network_activity(rnn: LowRankRNN, theta: jax.Array, inputs: jax.Array, unroll: int = 8):
    """Hidden states and outputs of the full network.

    Args:
        theta: (N, P) connectivity in the order [M | U | V | Z].
        inputs: (B, T, n_in).

    Returns:
        h: (B, T, N), the state h_{t+1} after each step; y: (B, T, n_out).
    """
    return _run(rnn, theta, inputs, unroll, keep_states=True)


def network_forward(rnn: LowRankRNN, theta: jax.Array, inputs: jax.Array, unroll: int = 8) -> jax.Array:
    """Outputs y (B, T, n_out) of the full network for inputs (B, T, n_in)."""
    return _run(rnn, theta, inputs, unroll, keep_states=False)


def _run(rnn: LowRankRNN, theta, inputs, unroll, keep_states):
    sl, phi, alpha = rnn.slices, rnn.nonlinearity.phi, rnn.alpha
    N = theta.shape[0]
    M, U, V, Z = (theta[:, sl[k]] for k in "MUVZ")
    inputs = inputs.astype(theta.dtype)

    def step(h, x_t):
        rates = phi(h)
        h = h + alpha * (-h + ((rates @ V) / N) @ U.T + x_t @ M.T)
        y = (phi(h) @ Z) / N
        return h, ((h, y) if keep_states else y)

    h0 = jnp.zeros((inputs.shape[0], N), dtype=theta.dtype)
    _, out = jax.lax.scan(step, h0, jnp.swapaxes(inputs, 0, 1), unroll=unroll)
    if keep_states:
        h, y = out
        return jnp.swapaxes(h, 0, 1), jnp.swapaxes(y, 0, 1)
    return jnp.swapaxes(out, 0, 1)


@functools.partial(jax.jit, static_argnames=("rnn", "task"))
def network_loss(rnn: LowRankRNN, task: AbstractTask, theta: jax.Array, batch: Batch) -> jax.Array:
    """L(theta): the task's loss of the full network's outputs on one batch."""
    return task.loss(network_forward(rnn, theta, batch.inputs), batch, rnn.dt)
