"""The engine a method name stands for: configs and a History's ``method`` attribute name the overlap
engine's steps and the gradient flow by the names of :data:`overlapflow.flow.METHODS`."""

from __future__ import annotations

from ..flow import METHODS
from ..optimizers import as_optimizer
from .gradient_flow import FlowEngine
from .overlap import OverlapEngine


def overlap_engine(method: str = "exact", optimizer="sgd") -> OverlapEngine | FlowEngine:
    """``OverlapEngine(optimizer, step=method)``, or ``FlowEngine(optimizer)`` for ``"flow"``."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: unknown; allowed: {list(METHODS)}")
    optimizer = as_optimizer(optimizer)
    return FlowEngine(optimizer) if method == "flow" else OverlapEngine(optimizer, step=method)
