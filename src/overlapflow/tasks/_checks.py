"""Checks shared by the task modules beyond those of their settings (:mod:`.fields`), and the
compiled sampling every task uses.

Each check of a setting raises a :class:`~.fields.TaskSettingError` naming the task's field, its
value and what is allowed (a duration too short at the step dt too); a dt that is not a positive
number, an argument of ``sample`` and no setting, raises a ValueError.
"""

from __future__ import annotations

import functools

import jax

from .base import LOSSES, n_steps
from .fields import TaskSettingError, is_number


def nonnegative(task: str, field: str, value) -> float:
    """A finite number >= 0."""
    if not is_number(value) or not value >= 0:
        raise TaskSettingError(task, field, value, "must be a finite number >= 0")
    return value


def loss_kind(task: str, value) -> str:
    """One of :data:`~overlapflow.tasks.LOSSES`."""
    if value not in LOSSES:
        raise TaskSettingError(task, "loss_kind", value, f"unknown loss; allowed: {list(LOSSES)}")
    return value


def check_steps(task: str, t_max: float, dt: float) -> int:
    """T = round(t_max / dt) >= 1 (else a :class:`~.fields.TaskSettingError` of ``t_max``); dt must be a
    positive Python number (static under jit)."""
    check_dt(task, dt)
    T = n_steps(t_max, dt)
    if T < 1:
        raise TaskSettingError(task, "t_max", t_max, f"gives T = {T} steps at dt = {dt!r}; need T >= 1")
    return T


@functools.partial(jax.jit, static_argnums=(0, 2))
def jitted_sample(task, key: jax.Array, dt: float):
    """``task._sample(key, dt)`` compiled as one program per (task, dt).

    Tasks are hashable values and dt a Python float, so both are static; calling a task's
    ``sample`` eagerly then costs one compilation instead of one per array operation, and inside
    an outer ``jax.jit`` it simply inlines.
    """
    return task._sample(key, dt)


def check_dt(task: str, dt) -> float:
    if not is_number(dt) or not dt > 0:
        raise ValueError(f"{task}.sample: dt = {dt!r}: must be a positive Python number (static under jit)")
    return float(dt)


def consecutive_periods(task, dt: float, names, nonempty, steps, too_short: str) -> dict[str, slice]:
    """Step ranges of a trial's periods, one after the other: period p lasts ``steps(duration_p, dt)``
    steps (its duration is the task's field p); a period in ``nonempty`` with no step is refused in one
    line ("``too_short`` at dt = ...")."""
    name = type(task).__name__
    check_dt(name, dt)
    out, start = {}, 0
    for period in names:
        duration = getattr(task, period)
        n = steps(duration, dt)
        if period in nonempty and n < 1:
            raise TaskSettingError(
                name, period, duration, f"{too_short} at dt = {dt!r}; the period needs at least one step"
            )
        out[period] = slice(start, start + n)
        start += n
    return out
