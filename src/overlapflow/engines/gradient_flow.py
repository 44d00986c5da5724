r"""The gradient-flow engine: dS/dt = -2 eta (S Gamma + Gamma S), integrated by diffrax.

Time t counts epochs; the flow is read at integer t. It is the continuous-time limit of the
overlap engine's steps (:mod:`overlapflow.flow`), integrated with Tsit5 and adaptive steps
(``rtol``, ``atol``). A stochastic task is sampled once (the batch of epoch 0) for the whole flow.
Its chunk integrates from t to t + chunk (at most to the run's end) and records the states after,
so the loop records the start itself (``records_initial_state`` False).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp

from ..flow import flow_velocity
from ..meanfield import meanfield_loss
from .base import batch_source
from .overlap import OverlapEngine, check_overlap_optimizer


@dataclasses.dataclass(frozen=True)
class FlowEngine(OverlapEngine):
    """Gradient flow in overlap space (module docstring). ``optimizer``: SGD with optional weight
    decay (no momentum, no learning-rate drop). ``start``: S0 (P, P) or :class:`~overlapflow.Overlaps`."""

    method: str = "flow"
    closure: Callable = meanfield_loss
    rtol: float = 1e-10
    atol: float = 1e-12

    def check_optimizer(self) -> None:
        check_overlap_optimizer(self.optimizer, "flow")
        if self.optimizer.lr_drop is not None:
            raise ValueError(
                "optimizer lr_drop_below with method = 'flow': the learning-rate drop is for discrete steps only"
            )

    def update(self, rnn, state, gradient, lr):
        raise TypeError("the gradient flow has no discrete update; it advances by integration (FlowEngine.advance)")

    def attrs(self, rnn, state) -> dict:
        return {**super().attrs(rnn, state), "rtol": self.rtol, "atol": self.atol}

    @property
    def records_initial_state(self) -> bool:
        return False

    def advance(self, rnn, task, carry, start, *, key, offset, lr, epochs, chunk):
        """The flow from t = offset + start to t + chunk, read at the integer times after t."""
        S, dropped = carry
        batch = batch_source(rnn, task, key)(0)
        S, records = _flow_chunk(
            S, offset + start, offset + epochs, batch=batch, lr=lr, engine=self, rnn=rnn, task=task, chunk=chunk
        )
        return (S, dropped), (*records, {})


@functools.partial(jax.jit, static_argnames=("engine", "rnn", "task", "chunk"))
def _flow_chunk(S, start, end, *, batch, lr, engine, rnn, task, chunk):
    """Gradient flow from t = start to min(start + chunk, end); records (loss, S) at t = start+1 ..
    start+chunk (those past ``end`` repeat the state at ``end``, and the loop discards them)."""

    def velocity(t, S, args):
        _, Gamma = engine.loss_and_gradient(rnn, task, S, batch)
        return flow_velocity(S, Gamma, lr)

    t0 = jnp.asarray(start, dtype=S.dtype)
    t1 = jnp.minimum(t0 + chunk, jnp.asarray(end, dtype=S.dtype))
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(velocity),
        diffrax.Tsit5(),
        t0=t0,
        t1=t1,
        dt0=None,
        y0=S,
        saveat=diffrax.SaveAt(ts=jnp.minimum(t0 + jnp.arange(1, chunk + 1, dtype=S.dtype), t1)),
        stepsize_controller=diffrax.PIDController(rtol=engine.rtol, atol=engine.atol),
        max_steps=None,
        throw=False,
    )
    states = solution.ys
    losses = jax.vmap(lambda s: engine.closure(rnn, task, s, batch))(states)
    return states[-1], (losses, states)
