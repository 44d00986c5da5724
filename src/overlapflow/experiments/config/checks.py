"""Checks of meaning: what needs more than one field, or the network and the tasks built.

Each check runs when the fields it reads passed their own (a partial config, :mod:`.partial`):
the network (dt <= tau, N >= P), the engines (at least one, each method once), every phase's task
(built for the network: its own checks, its durations at the network's dt, its n_in and n_out),
the optimisers against the engines, and the initial state (:mod:`.init_checks`). Problems are
appended to a list (path, value, what is allowed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model import LowRankRNN
from ...tasks import AbstractTask, n_steps
from ...tasks.fields import TaskSettingError
from .init_checks import check_init, starts_from_mixture
from .messages import task_problem
from .partial import INVALID, ok
from .schema import EnginesConfig
from .task_tables import TaskTable

if TYPE_CHECKING:
    from .experiment import ExperimentConfig


def check_semantics(config: ExperimentConfig, problems) -> None:
    """Everything past types and ranges, each check run when the fields it reads passed their own:
    build the network and the tasks; N >= P; the engines; engines vs optimisers; the initial state."""
    rnn = _check_network(config, problems)
    engines = config.engines if ok(config.engines) else None
    if engines is not None:
        _check_engines(engines, problems)
    methods = (engines.overlaps or []) if engines is not None else None
    mixture = starts_from_mixture(config, rnn)
    if mixture and methods and not set(methods) <= {"exact", "euler"}:
        problems.append(
            (
                "engines.overlaps",
                methods,
                "with populations (init.populations, or those of init.from_file's network) the overlap engine "
                "runs the mixture closure, whose methods are 'exact' and 'euler' only",
            )
        )
    phases = config.phases if isinstance(config.phases, list) else []
    for j, phase in enumerate(phases):
        if phase is INVALID:
            continue
        path = f"phases.{j}"
        if rnn is not None and ok(phase.task):
            _check_task(f"{path}.task", phase.task, rnn, problems)
        optimizer = phase.optimizer
        kind = optimizer.kind if optimizer is not INVALID and ok(optimizer.kind) else None
        if kind == "adam" and methods is not None and (methods or engines.particles is not None):
            problems.append(
                (
                    f"{path}.optimizer.kind",
                    kind,
                    "'adam' runs on the full network only (it does not close in overlap space); "
                    "set engines.overlaps = false and leave particles off",
                )
            )
        if kind in ("momentum", "nesterov") and mixture and methods:
            problems.append(
                (
                    f"{path}.optimizer.kind",
                    kind,
                    "the mixture closure (populations: init.populations, or init.from_file's) runs SGD only "
                    "(weight decay allowed): use kind 'sgd', "
                    "or set engines.overlaps = false",
                )
            )
        elif kind in ("momentum", "nesterov") and methods is not None and any(m != "exact" for m in methods):
            problems.append(
                (
                    f"{path}.optimizer.kind",
                    kind,
                    f"momentum in overlap space needs method 'exact' (engines.overlaps = {methods})",
                )
            )
    if methods is not None and "visible-only" in methods and phases:
        epochs = phases[0].epochs if phases[0] is not INVALID else INVALID
        every = config.checkpoint_every
        if len(phases) > 1 or (ok(epochs) and ok(every) and every < epochs):
            problems.append(
                (
                    "engines.overlaps",
                    methods,
                    "'visible-only' (naive descent on the visible overlaps) leaves the set of Gram matrices, so it "
                    "cannot continue from a checkpoint: use a single phase and checkpoint_every >= its epochs",
                )
            )
    if config.init is not INVALID:
        check_init(config, rnn, engines, problems)


def _check_network(config: ExperimentConfig, problems) -> LowRankRNN | None:
    """The network (None if it is not valid), dt <= tau, and N >= P."""
    network = config.network
    if not ok(network):
        return None
    if network.dt > network.tau:
        problems.append(
            (
                "network.dt",
                network.dt,
                f"must be <= tau = {network.tau!r}: the Euler step alpha = dt / tau = {network.dt / network.tau:.3g} "
                "must be at most 1 (beyond it the leak overshoots, beyond 2 it diverges)",
            )
        )
    try:
        rnn = network.build()
    except Exception as error:  # noqa: BLE001 - any failure is a problem of this table
        problems.append(("network", network.model_dump(), str(error)))
        return None
    if ok(config.N) and config.N < rnn.n_vectors:
        problems.append(("N", config.N, f"must be >= P = {rnn.n_vectors} (the number of vectors of this network)"))
    return rnn


def _check_engines(engines: EnginesConfig, problems) -> None:
    if not engines.names():
        problems.append(
            (
                "engines",
                engines.model_dump(),
                'select at least one engine (network = true, overlaps = "exact", or particles = {...})',
            )
        )
    methods = engines.overlaps or []
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        problems.append(
            ("engines.overlaps", methods, f"repeats {repeated}: each method runs once (the runs would be identical)")
        )


def _check_task(path: str, table: TaskTable, rnn: LowRankRNN, problems) -> None:
    """Build the task for rnn; its durations at rnn.dt; its n_in, n_out against the network's."""
    try:
        task = table.build(rnn)
    except Exception as error:  # noqa: BLE001
        problems.append(task_problem(path, table, error))
        return
    try:
        _check_task_steps(task, rnn.dt)
    except Exception as error:  # noqa: BLE001
        problems.append(task_problem(path, table, error))
    if task.n_in != rnn.n_in or task.n_out != rnn.n_out:
        problems.append(
            (
                path,
                table.model_dump(),
                f"has n_in = {task.n_in}, n_out = {task.n_out}; the network has n_in = {rnn.n_in}, "
                f"n_out = {rnn.n_out}; they must match",
            )
        )


def _check_task_steps(task: AbstractTask, dt: float) -> None:
    """The task's own checks of its durations at step dt (no sampling, no compilation), and those
    of the task giving its inputs (the teacher's ``input_task``)."""
    method = next((getattr(task, m) for m in ("periods", "steps") if hasattr(task, m)), None)
    t_max = getattr(task, "t_max", None)
    if method is not None:
        method(dt)
    elif t_max is not None and n_steps(t_max, dt) < 1:
        raise TaskSettingError(
            type(task).__name__, "t_max", t_max, f"gives T = {n_steps(t_max, dt)} steps at dt = {dt!r}; need T >= 1"
        )
    inner = getattr(task, "input_task", None)
    if isinstance(inner, AbstractTask):
        _check_task_steps(inner, dt)
