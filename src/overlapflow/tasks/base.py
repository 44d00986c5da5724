"""What every task provides: batches (inputs, targets, mask) from a key, a loss, and its settings.

A task is a plain immutable value (a frozen dataclass) with no hidden state, so tasks can be
compared, stored and chained into curricula. Shapes are batch first, then time:

    inputs  (B, T, n_in)      targets, mask  (B, T, n_out)

A task class that experiment configs can name registers itself under its TOML ``kind``::

    @dataclasses.dataclass(frozen=True)
    class FlipFlop(AbstractTask, kind="flipflop"):
        n_bits: int = setting(1, doc="number of bits", ge=1)
        ...

and is then in :data:`TASKS`; its table in a config (``[phases.task]``, ``kind = "flipflop"``) has
its settings (:mod:`~overlapflow.tasks.fields`) as keys.
"""

from __future__ import annotations

import abc
import types
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from .fields import Setting, check_settings, field_settings

if TYPE_CHECKING:
    from ..model import LowRankRNN

LOSSES = ("sum_sq_dt", "mse", "masked_mse")

_TASKS: dict[str, type[AbstractTask]] = {}
#: The tasks experiment configs can name: TOML kind -> task class (read-only; a task class joins it
#: with ``class MyTask(AbstractTask, kind="my_task")``).
TASKS = types.MappingProxyType(_TASKS)


class Batch(NamedTuple):
    """One batch of trials: inputs (B, T, n_in), targets (B, T, n_out), mask (B, T, n_out)."""

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array


def loss_value(kind: str, outputs: jax.Array, batch: Batch, dt: float) -> jax.Array:
    r"""The scalar loss of outputs (B, T, n_out) against a batch.

    - ``"sum_sq_dt"``: (1/B) sum_{b,t,o} dt mask (y - y*)^2  (the filter tasks; B = 1 gives
      dt sum_t (y_t - y*_t)^2).
    - ``"mse"``: mean of (y - y*)^2 over every entry (the mask is ignored).
    - ``"masked_mse"``: sum mask (y - y*)^2 / sum mask.
    """
    err2 = (outputs - batch.targets) ** 2
    if kind == "sum_sq_dt":
        return dt * jnp.sum(batch.mask * err2) / outputs.shape[0]
    if kind == "mse":
        return jnp.mean(err2)
    if kind == "masked_mse":
        return jnp.sum(batch.mask * err2) / jnp.maximum(jnp.sum(batch.mask), 1.0)
    raise ValueError(f"loss = {kind!r}: unknown loss; allowed: {list(LOSSES)}")


class AbstractTask(abc.ABC):
    """Base of all tasks: ``sample(key, dt) -> Batch`` and ``loss(outputs, batch, dt)``.

    Subclasses are frozen dataclasses with fields ``loss_kind`` (one of ``LOSSES``) and the
    properties ``n_in``, ``n_out``. Deterministic tasks ignore the key. ``kind`` (a class keyword)
    registers the class in :data:`TASKS` under that TOML name; fields declared with
    :func:`~overlapflow.tasks.fields.setting` are checked on construction and are its TOML settings.
    """

    #: The TOML kind this class is registered under (None: not usable from experiment configs).
    kind: ClassVar[str | None] = None
    loss_kind: str

    def __init_subclass__(cls, kind: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.kind = kind
        if kind is None:
            return
        if not isinstance(kind, str) or not kind.isidentifier():
            raise ValueError(f"{cls.__name__}: kind = {kind!r}: must be a name of letters, digits and _")
        if kind in _TASKS:
            raise ValueError(f"{cls.__name__}: kind = {kind!r} is taken by {_TASKS[kind].__qualname__}")
        _TASKS[kind] = cls

    def __post_init__(self):
        """Check the settings against their types and bounds (lists given for tuples are stored as tuples)."""
        check_settings(self)

    @classmethod
    def config_fields(cls) -> tuple[Setting, ...]:
        """The keys of this task's TOML table besides ``kind``: its settings, unless overridden
        (a task whose config differs from its constructor overrides this and :meth:`from_config`)."""
        return field_settings(cls)

    @classmethod
    def from_config(cls, rnn: LowRankRNN, **values) -> AbstractTask:
        """The task from the validated values of its TOML table, for the student network ``rnn``
        (unused unless overridden: e.g. the teacher takes the student's n_in, n_out, dt and tau)."""
        return cls(**values)

    @property
    @abc.abstractmethod
    def n_in(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_out(self) -> int: ...

    @property
    def deterministic(self) -> bool:
        """True when ``sample`` ignores its key (every epoch sees the same batch)."""
        return False

    @abc.abstractmethod
    def sample(self, key: jax.Array, dt: float) -> Batch:
        """A batch of trials for an Euler step dt."""

    def loss(self, outputs: jax.Array, batch: Batch, dt: float) -> jax.Array:
        """Scalar loss of outputs (B, T, n_out); see :func:`loss_value`."""
        return loss_value(self.loss_kind, outputs, batch, dt)

    def describe(self) -> str:
        """One line naming the task and its settings (for History attributes)."""
        return repr(self)


def task_kinds() -> tuple[str, ...]:
    """The TOML kinds of the registered tasks, in registration order."""
    return tuple(_TASKS)


def n_steps(t_max: float, dt: float) -> int:
    """Number of Euler steps T = round(t_max / dt) in a trial of length t_max."""
    return int(round(t_max / dt))
