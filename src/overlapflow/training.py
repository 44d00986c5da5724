r"""The two training loops: the full network (``train_network``) and overlap space (``train_overlaps``).

Both run epochs inside ``jax.lax.scan`` in compiled chunks, record the loss and the overlaps of
every state, and return the same :mod:`~overlapflow.history` Dataset: entry k is the state after
k updates, k = 0..epochs. Batches come from ``jax.random.fold_in(key, k)`` at epoch k in both
engines, so a stochastic task shows both engines the same trials (paired batches).

A non-finite loss or state stops the run: :class:`DivergenceError` carries the History up to the
last good epoch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import __version__
from .flow import METHODS, euler_step, exact_step, flow_velocity, symmetric_gradient, visible_only_step
from .history import make_history
from .meanfield import current_variance, latent_trajectory, meanfield_loss
from .model import LowRankRNN
from .network import gram, network_loss
from .optimizers import KINDS, MomentumState, Optimizer, as_optimizer, momentum_init, momentum_step
from .overlaps import Overlaps, check_gram, visible_mask
from .progress import progress_bar
from .tasks import AbstractTask


class DivergenceError(FloatingPointError):
    """A run produced NaN or Inf. ``history`` holds every epoch up to the last good one."""

    def __init__(self, message: str, history):
        super().__init__(message)
        self.history = history


# ---------------------------------------------------------------------------- validation
def _check_common(rnn, task, lr, epochs, chunk):
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


def _batch_source(rnn, task, key):
    """Epoch k -> batch: a constant for deterministic tasks, else sampled from fold_in(key, k)."""
    if task.deterministic:
        batch = task.sample(key, rnn.dt)
        return lambda k: batch
    return lambda k: task.sample(jax.random.fold_in(key, k), rnn.dt)


# ---------------------------------------------------------------------------- chunked runner
def _run_chunks(advance, state, n_records: int, chunk: int, description: str, progress: bool):
    """Call ``advance(state, start) -> (state, (losses (chunk, ...), overlaps (chunk, ..., P, P)))``
    until ``n_records`` records exist, checking each chunk for NaN/Inf (``...``: runs of a batch).

    Returns (state, losses, overlaps, bad) where ``bad`` is the index of the first non-finite
    record (losses/overlaps then stop before it) or None.
    """
    losses, overlaps = [], []
    with progress_bar(progress, description, n_records) as update:
        for start in range(0, n_records, chunk):
            state, (loss, S) = advance(state, start)
            take = min(chunk, n_records - start)
            loss, S = np.asarray(loss)[:take], np.asarray(S)[:take]
            finite = np.isfinite(loss.reshape(take, -1)).all(1) & np.isfinite(S.reshape(take, -1)).all(1)
            if not finite.all():
                first = int(np.argmin(finite))
                losses.append(loss[:first])
                overlaps.append(S[:first])
                return state, np.concatenate(losses), np.concatenate(overlaps), start + first
            losses.append(loss)
            overlaps.append(S)
            update(take, float(np.mean(loss[-1])))
    if not losses:
        return state, np.zeros(0), np.zeros((0,) + tuple(_overlap_shape(state))), None
    return state, np.concatenate(losses), np.concatenate(overlaps), None


def _overlap_shape(state):
    """(P, P) for any training state whose first leaf is S (P, P) or theta (n, P)."""
    P = jax.tree.leaves(state)[0].shape[-1]
    return (P, P)


def _learn_unless_surplus(learn, carry, k, epochs):
    """``learn(None) -> (carry, loss)`` for epoch k, except past a run's last record (``k > epochs``,
    in the last compiled chunk): there the record is discarded, so nothing is computed and the
    state stays as it is."""
    loss = jax.eval_shape(learn, None)[1]
    surplus = lambda _: (carry, jnp.zeros(loss.shape, loss.dtype))
    return jax.lax.cond(k <= epochs, learn, surplus, None)


def _lr_scale(dropped, loss, lr_drop):
    """Learning-rate factor of this epoch's update and the updated "dropped" flag.

    With ``lr_drop = (threshold, factor)``, the rate is divided by ``factor`` from the first epoch
    whose loss is below ``threshold`` on (the paper's A/B -> C schedule); None keeps it fixed."""
    if lr_drop is None:
        return 1.0, dropped
    threshold, factor = lr_drop
    dropped = dropped | (loss < threshold)
    return jnp.where(dropped, 1.0 / factor, 1.0), dropped


MAX_CHUNK = 512


def _default_chunk(n_records: int, progress: bool, chunk: int | None) -> int:
    """Epochs per compiled call: the next power of two above the run (or 1% of it with a progress
    bar), at most 512. Runs of different lengths then share a few compiled programs; the surplus
    epochs of the last chunk are skipped (:func:`_learn_unless_surplus`) and their records discarded."""
    if chunk is not None:
        return chunk
    wanted = max(1, math.ceil(n_records / 100)) if progress else max(1, n_records)
    return min(MAX_CHUNK, 1 << (wanted - 1).bit_length())


def _finish(rnn, task, losses, overlaps, bad, attrs, what):
    history = make_history(rnn, losses, overlaps, attrs)
    if bad is not None:
        raise DivergenceError(
            f"{what}: the loss or the state became NaN/Inf at epoch {bad}; the History up to epoch "
            f"{bad - 1} is kept on this error (.history). Try a smaller lr (now {attrs['lr']}).",
            history,
        )
    return history


def _gain_accuracy(rnn, task, key, overlaps) -> dict:
    """Largest Delta = k^T S[B, B] k visited (at up to 20 recorded states, on epoch 0's batch) and
    the quadrature gain's estimated error there (warns above 1e-6)."""
    picks = np.unique(np.linspace(0, len(overlaps) - 1, 20).astype(int))
    max_delta = float(_max_current_variance(jnp.asarray(overlaps[picks]), task.sample(key, rnn.dt).inputs, rnn=rnn))
    return {"max_delta": max_delta, "gain_error": rnn.nonlinearity.check_gain_accuracy(max_delta)}


@functools.partial(jax.jit, static_argnames=("rnn",))
def _max_current_variance(states, inputs, *, rnn):
    B = rnn.slices["B"]
    one = lambda S: jnp.max(current_variance(latent_trajectory(rnn, S, inputs), S[B, B]))
    return jnp.max(jax.vmap(one)(states))


def _base_attrs(rnn, task, lr, epochs, key) -> dict:
    return {
        "lr": float(lr),
        "epochs": int(epochs),
        "task": task.describe(),
        "key": str(np.asarray(jax.random.key_data(key)).tolist()),
        "overlapflow_version": __version__,
        "jax_version": jax.__version__,
    }


# ---------------------------------------------------------------------------- full network
def _lr_drop_of(optimizer):
    return as_optimizer(optimizer).lr_drop if isinstance(optimizer, (str, Optimizer)) else None


def _optimizer_label(optimizer) -> str:
    if isinstance(optimizer, (str, Optimizer)):
        return as_optimizer(optimizer).describe()
    return getattr(optimizer, "__name__", repr(optimizer))


@functools.lru_cache(maxsize=64)
def _resolve_optimizer(optimizer, lr: float, N: int) -> optax.GradientTransformation:
    """The optax transformation for an optimiser spec; cached so repeated runs reuse compiled code."""
    if isinstance(optimizer, (str, Optimizer)):
        return as_optimizer(optimizer).network_transformation(lr, N)
    if callable(optimizer):
        transformation = optimizer(lr * N)
        if not isinstance(transformation, optax.GradientTransformation):
            raise TypeError(
                f"optimizer factory returned {transformation!r}; it must return an optax GradientTransformation"
            )
        return transformation
    raise TypeError(
        f"optimizer = {optimizer!r}: must be one of {list(KINDS)}, an overlapflow.Optimizer "
        "or a callable lr -> optax transformation"
    )


@functools.partial(jax.jit, static_argnames=("rnn", "task", "transformation", "chunk", "lr_drop"))
def _rows_chunk(state, start, *, key, offset, epochs, weights, rnn, task, transformation, chunk, lr_drop):
    """Epochs start..start+chunk-1 of training the rows theta (n, P); records (loss, overlaps) of
    each state before its update. Epochs >= ``epochs`` only record (no update). The state is
    ((theta, optimiser state), the learning-rate "dropped" flag).

    With weights w (particles), each row's gradient is divided by n w_i: the transformation built
    for n rows at rate eta n then moves row i by eta dL/dtheta_i / w_i, the per-row update of a
    network of any size (the network itself is w = 1/n)."""
    batch_at = _batch_source(rnn, task, key)

    def epoch(carry, k):
        (theta, opt_state), dropped = carry

        def learn(_):
            loss_of = lambda th: network_loss(rnn, task, th, batch_at(offset + k), weights)
            loss, grad = jax.value_and_grad(loss_of)(theta)
            if weights is not None:
                grad = grad / (theta.shape[0] * weights[:, None])
            updates, new_opt = transformation.update(grad, opt_state, theta)
            scale, now_dropped = _lr_scale(dropped, loss, lr_drop)
            new = (optax.apply_updates(theta, jax.tree.map(lambda u: scale * u, updates)), new_opt)
            new = jax.tree.map(lambda a, b: jnp.where(k < epochs, a, b), new, carry[0])
            return (new, jnp.where(k < epochs, now_dropped, dropped)), loss

        carry, loss = _learn_unless_surplus(learn, carry, k, epochs)
        return carry, (loss, gram(theta, weights))

    return jax.lax.scan(epoch, state, start + jnp.arange(chunk))


def train_rows(
    rnn,
    task,
    theta0,
    weights,
    lr,
    epochs,
    optimizer,
    key,
    progress,
    chunk,
    attrs,
    label,
    opt_state=None,
    epoch_offset=0,
):
    """Shared loop of :func:`train_network` (weights None) and the particle engine.

    Returns (History, (final theta, final optimiser state))."""
    _check_common(rnn, task, lr, epochs, chunk)
    theta0 = jnp.asarray(theta0)
    if theta0.ndim != 2 or theta0.shape[1] != rnn.n_vectors or not jnp.issubdtype(theta0.dtype, jnp.floating):
        raise ValueError(
            f"theta0: shape {theta0.shape}, dtype {theta0.dtype}; must be a float (N, P) array with P = {rnn.n_vectors}"
        )
    n = theta0.shape[0]
    key = jax.random.key(0) if key is None else key
    transformation = _resolve_optimizer(optimizer, lr, n)
    lr_drop = _lr_drop_of(optimizer)
    chunk = _default_chunk(epochs + 1, progress, chunk)
    advance = functools.partial(
        _rows_chunk,
        key=key,
        offset=epoch_offset,
        epochs=epochs,
        weights=weights,
        rnn=rnn,
        task=task,
        transformation=transformation,
        chunk=chunk,
        lr_drop=lr_drop,
    )
    state = ((theta0, transformation.init(theta0) if opt_state is None else opt_state), jnp.asarray(False))
    (state, _), losses, overlaps, bad = _run_chunks(advance, state, epochs + 1, chunk, label, progress)
    attrs = {**_base_attrs(rnn, task, lr, epochs, key), **attrs}
    attrs.update(dtype=str(theta0.dtype), optimizer=_optimizer_label(optimizer))
    history = _finish(rnn, task, losses, overlaps, bad, attrs, label)
    return history, state


def train_network(
    rnn: LowRankRNN,
    task: AbstractTask,
    theta0,
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
):
    """Train the full network theta (N, P) by an optax optimiser on the task's loss.

    The learning rate is given on the overlap scale: the network is trained with eta * N, so
    overlaps move O(1) per epoch at any N. Plain SGD is theta <- theta - eta N dL/dtheta
    = theta (I - 2 eta Gamma) for a linear network.

    Args:
        theta0: (N, P) initial connectivity; its dtype (float32 by default from ``rnn.init``, or
            float64) is the dtype of the whole run.
        lr: overlap-scale learning rate eta > 0.
        epochs: number of updates.
        optimizer: ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, an
            :class:`~overlapflow.Optimizer` (momentum, weight decay, Adam constants; learning-rate
            conventions in :mod:`overlapflow.optimizers`), or any factory
            ``learning_rate -> optax.GradientTransformation`` (called with eta * N).
        key: batches of epoch k come from ``fold_in(key, k)``; default ``jax.random.key(0)``. The
            same key in ``train_overlaps`` shows both engines the same batches (paired); different
            keys give independent batches.
        progress: show a progress bar.
        chunk: epochs per compiled call (default: all at once, or 1% of the run with a bar).
        return_params: also return the trained theta: (History, theta).
        return_state: also return (theta, optimiser state), to continue the run later.
        opt_state: optimiser state to continue from (default: a fresh one).
        epoch_offset: this run's epoch k uses the batch of epoch ``epoch_offset + k`` (to continue
            a run in segments with the same batches as one uninterrupted run).

    Returns:
        History with ``loss`` (epochs+1,) and ``overlaps`` (epochs+1, P, P) = theta^T theta / N;
        with ``return_params`` or ``return_state``, a pair (History, theta or (theta, opt_state)).
    """
    N = getattr(theta0, "shape", (0,))[0]
    history, state = train_rows(
        rnn,
        task,
        theta0,
        None,
        lr,
        epochs,
        optimizer,
        key,
        progress,
        chunk,
        {"engine": "network", "N": int(N)},
        f"network N={N}",
        opt_state,
        epoch_offset,
    )
    if return_state:
        return history, state
    return (history, state[0]) if return_params else history


# ---------------------------------------------------------------------------- overlap space
@functools.partial(jax.jit, static_argnames=("rnn", "task", "method", "optimizer", "chunk"))
def _overlap_chunk(state, start, *, key, offset, lr, epochs, rnn, task, method, optimizer, chunk):
    """Epochs start..start+chunk-1 of overlap-space training; records (loss, S) of each state
    before its update. Epochs >= ``epochs`` only record (no update). The state is (S, or a
    :class:`MomentumState` for momentum optimisers; the learning-rate "dropped" flag)."""
    batch_at = _batch_source(rnn, task, key)
    mask = jnp.asarray(visible_mask(rnn))
    beta, decay = optimizer.beta, optimizer.weight_decay
    update = {
        "exact": exact_step,
        "euler": euler_step,
        "visible-only": lambda S, Gamma, lr: visible_only_step(S, Gamma, lr, mask),
    }[method]
    if isinstance(state[0], MomentumState):
        update = lambda state, Gamma, lr: momentum_step(state, Gamma, lr, beta, optimizer.kind == "nesterov")

    def epoch(carry, k):
        state, dropped = carry
        S = state.S if isinstance(state, MomentumState) else state

        def learn(_):
            loss, Gamma = symmetric_gradient(rnn, task, S, batch_at(offset + k))
            Gamma = Gamma + decay * jnp.eye(S.shape[0], dtype=S.dtype)
            scale, now_dropped = _lr_scale(dropped, loss, optimizer.lr_drop)
            new = jax.tree.map(lambda a, b: jnp.where(k < epochs, a, b), update(state, Gamma, lr * scale), state)
            return (new, jnp.where(k < epochs, now_dropped, dropped)), loss

        carry, loss = _learn_unless_surplus(learn, carry, k, epochs)
        return carry, (loss, S)

    return jax.lax.scan(epoch, state, start + jnp.arange(chunk))


def _initial_overlaps(rnn: LowRankRNN, S0, name: str) -> np.ndarray:
    """S0 (P, P) (an array or :class:`Overlaps`) checked as a Gram matrix of this network and
    symmetrised, in float64; errors name the argument ``name``."""
    S0 = np.asarray(S0.matrix if isinstance(S0, Overlaps) else S0, dtype=np.float64)
    if S0.shape != (rnn.n_vectors, rnn.n_vectors):
        raise ValueError(f"{name}: shape {S0.shape}; must be ({rnn.n_vectors}, {rnn.n_vectors}) for this network")
    check_gram(S0, name)
    return (S0 + S0.T) / 2


def _overlap_optimizer(optimizer, method: str) -> Optimizer:
    """The optimiser of an overlap-space run; refuses what does not close there with ``method``."""
    optimizer = as_optimizer(optimizer)
    if not optimizer.closes_in_overlap_space:
        raise ValueError(
            f"optimizer = {optimizer.kind!r}: Adam does not close in overlap space. It rescales each neuron's "
            "coordinate separately, so the update is not theta X for a P x P matrix X and the overlaps' "
            "future depends on more than S. Train the full network with train_network(..., optimizer='adam')."
        )
    if optimizer.lr_drop is not None and method == "flow":
        raise ValueError(
            "optimizer lr_drop_below with method = 'flow': the learning-rate drop is for discrete steps only"
        )
    if optimizer.beta and method != "exact":
        raise ValueError(
            f"optimizer = {optimizer.kind!r} with method = {method!r}: "
            "momentum is closed in overlap space for method 'exact' only"
        )
    return optimizer


def train_overlaps(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0,
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
    r"""Train in overlap space: S (P, P) follows the learning dynamics closed on overlaps.

    Gamma = sym(dl/dS) comes from autodiff of the reduced loss (:mod:`overlapflow.flow`); the method
    chooses the update:

    - ``"exact"``: S <- (I - 2 eta Gamma) S (I - 2 eta Gamma); identical to full-network SGD for a
      linear network at any eta and N (the Gaussian closure for a nonlinear one).
    - ``"euler"``: S <- S - 2 eta (S Gamma + Gamma S), the first-order step of the paper.
    - ``"flow"``: gradient flow dS/dt = -2 eta (S Gamma + Gamma S), integrated by diffrax (Tsit5,
      adaptive steps with ``rtol``/``atol``) and read at integer t (epochs). A stochastic task is
      sampled once (epoch 0's batch) for the whole flow.
    - ``"visible-only"``: naive descent sigma <- sigma - eta dl/dsigma on the visible overlaps alone.

    Optimisers (:mod:`overlapflow.optimizers`): ``"sgd"``; weight decay (any method: Gamma <- Gamma
    + lambda I); heavy-ball ``"momentum"`` and ``"nesterov"`` with method ``"exact"``, which then
    tracks the Gram matrix of [theta | velocity] and equals full-network momentum for a linear
    network. ``"adam"`` is refused: it does not close in overlap space.

    Args:
        S0: initial overlaps, an :class:`~overlapflow.Overlaps` or a (P, P) symmetric PSD array.
        lr: overlap-scale learning rate eta > 0.
        epochs: number of updates (or the flow's final time).
        key: batches of epoch k come from ``fold_in(key, k)``; default ``jax.random.key(0)``.
        return_state: also return the final state (S, or a :class:`MomentumState` for momentum).
        momentum_state: momentum state to continue from (its S replaces S0).
        epoch_offset: this run's epoch k uses the batch of epoch ``epoch_offset + k`` (and the flow
            starts at t = epoch_offset), to continue a run in segments.

    Returns:
        History with ``loss`` (epochs+1,) and ``overlaps`` (epochs+1, P, P), in float64; with
        ``return_state``, the pair (History, final state).
    """
    _check_common(rnn, task, lr, epochs, chunk)
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: unknown; allowed: {list(METHODS)}")
    optimizer = _overlap_optimizer(optimizer, method)
    if momentum_state is not None:
        S0 = momentum_state.S
    S0 = jnp.asarray(_initial_overlaps(rnn, S0, "S0"))
    key = jax.random.key(0) if key is None else key
    batch_at = _batch_source(rnn, task, key)
    attrs = _base_attrs(rnn, task, lr, epochs, key)
    attrs.update(engine="overlaps", method=method, optimizer=optimizer.describe())
    if method == "flow":
        chunk = chunk or 100  # one compiled segment length for every run length
        decay = optimizer.weight_decay
        losses, overlaps, bad = _integrate_flow(
            rnn, task, S0, lr, decay, epochs, epoch_offset, batch_at(0), chunk, progress, rtol, atol
        )
        attrs.update(rtol=rtol, atol=atol)
        state = jnp.asarray(overlaps[-1])
    else:
        chunk = _default_chunk(epochs + 1, progress, chunk)
        advance = functools.partial(
            _overlap_chunk,
            key=key,
            offset=epoch_offset,
            lr=lr,
            epochs=epochs,
            rnn=rnn,
            task=task,
            method=method,
            optimizer=optimizer,
            chunk=chunk,
        )
        state = ((momentum_state or momentum_init(S0)) if optimizer.beta else S0, jnp.asarray(False))
        (state, _), losses, overlaps, bad = _run_chunks(
            advance, state, epochs + 1, chunk, f"overlaps ({method})", progress
        )
    if not rnn.is_linear and rnn.nonlinearity.closed_gain is None and len(overlaps):
        attrs.update(_gain_accuracy(rnn, task, key, overlaps))
    history = _finish(rnn, task, losses, overlaps, bad, attrs, "train_overlaps")
    return (history, state) if return_state else history


@functools.partial(jax.jit, static_argnames=("rnn", "task", "chunk", "rtol", "atol"))
def _flow_chunk(S, start, *, batch, lr, decay, rnn, task, chunk, rtol, atol):
    """Gradient flow from t = start to start + chunk, read at the integer times in between;
    records (loss, S) at t = start+1 .. start+chunk."""

    def velocity(t, S, args):
        _, Gamma = symmetric_gradient(rnn, task, S, batch)
        return flow_velocity(S, Gamma + decay * jnp.eye(S.shape[0], dtype=S.dtype), lr)

    t0 = jnp.asarray(start, dtype=S.dtype)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(velocity),
        diffrax.Tsit5(),
        t0=t0,
        t1=t0 + chunk,
        dt0=None,
        y0=S,
        saveat=diffrax.SaveAt(ts=t0 + jnp.arange(1, chunk + 1, dtype=S.dtype)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=None,
        throw=False,
    )
    states = solution.ys
    losses = jax.vmap(lambda s: meanfield_loss(rnn, task, s, batch))(states)
    return states[-1], (losses, states)


def _integrate_flow(rnn, task, S0, lr, decay, epochs, t0, batch, chunk, progress, rtol, atol):
    """Gradient flow read at t = 0, 1, ..., epochs (records), integrated in segments of ``chunk``."""
    loss0 = float(meanfield_loss(rnn, task, S0, batch))
    advance = functools.partial(
        _flow_chunk, batch=batch, lr=lr, decay=decay, rnn=rnn, task=task, chunk=chunk, rtol=rtol, atol=atol
    )
    advance_from_t0 = lambda S, start: advance(S, t0 + start)
    _, losses, overlaps, bad = _run_chunks(advance_from_t0, S0, epochs, chunk, "overlaps (flow)", progress)
    losses = np.concatenate([[loss0], losses])
    overlaps = np.concatenate([np.asarray(S0)[None], overlaps])
    return losses, overlaps, None if bad is None else bad + 1


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


def _run_batch(one_run, state, key, key_axis, n_records: int, chunk: int, description: str, progress: bool):
    """K runs of ``one_run(state, start, key)`` at once (``jax.vmap``), in chunks with NaN checks.

    Returns (losses (K, n_records), overlaps (K, n_records, P, P), bad, final state) as :func:`_run_chunks`."""
    runs = jax.vmap(one_run, in_axes=(0, None, key_axis))

    def advance(state, start):
        state, (loss, S) = runs(state, start, key)
        return state, (jnp.swapaxes(loss, 0, 1), jnp.swapaxes(S, 0, 1))  # records epoch-first

    state, losses, overlaps, bad = _run_chunks(advance, state, n_records, chunk, description, progress)
    return np.swapaxes(losses, 0, 1), np.swapaxes(overlaps, 0, 1), bad, state


def train_overlaps_batch(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0s,
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
    """K overlap-space runs of one architecture and task in one compiled call (``jax.vmap``).

    Each run is :func:`train_overlaps` from its own S0 (same lr, method and optimiser); the
    results agree with K separate calls to round-off. Methods ``"exact"``, ``"euler"`` and
    ``"visible-only"``; a NaN/Inf in any run stops all of them (:class:`DivergenceError`).

    Args:
        S0s: (K, P, P) initial overlaps, each symmetric positive semi-definite.
        key: one key (every run sees the same batches, as K calls with that key would) or an
            array of K keys (K,) (run k draws its batches from ``key[k]``).
        epoch_offset: epoch k uses the batch of epoch ``epoch_offset + k`` (to continue runs in segments).
        lr_dropped: (K,) bools, whether each run's learning-rate drop has already fired (to continue
            runs in segments; default: not yet).
        return_state: also return the final state (S (K, P, P), or a batched
            :class:`MomentumState`; lr_dropped (K,)).

    Returns:
        History with a leading ``run`` dimension: ``loss`` (run, epoch), ``overlaps`` (run, epoch, row, col);
        with ``return_state``, the pair (History, final state).
    """
    _check_common(rnn, task, lr, epochs, chunk)
    if method not in ("exact", "euler", "visible-only"):
        raise ValueError(f"method = {method!r}: train_overlaps_batch runs 'exact', 'euler' or 'visible-only'")
    optimizer = _overlap_optimizer(optimizer, method)
    S0s = np.asarray(S0s, dtype=np.float64)
    P = rnn.n_vectors
    if S0s.ndim != 3 or S0s.shape[1:] != (P, P):
        raise ValueError(f"S0s: shape {S0s.shape}; must be (K, {P}, {P}) for this network")
    S0s = jnp.asarray(np.stack([_initial_overlaps(rnn, S, f"S0s[{k}]") for k, S in enumerate(S0s)]))
    key, key_axis = _batch_keys(key, S0s.shape[0])
    chunk = _default_chunk(epochs + 1, progress, chunk)
    chunk_options = dict(
        offset=epoch_offset, lr=lr, epochs=epochs, rnn=rnn, task=task, method=method, optimizer=optimizer
    )
    one_run = lambda state, start, key: _overlap_chunk(state, start, key=key, chunk=chunk, **chunk_options)
    inner = jax.vmap(momentum_init)(S0s) if optimizer.beta else S0s
    K = S0s.shape[0]
    dropped = jnp.zeros(K, dtype=bool) if lr_dropped is None else jnp.asarray(lr_dropped, dtype=bool)
    if dropped.shape != (K,):
        raise ValueError(f"lr_dropped: shape {dropped.shape}; must be ({K},), one flag per run")
    description = f"{K} overlap runs ({method})"
    losses, overlaps, bad, state = _run_batch(
        one_run, (inner, dropped), key, key_axis, epochs + 1, chunk, description, progress
    )
    attrs = _base_attrs(rnn, task, lr, epochs, key)
    attrs.update(engine="overlaps", method=method, optimizer=optimizer.describe(), runs=int(K))
    history = _finish(rnn, task, losses, overlaps, bad, attrs, "train_overlaps_batch")
    return (history, state) if return_state else history


def train_network_batch(
    rnn: LowRankRNN,
    task: AbstractTask,
    thetas0,
    lr: float,
    epochs: int,
    optimizer: str | Optimizer | Callable = "sgd",
    key: jax.Array | None = None,
    progress: bool = False,
    chunk: int | None = None,
):
    """K full networks of the same size trained in one compiled call (``jax.vmap``): seeds,
    initial overlaps, or both. Each run is :func:`train_network` from its own theta0 (same lr
    and optimiser, any optax optimiser including Adam) and agrees with K separate calls to round-off.

    For K networks of a few hundred to a few thousand neurons the per-step work is small and the
    batch fills the machine better than K calls in a Python loop (``benchmarks/bench_scale.py``).

    Args:
        thetas0: (K, N, P) initial connectivities, e.g. ``jnp.stack([sample_params(rnn, S0, N, k)
            for k in keys])``; their dtype is the run's dtype.
        key: one key (every network sees the same batches) or K keys (K,), one per network.

    Returns:
        History with a leading ``run`` dimension: ``loss`` (run, epoch), ``overlaps`` (run, epoch, row, col).
    """
    _check_common(rnn, task, lr, epochs, chunk)
    thetas0 = jnp.asarray(thetas0)
    if thetas0.ndim != 3 or thetas0.shape[2] != rnn.n_vectors or not jnp.issubdtype(thetas0.dtype, jnp.floating):
        raise ValueError(
            f"thetas0: shape {thetas0.shape}, dtype {thetas0.dtype}; "
            f"must be a float (K, N, P) array with P = {rnn.n_vectors}"
        )
    K, N = thetas0.shape[:2]
    key, key_axis = _batch_keys(key, K)
    transformation = _resolve_optimizer(optimizer, lr, N)
    chunk = _default_chunk(epochs + 1, progress, chunk)
    chunk_options = dict(offset=0, epochs=epochs, weights=None, rnn=rnn, task=task, transformation=transformation)
    one_run = lambda state, start, key: _rows_chunk(
        state, start, key=key, chunk=chunk, lr_drop=_lr_drop_of(optimizer), **chunk_options
    )
    state = ((thetas0, jax.vmap(transformation.init)(thetas0)), jnp.zeros(K, dtype=bool))
    losses, overlaps, bad, _ = _run_batch(
        one_run, state, key, key_axis, epochs + 1, chunk, f"{K} networks N={N}", progress
    )
    attrs = _base_attrs(rnn, task, lr, epochs, key)
    attrs.update(engine="network", N=int(N), runs=int(K), dtype=str(thetas0.dtype))
    attrs.update(optimizer=_optimizer_label(optimizer))
    return _finish(rnn, task, losses, overlaps, bad, attrs, "train_network_batch")
