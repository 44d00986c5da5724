"""Tasks: each samples whole batches (inputs, targets, mask) from a JAX key and owns its loss."""

from .base import LOSSES, AbstractTask, Batch, loss_value, n_steps
from .filters import ExponentialFilter
from .fixed import FixedBatch

__all__ = ["AbstractTask", "Batch", "ExponentialFilter", "FixedBatch", "LOSSES", "loss_value", "n_steps"]
