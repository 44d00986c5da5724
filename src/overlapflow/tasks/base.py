"""What every task provides: batches (inputs, targets, mask) from a key, and a loss.

A task is a plain immutable value (a frozen dataclass) with no hidden state, so tasks can be
compared, stored and chained into curricula. Shapes are batch first, then time:

    inputs  (B, T, n_in)      targets, mask  (B, T, n_out)
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import jax
import jax.numpy as jnp

LOSSES = ("sum_sq_dt", "mse", "masked_mse")


class Batch(NamedTuple):
    """One batch of trials: inputs (B, T, n_in), targets (B, T, n_out), mask (B, T, n_out)."""

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array


def loss_value(kind: str, outputs: jax.Array, batch: Batch, dt: float) -> jax.Array:
    r"""The scalar loss of outputs (B, T, n_out) against a batch.

    - ``"sum_sq_dt"``: (1/B) sum_{b,t,o} dt mask (y - y*)^2  (the filter tasks; B = 1 gives
      dt sum_t (y_t - y*_t)^2).
    - ``"mse"``: mean of (y - y*)^2 over every entry (the mask is ignored).
    - ``"masked_mse"``: sum mask (y - y*)^2 / sum mask.
    """
    err2 = (outputs - batch.targets) ** 2
    if kind == "sum_sq_dt":
        return dt * jnp.sum(batch.mask * err2) / outputs.shape[0]
    if kind == "mse":
        return jnp.mean(err2)
    if kind == "masked_mse":
        return jnp.sum(batch.mask * err2) / jnp.maximum(jnp.sum(batch.mask), 1.0)
    raise ValueError(f"loss = {kind!r}: unknown loss; allowed: {list(LOSSES)}")


class AbstractTask(abc.ABC):
    """Base of all tasks: ``sample(key, dt) -> Batch`` and ``loss(outputs, batch, dt)``.

    Subclasses are frozen dataclasses with fields ``loss_kind`` (one of ``LOSSES``) and the
    properties ``n_in``, ``n_out``. Deterministic tasks ignore the key.
    """

    loss_kind: str

    @property
    @abc.abstractmethod
    def n_in(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_out(self) -> int: ...

    @property
    def deterministic(self) -> bool:
        """True when ``sample`` ignores its key (every epoch sees the same batch)."""
        return False

    @abc.abstractmethod
    def sample(self, key: jax.Array, dt: float) -> Batch:
        """A batch of trials for an Euler step dt."""

    def loss(self, outputs: jax.Array, batch: Batch, dt: float) -> jax.Array:
        """Scalar loss of outputs (B, T, n_out); see :func:`loss_value`."""
        return loss_value(self.loss_kind, outputs, batch, dt)

    def describe(self) -> str:
        """One line naming the task and its settings (for History attributes)."""
        return repr(self)


def n_steps(t_max: float, dt: float) -> int:
    """Number of Euler steps T = round(t_max / dt) in a trial of length t_max."""
    return int(round(t_max / dt))
