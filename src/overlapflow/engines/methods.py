"""The engine a method name stands for: configs and a History's ``method`` attribute name the overlap
engine's steps and the gradient flow by the names of :data:`overlapflow.flow.METHODS`."""

from __future__ import annotations

from ..flow import METHODS
from ..optimizers import as_optimizer
from .gradient_flow import FlowEngine
from .overlap import OverlapEngine


def method_of(engine) -> str | None:
    """The method an overlap-space engine runs (a step's name, or ``"flow"``); None for the others."""
    if isinstance(engine, FlowEngine):
        return "flow"
    return engine.step.name if isinstance(engine, OverlapEngine) else None


def run_name(engine, taken) -> str:
    """An engine's name among ``taken`` names of a run: its kind; a further overlap engine
    ``"overlaps-<method>"`` (as a config names it, :meth:`EnginesConfig.names`); a repeat numbered."""
    name = engine.kind
    if name in taken and method_of(engine) is not None:
        name = f"{name}-{method_of(engine)}"
    base, k = name, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


def overlap_engine(method: str = "exact", optimizer="sgd") -> OverlapEngine | FlowEngine:
    """``OverlapEngine(optimizer, step=method)``, or ``FlowEngine(optimizer)`` for ``"flow"``."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: unknown; allowed: {list(METHODS)}")
    optimizer = as_optimizer(optimizer)
    return FlowEngine(optimizer) if method == "flow" else OverlapEngine(optimizer, step=method)
