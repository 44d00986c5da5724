r"""The full N-neuron network: forward pass and loss as functions of theta (N, P).

    h_0     = 0
    h_{t+1} = h_t + alpha (-h_t + U (V^T phi(h_t)) / N + M x_t),   alpha = dt / tau
    y_t     = Z^T phi(h_{t+1}) / N     (rnn.readout "after"; "before": Z^T phi(h_t) / N)

No N x N matrix is ever formed, and neither is the (B, N) state carried through time: h_t stays in
the span of the left vectors, h_t = M k_in_t + U k_rec_t, so the scan carries the latents
k = (k_in, k_rec) (B, n_in + R),

    k_in_{t+1}  = (1 - alpha) k_in_t  + alpha x_t
    k_rec_{t+1} = (1 - alpha) k_rec_t + alpha V^T phi(h_t) / N,

the same recursion as :mod:`overlapflow.meanfield` with population averages in place of Gaussian
expectations. A step costs O(B N (n_in + R + R + n_out)) and is rematerialised in the backward pass
(``jax.checkpoint``): only k_t (B, n_in + R) is stored per step, never h_t or phi(h_t) (B, N). At
N = 16000 (erf, batch 10 x 800 steps) the loss gradient is 2.5x faster than carrying h (docs/notes.md).

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
    unroll: int = 1,
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
    unroll: int = 1,
) -> Float[Array, "B T n_out"]:
    """Outputs y (B, T, n_out) of the full network for inputs (B, T, n_in), in theta's dtype (weights
    as in :func:`network_activity`)."""
    return _run(rnn, theta, inputs, weights, unroll, keep_states=False)


def _run(rnn: LowRankRNN, theta, inputs, weights, unroll, keep_states):
    sl, phi, alpha = rnn.slices, rnn.nonlinearity.phi, rnn.alpha
    N = theta.shape[0]
    M, U, V, Z = (theta[:, sl[k]] for k in "MUVZ")
    left = jnp.concatenate([M, U], axis=1)  # (N, d): h = k @ left^T, k = (k_in, k_rec)
    averaged = jnp.concatenate([V, Z], axis=1) * (1.0 / N if weights is None else weights[:, None])
    R, d = V.shape[1], left.shape[1]
    inputs = inputs.astype(theta.dtype)

    def step(k, x_t):  # the output read from h_t, the state the step starts from
        averages = phi(k @ left.T) @ averaged  # (B, R + n_out): V^T phi(h_t) / N, Z^T phi(h_t) / N
        k = (1.0 - alpha) * k + alpha * jnp.concatenate([x_t, averages[:, :R]], axis=1)
        return k, (k if keep_states else averages[:, R:])

    xs = jnp.swapaxes(inputs, 0, 1)  # (T, B, n_in)
    after = rnn.readout == "after"
    if after and not keep_states:  # y_t reads h_{t+1}: one more step, the output of h_0 dropped
        xs = jnp.concatenate([xs, jnp.zeros_like(xs[:1])])
    k0 = jnp.zeros((inputs.shape[0], d), dtype=theta.dtype)
    _, out = jax.lax.scan(jax.checkpoint(step), k0, xs, unroll=unroll)
    if keep_states:
        k = jnp.swapaxes(out, 0, 1)  # (B, T, d): k_{t+1}
        h = k @ left.T
        rates = phi(h) if after else phi(jnp.concatenate([jnp.zeros_like(h[:, :1]), h[:, :-1]], axis=1))
        return h, rates @ averaged[:, R:]
    return jnp.swapaxes(out[1:] if after else out, 0, 1)


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
