r"""The white-noise form of the exponential filter task."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from ._checks import check_dt, check_steps, jitted_sample
from .base import LOSSES, AbstractTask, Batch
from .fields import setting


# ---------------------------------------------------------------------------- white-noise filter
@dataclasses.dataclass(frozen=True)
class WhiteNoiseFilter(AbstractTask, kind="white_noise_filter"):
    r"""Exponential filter of white noise (white-noise form of the filter task, paper fig. 5).

    Inputs x_t ~ N(0, s^2) i.i.d. (s = ``noise_std``), t = 0..T-1, T = round(t_max / dt); target

        y*_t = a sum_{j <= t} dt exp(-c (t - j) dt) x_j,

    i.e. the recursion y_t = exp(-c dt) y_{t-1} + dt x_t, y*_t = a y_t (computed by
    ``jax.lax.scan`` over time, vectorised over the batch). This is the same filter as
    :class:`~overlapflow.tasks.ExponentialFilter` (impulse response a exp(-c t)) applied to noise.

    Shapes: inputs, targets, mask (B, T, 1); mask all ones. Loss ``"sum_sq_dt"``:
    (1/B) sum_{b,t} dt (y - y*)^2. A fresh noise batch is drawn from every key.

    Args (paper defaults):
        c: decay rate c* > 0 of the filter (0.2).
        a: amplitude a* (1.0).
        noise_std: input noise std s >= 0 (0.5).
        t_max: trial length > 0 (20.0; T = 400 at dt = 0.05).
        batch_size: trials per batch B (1).
        loss_kind: the loss ("sum_sq_dt"; see :func:`~overlapflow.tasks.loss_value`).
    """

    c: float = setting(0.2, doc="decay rate c* > 0 of the filter", gt=0)
    a: float = setting(1.0, doc="amplitude a* of the target")
    noise_std: float = setting(0.5, doc="input noise std s", ge=0)
    t_max: float = setting(20.0, doc="trial length", gt=0)
    batch_size: int = setting(1, doc="trials per batch B", ge=1)
    loss_kind: Literal[LOSSES] = setting("sum_sq_dt", doc="the loss")

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: False)

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return jitted_sample(self, key, check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        T = check_steps(type(self).__name__, self.t_max, dt)
        x = self.noise_std * jax.random.normal(key, (self.batch_size, T, 1), dtype=jnp.result_type(float))
        decay = jnp.exp(-self.c * dt)

        def step(y, x_t):
            y = decay * y + dt * x_t
            return y, y

        _, y = jax.lax.scan(step, jnp.zeros_like(x[:, 0]), jnp.swapaxes(x, 0, 1))
        targets = self.a * jnp.swapaxes(y, 0, 1)
        return Batch(x, targets, jnp.ones_like(targets))
