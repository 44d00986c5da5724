"""Bring your own data: a task that always returns the same explicit arrays."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .base import LOSSES, AbstractTask, Batch
from .fields import TaskSettingError


def _as_batch_array(name: str, value, ndim_hint: str) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise TaskSettingError(
            "FixedBatch",
            name,
            value,
            f"shape {array.shape}; must be {ndim_hint} or without the batch axis",
            show_value=False,
        )
    if not np.all(np.isfinite(array)):
        raise TaskSettingError("FixedBatch", name, value, "contains NaN or Inf", show_value=False)
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class FixedBatch(AbstractTask):
    """A deterministic task from explicit arrays.

    Args:
        inputs: (B, T, n_in) or (T, n_in).
        targets: (B, T, n_out) or (T, n_out).
        mask: same shape as targets (1 = counted), or None for all ones.
        loss: ``"sum_sq_dt"``, ``"mse"`` or ``"masked_mse"`` (see :func:`~overlapflow.tasks.loss_value`).
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray | None = None
    loss_kind: str = "sum_sq_dt"

    def __init__(self, inputs, targets, mask=None, loss: str = "sum_sq_dt"):
        inputs = _as_batch_array("inputs", inputs, "(B, T, n_in)")
        targets = _as_batch_array("targets", targets, "(B, T, n_out)")
        if inputs.shape[:2] != targets.shape[:2]:
            raise ValueError(f"FixedBatch: inputs {inputs.shape} and targets {targets.shape} must share (B, T)")
        mask = np.ones_like(targets) if mask is None else _as_batch_array("mask", mask, "(B, T, n_out)")
        if mask.shape != targets.shape:
            raise TaskSettingError(
                "FixedBatch",
                "mask",
                mask,
                f"shape {mask.shape}; must equal the targets' shape {targets.shape}",
                show_value=False,
            )
        if loss not in LOSSES:
            raise TaskSettingError("FixedBatch", "loss", loss, f"unknown loss; allowed: {list(LOSSES)}")
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "loss_kind", loss)

    n_in = property(lambda self: self.inputs.shape[-1])
    n_out = property(lambda self: self.targets.shape[-1])
    deterministic = property(lambda self: True)

    def sample(self, key: jax.Array, dt: float) -> Batch:
        return Batch(jnp.asarray(self.inputs), jnp.asarray(self.targets), jnp.asarray(self.mask))

    def describe(self) -> str:
        B, T, _ = self.inputs.shape
        return f"FixedBatch(B={B}, T={T}, n_in={self.n_in}, n_out={self.n_out}, loss={self.loss_kind!r})"
