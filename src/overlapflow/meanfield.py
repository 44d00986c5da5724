r"""The reduced (mean-field) activity: the network's forward pass computed from overlaps S alone.

With h_0 = 0, h_t = B k_t stays in the span of B = [M | U]; k = (k_in, k_rec) has n_in + R entries:

    k_in_{t+1}  = k_in_t  + alpha (-k_in_t  + x_t)
    k_rec_{t+1} = k_rec_t + alpha (-k_rec_t + S[V, B] k_t g(Delta_t))
    y_t         = S[Z, B] k_{t+1} g(Delta_{t+1}),       Delta_t = k_t^T S[B, B] k_t

(readout "after"; with readout "before", y_t = S[Z, B] k_t g(Delta_t), k_0 = 0)

with g the Gaussian gain of phi (g = 1 for a linear network: then the reduction is exact at
every N; otherwise it is the large-N Gaussian closure).

A linear network's latent update is one affine map k -> F k + b_t, F = (1 - alpha) I + alpha E
with E = [0; S[V, B]], so the whole trajectory is a prefix composition of affine maps, computed
by ``jax.lax.associative_scan`` in O(log T) depth instead of T sequential steps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .model import LowRankRNN
from .tasks import AbstractTask, Batch


def _blocks(rnn: LowRankRNN, S: jax.Array):
    sl = rnn.slices
    return S[sl["V"], sl["B"]], S[sl["Z"], sl["B"]], S[sl["B"], sl["B"]]


def latent_trajectory(rnn: LowRankRNN, S: jax.Array, inputs: jax.Array) -> jax.Array:
    """Latent states k_{t+1} (B, T, n_in + R) after each step, from S (P, P) and inputs (B, T, n_in)."""
    if rnn.is_linear:
        return _linear_latents(rnn, S, inputs)
    return _nonlinear_latents(rnn, S, inputs)


def meanfield_forward(rnn: LowRankRNN, S: jax.Array, inputs: jax.Array) -> jax.Array:
    """Outputs y (B, T, n_out) of the reduced network with overlaps S (P, P)."""
    k = latent_trajectory(rnn, S, inputs)
    if rnn.readout == "before":  # the states k_t before each step: k_0 = 0, k_1, ..., k_{T-1}
        k = jnp.concatenate([jnp.zeros_like(k[:, :1]), k[:, :-1]], axis=1)
    _, S_ZB, S_BB = _blocks(rnn, S)
    y = k @ S_ZB.T
    if rnn.is_linear:
        return y
    return y * rnn.nonlinearity.gain(current_variance(k, S_BB))[..., None]


def current_variance(k: jax.Array, S_BB: jax.Array) -> jax.Array:
    """Delta = k^T S[B, B] k, the variance of the currents h_i, for latents k (..., n_in + R)."""
    return jnp.einsum("...i,ij,...j->...", k, S_BB, k)


@functools.partial(jax.jit, static_argnames=("rnn", "task"))
def meanfield_loss(rnn: LowRankRNN, task: AbstractTask, S: jax.Array, batch: Batch) -> jax.Array:
    """l(S): the task's loss of the reduced network's outputs on one batch."""
    return task.loss(meanfield_forward(rnn, S, batch.inputs), batch, rnn.dt)


def _input_drive(rnn: LowRankRNN, inputs: jax.Array) -> jax.Array:
    """alpha [x_t, 0] of shape (B, T, n_in + R): the input part of each latent update."""
    pad = jnp.zeros(inputs.shape[:2] + (rnn.rank,), dtype=inputs.dtype)
    return rnn.alpha * jnp.concatenate([inputs, pad], axis=-1)


def _linear_latents(rnn, S, inputs):
    S_VB, _, _ = _blocks(rnn, S)
    d, alpha = rnn.n_left, rnn.alpha
    E = jnp.zeros((d, d), dtype=S.dtype).at[rnn.n_in :, :].set(S_VB)
    F = (1.0 - alpha) * jnp.eye(d, dtype=S.dtype) + alpha * E
    b = jnp.swapaxes(_input_drive(rnn, inputs.astype(S.dtype)), 0, 1)  # (T, B, d)
    Fs = jnp.broadcast_to(F, (b.shape[0], d, d))

    def compose(earlier, later):
        F1, b1 = earlier
        F2, b2 = later
        return F2 @ F1, jnp.einsum("tij,tbj->tbi", F2, b1) + b2

    _, k = jax.lax.associative_scan(compose, (Fs, b))
    return jnp.swapaxes(k, 0, 1)


def _nonlinear_latents(rnn, S, inputs, unroll: int = 2):
    """Latents k (B, T, n_in + R) of the nonlinear reduced network. The steps are tiny (B x d), and
    the gradient through an unroll of 8 was 5x slower on CPU than through 2 (docs/notes.md)."""
    S_VB, _, S_BB = _blocks(rnn, S)
    alpha, n_in, gain = rnn.alpha, rnn.n_in, rnn.nonlinearity.gain
    drive = jnp.swapaxes(_input_drive(rnn, inputs.astype(S.dtype)), 0, 1)

    def step(k, drive_t):
        rates = (k @ S_VB.T) * gain(current_variance(k, S_BB))[:, None]
        k = (1.0 - alpha) * k + drive_t + alpha * jnp.pad(rates, ((0, 0), (n_in, 0)))
        return k, k

    k0 = jnp.zeros((inputs.shape[0], rnn.n_left), dtype=S.dtype)
    _, k = jax.lax.scan(step, k0, drive, unroll=unroll)
    return jnp.swapaxes(k, 0, 1)
