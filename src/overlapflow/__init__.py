"""overlapflow: learning dynamics of low-rank RNNs in the space of overlaps.

Importing overlapflow enables float64 in JAX (``jax_enable_x64``): the overlap theory runs in
float64, and exactness checks need it. Full networks still default to float32 (``rnn.init``).
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from . import gauge, gaussianity, gram_map, invariants, phenomena, tasks
from .flow import METHODS, euler_step, exact_step, flow_velocity, symmetric_gradient, visible_only_step
from .history import load_history, max_overlap_deviation, overlap_labels, overlap_series
from .meanfield import latent_trajectory, meanfield_forward, meanfield_loss
from .model import LowRankRNN
from .network import network_activity, network_forward, network_loss
from .nonlinearity import Nonlinearity, get_nonlinearity
from .optimizers import Optimizer
from .overlaps import Overlaps, invisible_names, sample_params, visible_mask, visible_names
from .particles import Particles, make_particles, train_particles
from .training import DivergenceError, train_network, train_network_batch, train_overlaps, train_overlaps_batch
from .validation import validate_theory

__all__ = [
    "METHODS",
    "DivergenceError",
    "LowRankRNN",
    "Nonlinearity",
    "Optimizer",
    "Overlaps",
    "Particles",
    "euler_step",
    "exact_step",
    "flow_velocity",
    "gauge",
    "gaussianity",
    "gram_map",
    "invariants",
    "phenomena",
    "get_nonlinearity",
    "invisible_names",
    "latent_trajectory",
    "load_history",
    "make_particles",
    "max_overlap_deviation",
    "meanfield_forward",
    "meanfield_loss",
    "network_activity",
    "network_forward",
    "network_loss",
    "overlap_labels",
    "overlap_series",
    "sample_params",
    "symmetric_gradient",
    "tasks",
    "train_network",
    "train_network_batch",
    "train_overlaps",
    "train_overlaps_batch",
    "train_particles",
    "validate_theory",
    "visible_mask",
    "visible_names",
    "visible_only_step",
]


def __getattr__(name):
    # ``overlapflow.plot`` loads matplotlib only when first used.
    if name == "plot":
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'overlapflow' has no attribute {name!r}")
