r"""The white-noise form of the exponential filter task.

This module also holds the small field validators the other task modules share
(``_number``, ``_positive``, ``_count``, ...): each raises a ValueError naming the task's field,
its value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from .base import LOSSES, AbstractTask, Batch, n_steps


# ---------------------------------------------------------------------------- field validators
def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _number(task: str, field: str, value) -> float:
    """A finite real number (ints and floats; not bools)."""
    if not _is_number(value):
        raise ValueError(f"{task}.{field} = {value!r}: must be a finite number")
    return value


def _positive(task: str, field: str, value) -> float:
    """A finite number > 0."""
    if not _is_number(value) or not value > 0:
        raise ValueError(f"{task}.{field} = {value!r}: must be a positive finite number")
    return value


def _nonnegative(task: str, field: str, value) -> float:
    """A finite number >= 0."""
    if not _is_number(value) or not value >= 0:
        raise ValueError(f"{task}.{field} = {value!r}: must be a finite number >= 0")
    return value


def _count(task: str, field: str, value) -> int:
    """An integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{task}.{field} = {value!r}: must be an integer >= 1")
    return value


def _loss_kind(task: str, value) -> str:
    """One of :data:`~overlapflow.tasks.LOSSES`."""
    if value not in LOSSES:
        raise ValueError(f"{task}.loss_kind = {value!r}: unknown loss; allowed: {list(LOSSES)}")
    return value


def _check_steps(task: str, t_max: float, dt: float) -> int:
    """T = round(t_max / dt) >= 1; dt must be a positive Python number (static under jit)."""
    _check_dt(task, dt)
    T = n_steps(t_max, dt)
    if T < 1:
        raise ValueError(f"{task}.sample: t_max = {t_max!r} and dt = {dt!r} give T = {T} steps; need T >= 1")
    return T


@functools.partial(jax.jit, static_argnums=(0, 2))
def _jitted_sample(task, key: jax.Array, dt: float):
    """``task._sample(key, dt)`` compiled as one program per (task, dt).

    Tasks are hashable values and dt a Python float, so both are static; calling a task's
    ``sample`` eagerly then costs one compilation instead of one per array operation, and inside
    an outer ``jax.jit`` it simply inlines.
    """
    return task._sample(key, dt)


def _check_dt(task: str, dt) -> float:
    if not _is_number(dt) or not dt > 0:
        raise ValueError(f"{task}.sample: dt = {dt!r}: must be a positive Python number (static under jit)")
    return float(dt)


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
