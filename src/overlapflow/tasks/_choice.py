"""Trials of two stimuli and a choice, as the Ostojic lab's ``low_rank_rnns`` builds them (delayed
match-to-sample, Romo): their catch trials, the windows of the stimuli and of the decision, and the
accuracy of a binary choice read from one output over a window (``accuracy_dms``, ``accuracy_romo``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Batch


def real_trials(key: jax.Array, B: int, catch_fraction: float, dtype) -> jax.Array:
    """(B,): 1 for a trial with stimuli, 0 for a catch trial (probability ``catch_fraction``)."""
    return (jax.random.uniform(key, (B,), dtype=dtype) >= catch_fraction).astype(dtype)


def two_stimulus_windows(periods: dict, steps: dict, start2: jax.Array, real: jax.Array, dtype):
    """The 0/1 windows (B, T) of stimulus 1 (its period), stimulus 2 (from ``start2`` (B,), its own
    onset per trial) and the decision right after stimulus 2; all 0 in catch trials (``real`` 0).
    ``periods``: the trial's step ranges (``"stimulus1"``, ..., ``"decision"``, whose stop is T);
    ``steps``: their lengths."""
    t = jnp.arange(periods["decision"].stop)[None, :]  # (1, T)

    def window(start, length):  # (B, T): 1 on [start, start + length) of each real trial
        return ((t >= start[:, None]) & (t < start[:, None] + length)).astype(dtype) * real[:, None]

    stim1 = window(jnp.full(real.shape, periods["stimulus1"].start), steps["stimulus1"])
    stim2 = window(start2, steps["stimulus2"])
    return stim1, stim2, window(start2 + steps["stimulus2"], steps["decision"])


def sign_choice_accuracy(outputs: jax.Array, batch: Batch) -> jax.Array:
    r"""Fraction of correct choices: trials whose mean output over their window (the mask) has the
    sign of their mean target there.

    With d_b = sum_t mask y_{b,t} / sum_t mask and d*_b = sum_t mask y*_{b,t}, accuracy = mean over
    the trials with a target (d*_b != 0; catch trials have none) of [sign(d_b) = sign(d*_b)]; an
    output of exactly 0 is wrong. outputs (B, T, 1); returns a scalar (nan if no trial has a target).
    """
    mask = batch.mask[..., 0]
    made = jnp.sum(mask * outputs[..., 0], axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)  # (B,)
    wanted = jnp.sign(jnp.sum(mask * batch.targets[..., 0], axis=1))  # (B,)
    real = wanted != 0
    return jnp.sum(real & (jnp.sign(made) == wanted)) / jnp.sum(real)
