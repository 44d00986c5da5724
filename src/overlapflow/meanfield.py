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

Populations (a :class:`~overlapflow.Mixture` in place of S): rows theta ~ sum_c w_c N(mu_c, C_c).
Each component's currents are Gaussian, h ~ N(mu_c[B] . k, k^T C_c[B, B] k), and for a vector a of
the rows, Stein's lemma with a mean gives

    E_c[a phi(h)] = mu_c[a] E_c[phi(h)] + C_c[a, B] k E_c[phi'(h)]

(:meth:`~overlapflow.nonlinearity.Nonlinearity.moments`), so the population averages are the
w_c-weighted sums of these: r_t = sum_c w_c E_c[v phi(h_t)], y_t = sum_c w_c E_c[z phi(h)]. K = 1,
mu = 0 is the closure above. A linear network reads only the total S = sum_c w_c S_c (exact).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from .mixture import Mixture
from .model import LowRankRNN
from .precision import float64

if TYPE_CHECKING:  # annotations only: the teacher task imports this module
    from .tasks import AbstractTask, Batch

#: Latent sizes d = n_in + R up to which a nonlinear step is written entry by entry.
ENTRYWISE_MAX = 6


def _blocks(rnn: LowRankRNN, S: jax.Array):
    sl = rnn.slices
    return S[sl["V"], sl["B"]], S[sl["Z"], sl["B"]], S[sl["B"], sl["B"]]


@float64
def latent_trajectory(rnn: LowRankRNN, S: jax.Array | Mixture, inputs: jax.Array) -> jax.Array:
    """Latent states k_{t+1} (B, T, n_in + R) after each step, from S (P, P) (or a Mixture) and
    inputs (B, T, n_in)."""
    if isinstance(S, Mixture):
        return _linear_latents(rnn, S.overlaps, inputs) if rnn.is_linear else _mixture_scan(rnn, S, inputs, False)
    if rnn.is_linear:
        return _linear_latents(rnn, S, inputs)
    return _nonlinear_scan(rnn, S, inputs, outputs=False)


@float64
def meanfield_forward(rnn: LowRankRNN, S: jax.Array | Mixture, inputs: jax.Array) -> jax.Array:
    """Outputs y (B, T, n_out) of the reduced network with overlaps S (P, P) or populations (a Mixture)."""
    if isinstance(S, Mixture):
        if not rnn.is_linear:
            return _mixture_scan(rnn, S, inputs)
        S = S.overlaps
    if not rnn.is_linear:
        return _nonlinear_scan(rnn, S, inputs, outputs=True)
    k = _linear_latents(rnn, S, inputs)
    if rnn.readout == "before":  # the states k_t before each step: k_0 = 0, k_1, ..., k_{T-1}
        k = jnp.concatenate([jnp.zeros_like(k[:, :1]), k[:, :-1]], axis=1)
    _, S_ZB, _ = _blocks(rnn, S)
    return k @ S_ZB.T


@float64
def current_variance(k: jax.Array, S_BB: jax.Array) -> jax.Array:
    """Delta = k^T S[B, B] k, the variance of the currents h_i, for latents k (..., n_in + R)."""
    return jnp.einsum("...i,ij,...j->...", k, S_BB, k)


@float64
@functools.partial(jax.jit, static_argnames=("rnn", "task"))
def meanfield_loss(rnn: LowRankRNN, task: AbstractTask, S: jax.Array | Mixture, batch: Batch) -> jax.Array:
    """l(S) (or l(mixture)): the task's loss of the reduced network's outputs on one batch."""
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


def _nonlinear_scan(rnn, S, inputs, outputs: bool):
    """Latents k_{t+1} (B, T, n_in + R) of the nonlinear reduced network, or (``outputs``) its
    outputs y (B, T, n_out), read inside the time loop so that no latent trajectory is stored.

    The steps are tiny (B x d), so their cost is in memory traffic, not arithmetic. For d <=
    ``ENTRYWISE_MAX`` a step is written entry by entry (k as d arrays of shape (B,): sums of
    products that XLA fuses into one loop, no small matrix products), and every step is
    rematerialised in the backward pass (``jax.checkpoint``: only k_t is stored per step). The
    gradient of a rank-1 erf batch of 128 x 400 steps is 2.4x (readout "before") to 3.1x ("after")
    faster than with matrix products and stored residuals (docs/notes.md).
    """
    S_VB, S_ZB, S_BB = _blocks(rnn, S)
    alpha, n_in, gain, d = rnn.alpha, rnn.n_in, rnn.nonlinearity.gain, rnn.n_left
    before = rnn.readout == "before"
    drive = jnp.swapaxes(_input_drive(rnn, inputs.astype(S.dtype)), 0, 1)  # (T, B, d)

    if d <= ENTRYWISE_MAX:  # k: d arrays (B,)
        variance = lambda k: sum(S_BB[i, j] * k[i] * k[j] for i in range(d) for j in range(d))
        project = lambda rows, k, g: jnp.stack([g * sum(row[j] * k[j] for j in range(d)) for row in rows], -1)

        def advance(k, drive_t, g):
            rates = project(S_VB, k, g)
            return tuple(
                (1.0 - alpha) * k[i] + drive_t[:, i] + (alpha * rates[:, i - n_in] if i >= n_in else 0.0)
                for i in range(d)
            )

        stacked = lambda k: jnp.stack(k, axis=-1)
        k0 = tuple(jnp.zeros(inputs.shape[0], dtype=S.dtype) for _ in range(d))
    else:  # k: (B, d)
        variance = lambda k: current_variance(k, S_BB)
        project = lambda rows, k, g: (k @ rows.T) * g[:, None]
        advance = lambda k, drive_t, g: (
            (1.0 - alpha) * k + drive_t + alpha * jnp.pad(project(S_VB, k, g), ((0, 0), (n_in, 0)))
        )
        stacked = lambda k: k
        k0 = jnp.zeros((inputs.shape[0], d), dtype=S.dtype)

    def step(k, drive_t):  # the output is read from the state k_t a step starts from
        g = gain(variance(k))
        new = advance(k, drive_t, g)
        return new, (project(S_ZB, k, g) if outputs else stacked(new))

    after = outputs and not before
    if after:  # y_t reads k_{t+1}: one more step, and the first output (of k_0) dropped
        drive = jnp.concatenate([drive, jnp.zeros_like(drive[:1])])
    _, out = jax.lax.scan(jax.checkpoint(step), k0, drive)
    return jnp.swapaxes(out[1:] if after else out, 0, 1)


def _mixture_scan(rnn, mixture: Mixture, inputs, outputs: bool = True):
    """Outputs y (B, T, n_out) of the nonlinear reduced network with populations (module docstring),
    or (not ``outputs``) its latents k_{t+1} (B, T, n_in + R).

    Per step and component c: m_c = mu_c[B] . k, Delta_c = k^T C_c[B, B] k (B, K), the moments
    (E phi, E phi') there, and the averages sum_c w_c (mu_c[a] E phi + C_c[a, B] k E phi') for a in
    V (the recurrent drive) and Z (the output). Rematerialised per step as the closure's scan.
    """
    sl, alpha, n_in = rnn.slices, rnn.alpha, rnn.n_in
    w, mu, C = mixture.weights, mixture.means, mixture.covariances
    mu_B, C_BB = mu[:, sl["B"]], C[:, sl["B"], sl["B"]]
    mu_A, C_AB = mu[:, sl["A"]], C[:, sl["A"], sl["B"]]  # A = [V | Z]: (K, R + n_out), (K, R + n_out, d)
    R = rnn.rank
    drive = jnp.swapaxes(_input_drive(rnn, inputs.astype(mu.dtype)), 0, 1)  # (T, B, d)
    moments = rnn.nonlinearity.moments

    def averages(k):  # (B, R + n_out): sum_c w_c E_c[a phi(h)] for a in [V | Z]
        mean = k @ mu_B.T  # (B, K)
        variance = jnp.einsum("bi,cij,bj->bc", k, C_BB, k)
        value, slope = moments(mean, variance)
        return (value * w) @ mu_A + jnp.einsum("bc,cai,bi->ba", slope * w, C_AB, k)

    def step(k, drive_t):  # the output is read from the state k_t a step starts from
        a = averages(k)
        new = (1.0 - alpha) * k + drive_t + alpha * jnp.pad(a[:, :R], ((0, 0), (n_in, 0)))
        return new, (a[:, R:] if outputs else new)

    after = outputs and rnn.readout == "after"
    if after:  # y_t reads k_{t+1}: one more step, and the first output (of k_0) dropped
        drive = jnp.concatenate([drive, jnp.zeros_like(drive[:1])])
    k0 = jnp.zeros((inputs.shape[0], rnn.n_left), dtype=mu.dtype)
    _, out = jax.lax.scan(jax.checkpoint(step), k0, drive)
    return jnp.swapaxes(out[1:] if after else out, 0, 1)
