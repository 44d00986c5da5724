r"""The gradient-flow engine: dS/dt = -2 eta (S Gamma + Gamma S), integrated by diffrax.

Time t counts epochs; the flow is read at integer t. It is the continuous-time limit of the
overlap engine's steps (:mod:`overlapflow.flow`), integrated by any diffrax solver and step-size
controller (its fields; by default Tsit5 with a PID controller at rtol 1e-10, atol 1e-12). A
stochastic task is sampled once (the batch of epoch 0) for the whole flow.
It is not an :class:`~overlapflow.engines.OverlapEngine`: it has no discrete update to substitute.
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
from ..mixture import Mixture
from .base import Engine, batch_source
from .overlap import check_overlap_optimizer, initial_overlaps


@dataclasses.dataclass(frozen=True)
class FlowEngine(Engine):
    """Gradient flow in overlap space (module docstring).

    Args:
        optimizer: SGD with optional weight decay (no momentum, no learning-rate drop).
        solver: a diffrax solver (default ``diffrax.Tsit5()``).
        stepsize_controller: a diffrax step-size controller (default
            ``diffrax.PIDController(rtol=1e-10, atol=1e-12)``).
        closure: the reduced loss ``closure(rnn, task, S, batch) -> scalar``.

    Example:
        >>> import diffrax
        >>> import overlapflow as of
        >>> rnn = of.LowRankRNN(rank=1, n_in=1, n_out=1, phi="linear", dt=0.1)
        >>> task = of.tasks.ExponentialFilter(c=0.2, a=1.0, t_max=2.0)
        >>> engine = of.FlowEngine(stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10))
        >>> result = of.train(engine, rnn, task, of.Overlaps.from_dict(rnn, {}), lr=1e-2, epochs=3)
        >>> result.history.loss.shape, result.history.attrs["method"]
        ((4,), 'flow')

    ``start``: S0 (P, P) or :class:`~overlapflow.Overlaps`.
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    stepsize_controller: diffrax.AbstractStepSizeController = diffrax.PIDController(rtol=1e-10, atol=1e-12)
    closure: Callable = meanfield_loss

    kind = "overlaps"

    def check_optimizer(self) -> None:
        check_overlap_optimizer(self.optimizer, None)
        if self.optimizer.lr_drop_below is not None:
            raise ValueError(
                "optimizer lr_drop_below with the gradient flow: the learning-rate drop is for discrete steps only"
            )

    def init(self, rnn, start):
        if isinstance(start, Mixture):
            raise ValueError(
                "start: a Mixture runs the mixture closure (OverlapEngine with step 'exact' or 'euler'); "
                "the gradient flow starts from overlaps S (P, P)"
            )
        return jnp.asarray(initial_overlaps(rnn, start))

    def loss_and_gradient(self, rnn, task, state, batch):
        loss, G = jax.value_and_grad(lambda s: self.closure(rnn, task, s, batch))(state)
        return loss, (G + G.T) / 2 + self.optimizer.weight_decay * jnp.eye(state.shape[0], dtype=state.dtype)

    def loss(self, rnn, task, state, batch):
        return self.closure(rnn, task, state, batch)

    def update(self, rnn, state, gradient, lr):
        raise TypeError("the gradient flow has no discrete update; it advances by integration (FlowEngine.advance)")

    def overlaps(self, state):
        return state

    def carry(self, state):
        return state

    def attrs(self, rnn, state) -> dict:
        attrs = {"engine": "overlaps", "method": "flow", "optimizer": self.optimizer.describe()}
        attrs["solver"] = type(self.solver).__name__
        controller = self.stepsize_controller
        for name in ("rtol", "atol"):
            if hasattr(controller, name):
                attrs[name] = float(getattr(controller, name))
        return attrs

    def label(self, state) -> str:
        return "overlaps (flow)"

    @property
    def records_initial_state(self) -> bool:
        return False

    def advance(self, rnn, task, carry, start, *, key, offset, lr, epochs, chunk):
        """The flow from t = offset + start to t + chunk, read at the integer times after t."""
        batch = batch_source(rnn, task, key)(0)
        S, records = _flow_chunk(
            carry.engine,
            offset + start,
            offset + epochs,
            batch=batch,
            lr=lr,
            engine=self,
            rnn=rnn,
            task=task,
            chunk=chunk,
        )
        return carry._replace(engine=S), (*records, {})


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
        engine.solver,
        t0=t0,
        t1=t1,
        dt0=None,
        y0=S,
        saveat=diffrax.SaveAt(ts=jnp.minimum(t0 + jnp.arange(1, chunk + 1, dtype=S.dtype), t1)),
        stepsize_controller=engine.stepsize_controller,
        max_steps=None,
        throw=False,
    )
    states = solution.ys
    losses = jax.vmap(lambda s: engine.closure(rnn, task, s, batch))(states)
    return states[-1], (losses, states)
