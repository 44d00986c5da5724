r"""Curricula: a sequence of training phases, run with the state carried from phase to phase.

A :class:`Phase` is (task, epochs, lr, optimiser, target noise). :func:`run_phases` is the one
phase loop: it runs the phases on any engines (:mod:`overlapflow.engines`), in segments, and calls
back after each segment (the experiment runner writes its checkpoints there and resumes from a
position). :func:`run_curriculum` is that loop with engines named by strings. Each engine's
History covers the whole curriculum: epochs count on across phases; ``phase`` (epoch) is the index
of the phase each state was reached in (entry 0 and the first phase's states are phase 0; the
state at the end of phase j is its last entry, and its loss is on phase j's task); the phase table
is data on the ``phases`` dimension: ``phase_name``, ``phase_end`` (the epoch at which it ends),
``phase_task``, ``phase_lr``, ``phase_optimizer`` (read them with
:func:`~overlapflow.history.phase_ends` and :func:`~overlapflow.history.phase_names`).

Each phase restarts its optimiser (momentum or Adam state from zero, the learning-rate drop not
fired), the same in every engine, and draws its batches from ``fold_in(key, j)``; so paired
engines stay paired across phases.

Ready-made: :func:`aba_curriculum` (the paper's A-B-A memory protocol, figs 3 and 6) and
:func:`adam_curriculum` (fig 7).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..engines import Engine, NetworkEngine, ParticleEngine, overlap_engine, run_name
from ..history import POPULATION_DIMS, make_history
from ..mixture import Mixture
from ..model import LowRankRNN
from ..optimizers import Optimizer, as_optimizer
from ..overlaps import Overlaps
from ..precision import float64
from ..progress import progress_bar
from ..tasks import AbstractTask, ExponentialFilter, NoisyTargets
from ..training import DivergenceError, Records, train

ENGINES = ("network", "overlaps", "particles")
# Per-phase settings of a segment's attrs; the phase table holds them per phase instead.
_PER_PHASE_ATTRS = ("lr", "epochs", "task", "optimizer", "key")
# Checks of a nonlinear theory measured per segment (quadrature gain); the History keeps their maximum.
_MAX_ATTRS = ("max_delta", "gain_error")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One training phase.

    Args:
        task: the task of this phase.
        epochs: number of updates (>= 1).
        lr: overlap-scale learning rate eta.
        optimizer: ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"`` or an :class:`~overlapflow.Optimizer`.
        target_noise: std of Gaussian noise added to the targets (0: none).
        name: label of the phase (default ``"phase j"``).
    """

    task: AbstractTask
    epochs: int
    lr: float
    optimizer: str | Optimizer = "sgd"
    target_noise: float = 0.0
    name: str | None = None

    def __post_init__(self):
        if not isinstance(self.task, AbstractTask):
            raise ValueError(f"Phase.task = {self.task!r}: must be an overlapflow task")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"Phase.epochs = {self.epochs!r}: must be an integer >= 1")
        as_optimizer(self.optimizer)
        if not self.target_noise >= 0:
            raise ValueError(f"Phase.target_noise = {self.target_noise!r}: must be >= 0")

    @property
    def training_task(self) -> AbstractTask:
        """The task with its target noise, if any."""
        return NoisyTargets(self.task, self.target_noise) if self.target_noise else self.task


class Piece(NamedTuple):
    """The records of one segment: loss (n,), overlaps (n, P, P), phase (n,) and, with populations,
    ``populations`` = {population_means (n, K, P), population_overlaps (n, K, P, P),
    population_weights (K,)} (else ``{}``)."""

    loss: np.ndarray
    overlaps: np.ndarray
    phase: np.ndarray
    populations: dict


@dataclasses.dataclass
class Track:
    """One engine's way through a curriculum: its engine, its start, its state (a
    :class:`~overlapflow.engines.TrainState`, the learning-rate schedule's included), and its records so far.

    ``populations``: the population of each row of ``start`` (N,) (a network or Particles), or None;
    a :class:`~overlapflow.Mixture` start brings its own. ``pieces`` holds one :class:`Piece` per
    segment; a segment's first record repeats the last one stored, so it is dropped, except at the
    very start."""

    name: str
    engine: Engine
    start: Any
    state: Any = None
    pieces: list = dataclasses.field(default_factory=list)
    attrs: dict | None = None
    populations: Any = None

    @property
    def records(self) -> int:
        return sum(len(piece.loss) for piece in self.pieces)

    def restart(self) -> tuple[Any, Any]:
        """(start, populations) of a phase: the track's own before its first segment, else the
        state's carry and the labels of its rows (None for an overlap state: a Mixture holds them)."""
        if self.state is None:
            return self.start, self.populations
        return self.engine.carry(self.state.engine), self.engine.carry_populations(self.state.engine)

    def append(self, records: Records, attrs: dict, phase: int) -> None:
        """Add a segment's records (numpy, :class:`~overlapflow.training.Records`; no History is built)
        and attrs (less the per-phase ones, they become the track's)."""
        if self.attrs is None:
            self.attrs = {k: v for k, v in attrs.items() if k not in _PER_PHASE_ATTRS}
        for key in _MAX_ATTRS:
            if key in attrs:
                self.attrs[key] = max(float(attrs[key]), float(self.attrs.get(key, -np.inf)))
        skip = 1 if self.records else 0
        loss = np.asarray(records.loss, dtype=np.float64)[skip:]
        populations = {
            name: np.asarray(values)[skip:] if "epoch" in POPULATION_DIMS[name] else np.asarray(values)
            for name, values in (records.populations or {}).items()
        }
        overlaps = np.asarray(records.overlaps, dtype=np.float64)[skip:]
        self.pieces.append(Piece(loss, overlaps, np.full(len(loss), phase, np.int64), populations))

    def history(self, rnn: LowRankRNN, table: dict, attrs: dict | None = None) -> xr.Dataset:
        """The History so far: records, ``phase`` (epoch), the phase table ``table``
        (:func:`phase_table`) and, with populations, ``population_means``, ``population_overlaps``
        and ``population_weights``."""
        P = rnn.n_vectors
        loss = np.concatenate([p.loss for p in self.pieces]) if self.pieces else np.zeros(0)
        S = np.concatenate([p.overlaps for p in self.pieces]) if self.pieces else np.zeros((0, P, P))
        phase = np.concatenate([p.phase for p in self.pieces]) if self.pieces else np.zeros(0, np.int64)
        populations = None
        if self.pieces and self.pieces[-1].populations:
            last = self.pieces[-1].populations
            populations = {
                name: np.concatenate([p.populations[name] for p in self.pieces]) if "epoch" in dims else last[name]
                for name, dims in POPULATION_DIMS.items()
            }
        base = self.attrs if self.attrs is not None else {"engine": self.engine.kind}
        attrs = {**base, **(attrs or {}), "epochs": max(len(loss) - 1, 0)}
        history = make_history(rnn, loss, S, attrs, populations)
        history["phase"] = ("epoch", phase)
        return history.assign(table)


def phase_table(phases) -> dict:
    """The phase table as data variables on the ``phases`` dimension."""
    return {
        "phase_name": ("phases", [p.name for p in phases]),
        "phase_end": ("phases", np.cumsum([p.epochs for p in phases]).astype(np.int64)),
        "phase_task": ("phases", [p.training_task.describe() for p in phases]),
        "phase_lr": ("phases", np.array([p.lr for p in phases], dtype=np.float64)),
        "phase_optimizer": ("phases", [as_optimizer(p.optimizer).describe() for p in phases]),
    }


class CurriculumDiverged(DivergenceError):
    """An engine produced NaN/Inf in a curriculum. ``history``: its History up to its last good
    epoch (the whole curriculum so far); ``track``, ``phase`` (index), ``offset`` (epoch within
    the phase of the failed segment's start), ``segment_history`` (the failed segment's records)."""

    def __init__(self, message, history, track, phase, offset, segment_history):
        super().__init__(message, history)
        self.track, self.phase, self.offset, self.segment_history = track, phase, offset, segment_history


def _round_trip(tree):
    """Through numpy and back: a state resumed from a checkpoint has passed the same way."""
    return jax.tree.map(jnp.asarray, jax.device_get(tree))


@float64
def run_phases(
    rnn: LowRankRNN,
    phases,
    tracks: list[Track],
    key: jax.Array,
    *,
    segment: int | None = None,
    position: tuple[int, int] = (0, 0),
    on_segment: Callable | None = None,
    progress: bool = False,
    chunk: int | None = None,
) -> list[Track]:
    """The phase loop: run ``phases`` from ``position`` = (phase, epoch within it) on every track.

    Each phase is cut into segments of ``segment`` epochs (default: the whole phase); every track
    advances one segment with :func:`~overlapflow.train`, continuing its state (``epoch_offset``:
    the batches of an uninterrupted run), then ``on_segment(position, tracks)`` is called with the
    position reached. A phase starts each engine afresh from the previous phase's final state
    (:meth:`Track.restart`: populations included), with the phase's optimiser.

    Raises:
        CurriculumDiverged: an engine produced NaN/Inf (the tracks keep the last good segment).
    """
    total = sum(p.epochs for p in phases) * len(tracks)
    done = (sum(p.epochs for p in phases[: position[0]]) + position[1]) * len(tracks)
    with progress_bar(progress, "starting", total, done) as update:
        for j in range(position[0], len(phases)):
            phase = phases[j]
            phase_key = jax.random.fold_in(key, j)
            offset = position[1] if j == position[0] else 0
            while offset < phase.epochs:
                length = min(segment or phase.epochs, phase.epochs - offset)
                for track in tracks:
                    engine = track.engine.with_optimizer(as_optimizer(phase.optimizer))
                    fresh = offset == 0
                    start, populations = track.restart()
                    try:
                        result = train(
                            engine,
                            rnn,
                            phase.training_task,
                            start,
                            phase.lr,
                            length,
                            key=phase_key,
                            chunk=chunk,
                            state=None if fresh else track.state,
                            epoch_offset=offset,
                            populations=populations if fresh else None,
                        )
                    except DivergenceError as error:
                        raise _diverged(rnn, phases, track, error, j, offset) from None
                    track.append(result.records, result.attrs, j)
                    track.state = _round_trip(result.state)
                    update(length, float(result.records.loss[-1]), description=f"{phase.name} · {track.name}")
                offset += length
                if on_segment is not None:
                    on_segment((j, offset) if offset < phase.epochs else (j + 1, 0), tracks)
    return tracks


def _diverged(rnn, phases, track, error, j, offset) -> CurriculumDiverged:
    partial = Track(
        track.name,
        track.engine,
        track.start,
        pieces=list(track.pieces),
        attrs=track.attrs,
        populations=track.populations,
    )
    if error.history.sizes["epoch"]:
        partial.append(error.records, error.attrs, j)
    history = partial.history(rnn, phase_table(phases))
    good = error.history.sizes["epoch"]
    phase = phases[j]
    message = (
        f"{track.name} diverged in phase '{phase.name}' ({j + 1} of {len(phases)}) at epoch "
        f"{max(track.records - 1, 0) + good} (epoch {offset + good} of the phase): the loss or the overlaps "
        f"became NaN/Inf. The learning rate is probably too large: lower lr of phase '{phase.name}' "
        f"(now {phase.lr:g}) and run again."
    )
    return CurriculumDiverged(message, history, track, j, offset, error.history)


@float64
def run_curriculum(
    rnn: LowRankRNN,
    phases,
    theta0=None,
    S0=None,
    engines=("network", "overlaps"),
    method: str = "exact",
    key: jax.Array | None = None,
    progress: bool = False,
    particle_options: dict | None = None,
    populations=None,
) -> dict[str, xr.Dataset]:
    """Run ``phases`` in order on each engine, carrying the state over (:func:`run_phases`).

    Args:
        theta0: (N, P) initial network (needed for the ``"network"`` engine; its overlaps are S0
            when S0 is not given).
        S0: initial overlaps for the ``"overlaps"`` and ``"particles"`` engines, or a
            :class:`~overlapflow.Mixture` (the mixture closure; particles one cloud per component).
        populations: the population of each row of theta0 (N,), integers 0..K-1 (the network's
            History then records each population; S0 defaults to their Mixture.from_params).
        engines: any of ``"network"``, ``"overlaps"``, ``"particles"``, or
            :class:`~overlapflow.engines.Engine` values (named by their kind; a second engine of a
            kind as ``"<kind>-2"``).
        method: the overlap-space method: a step name or ``"flow"`` (:data:`overlapflow.flow.METHODS`).
        particle_options: keyword arguments of the :class:`~overlapflow.engines.ParticleEngine`
            (rule, nodes, n).

    Returns:
        {engine: History} with ``phase`` (epoch) and the phase table (module docstring).
    """
    phases = list(phases)
    if not phases or not all(isinstance(p, Phase) for p in phases):
        raise ValueError(f"phases = {phases!r}: must be a non-empty sequence of overlapflow Phase values")
    unknown = [e for e in engines if not isinstance(e, Engine) and e not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"engines = {engines!r}: choose from {list(ENGINES)} or give Engine values")
    if theta0 is None and any(e == "network" or isinstance(e, NetworkEngine) for e in engines):
        raise ValueError("engines include 'network' but theta0 is None: give the initial network theta0 (N, P)")
    if S0 is None:
        if theta0 is None:
            raise ValueError("give S0 (initial overlaps) or theta0 (initial network)")
        S0 = (
            Overlaps.from_params(rnn, theta0).matrix
            if populations is None
            else Mixture.from_params(rnn, theta0, populations)
        )
    if not isinstance(S0, Mixture):
        S0 = np.asarray(getattr(S0, "matrix", S0), dtype=float)
    key = jax.random.key(0) if key is None else key
    first = as_optimizer(phases[0].optimizer)
    named = {
        "network": lambda: NetworkEngine(first),
        "overlaps": lambda: overlap_engine(method, first),
        "particles": lambda: ParticleEngine(first, **(particle_options or {})),
    }
    tracks = []
    for e in engines:
        engine = e if isinstance(e, Engine) else named[e]()  # an optimiser the engine refuses raises here
        name = run_name(engine, [t.name for t in tracks])
        network = isinstance(engine, NetworkEngine)
        tracks.append(Track(name, engine, theta0 if network else S0, populations=populations if network else None))
    names = [p.name or f"phase {j}" for j, p in enumerate(phases)]
    phases = [dataclasses.replace(p, name=n) for p, n in zip(phases, names, strict=True)]
    for p in phases:  # every phase's optimiser must suit every engine: fail before running
        for track in tracks:
            track.engine.with_optimizer(as_optimizer(p.optimizer))
    run_phases(rnn, phases, tracks, key, progress=progress)
    table = phase_table(phases)
    return {track.name: track.history(rnn, table) for track in tracks}


def aba_curriculum(c_a: float = 0.2, c_b: float = 0.4, lr: float = 5e-3, scale: float = 1.0) -> list[Phase]:
    """The paper's A-B-A memory protocol (figs 3, 6): A (filter c_a) 3000 epochs; then B, A, B,
    1000 epochs each; then A for 4000 epochs with target noise 0.1 and doubled lr.

    ``scale`` multiplies every phase's epochs (e.g. 0.1 for a quick run).
    """
    a, b = ExponentialFilter(c=c_a), ExponentialFilter(c=c_b)
    n = lambda epochs: max(1, int(round(epochs * scale)))
    return [
        Phase(a, n(3000), lr, name="A"),
        Phase(b, n(1000), lr, name="B1"),
        Phase(a, n(1000), lr, name="A2"),
        Phase(b, n(1000), lr, name="B2"),
        Phase(a, n(4000), 2 * lr, target_noise=0.1, name="A+noise"),
    ]


def adam_curriculum(lr: float = 1e-3, scale: float = 1.0) -> list[Phase]:
    """The paper's fig 7: Adam (lr 1e-3) on filters c* = 0.2, 0.4, 0.2, 0.4, 0.2, 4000 epochs each.
    Full network only: Adam does not close in overlap space."""
    n = max(1, int(round(4000 * scale)))
    return [
        Phase(ExponentialFilter(c=c), n, lr, optimizer="adam", name=f"{name}")
        for c, name in zip((0.2, 0.4, 0.2, 0.4, 0.2), ("A", "B", "A", "B", "A"), strict=True)
    ]
