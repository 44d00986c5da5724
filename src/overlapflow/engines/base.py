r"""What every engine provides: the :class:`Engine` protocol.

An engine is one way of following gradient-descent learning of a :class:`~overlapflow.LowRankRNN`:
the full network's rows theta (N, P), particles for the N -> infinity limit, the overlaps S (P, P)
under a closure, or the gradient flow. Like optax's ``GradientTransformation`` it is a set of pure
functions around a state (a PyTree), held by an immutable, hashable value (so that it can be a
static argument of ``jax.jit``):

    state          = engine.init(rnn, start)                         start: theta, S or Particles
    loss, gradient = engine.loss_and_gradient(rnn, task, state, batch)
    state          = engine.update(rnn, state, gradient, lr)          lr: overlap scale, traced
    S              = engine.overlaps(state)                           (P, P)
    start          = engine.carry(state)                              what the next phase starts from

A run's state is a :class:`TrainState`: the engine's state and the optimiser's learning-rate
schedule state (:attr:`Optimizer.rate_schedule`, the lr drop), one PyTree that resumes a run.

:meth:`Engine.epoch` composes them, ``epoch(rnn, task, state, batch, lr) -> (state, loss, S)`` with the
loss and overlaps of the state before the update. The generic loop (:func:`overlapflow.train`) runs
any engine in compiled chunks of epochs (:meth:`Engine.advance`, a ``lax.scan`` of these functions),
batched over runs with ``jax.vmap``, and resumes any engine from its state: the state is all there is.

A new engine is one subclass in one file: its state, ``init``, ``loss_and_gradient``, ``update``,
``overlaps`` and ``carry`` (plus :meth:`Engine.attrs` for its History attributes).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..optimizers import Optimizer, as_optimizer, constant_rate

State = Any  # a PyTree of arrays


class TrainState(NamedTuple):
    """A run's whole state, what ``train(..., state=...)`` continues from.

    Attributes:
        engine: what :meth:`Engine.init` made (theta and the optax state, S, a Mixture, ...).
        schedule: the state of the learning-rate schedule (:attr:`Engine.rate_schedule`; the lr
            drop's :class:`~overlapflow.optimizers.LrDropState`).
    """

    engine: State
    schedule: optax.OptState


def batch_source(rnn, task, key):
    """Epoch k -> batch: a constant for deterministic tasks, else sampled from ``fold_in(key, k)``."""
    if task.deterministic:
        batch = task.sample(key, rnn.dt)
        return lambda k: batch
    return lambda k: task.sample(jax.random.fold_in(key, k), rnn.dt)


def _learn_unless_surplus(learn, carry, k, epochs):
    """``learn(None) -> (carry, loss)`` for epoch k, except past a run's last record (``k > epochs``,
    in the last compiled chunk): there the record is discarded, so nothing is computed and the
    state stays as it is."""
    loss = jax.eval_shape(learn, None)[1]
    surplus = lambda _: (carry, jnp.zeros(loss.shape, loss.dtype))
    return jax.lax.cond(k <= epochs, learn, surplus, None)


@dataclasses.dataclass(frozen=True)
class Engine(abc.ABC):
    """Base of all engines (module docstring). Subclasses are frozen dataclasses.

    Args:
        optimizer: ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"`` or an
            :class:`~overlapflow.Optimizer` (the engines that cannot run one refuse it here).
    """

    optimizer: Optimizer | Any = "sgd"

    #: The History's ``engine`` attribute and the default run name.
    kind: ClassVar[str] = "engine"

    def __post_init__(self):
        if isinstance(self.optimizer, str):
            object.__setattr__(self, "optimizer", as_optimizer(self.optimizer))
        self.check_optimizer()

    def check_optimizer(self) -> None:  # noqa: B027 - optional hook, most engines run any optimiser
        """Refuse an optimiser this engine cannot run (ValueError)."""

    def with_optimizer(self, optimizer) -> Engine:
        """The same engine with another optimiser (a curriculum's phases may change it)."""
        return dataclasses.replace(self, optimizer=optimizer)

    @property
    def rate_schedule(self) -> optax.GradientTransformationExtraArgs:
        """The transformation of the learning rate that sees the loss (the optimiser's lr drop, or
        the rate unchanged)."""
        return self.optimizer.rate_schedule if isinstance(self.optimizer, Optimizer) else constant_rate()

    def train_state(self, state: State) -> TrainState:
        """A fresh run's :class:`TrainState` around an engine state."""
        return TrainState(state, self.rate_schedule.init(None))

    # ---------------------------------------------------------------- the protocol
    @abc.abstractmethod
    def init(self, rnn, start) -> State:
        """The state at the start of a run (fresh optimiser) from ``start``; checks ``start``."""

    @abc.abstractmethod
    def loss_and_gradient(self, rnn, task, state: State, batch) -> tuple[jax.Array, Any]:
        """The loss of ``state`` on ``batch`` and what :meth:`update` needs to descend it."""

    @abc.abstractmethod
    def update(self, rnn, state: State, gradient, lr) -> State:
        """One learning step at overlap-scale rate ``lr`` (a traced scalar)."""

    @abc.abstractmethod
    def overlaps(self, state: State) -> jax.Array:
        """The overlaps S (P, P) of ``state``."""

    @abc.abstractmethod
    def carry(self, state: State):
        """What the next phase starts from (``init`` accepts it): theta, S or Particles."""

    def loss(self, rnn, task, state: State, batch) -> jax.Array:
        """The loss of ``state`` on ``batch``."""
        return self.loss_and_gradient(rnn, task, state, batch)[0]

    def attrs(self, rnn, state: State) -> dict:
        """The History attributes this engine adds (engine, method, N, ...)."""
        return {"engine": self.kind}

    def label(self, state: State) -> str:
        """A short name for progress bars."""
        return self.kind

    def population_records(self, state: State) -> dict:
        """Per-epoch records of the populations of ``state``: ``{}`` (none), or
        ``{"population_means": (K, P), "population_overlaps": (K, P, P)}`` (mean and second moment
        E_k[theta theta^T] of each population's rows)."""
        return {}

    def carry_populations(self, state: State):
        """The population of each row of :meth:`carry` (labels (n,)), for the engines on rows; None
        otherwise (a carried Mixture holds its populations itself)."""
        return None

    def population_weights(self, state: State):
        """The populations' weights (K,) (fractions of the rows), or None when ``state`` has none."""
        return None

    def run_attrs(self, rnn, task, key, overlaps, populations=None) -> dict:
        """Attributes measured on a finished run's overlaps and population records (e.g. the
        closure's quadrature error)."""
        return {}

    def epoch(self, rnn, task, state: State, batch, lr) -> tuple[State, jax.Array, jax.Array]:
        """One epoch: (new state, loss and overlaps of ``state``)."""
        loss, gradient = self.loss_and_gradient(rnn, task, state, batch)
        return self.update(rnn, state, gradient, lr), loss, self.overlaps(state)

    # ---------------------------------------------------------------- the loop's chunk
    @property
    def records_initial_state(self) -> bool:
        """True when :meth:`advance` records each state before its update (epochs + 1 records);
        False when it records after (the gradient flow: the loop records the start itself)."""
        return True

    def advance(self, rnn, task, carry, start, *, key, offset, lr, epochs, chunk):
        """Epochs start..start+chunk-1 of a run of ``epochs`` updates, compiled: records
        (loss, S, population records) of each state before its update; epochs >= ``epochs`` only record.

        ``carry`` is the run's :class:`TrainState`."""
        return _scan_chunk(
            carry, start, key=key, offset=offset, lr=lr, epochs=epochs, engine=self, rnn=rnn, task=task, chunk=chunk
        )


@functools.partial(jax.jit, static_argnames=("engine", "rnn", "task", "chunk"))
def _scan_chunk(carry, start, *, key, offset, lr, epochs, engine, rnn, task, chunk):
    batch_at = batch_source(rnn, task, key)

    def epoch(carry, k):
        state, schedule = carry

        def learn(_):
            loss, gradient = engine.loss_and_gradient(rnn, task, state, batch_at(offset + k))
            rate, new_schedule = engine.rate_schedule.update(lr, schedule, value=loss)
            new = TrainState(engine.update(rnn, state, gradient, rate), new_schedule)
            return jax.tree.map(lambda a, b: jnp.where(k < epochs, a, b), new, carry), loss

        carry, loss = _learn_unless_surplus(learn, carry, k, epochs)
        return carry, (loss, engine.overlaps(state), engine.population_records(state))

    return jax.lax.scan(epoch, carry, start + jnp.arange(chunk))
