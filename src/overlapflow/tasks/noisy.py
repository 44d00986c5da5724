"""Target noise: any task with Gaussian noise added to its targets (the "A + noise" phases)."""

from __future__ import annotations

import dataclasses

import jax

from ._checks import nonnegative
from .base import AbstractTask, Batch
from .fields import TaskSettingError


@dataclasses.dataclass(frozen=True)
class NoisyTargets(AbstractTask):
    """``task`` with targets y* + std xi, xi ~ N(0, 1) i.i.d., fresh from every key.

    The base task samples from ``fold_in(key, 0)`` and the noise from ``fold_in(key, 1)``, so two
    engines given the same key see the same noisy targets. Inputs, mask and loss are the base task's.

    Args:
        task: the base task.
        std: noise standard deviation >= 0.
    """

    task: AbstractTask
    std: float

    def __post_init__(self):
        if not isinstance(self.task, AbstractTask):
            raise TaskSettingError("NoisyTargets", "task", self.task, "must be an overlapflow task")
        nonnegative("NoisyTargets", "std", self.std)

    n_in = property(lambda self: self.task.n_in)
    n_out = property(lambda self: self.task.n_out)
    loss_kind = property(lambda self: self.task.loss_kind)
    deterministic = property(lambda self: False)

    def sample(self, key: jax.Array, dt: float) -> Batch:
        batch = self.task.sample(jax.random.fold_in(key, 0), dt)
        noise = jax.random.normal(jax.random.fold_in(key, 1), batch.targets.shape, dtype=batch.targets.dtype)
        return batch._replace(targets=batch.targets + self.std * noise)

    def describe(self) -> str:
        return f"NoisyTargets({self.task.describe()}, std={self.std})"
