"""Tasks: each samples whole batches (inputs, targets, mask) from a JAX key and owns its loss."""

from .base import LOSSES, AbstractTask, Batch, loss_value, n_steps
from .decision import DecisionMaking
from .filters import ExponentialFilter
from .fixed import FixedBatch
from .flipflop import FlipFlop
from .noise_filter import WhiteNoiseFilter
from .noisy import NoisyTargets
from .oscillator import DampedOscillator
from .teacher import PAPER_TEACHER_OVERLAPS, Teacher

__all__ = [
    "LOSSES",
    "PAPER_TEACHER_OVERLAPS",
    "AbstractTask",
    "Batch",
    "DampedOscillator",
    "DecisionMaking",
    "ExponentialFilter",
    "FixedBatch",
    "FlipFlop",
    "NoisyTargets",
    "Teacher",
    "WhiteNoiseFilter",
    "loss_value",
    "n_steps",
]
