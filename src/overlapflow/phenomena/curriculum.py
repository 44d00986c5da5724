r"""Curricula: a sequence of training phases, run with the state carried from phase to phase.

A :class:`Phase` is (task, epochs, lr, optimiser, target noise). :func:`run_curriculum` runs the
phases on the full network, in overlap space, or with particles, and returns one History per
engine covering the whole curriculum: epochs count on across phases, and the data variable
``phase`` (epoch) names the phase each state was reached in (entry 0 and the first phase's states
are phase 0; the state at the end of phase j is its last entry, and its loss is on phase j's task).

Each phase restarts its optimiser (momentum or Adam state from zero), the same in every engine,
and draws its batches from ``fold_in(key, j)``; so paired engines stay paired across phases.

Ready-made: :func:`aba_curriculum` (the paper's A-B-A memory protocol, figs 3 and 6) and
:func:`adam_curriculum` (fig 7).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import xarray as xr

from ..model import LowRankRNN
from ..optimizers import Optimizer, as_optimizer
from ..overlaps import Overlaps
from ..particles import train_particles
from ..tasks import AbstractTask, ExponentialFilter, NoisyTargets
from ..training import train_network, train_overlaps

ENGINES = ("network", "overlaps", "particles")


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
) -> dict[str, xr.Dataset]:
    """Run ``phases`` in order on each engine, carrying the state over.

    Args:
        theta0: (N, P) initial network (needed for the ``"network"`` engine; its overlaps are S0
            when S0 is not given).
        S0: initial overlaps for the ``"overlaps"`` and ``"particles"`` engines.
        engines: any of ``"network"``, ``"overlaps"``, ``"particles"``.
        method: the overlap-space method (``train_overlaps``).
        particle_options: keyword arguments of ``train_particles`` (rule, nodes, n).

    Returns:
        {engine: History} with ``phase`` (epoch) and attrs ``phases`` (names) and ``phase_ends``
        (the epoch at which each phase ends).
    """
    phases = list(phases)
    if not phases or not all(isinstance(p, Phase) for p in phases):
        raise ValueError(f"phases = {phases!r}: must be a non-empty sequence of overlapflow Phase values")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"engines = {engines!r}: choose from {list(ENGINES)}")
    if "network" in engines and theta0 is None:
        raise ValueError("engines include 'network' but theta0 is None: give the initial network theta0 (N, P)")
    if S0 is None:
        if theta0 is None:
            raise ValueError("give S0 (initial overlaps) or theta0 (initial network)")
        S0 = Overlaps.from_params(rnn, theta0).matrix
    S0 = np.asarray(getattr(S0, "matrix", S0), dtype=float)
    key = jax.random.key(0) if key is None else key
    names = [p.name or f"phase {j}" for j, p in enumerate(phases)]

    runs = {}
    for engine in engines:
        state = theta0 if engine == "network" else S0
        pieces = []
        for j, phase in enumerate(phases):
            args = (rnn, phase.training_task, state, phase.lr, phase.epochs)
            phase_key = jax.random.fold_in(key, j)
            if engine == "network":
                history, state = train_network(
                    *args, optimizer=phase.optimizer, key=phase_key, progress=progress, return_params=True
                )
            elif engine == "overlaps":
                history = train_overlaps(
                    *args, method=method, optimizer=phase.optimizer, key=phase_key, progress=progress
                )
                state = history.overlaps.values[-1]
            else:
                history, cloud = train_particles(
                    *args,
                    optimizer=phase.optimizer,
                    key=phase_key,
                    progress=progress,
                    return_particles=True,
                    **(particle_options or {}),
                )
                state = cloud
            pieces.append(history if j == 0 else history.isel(epoch=slice(1, None)))
        runs[engine] = _join(pieces, phases, names)
    return runs


def _join(pieces, phases, names) -> xr.Dataset:
    lengths = [p.sizes["epoch"] for p in pieces]
    joined = xr.concat([p.drop_vars("visible") for p in pieces], dim="epoch", combine_attrs="drop_conflicts")
    joined = joined.assign_coords(epoch=np.arange(joined.sizes["epoch"]))
    joined["visible"] = pieces[0].visible
    joined["phase"] = ("epoch", np.repeat(np.arange(len(pieces)), lengths))
    ends = np.cumsum([p.epochs for p in phases])
    joined.attrs.update(
        phases=", ".join(names),
        phase_ends=", ".join(str(int(e)) for e in ends),
        phase_tasks=" | ".join(p.training_task.describe() for p in phases),
        epochs=int(ends[-1]),
    )
    for field in ("lr", "task", "optimizer", "key"):
        joined.attrs.pop(field, None)
    return joined


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
