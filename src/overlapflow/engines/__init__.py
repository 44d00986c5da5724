"""Engines: the ways of following learning, one protocol (:class:`Engine`).

=================  ===============================================  ===========================
engine             follows                                          start
=================  ===============================================  ===========================
NetworkEngine      the full network theta (N, P), any optax         theta0 (N, P)
ParticleEngine     the N -> infinity law of the rows (quadrature)   S0 (P, P) or Particles
OverlapEngine      S (P, P) under a closure, by a step: ExactStep,  S0 (P, P) or Mixture
                   EulerStep, VisibleOnlyStep
FlowEngine         the gradient flow of S (any diffrax solver)      S0 (P, P)
=================  ===============================================  ===========================

Run any of them with :func:`overlapflow.train` (one run) or :func:`overlapflow.train_batch`
(K runs at once, ``jax.vmap``).
"""

from .base import Engine, State, TrainState, batch_source
from .gradient_flow import FlowEngine
from .methods import method_of, overlap_engine, run_name
from .overlap import OverlapEngine, initial_overlaps
from .rows import NetworkEngine, ParticleEngine, RowState
from .steps import STEPS, EulerStep, ExactStep, Step, VisibleOnlyStep, as_step

__all__ = [
    "STEPS",
    "Engine",
    "EulerStep",
    "ExactStep",
    "FlowEngine",
    "NetworkEngine",
    "OverlapEngine",
    "ParticleEngine",
    "RowState",
    "State",
    "TrainState",
    "Step",
    "VisibleOnlyStep",
    "as_step",
    "batch_source",
    "initial_overlaps",
    "method_of",
    "overlap_engine",
    "run_name",
]
