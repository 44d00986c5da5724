"""Tasks: each samples whole batches (inputs, targets, mask) from a JAX key and owns its loss.

Tasks that experiment configs can name are registered by kind in :data:`TASKS`; a task module
declares its TOML settings on its own dataclass fields (:func:`setting`).
"""

from .base import LOSSES, TASKS, AbstractTask, Batch, loss_value, n_steps, task_kinds
from .context_decision import ContextDecision
from .decision import DecisionMaking
from .delayed_match import DelayedMatch
from .fields import Setting, TaskSettingError, setting
from .filters import ExponentialFilter
from .fixed import FixedBatch
from .flipflop import FlipFlop
from .neurogym_bridge import NeuroGym
from .noise_filter import WhiteNoiseFilter
from .noisy import NoisyTargets
from .oscillator import DampedOscillator
from .romo import Romo
from .teacher import PAPER_TEACHER_OVERLAPS, Teacher

__all__ = [
    "LOSSES",
    "PAPER_TEACHER_OVERLAPS",
    "TASKS",
    "AbstractTask",
    "Batch",
    "ContextDecision",
    "DampedOscillator",
    "DecisionMaking",
    "DelayedMatch",
    "ExponentialFilter",
    "FixedBatch",
    "FlipFlop",
    "NeuroGym",
    "NoisyTargets",
    "Romo",
    "Setting",
    "TaskSettingError",
    "Teacher",
    "WhiteNoiseFilter",
    "loss_value",
    "n_steps",
    "setting",
    "task_kinds",
]
