r"""One training loop for every engine: :func:`train` (one run) and :func:`train_batch` (K runs).

The loop runs an :class:`~overlapflow.engines.Engine`'s epochs inside ``jax.lax.scan`` in compiled
chunks (:meth:`Engine.advance`), checks every chunk for NaN/Inf, shows progress, and returns a
:class:`TrainResult`: the :mod:`~overlapflow.history` Dataset (entry k is the state after k
updates, k = 0..epochs), the final state (to continue the run: ``state=``), and the learning-rate
drop's flag. Batches come from ``jax.random.fold_in(key, k)`` at epoch k in every engine, so a
stochastic task shows all engines the same trials (paired batches).

The named entry points are thin: :func:`train_network`, :func:`train_overlaps`,
:func:`train_particles` and their batched forms pick an engine and return its History.

A non-finite loss or state stops the run: :class:`DivergenceError` carries the History up to the
last good epoch.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, ArrayLike, Float

from ._version import __version__
from .engines import Engine, FlowEngine, NetworkEngine, OverlapEngine, ParticleEngine, batch_source, initial_overlaps
from .engines.rows import RowState
from .flow import METHODS
from .history import make_history
from .mixture import Mixture
from .model import LowRankRNN
from .optimizers import MomentumState, Optimizer, as_optimizer
from .overlaps import Overlaps
from .particles import Particles
from .precision import float64
from .progress import progress_bar
from .tasks import AbstractTask

MAX_CHUNK = 512


class DivergenceError(FloatingPointError):
    """A run produced NaN or Inf. ``history`` holds every epoch up to the last good one."""

    def __init__(self, message: str, history):
        super().__init__(message)
        self.history = history


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run returns.

    Attributes:
        history: the History (loss (epoch,), overlaps (epoch, P, P); a leading ``run`` dimension
            for :func:`train_batch`).
        state: the engine's final state (a PyTree); ``train(..., state=result.state,
            epoch_offset=...)`` continues the run exactly.
        engine: the engine that ran.
        lr_dropped: whether the learning-rate drop has fired (a bool array, (K,) for a batch).
    """

    history: xr.Dataset
    state: Any
    engine: Engine
    lr_dropped: Any

    @property
    def final(self):
        """What the next phase starts from: theta (network), S (overlaps) or Particles."""
        return self.engine.carry(self.state)

    @property
    def overlaps(self) -> Float[Array, "*K P P"]:
        """The final overlaps S (P, P) (or (K, P, P))."""
        return self.engine.overlaps(self.state)

    @property
    def params(self) -> Float[Array, "*K N P"]:
        """The final theta (N, P) of a network or particle run (for particles, the whole cloud's rows,
        also where the engine ran its mirrored half; their weights: ``.final.weights``)."""
        if not isinstance(self.state, RowState):
            raise AttributeError(f"a {self.engine.kind} run has no parameters theta; use .overlaps")
        return self.final.theta if isinstance(self.engine, ParticleEngine) else self.state.theta


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


def _loop(engine, rnn, task, state, lr, epochs, key, key_axis, K, progress, chunk, epoch_offset, dropped):
    """The loop shared by :func:`train` (K None) and :func:`train_batch` (K runs, vmapped)."""
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

    label = engine.label(state) if K is None else f"{K} x {engine.label(state)}"
    carry = (state, dropped)
    if engine.records_initial_state:
        return _run_chunks(advance, carry, epochs + 1, chunk, label, progress, K is not None)
    # the gradient flow records the states after each chunk: the start is recorded here
    first = _first_record(engine, rnn, task, state, key, key_axis, K)
    carry, losses, overlaps, populations, bad = _run_chunks(
        advance, carry, epochs, chunk, label, progress, K is not None
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


def _finish(rnn, losses, overlaps, bad, attrs, what, populations=None) -> xr.Dataset:
    history = make_history(rnn, losses, overlaps, attrs, populations)
    if bad is not None:
        raise DivergenceError(
            f"{what}: the loss or the state became NaN/Inf at epoch {bad}; the History up to epoch "
            f"{bad - 1} is kept on this error (.history). Try a smaller lr (now {attrs['lr']}).",
            history,
        )
    return history


@float64
def train(
    engine: Engine,
    rnn: LowRankRNN,
    task: AbstractTask,
    start: Float[ArrayLike, "N P"] | Float[ArrayLike, "P P"] | Particles | None,
    lr: float,
    epochs: int,
    *,
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    state=None,
    epoch_offset: int = 0,
    lr_dropped: bool = False,
    populations: ArrayLike | None = None,
) -> TrainResult:
    """Train with any engine.

    Args:
        engine: an :class:`~overlapflow.engines.Engine` (e.g. ``NetworkEngine("adam")``,
            ``OverlapEngine(method="exact")``, ``ParticleEngine(nodes=6)``, ``FlowEngine()``).
        start: what the engine starts from (theta0 (N, P) for the network; S0 (P, P) or
            :class:`~overlapflow.Overlaps` for the overlap engines and particles; Particles).
        lr: overlap-scale learning rate eta > 0.
        epochs: number of updates (or the flow's final time).
        key: batches of epoch k come from ``fold_in(key, k)``; default ``jax.random.key(0)``. The
            same key in two engines shows them the same batches (paired).
        progress: show a progress bar.
        chunk: epochs per compiled call (default: all at once, or 1% of the run with a bar).
        state: continue from this state (a previous :attr:`TrainResult.state`) instead of ``start``.
        epoch_offset: epoch k uses the batch of epoch ``epoch_offset + k`` (and the flow starts at
            t = epoch_offset), to continue a run in segments with the batches of one run.
        lr_dropped: whether the learning-rate drop has already fired (to continue a run).
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
    state = _init(engine, rnn, start, populations) if state is None else state
    carry, losses, overlaps, records, bad = _loop(
        engine, rnn, task, state, lr, epochs, key, None, None, progress, chunk, epoch_offset, jnp.asarray(lr_dropped)
    )
    attrs = {**_base_attrs(rnn, task, lr, epochs, key), **engine.attrs(rnn, state)}
    populations = _populations(engine, state, records)
    attrs.update(engine.run_attrs(rnn, task, key, overlaps, populations))
    history = _finish(rnn, losses, overlaps, bad, attrs, f"train ({engine.kind})", populations)
    return TrainResult(history, carry[0], engine, carry[1])


@float64
def train_batch(
    engine: Engine,
    rnn: LowRankRNN,
    task: AbstractTask,
    starts: Float[ArrayLike, "K N P"] | Float[ArrayLike, "K P P"] | Particles | None,
    lr: float,
    epochs: int,
    *,
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    states=None,
    epoch_offset: int = 0,
    lr_dropped=None,
    populations: ArrayLike | None = None,
) -> TrainResult:
    """K runs of one engine, architecture and task in one compiled call (``jax.vmap``); each equals
    :func:`train` from its own start to round-off. A NaN/Inf in any run stops all of them.

    Args:
        starts: K starts stacked on a leading axis ((K, N, P) thetas or (K, P, P) overlaps).
        key: one key (every run sees the same batches) or K keys (K,) (run k draws from ``key[k]``).
        states: continue from these batched states (a previous :attr:`TrainResult.state`).
        lr_dropped: (K,) flags of the learning-rate drop (to continue runs; default: not yet).
        populations: the population of each row (N,), shared by the K networks (see :func:`train`).

    Returns:
        A :class:`TrainResult` whose History has a leading ``run`` dimension.
    """
    _check_run(rnn, task, lr, epochs, chunk)
    if states is None:
        one = [_init(engine, rnn, start, populations) for start in _unstack(engine, starts)]
        states = jax.tree.map(lambda *leaves: jnp.stack(leaves), *one)
    K = int(jax.tree.leaves(states)[0].shape[0])
    key, key_axis = _batch_keys(key, K)
    dropped = jnp.zeros(K, dtype=bool) if lr_dropped is None else jnp.asarray(lr_dropped, dtype=bool)
    if dropped.shape != (K,):
        raise ValueError(f"lr_dropped: shape {dropped.shape}; must be ({K},), one flag per run")
    carry, losses, overlaps, records, bad = _loop(
        engine, rnn, task, states, lr, epochs, key, key_axis, K, progress, chunk, epoch_offset, dropped
    )
    attrs = {**_base_attrs(rnn, task, lr, epochs, key), **engine.attrs(rnn, states), "runs": K}
    populations = _populations(engine, jax.tree.map(lambda a: a[0], states), records)
    history = _finish(rnn, losses, overlaps, bad, attrs, f"train_batch ({engine.kind})", populations)
    return TrainResult(history, carry[0], engine, carry[1])


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


def _populations(engine, state, records) -> dict | None:
    """The History's population variables: the records and the weights (K,), or None."""
    weights = engine.population_weights(state)
    return None if weights is None else {**records, "population_weights": np.asarray(weights)}


def _unstack(engine, starts):
    if isinstance(starts, Mixture):
        return [Mixture(*parts) for parts in zip(starts.weights, starts.means, starts.covariances, strict=True)]
    if isinstance(starts, Particles):
        return [Particles(t, w) for t, w in zip(starts.theta, starts.weights, strict=True)]
    starts = starts if isinstance(engine, NetworkEngine) else np.asarray(starts, dtype=np.float64)
    if np.ndim(starts) != 3:
        raise ValueError(f"starts: shape {np.shape(starts)}; must be K starts stacked on a leading axis (K, ., P)")
    return list(starts)


# ---------------------------------------------------------------------------- named entry points
def _deprecated(flag: str, instead: str) -> None:
    warnings.warn(
        f"{flag}=True is deprecated and will be removed in the next release; use {instead}, whose "
        "TrainResult has .history, .state, .params and .overlaps",
        DeprecationWarning,
        stacklevel=3,
    )


def overlap_engine(method: str = "exact", optimizer="sgd", rtol: float = 1e-10, atol: float = 1e-12) -> OverlapEngine:
    """The overlap-space engine of a method name: ``"flow"`` gives a :class:`FlowEngine`."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: unknown; allowed: {list(METHODS)}")
    optimizer = as_optimizer(optimizer)
    if method == "flow":
        return FlowEngine(optimizer, rtol=rtol, atol=atol)
    return OverlapEngine(optimizer, method)


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
    return_params: bool = False,
    return_state: bool = False,
    opt_state=None,
    epoch_offset: int = 0,
    populations: ArrayLike | None = None,
):
    """Train the full network theta (N, P) by an optax optimiser on the task's loss
    (:class:`~overlapflow.engines.NetworkEngine` through :func:`train`).

    The learning rate is given on the overlap scale: the network is trained with eta * N, so
    overlaps move O(1) per epoch at any N. Plain SGD is theta <- theta - eta N dL/dtheta
    = theta (I - 2 eta Gamma) for a linear network.

    Args:
        theta0: (N, P) initial connectivity; its dtype (float32 by default from ``rnn.init``, or
            float64) is the dtype of the whole run.
        lr: overlap-scale learning rate eta.
        epochs: number of updates.
        optimizer: ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, an
            :class:`~overlapflow.Optimizer` (momentum, weight decay, Adam constants; learning-rate
            conventions in :mod:`overlapflow.optimizers`), or any factory
            ``learning_rate -> optax.GradientTransformation`` (called with eta * N).
        key: batches of epoch k come from ``fold_in(key, k)``; default ``jax.random.key(0)``.
        progress: show a progress bar.
        chunk: epochs per compiled call.
        return_params, return_state: deprecated; use ``train(NetworkEngine(optimizer), ...)``.
        opt_state: optimiser state to continue from (default: a fresh one).
        epoch_offset: this run's epoch k uses the batch of epoch ``epoch_offset + k``.
        populations: the population of each neuron (N,), integers 0..K-1: the History then also
            records each population's mean and overlaps (see :func:`train`).

    Returns:
        History with ``loss`` (epochs+1,) and ``overlaps`` (epochs+1, P, P) = theta^T theta / N.
    """
    engine = NetworkEngine(optimizer)
    state = None
    if opt_state is not None:
        state = engine.init(rnn, theta0, populations) if populations is not None else engine.init(rnn, theta0)
        state = dataclasses.replace(state, opt_state=opt_state)
    result = train(
        engine,
        rnn,
        task,
        theta0,
        lr,
        epochs,
        key=key,
        progress=progress,
        chunk=chunk,
        state=state,
        epoch_offset=epoch_offset,
        populations=populations,
    )
    if return_state:
        _deprecated("return_state", "overlapflow.train(NetworkEngine(optimizer), ...)")
        return result.history, (result.state.theta, result.state.opt_state)
    if return_params:
        _deprecated("return_params", "overlapflow.train(NetworkEngine(optimizer), ...)")
        return result.history, result.params
    return result.history


def train_overlaps(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0: Float[ArrayLike, "P P"] | Overlaps,
    lr: float,
    epochs: int,
    method: str = "exact",
    optimizer: str | Optimizer = "sgd",
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    return_state: bool = False,
    momentum_state: MomentumState | None = None,
    epoch_offset: int = 0,
):
    r"""Train in overlap space: S (P, P) follows the learning dynamics closed on overlaps
    (:class:`~overlapflow.engines.OverlapEngine` or, for ``method="flow"``,
    :class:`~overlapflow.engines.FlowEngine`, through :func:`train`).

    Methods: ``"exact"`` S <- (I - 2 eta Gamma) S (I - 2 eta Gamma) (full-network SGD for a linear
    network at any eta and N; the Gaussian closure for a nonlinear one); ``"euler"`` the paper's
    first-order step; ``"flow"`` the gradient flow (diffrax, ``rtol``/``atol``; a stochastic task
    is sampled once); ``"visible-only"`` naive descent on the visible overlaps.

    Optimisers: ``"sgd"``; weight decay (any method); ``"momentum"`` and ``"nesterov"`` with method
    ``"exact"``. ``"adam"`` is refused: it does not close in overlap space.

    Args:
        S0: initial overlaps, an :class:`~overlapflow.Overlaps` or a (P, P) symmetric PSD array; or
            populations, a :class:`~overlapflow.Mixture` (the mixture closure, methods ``"exact"`` and
            ``"euler"``; the History then records each population's mean and overlaps).
        lr: overlap-scale learning rate eta > 0.
        epochs: number of updates (or the flow's final time).
        key: batches of epoch k come from ``fold_in(key, k)``; default ``jax.random.key(0)``.
        return_state: deprecated; use ``train(overlap_engine(method, optimizer), ...)``.
        momentum_state: momentum state to continue from (its S replaces S0).
        epoch_offset: this run's epoch k uses the batch of epoch ``epoch_offset + k`` (and the flow
            starts at t = epoch_offset).

    Returns:
        History with ``loss`` (epochs+1,) and ``overlaps`` (epochs+1, P, P), in float64.
    """
    engine = overlap_engine(method, optimizer, rtol, atol)
    result = train(
        engine,
        rnn,
        task,
        S0,
        lr,
        epochs,
        key=key,
        progress=progress,
        chunk=chunk,
        state=momentum_state,
        epoch_offset=epoch_offset,
    )
    if return_state:
        _deprecated("return_state", "overlapflow.train(overlap_engine(method, optimizer), ...)")
        return result.history, result.state
    return result.history


def train_particles(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0: Float[ArrayLike, "P P"] | Overlaps | Particles,
    lr: float,
    epochs: int,
    rule: str = "split",
    nodes: int = 5,
    n: int = 2**14,
    optimizer: str | Optimizer = "sgd",
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
    return_particles: bool = False,
    right_nodes: int = 3,
):
    """Learning in the N -> infinity limit, without the Gaussian closure
    (:class:`~overlapflow.engines.ParticleEngine` through :func:`train`).

    Args:
        S0: initial overlaps (P, P) (rows start as N(0, S0)), a :class:`~overlapflow.Mixture` (one
            cloud per component), or ready :class:`Particles`.
        lr: overlap-scale learning rate eta (each particle moves by eta dL/dtheta_p / w_p).
        rule: the quadrature rule: ``"split"`` (default, 5 x 3 nodes: the cheapest measured within 1e-6
            of a fine grid on the paper's flip-flop before learning and 3e-3 after it), ``"gauss-hermite"``,
            ``"smolyak"`` or ``"qmc"`` (:mod:`overlapflow.particles`; :class:`~overlapflow.engines.ParticleEngine`).
        nodes: Gauss-Hermite nodes per direction (split: inside phi).
        right_nodes: split: nodes per direction outside phi.
        n: number of QMC particles.
        optimizer: SGD-type (Adam is refused: its per-coordinate scale has no N -> infinity limit).
        key: batches of epoch k from ``fold_in(key, k)``, as in the other engines (paired batches).
        return_particles: deprecated; use ``train(ParticleEngine(...), ...).final``.

    Returns:
        History (overlaps = second moments of the particles).
    """
    engine = ParticleEngine(as_optimizer(optimizer), rule, nodes, n, right_nodes=right_nodes)
    result = train(engine, rnn, task, S0, lr, epochs, key=key, progress=progress, chunk=chunk)
    if return_particles:
        _deprecated("return_particles", "overlapflow.train(ParticleEngine(...), ...)")
        return result.history, result.final
    return result.history


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
    lr_dropped=None,
    return_state: bool = False,
):
    """K overlap-space runs in one compiled call (:func:`train_batch` with an overlap engine).

    Args:
        S0s: (K, P, P) initial overlaps, each symmetric positive semi-definite.
        key: one key (every run sees the same batches) or K keys (K,).
        epoch_offset, lr_dropped: to continue runs in segments (see :func:`train_batch`).
        return_state: deprecated; use ``train_batch(overlap_engine(method, optimizer), ...)``.

    Returns:
        History with a leading ``run`` dimension: ``loss`` (run, epoch), ``overlaps`` (run, epoch, row, col).
    """
    if method not in ("exact", "euler", "visible-only"):
        raise ValueError(f"method = {method!r}: train_overlaps_batch runs 'exact', 'euler' or 'visible-only'")
    P = rnn.n_vectors
    S0s = np.asarray(S0s, dtype=np.float64)
    if S0s.ndim != 3 or S0s.shape[1:] != (P, P):
        raise ValueError(f"S0s: shape {S0s.shape}; must be (K, {P}, {P}) for this network")
    S0s = np.stack([initial_overlaps(rnn, S, f"S0s[{k}]") for k, S in enumerate(S0s)])
    result = train_batch(
        overlap_engine(method, optimizer),
        rnn,
        task,
        S0s,
        lr,
        epochs,
        key=key,
        progress=progress,
        chunk=chunk,
        epoch_offset=epoch_offset,
        lr_dropped=lr_dropped,
    )
    if return_state:
        _deprecated("return_state", "overlapflow.train_batch(overlap_engine(method, optimizer), ...)")
        return result.history, (result.state, result.lr_dropped)
    return result.history


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
):
    """K full networks of the same size trained in one compiled call (:func:`train_batch` with a
    :class:`~overlapflow.engines.NetworkEngine`): seeds, initial overlaps, or both; any optax
    optimiser including Adam. Each run agrees with :func:`train_network` to round-off.

    Args:
        thetas0: (K, N, P) initial connectivities; their dtype is the run's dtype.
        key: one key (every network sees the same batches) or K keys (K,), one per network.

    Returns:
        History with a leading ``run`` dimension: ``loss`` (run, epoch), ``overlaps`` (run, epoch, row, col).
    """
    thetas0 = jnp.asarray(thetas0)
    if thetas0.ndim != 3 or thetas0.shape[2] != rnn.n_vectors or not jnp.issubdtype(thetas0.dtype, jnp.floating):
        raise ValueError(
            f"thetas0: shape {thetas0.shape}, dtype {thetas0.dtype}; "
            f"must be a float (K, N, P) array with P = {rnn.n_vectors}"
        )
    engine = NetworkEngine(optimizer)
    return train_batch(engine, rnn, task, thetas0, lr, epochs, key=key, progress=progress, chunk=chunk).history
