r"""The white-noise form of the exponential filter task."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ._checks import _check_dt, _check_steps, _count, _jitted_sample, _loss_kind, _nonnegative, _number, _positive
from .base import AbstractTask, Batch


# ---------------------------------------------------------------------------- white-noise filter
@dataclasses.dataclass(frozen=True)
class WhiteNoiseFilter(AbstractTask):
    r"""Exponential filter of white noise (white-noise form of the filter task, paper fig. 5).

    Inputs x_t ~ N(0, s^2) i.i.d. (s = ``noise_std``), t = 0..T-1, T = round(t_max / dt); target

        y*_t = a sum_{j <= t} dt exp(-c (t - j) dt) x_j,

    i.e. the recursion y_t = exp(-c dt) y_{t-1} + dt x_t, y*_t = a y_t (computed by
    ``jax.lax.scan`` over time, vectorised over the batch). This is the same filter as
    :class:`~overlapflow.tasks.ExponentialFilter` (impulse response a exp(-c t)) applied to noise.

    Shapes: inputs, targets, mask (B, T, 1); mask all ones. Loss ``"sum_sq_dt"``:
    (1/B) sum_{b,t} dt (y - y*)^2. A fresh noise batch is drawn from every key.

    Args (paper defaults):
        c: decay rate c* of the filter (0.2).
        a: amplitude a* (1.0).
        noise_std: input noise std s >= 0 (0.5).
        t_max: trial length (20.0; T = 400 at dt = 0.05).
        batch_size: trials per batch B (1).
    """

    c: float = 0.2
    a: float = 1.0
    noise_std: float = 0.5
    t_max: float = 20.0
    batch_size: int = 1
    loss_kind: str = "sum_sq_dt"

    def __post_init__(self):
        name = type(self).__name__
        _number(name, "c", self.c)
        _number(name, "a", self.a)
        _nonnegative(name, "noise_std", self.noise_std)
        _positive(name, "t_max", self.t_max)
        _count(name, "batch_size", self.batch_size)
        _loss_kind(name, self.loss_kind)

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    deterministic = property(lambda self: False)

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return _jitted_sample(self, key, _check_dt(type(self).__name__, dt))

    def _sample(self, key: jax.Array, dt: float) -> Batch:
        T = _check_steps(type(self).__name__, self.t_max, dt)
        x = self.noise_std * jax.random.normal(key, (self.batch_size, T, 1), dtype=jnp.result_type(float))
        decay = jnp.exp(-self.c * dt)

        def step(y, x_t):
            y = decay * y + dt * x_t
            return y, y

        _, y = jax.lax.scan(step, jnp.zeros_like(x[:, 0]), jnp.swapaxes(x, 0, 1))
        targets = self.a * jnp.swapaxes(y, 0, 1)
        return Batch(x, targets, jnp.ones_like(targets))
