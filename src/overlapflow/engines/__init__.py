"""Engines: the ways of following learning, one protocol (:class:`Engine`).

=================  ===============================================  ===========================
engine             follows                                          start
=================  ===============================================  ===========================
NetworkEngine      the full network theta (N, P), any optax         theta0 (N, P)
ParticleEngine     the N -> infinity law of the rows (quadrature)   S0 (P, P) or Particles
OverlapEngine      S (P, P) under a closure: exact, euler,          S0 (P, P)
                   visible-only steps
FlowEngine         the gradient flow of S (diffrax)                 S0 (P, P)
=================  ===============================================  ===========================

Run any of them with :func:`overlapflow.train` (one run) or :func:`overlapflow.train_batch`
(K runs at once, ``jax.vmap``).
"""

from .base import Engine, State, batch_source, lr_factor
from .gradient_flow import FlowEngine
from .overlap import STEP_METHODS, OverlapEngine, initial_overlaps
from .rows import NetworkEngine, ParticleEngine, RowState

__all__ = [
    "STEP_METHODS",
    "Engine",
    "FlowEngine",
    "NetworkEngine",
    "OverlapEngine",
    "ParticleEngine",
    "RowState",
    "State",
    "batch_source",
    "initial_overlaps",
    "lr_factor",
]
