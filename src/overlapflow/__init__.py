"""overlapflow: learning dynamics of low-rank RNNs in the space of overlaps.

Importing overlapflow changes no JAX setting. The overlap theory runs in float64 all the same:
its entry points enable float64 for the duration of each call (:mod:`overlapflow.precision`), and
return float64 results. Full networks default to float32 (``rnn.init``). Arrays you build yourself
follow your own setting (float32 unless you run ``jax.config.update("jax_enable_x64", True)``).

The public names below load on first use (PEP 562): ``import overlapflow`` itself is cheap, so the
command line (``overlapflow --help``) starts without loading JAX.

A full network and its overlap theory, trained side by side by :func:`train` (one loop, an engine each):

Example:
    >>> import jax
    >>> import overlapflow as of
    >>> rnn = of.LowRankRNN(rank=1, n_in=1, n_out=1, phi="linear", dt=0.1)
    >>> task = of.tasks.ExponentialFilter(c=0.2, a=1.0, t_max=2.0)
    >>> theta = rnn.init(jax.random.key(0), N=200)  # (N, P) connectivity
    >>> S0 = of.Overlaps.from_params(rnn, theta)  # (P, P) overlaps
    >>> network = of.train(of.NetworkEngine(), rnn, task, theta, lr=1e-2, epochs=10)
    >>> theory = of.train(of.OverlapEngine(), rnn, task, S0, lr=1e-2, epochs=10)
    >>> theory.history.loss.shape, theory.overlaps.shape, network.params.shape
    ((11,), (4, 4), (200, 4))
    >>> float(of.max_overlap_deviation(network.history, theory.history)) < 1e-5
    True
    >>> of.overlap_labels(theory.history, "invisible")
    ['zv', 'zz', 'vv', 'um', 'uu', 'mm']
"""

from ._version import __version__ as __version__  # first: modules may read it while the package loads

# isort: split

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and the API docs; at run time the names load on first use (below)
    from . import engines, gauge, gaussianity, gram_map, inspection, interop, invariants, phenomena, precision, tasks
    from .engines import EulerStep, ExactStep, FlowEngine, NetworkEngine, OverlapEngine, ParticleEngine, VisibleOnlyStep
    from .flow import METHODS, euler_step, exact_step, flow_velocity, symmetric_gradient, visible_only_step
    from .history import load_history, max_overlap_deviation, overlap_labels, overlap_series
    from .meanfield import latent_trajectory, meanfield_forward, meanfield_loss
    from .mixture import Mixture
    from .model import LowRankRNN
    from .network import network_activity, network_forward, network_loss
    from .nonlinearity import Nonlinearity, get_nonlinearity
    from .optimizers import Optimizer
    from .overlaps import Overlaps, invisible_names, sample_params, visible_mask, visible_names
    from .particles import Particles, make_particles
    from .run_folder import RunFolder
    from .training import (
        DivergenceError,
        TrainResult,
        train,
        train_batch,
        train_network,
        train_network_batch,
        train_overlaps,
        train_overlaps_batch,
        train_particles,
    )
    from .validation import validate_theory

#: public name -> the module that defines it
_EXPORTS = {
    "flow": ("METHODS", "euler_step", "exact_step", "flow_velocity", "symmetric_gradient", "visible_only_step"),
    "history": ("load_history", "max_overlap_deviation", "overlap_labels", "overlap_series"),
    "engines": (
        "EulerStep",
        "ExactStep",
        "FlowEngine",
        "NetworkEngine",
        "OverlapEngine",
        "ParticleEngine",
        "VisibleOnlyStep",
    ),
    "meanfield": ("latent_trajectory", "meanfield_forward", "meanfield_loss"),
    "mixture": ("Mixture",),
    "model": ("LowRankRNN",),
    "network": ("network_activity", "network_forward", "network_loss"),
    "nonlinearity": ("Nonlinearity", "get_nonlinearity"),
    "optimizers": ("Optimizer",),
    "overlaps": ("Overlaps", "invisible_names", "sample_params", "visible_mask", "visible_names"),
    "particles": ("Particles", "make_particles"),
    "run_folder": ("RunFolder",),
    "training": (
        "DivergenceError",
        "TrainResult",
        "train",
        "train_batch",
        "train_network",
        "train_network_batch",
        "train_overlaps",
        "train_overlaps_batch",
        "train_particles",
    ),
    "validation": ("validate_theory",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
#: subpackages and modules reachable as attributes (``overlapflow.plot`` loads matplotlib when first used)
_SUBMODULES = (
    "engines",
    "gauge",
    "gaussianity",
    "gram_map",
    "inspection",
    "interop",
    "invariants",
    "phenomena",
    "precision",
    "tasks",
    "plot",
    "experiments",
)

__all__ = [
    "METHODS",
    "DivergenceError",
    "TrainResult",
    "EulerStep",
    "ExactStep",
    "FlowEngine",
    "LowRankRNN",
    "Mixture",
    "NetworkEngine",
    "Nonlinearity",
    "OverlapEngine",
    "ParticleEngine",
    "Optimizer",
    "Overlaps",
    "Particles",
    "RunFolder",
    "VisibleOnlyStep",
    "engines",
    "euler_step",
    "exact_step",
    "flow_velocity",
    "gauge",
    "gaussianity",
    "gram_map",
    "inspection",
    "interop",
    "invariants",
    "phenomena",
    "precision",
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
    "train",
    "train_batch",
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
    import importlib

    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'overlapflow' has no attribute {name!r}")
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
