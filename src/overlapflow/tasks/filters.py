"""Filter tasks: the network must reproduce a prescribed impulse response."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .base import AbstractTask, Batch, n_steps
from .fields import setting


@dataclasses.dataclass(frozen=True)
class ExponentialFilter(AbstractTask, kind="exponential_filter"):
    r"""Impulse-response filter: x_0 = 1/dt (else 0), target y*_t = a exp(-c t dt).

    One trial, T = round(t_max / dt) steps, loss dt sum_t (y_t - y*_t)^2. A linear rank-1
    network solves it exactly with sigma_zm = a, sigma_zu sigma_vm = a (1 - c), sigma_vu = 1 - c
    (for tau = 1, in the continuous-time limit).

    Args:
        c: decay rate c* > 0 of the target.
        a: amplitude a* of the target (finite).
        t_max: trial length > 0.
    """

    c: float = setting(doc="decay rate c* > 0 of the target", gt=0)
    a: float = setting(1.0, doc="amplitude a* of the target")
    t_max: float = setting(20.0, doc="trial length", gt=0)
    loss_kind: str = "sum_sq_dt"

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: True)

    def sample(self, key: jax.Array, dt: float) -> Batch:
        T = n_steps(self.t_max, dt)
        inputs = jnp.zeros((1, T, 1)).at[0, 0, 0].set(1.0 / dt)
        targets = (self.a * jnp.exp(-self.c * dt * jnp.arange(T)))[None, :, None]
        return Batch(inputs, targets, jnp.ones_like(targets))
