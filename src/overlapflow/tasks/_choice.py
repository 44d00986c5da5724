"""The accuracy of a binary choice read from one output over a window, as the Ostojic lab's
``low_rank_rnns`` scores its tasks (``accuracy_dms``, ``accuracy_romo``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Batch


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
