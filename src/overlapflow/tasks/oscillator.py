r"""The damped oscillatory filter: the impulse-response task of the rank-2 network."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ._checks import check_dt, check_steps, jitted_sample, loss_kind
from .base import AbstractTask, Batch
from .fields import setting


@dataclasses.dataclass(frozen=True)
class DampedOscillator(AbstractTask, kind="damped_oscillator"):
    r"""Damped oscillatory impulse response (the rank-2 task, paper fig. 12).

    One trial: x_0 = 1/dt, x_t = 0 for t > 0; target y*_t = a exp(-c t dt) cos(omega t dt),
    t = 0..T-1, T = round(t_max / dt). A linear rank-2 network can produce it (a pair of complex
    eigenvalues of the recurrent dynamics). Deterministic: every key gives the same batch.

    Shapes: inputs, targets, mask (1, T, 1); mask all ones. Loss ``"sum_sq_dt"``:
    dt sum_t (y_t - y*_t)^2.

    Args (paper defaults):
        c: decay rate c* > 0 (0.3).
        omega: angular frequency omega* >= 0 (2.0).
        a: amplitude (1.0).
        t_max: trial length > 0 (20.0).
    """

    c: float = setting(0.3, doc="decay rate c* > 0", gt=0)
    omega: float = setting(2.0, doc="angular frequency omega* >= 0", ge=0)
    a: float = setting(1.0, doc="amplitude")
    t_max: float = setting(20.0, doc="trial length", gt=0)
    loss_kind: str = "sum_sq_dt"

    def __post_init__(self):
        super().__post_init__()
        loss_kind(type(self).__name__, self.loss_kind)

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: True)

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return jitted_sample(self, key, check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        T = check_steps(type(self).__name__, self.t_max, dt)
        t = dt * jnp.arange(T, dtype=jnp.result_type(float))
        inputs = jnp.zeros((1, T, 1), dtype=t.dtype).at[0, 0, 0].set(1.0 / dt)
        targets = (self.a * jnp.exp(-self.c * t) * jnp.cos(self.omega * t))[None, :, None]
        return Batch(inputs, targets, jnp.ones_like(targets))
