r"""Learning in overlap space: the symmetrised loss gradient Gamma and the update rules.

Write the loss as l(S) with S = theta^T theta / N. Treating all P^2 entries of S as independent,
G = dl/dS by autodiff and Gamma = (G + G^T) / 2; then

    dL/dtheta = (2 / N) theta Gamma.

Full-network gradient descent with learning rate eta N is therefore theta <- theta (I - 2 eta Gamma),
and in overlap space:

    exact step     S <- (I - 2 eta Gamma) S (I - 2 eta Gamma)        (equal to full GD, linear, any N)
    first order    S <- S - 2 eta (S Gamma + Gamma S)                 (the paper's equations)
    gradient flow  dS/dt = -2 eta (S Gamma + Gamma S)                 (t counts epochs)
    visible only   S_ab <- S_ab - eta dl/dsigma_ab on visible pairs   (naive descent, no Gram map)

Gamma is supported on the visible entries, but S Gamma + Gamma S moves invisible ones too.
Nothing here is specific to an architecture: every rule follows from l(S) by autodiff.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .meanfield import meanfield_loss
from .model import LowRankRNN
from .precision import float64
from .tasks import AbstractTask, Batch

#: The overlap-space methods a config or a History's ``method`` attribute names: the overlap engine's
#: steps (:mod:`overlapflow.engines.steps`) and the gradient flow (:class:`~overlapflow.engines.FlowEngine`).
METHODS = ("exact", "euler", "flow", "visible-only")


@float64
@functools.partial(jax.jit, static_argnames=("rnn", "task"))
def symmetric_gradient(rnn: LowRankRNN, task: AbstractTask, S: jax.Array, batch: Batch):
    """Loss l(S) and Gamma = sym(dl/dS), both from one reverse pass.

    Returns:
        loss: scalar; Gamma: (P, P) symmetric.
    """
    loss, G = jax.value_and_grad(lambda s: meanfield_loss(rnn, task, s, batch))(S)
    return loss, (G + G.T) / 2


@float64
def exact_step(S: jax.Array, Gamma: jax.Array, lr) -> jax.Array:
    """S' = X S X with X = I - 2 eta Gamma: the Gram matrix of theta (I - 2 eta Gamma)."""
    X = jnp.eye(S.shape[0], dtype=S.dtype) - 2 * lr * Gamma
    return X @ S @ X


@float64
def flow_velocity(S: jax.Array, Gamma: jax.Array, lr) -> jax.Array:
    """dS/dt = -2 eta (S Gamma + Gamma S), the gradient-flow velocity (per epoch)."""
    SG = S @ Gamma
    return -2 * lr * (SG + SG.T)


@float64
def euler_step(S: jax.Array, Gamma: jax.Array, lr) -> jax.Array:
    """S' = S - 2 eta (S Gamma + Gamma S): the first-order step (exact step less its O(eta^2) term)."""
    return S + flow_velocity(S, Gamma, lr)


@float64
def visible_only_step(S: jax.Array, Gamma: jax.Array, lr, mask) -> jax.Array:
    """Naive descent on the visible overlaps as free scalars: sigma_ab <- sigma_ab - eta dl/dsigma_ab.

    A symmetric pair a != b stands twice in S, so dl/dsigma_ab = G_ab + G_ba = 2 Gamma_ab; a diagonal
    entry stands once, dl/dsigma_aa = Gamma_aa. Invisible overlaps never move.
    """
    scalar_grad = 2 * Gamma - jnp.diag(jnp.diag(Gamma))
    return S - lr * jnp.where(mask, scalar_grad, 0.0)
