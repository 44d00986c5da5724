r"""One training loop for every engine: :func:`train` (one run) and :func:`train_batch` (K runs).

The loop runs an :class:`~overlapflow.engines.Engine`'s epochs inside ``jax.lax.scan`` in compiled
chunks (:meth:`Engine.advance`), checks every chunk for NaN/Inf, shows progress, and returns a
:class:`TrainResult`: the records (numpy :class:`Records`; entry k is the state after k updates,
k = 0..epochs), the :mod:`~overlapflow.history` Dataset built from them on first use, and the final
:class:`~overlapflow.engines.TrainState` (the engine's state and the learning-rate schedule's; to
continue the run: ``state=``). Batches come from
``jax.random.fold_in(key, k)`` at epoch k in every engine, so a stochastic task shows all engines
the same trials (paired batches).

Example:
    >>> import jax
    >>> import overlapflow as of
    >>> rnn = of.LowRankRNN(rank=1, n_in=1, n_out=1, phi="linear", dt=0.1)
    >>> task = of.tasks.ExponentialFilter(c=0.2, a=1.0, t_max=2.0)
    >>> theta = rnn.init(jax.random.key(0), N=200)
    >>> network = of.train(of.NetworkEngine("sgd"), rnn, task, theta, lr=1e-2, epochs=5)
    >>> S0 = of.Overlaps.from_params(rnn, theta)
    >>> theory = of.train(of.OverlapEngine(step=of.ExactStep()), rnn, task, S0, lr=1e-2, epochs=5)
    >>> more = of.train(of.OverlapEngine(), rnn, task, None, lr=1e-2, epochs=5, state=theory.state, epoch_offset=5)
    >>> float(abs(network.history.loss - theory.history.loss).max()) < 1e-5
    True

:func:`train_network`, :func:`train_overlaps`, :func:`train_particles` and their batched forms are
deprecated aliases (one release): each picks an engine, calls :func:`train` and returns the History.

A non-finite loss or state stops the run: :class:`DivergenceError` carries the History up to the
last good epoch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, ArrayLike, Float

from ._version import __version__
from .engines import (
    Engine,
    NetworkEngine,
    ParticleEngine,
    TrainState,
    batch_source,
    overlap_engine,
)
from .engines.rows import RowState
from .history import make_history
from .mixture import Mixture
from .model import LowRankRNN
from .optimizers import Optimizer, as_optimizer
from .overlaps import Overlaps
from .particles import Particles
from .precision import float64
from .progress import progress_bar
from .tasks import AbstractTask

MAX_CHUNK = 512


class DivergenceError(FloatingPointError):
    """A run produced NaN or Inf. ``history`` holds every epoch up to the last good one (``records``
    and ``attrs``: the same as :class:`Records` and the History's attributes, where a run made them)."""

    def __init__(self, message: str, history, records=None, attrs=None):
        super().__init__(message)
        self.history, self.records, self.attrs = history, records, attrs


class Records(NamedTuple):
    """A run's records as numpy arrays, epoch k the state after k updates: ``loss`` (epoch,),
    ``overlaps`` (epoch, P, P) and the ``populations`` records (:func:`~overlapflow.history.make_history`)
    or None; a batch of runs has a leading run axis."""

    loss: np.ndarray
    overlaps: np.ndarray
    populations: dict | None


@dataclasses.dataclass(frozen=True, eq=False)
class TrainResult:
    """What a run returns.

    Attributes:
        records: the :class:`Records` (numpy), what :attr:`history` is built from.
        attrs: the History's attributes (settings, versions, the engine's).
        rnn: the architecture.
        state: the final :class:`~overlapflow.engines.TrainState` (the engine's state and the
            learning-rate schedule's, a PyTree); ``train(..., state=result.state, epoch_offset=...)``
            continues the run exactly.
        engine: the engine that ran.
    """

    records: Records
    attrs: dict
    rnn: LowRankRNN
    state: TrainState
    engine: Engine

    @functools.cached_property
    def history(self) -> xr.Dataset:
        """The History (loss (epoch,), overlaps (epoch, P, P); a leading ``run`` dimension for
        :func:`train_batch`), built on first use."""
        return make_history(self.rnn, self.records.loss, self.records.overlaps, self.attrs, self.records.populations)

    @property
    def final(self):
        """What the next phase starts from: theta (network), S (overlaps), a Mixture or Particles."""
        return self.engine.carry(self.state.engine)

    @property
    def overlaps(self) -> Float[Array, "*K P P"]:
        """The final overlaps S (P, P) (or (K, P, P))."""
        return self.engine.overlaps(self.state.engine)

    @property
    def params(self) -> Float[Array, "*K N P"]:
        """The final theta (N, P) of a network or particle run (for particles, the whole cloud's rows,
        also where the engine ran its mirrored half; their weights: ``.final.weights``)."""
        if not isinstance(self.state.engine, RowState):
            raise AttributeError(f"a {self.engine.kind} run has no parameters theta; use .overlaps")
        return self.final.theta if isinstance(self.engine, ParticleEngine) else self.state.engine.theta


# ---------------------------------------------------------------------------- checks
def _check_run(rnn, task, lr, epochs, chunk):
    if not isinstance(rnn, LowRankRNN):
        raise TypeError(f"rnn = {rnn!r}: must be an overlapflow.LowRankRNN")
    if not isinstance(task, AbstractTask):
        raise TypeError(f"task = {task!r}: must be an overlapflow task (overlapflow.tasks.*)")
    if task.n_in != rnn.n_in or task.n_out != rnn.n_out:
        raise ValueError(
            f"task has n_in = {task.n_in}, n_out = {task.n_out} but the network has "
            f"n_in = {rnn.n_in}, n_out = {rnn.n_out}; they must match"
        )
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr = {lr!r}: must be a positive finite number (the overlap-scale rate eta)")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs = {epochs!r}: must be an integer >= 0")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk = {chunk!r}: must be a positive integer (epochs per compiled call) or None")


def _batch_keys(key, K: int):
    """(key, in_axis) for K runs: one key shared by all runs (paired batches), or K keys (K,)."""
    key = jax.random.key(0) if key is None else key
    if key.ndim == 0:
        return key, None
    if key.shape != (K,):
        raise ValueError(
            f"key: shape {key.shape}; must be one key (every run sees the same batches) or ({K},) keys, one per run"
        )
    return key, 0


# ---------------------------------------------------------------------------- the chunked loop
def _run_chunks(advance, carry, n_records: int, chunk: int, description: str, progress: bool, batched: bool):
    """Call ``advance(carry, start) -> (carry, (losses (chunk, ...), overlaps (chunk, ..., P, P),
    population records {name: (chunk, ...)}))`` until ``n_records`` records exist, checking each chunk
    for NaN/Inf (``...``: the runs of a batch, when ``batched``; records come back epoch-first, and
    are returned run-first).

    Returns (carry, losses, overlaps, populations, bad) where ``bad`` is the index of the first
    non-finite record (the records then stop before it) or None."""
    records, bad = [], None
    with progress_bar(progress, description, n_records) as update:
        for start in range(0, n_records, chunk):
            carry, record = advance(carry, start)
            take = min(chunk, n_records - start)
            loss, S, populations = _head(record, take)
            finite = np.isfinite(loss.reshape(take, -1)).all(1) & np.isfinite(S.reshape(take, -1)).all(1)
            if not finite.all():
                first = int(np.argmin(finite))
                records.append(_head((loss, S, populations), first))
                bad = start + first
                break
            records.append((loss, S, populations))
            update(take, float(np.mean(loss[-1])))
    loss, S, populations = jax.tree.map(lambda *parts: np.concatenate(parts), *records)
    if batched:
        loss, S, populations = jax.tree.map(lambda a: np.swapaxes(a, 0, 1), (loss, S, populations))
    return carry, loss, S, populations, bad


def _head(records, n: int):
    """The first n entries of every array of ``records`` (a PyTree), as numpy arrays."""
    return jax.tree.map(lambda a: np.asarray(a)[:n], records)


def _default_chunk(n_records: int, progress: bool, chunk: int | None) -> int:
    """Epochs per compiled call: the next power of two above the run (or 1% of it with a progress
    bar), at most 512. Runs of different lengths then share a few compiled programs; the surplus
    epochs of the last chunk are skipped and their records discarded."""
    if chunk is not None:
        return chunk
    wanted = max(1, math.ceil(n_records / 100)) if progress else max(1, n_records)
    return min(MAX_CHUNK, 1 << (wanted - 1).bit_length())


def _base_attrs(rnn, task, lr, epochs, key) -> dict:
    return {
        "lr": float(lr),
        "epochs": int(epochs),
        "task": task.describe(),
        "key": str(np.asarray(jax.random.key_data(key)).tolist()),
        "overlapflow_version": __version__,
        "jax_version": jax.__version__,
    }


def _loop(engine, rnn, task, state, lr, epochs, key, key_axis, K, progress, chunk, epoch_offset):
    """The loop shared by :func:`train` (K None) and :func:`train_batch` (K runs, vmapped) from the
    :class:`TrainState` ``state``; returns (final TrainState, losses, overlaps, population records, bad)."""
    chunk = _default_chunk(epochs + 1, progress, chunk) if engine.records_initial_state else (chunk or 100)

    def advance_one(carry, start, key):
        return engine.advance(rnn, task, carry, start, key=key, offset=epoch_offset, lr=lr, epochs=epochs, chunk=chunk)

    if K is None:
        advance = lambda carry, start: advance_one(carry, start, key)
    else:
        runs = jax.vmap(advance_one, in_axes=(0, None, key_axis))

        def advance(carry, start):
            carry, records = runs(carry, start, key)
            return carry, jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), records)  # records epoch-first

    label = engine.label(state.engine) if K is None else f"{K} x {engine.label(state.engine)}"
    if engine.records_initial_state:
        return _run_chunks(advance, state, epochs + 1, chunk, label, progress, K is not None)
    # the gradient flow records the states after each chunk: the start is recorded here
    first = _first_record(engine, rnn, task, state.engine, key, key_axis, K)
    carry, losses, overlaps, populations, bad = _run_chunks(
        advance, state, epochs, chunk, label, progress, K is not None
    )
    axis = 0 if K is None else 1
    losses = np.concatenate([np.expand_dims(first[0], axis), losses], axis=axis)
    overlaps = np.concatenate([np.expand_dims(first[1], axis), overlaps], axis=axis)
    return carry, losses, overlaps, populations, None if bad is None else bad + 1


def _first_record(engine, rnn, task, state, key, key_axis, K):
    """(loss, S) of the state at the start, on the batch of epoch 0."""

    def one(state, key):
        return engine.loss(rnn, task, state, batch_source(rnn, task, key)(0)), engine.overlaps(state)

    if K is None:
        loss, S = one(state, key)
    else:
        loss, S = jax.vmap(one, in_axes=(0, key_axis))(state, key)
    return np.asarray(loss), np.asarray(S)


def _finish(rnn, records: Records, bad, attrs, what) -> Records:
    if bad is not None:
        raise DivergenceError(
            f"{what}: the loss or the state became NaN/Inf at epoch {bad}; the History up to epoch "
            f"{bad - 1} is kept on this error (.history). Try a smaller lr (now {attrs['lr']}).",
            make_history(rnn, records.loss, records.overlaps, attrs, records.populations),
            records,
            attrs,
        )
    return records


@float64
def train(
    engine: Engine,
    rnn: LowRankRNN,
    task: AbstractTask,
    start: Float[ArrayLike, "N P"] | Float[ArrayLike, "P P"] | Overlaps | Mixture | Particles | None,
    lr: float,
    epochs: int,
    *,
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    state=None,
    epoch_offset: int = 0,
    populations: ArrayLike | None = None,
) -> TrainResult:
    """Train with any engine (example: the module docstring).

    Args:
        engine: an :class:`~overlapflow.engines.Engine` (e.g. ``NetworkEngine("adam")``,
            ``OverlapEngine(step=EulerStep())``, ``ParticleEngine(nodes=6)``, ``FlowEngine()``).
        start: what the engine starts from (theta (N, P) for the network; S (P, P) or
            :class:`~overlapflow.Overlaps` for the overlap engines and particles; a
            :class:`~overlapflow.Mixture`; Particles). None when ``state`` is given.
        lr: overlap-scale learning rate eta > 0.
        epochs: number of updates (or the flow's final time).
        key: batches of epoch k come from ``fold_in(key, k)``; default ``jax.random.key(0)``. The
            same key in two engines shows them the same batches (paired).
        progress: show a progress bar.
        chunk: epochs per compiled call (default: all at once, or 1% of the run with a bar).
        state: continue from this state instead of ``start``: a previous :attr:`TrainResult.state`
            (a :class:`~overlapflow.engines.TrainState`), or an engine state (a fresh learning-rate
            schedule).
        epoch_offset: epoch k uses the batch of epoch ``epoch_offset + k`` (and the flow starts at
            t = epoch_offset), to continue a run in segments with the batches of one run.
        populations: the population of each row (N,) (integers 0..K-1) for a network or ready
            Particles; the History then records each population's mean and overlaps. (The overlap
            engine and particles take populations from a :class:`~overlapflow.Mixture` start.)

    Returns:
        A :class:`TrainResult`; its History has ``loss`` (epochs+1,) and ``overlaps`` (epochs+1, P, P),
        and with populations ``population_means`` (epoch, population, row),
        ``population_overlaps`` (epoch, population, row, col) and ``population_weights`` (population).
    """
    _check_run(rnn, task, lr, epochs, chunk)
    key = jax.random.key(0) if key is None else key
    state = _train_state(engine, _init(engine, rnn, start, populations) if state is None else state)
    final, losses, overlaps, records, bad = _loop(
        engine, rnn, task, state, lr, epochs, key, None, None, progress, chunk, epoch_offset
    )
    attrs = {**_base_attrs(rnn, task, lr, epochs, key), **engine.attrs(rnn, state.engine)}
    populations = _populations(engine, state.engine, records)
    attrs.update(engine.run_attrs(rnn, task, key, overlaps, populations))
    records = _finish(rnn, Records(losses, overlaps, populations), bad, attrs, f"train ({engine.kind})")
    return TrainResult(records, attrs, rnn, final, engine)


@float64
def train_batch(
    engine: Engine,
    rnn: LowRankRNN,
    task: AbstractTask,
    start: Float[ArrayLike, "K N P"] | Float[ArrayLike, "K P P"] | Mixture | Particles | None,
    lr: float,
    epochs: int,
    *,
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    state=None,
    epoch_offset: int = 0,
    populations: ArrayLike | None = None,
) -> TrainResult:
    """K runs of one engine, architecture and task in one compiled call (``jax.vmap``); each equals
    :func:`train` from its own start to round-off. A NaN/Inf in any run stops all of them.

    Args:
        start: K starts stacked on a leading axis ((K, N, P) thetas, (K, P, P) overlaps, or a
            Mixture or Particles whose arrays have a leading K).
        key: one key (every run sees the same batches) or K keys (K,) (run k draws from ``key[k]``).
        state: continue from these batched states (a previous :attr:`TrainResult.state`, or
            batched engine states with a fresh learning-rate schedule).
        populations: the population of each row (N,), shared by the K networks (see :func:`train`).

    Returns:
        A :class:`TrainResult` whose History has a leading ``run`` dimension.
    """
    _check_run(rnn, task, lr, epochs, chunk)
    if state is None:
        one = [
            _train_state(engine, _init_one(engine, rnn, s, populations, k))
            for k, s in enumerate(_unstack(engine, start))
        ]
        state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *one)
    elif not isinstance(state, TrainState):
        K = int(jax.tree.leaves(state)[0].shape[0])
        schedule = engine.rate_schedule.init(None)
        state = TrainState(state, jax.tree.map(lambda a: jnp.broadcast_to(a, (K, *jnp.shape(a))), schedule))
    K = int(jax.tree.leaves(state.engine)[0].shape[0])
    key, key_axis = _batch_keys(key, K)
    final, losses, overlaps, records, bad = _loop(
        engine, rnn, task, state, lr, epochs, key, key_axis, K, progress, chunk, epoch_offset
    )
    attrs = {**_base_attrs(rnn, task, lr, epochs, key), **engine.attrs(rnn, state.engine), "runs": K}
    populations = _populations(engine, jax.tree.map(lambda a: a[0], state.engine), records)
    records = _finish(rnn, Records(losses, overlaps, populations), bad, attrs, f"train_batch ({engine.kind})")
    return TrainResult(records, attrs, rnn, final, engine)


def _train_state(engine, state) -> TrainState:
    """``state`` as a :class:`TrainState` (an engine state gets a fresh learning-rate schedule)."""
    return state if isinstance(state, TrainState) else engine.train_state(state)


def _init(engine, rnn, start, populations):
    """``engine.init``, with population labels for the engines on rows (networks, particles)."""
    if populations is None:
        return engine.init(rnn, start)
    if not isinstance(engine, (NetworkEngine, ParticleEngine)):
        raise ValueError(
            f"populations: the {engine.kind} engine takes its populations from its start; "
            "give it an overlapflow.Mixture (e.g. Mixture.from_params(rnn, theta, labels))"
        )
    return engine.init(rnn, start, populations=populations)


def _init_one(engine, rnn, start, populations, k: int):
    """:func:`_init` of run k of a batch; its errors name ``start[k]``."""
    try:
        return _init(engine, rnn, start, populations)
    except ValueError as error:
        message = str(error)
        raise ValueError(
            message.replace("start", f"start[{k}]", 1) if message.startswith("start") else message
        ) from None


def _populations(engine, state, records) -> dict | None:
    """The History's population variables: the records and the weights (K,), or None."""
    weights = engine.population_weights(state)
    return None if weights is None else {**records, "population_weights": np.asarray(weights)}


def _unstack(engine, start):
    if isinstance(start, Mixture):
        return [Mixture(*parts) for parts in zip(start.weights, start.means, start.covariances, strict=True)]
    if isinstance(start, Particles):
        return [Particles(t, w) for t, w in zip(start.theta, start.weights, strict=True)]
    start = start if isinstance(engine, NetworkEngine) else np.asarray(start, dtype=np.float64)
    if np.ndim(start) != 3:
        raise ValueError(f"start: shape {np.shape(start)}; must be K starts stacked on a leading axis (K, ., P)")
    return list(start)


# ---------------------------------------------------------------------------- deprecated aliases
def _deprecated(name: str, instead: str) -> None:
    warnings.warn(
        f"overlapflow.{name} is deprecated and will be removed in the next release; use {instead} "
        "(its TrainResult has .history, .state, .params and .overlaps)",
        DeprecationWarning,
        stacklevel=3,
    )


def train_network(
    rnn: LowRankRNN,
    task: AbstractTask,
    theta0: Float[ArrayLike, "N P"],
    lr: float,
    epochs: int,
    optimizer: str | Optimizer | Callable = "sgd",
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    epoch_offset: int = 0,
    populations: ArrayLike | None = None,
) -> xr.Dataset:
    """Deprecated: ``train(NetworkEngine(optimizer), rnn, task, theta0, lr, epochs, ...).history``."""
    _deprecated("train_network", "overlapflow.train(overlapflow.NetworkEngine(optimizer), rnn, task, theta, ...)")
    engine = NetworkEngine(optimizer)
    return train(
        engine, rnn, task, theta0, lr, epochs, key=key, progress=progress, chunk=chunk,
        epoch_offset=epoch_offset, populations=populations,
    ).history  # fmt: skip


def train_overlaps(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0: Float[ArrayLike, "P P"] | Overlaps | Mixture,
    lr: float,
    epochs: int,
    method: str = "exact",
    optimizer: str | Optimizer = "sgd",
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    epoch_offset: int = 0,
) -> xr.Dataset:
    """Deprecated: ``train(OverlapEngine(optimizer, step=method), rnn, task, S0, lr, epochs, ...).history``
    (``FlowEngine(optimizer)`` for ``method="flow"``)."""
    _deprecated("train_overlaps", "overlapflow.train(overlapflow.OverlapEngine(optimizer, step=...), ...)")
    engine = overlap_engine(method, optimizer)
    return train(
        engine, rnn, task, S0, lr, epochs, key=key, progress=progress, chunk=chunk, epoch_offset=epoch_offset
    ).history


def train_particles(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0: Float[ArrayLike, "P P"] | Overlaps | Mixture | Particles,
    lr: float,
    epochs: int,
    rule: str = "split",
    nodes: int = 5,
    n: int = 2**14,
    optimizer: str | Optimizer = "sgd",
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    right_nodes: int = 3,
) -> xr.Dataset:
    """Deprecated: ``train(ParticleEngine(optimizer, rule, nodes, n, right_nodes=right_nodes), rnn, task, S0,
    ...).history``."""
    _deprecated("train_particles", "overlapflow.train(overlapflow.ParticleEngine(...), rnn, task, S, ...)")
    engine = ParticleEngine(as_optimizer(optimizer), rule, nodes, n, right_nodes=right_nodes)
    return train(engine, rnn, task, S0, lr, epochs, key=key, progress=progress, chunk=chunk).history


def train_overlaps_batch(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0s: Float[ArrayLike, "K P P"],
    lr: float,
    epochs: int,
    method: str = "exact",
    optimizer: str | Optimizer = "sgd",
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    epoch_offset: int = 0,
) -> xr.Dataset:
    """Deprecated: ``train_batch(OverlapEngine(optimizer, step=method), rnn, task, S0s, lr, epochs, ...).history``."""
    _deprecated("train_overlaps_batch", "overlapflow.train_batch(overlapflow.OverlapEngine(...), rnn, task, S, ...)")
    engine = overlap_engine(method, optimizer)
    return train_batch(
        engine, rnn, task, S0s, lr, epochs, key=key, progress=progress, chunk=chunk, epoch_offset=epoch_offset
    ).history


def train_network_batch(
    rnn: LowRankRNN,
    task: AbstractTask,
    thetas0: Float[ArrayLike, "K N P"],
    lr: float,
    epochs: int,
    optimizer: str | Optimizer | Callable = "sgd",
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
) -> xr.Dataset:
    """Deprecated: ``train_batch(NetworkEngine(optimizer), rnn, task, thetas0, lr, epochs, ...).history``."""
    _deprecated("train_network_batch", "overlapflow.train_batch(overlapflow.NetworkEngine(optimizer), ...)")
    engine = NetworkEngine(optimizer)
    return train_batch(engine, rnn, task, thetas0, lr, epochs, key=key, progress=progress, chunk=chunk).history
