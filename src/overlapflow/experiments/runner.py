r"""Run an experiment config: its phases on the chosen engines, in checkpointed segments.

The phases run as in :func:`~overlapflow.phenomena.curriculum.run_curriculum`: the state carries
over from phase to phase, each phase restarts its optimiser and draws the batches of its epoch k
from ``fold_in(fold_in(key, j), k)`` (phase j), so all engines see the same batches. Each phase
is cut into segments of ``checkpoint_every`` epochs (the last one may be shorter); every engine
advances one segment (``train_network`` / ``train_overlaps`` / the particle rows continue with
``opt_state`` / ``momentum_state`` and ``epoch_offset``), then a checkpoint is written:

    OUT/config.toml, config.json      the config as given, and resolved (written first)
    OUT/checkpoint/<engine>.nc        the History so far of each engine (netCDF)
    OUT/checkpoint/state.pkl          phase index, epoch within the phase, the key data, the
                                      engine states (theta + optax state, S or MomentumState,
                                      particles) as numpy, the number of records of each History

Every file is written to a temporary file in the same folder and moved over the old one
(``os.replace``), Histories before ``state.pkl``; a History is only ever extended, so a checkpoint
read back is cut to the record counts of ``state.pkl`` and is consistent even if the process died
between two replacements. ``resume=True`` continues from the checkpoint with the same segments,
and the result equals the uninterrupted run bit for bit (states pass through the same numpy round
trip after every segment in both). At the end: ``OUT/<engine>.nc`` and ``OUT/summary.txt``.

A NaN/Inf stops the run with :class:`ExperimentDiverged` (a :class:`~overlapflow.DivergenceError`):
the last good checkpoint stays, and ``OUT/<engine>.partial.nc`` hold every engine's History up to
its last good epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import shutil
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .. import __version__
from ..history import load_history, make_history, max_overlap_deviation
from ..optimizers import MomentumState
from ..overlaps import Overlaps, sample_params
from ..particles import make_particles
from ..progress import progress_bar
from ..training import DivergenceError, train_network, train_overlaps, train_rows
from .config import ConfigError, ExperimentConfig

CHECKPOINT = "checkpoint"
STATE_FILE = "state.pkl"
FORMAT = 1
# Per-phase settings in the segments' attrs; the joined History lists them per phase instead.
_PER_PHASE_ATTRS = ("lr", "epochs", "task", "optimizer", "key")
# Per-segment checks of train_overlaps (nonlinear theory, quadrature gain); the History keeps their maximum.
_MAX_ATTRS = ("max_delta", "gain_error")


class RunError(RuntimeError):
    """A run cannot start or continue (occupied output folder, missing or foreign checkpoint)."""


class ExperimentDiverged(DivergenceError):
    """An engine produced NaN/Inf. ``history``: that engine's History up to its last good epoch;
    ``histories``: every engine's partial History; ``files``: where they were written."""

    def __init__(self, message, history, histories, engine, epoch, checkpoint, files):
        super().__init__(message, history)
        self.histories = histories
        self.engine = engine
        self.epoch = epoch
        self.checkpoint = checkpoint
        self.files = files


# ---------------------------------------------------------------------------- small helpers
def _to_numpy(tree):
    return jax.tree.map(np.asarray, tree)


def _to_jax(tree):
    return jax.tree.map(jnp.asarray, tree)


def _atomic_write(path: Path, write) -> None:
    """``write(tmp_path)``, then move tmp_path over path (same folder, so the move is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _write_history(path: Path, history: xr.Dataset) -> None:
    _atomic_write(path, lambda tmp: history.to_netcdf(tmp))


def _comparable(resolved: dict) -> dict:
    return {k: v for k, v in resolved.items() if k != "output"}


# ---------------------------------------------------------------------------- engines
@dataclasses.dataclass
class _Engine:
    """One engine's state and its History so far (as arrays)."""

    name: str
    kind: str  # "network", "overlaps" or "particles"
    method: str | None
    state: object
    weights: object = None
    base_attrs: dict | None = None
    base_attrs_particles: dict = dataclasses.field(default_factory=dict)  # rule, n_particles, nodes
    losses: list = dataclasses.field(default_factory=list)
    overlaps: list = dataclasses.field(default_factory=list)
    phases: list = dataclasses.field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(len(x) for x in self.losses)

    def advance(self, rnn, phase, key, epochs, offset, chunk, fresh):
        """One segment: ``epochs`` updates from epoch ``offset`` of ``phase``; returns (History, new state).
        ``fresh``: the phase starts here (new optimiser state)."""
        task = phase.training_task
        if self.kind == "overlaps":
            state = self.state
            S = state.S if isinstance(state, MomentumState) else state
            momentum = state if isinstance(state, MomentumState) and not fresh else None
            return train_overlaps(
                rnn,
                task,
                S,
                phase.lr,
                epochs,
                method=self.method,
                optimizer=phase.optimizer,
                key=key,
                chunk=None if self.method == "flow" else chunk,
                return_state=True,
                momentum_state=momentum,
                epoch_offset=offset,
            )
        theta, opt_state = self.state
        opt_state = None if fresh else opt_state
        if self.kind == "network":
            return train_network(
                rnn,
                task,
                theta,
                phase.lr,
                epochs,
                optimizer=phase.optimizer,
                key=key,
                chunk=chunk,
                return_state=True,
                opt_state=opt_state,
                epoch_offset=offset,
            )
        attrs = {"engine": "particles", **self.base_attrs_particles}
        return train_rows(
            rnn,
            task,
            theta,
            self.weights,
            phase.lr,
            epochs,
            phase.optimizer,
            key,
            False,
            chunk,
            attrs,
            f"particles n={len(self.weights)}",
            opt_state,
            offset,
        )

    def append(self, history: xr.Dataset, phase: int) -> None:
        """Add a segment's records (its first record repeats the last one stored, except at the start)."""
        skip = 1 if self.records else 0
        if self.base_attrs is None:
            self.base_attrs = {k: v for k, v in history.attrs.items() if k not in _PER_PHASE_ATTRS}
        for key in _MAX_ATTRS:  # the quadrature check of a nonlinear theory: the worst over the run
            if key in history.attrs:
                self.base_attrs[key] = max(float(history.attrs[key]), float(self.base_attrs.get(key, -np.inf)))
        loss = np.asarray(history.loss.values)[skip:]
        self.losses.append(loss)
        self.overlaps.append(np.asarray(history.overlaps.values)[skip:])
        self.phases.append(np.full(len(loss), phase, dtype=np.int64))

    def history(
        self, rnn, run_attrs: dict, status: str, extra: xr.Dataset | None = None, extra_phase: int = 0
    ) -> xr.Dataset:
        losses, overlaps, phases = list(self.losses), list(self.overlaps), list(self.phases)
        base = self.base_attrs
        if extra is not None and extra.sizes["epoch"]:
            skip = 1 if self.records else 0
            losses.append(np.asarray(extra.loss.values)[skip:])
            overlaps.append(np.asarray(extra.overlaps.values)[skip:])
            phases.append(np.full(len(losses[-1]), extra_phase, dtype=np.int64))
            if base is None:
                base = {k: v for k, v in extra.attrs.items() if k not in _PER_PHASE_ATTRS}
        P = rnn.n_vectors
        loss = np.concatenate(losses) if losses else np.zeros(0)
        S = np.concatenate(overlaps) if overlaps else np.zeros((0, P, P))
        attrs = {**(base or {"engine": self.kind}), **run_attrs, "status": status, "epochs": max(len(loss) - 1, 0)}
        history = make_history(rnn, loss, S, attrs)
        history["phase"] = ("epoch", np.concatenate(phases) if phases else np.zeros(0, dtype=np.int64))
        return history


def _run_attrs(config: ExperimentConfig, phases) -> dict:
    ends = np.cumsum([p.epochs for p in phases])
    return {
        "experiment": config.name,
        "seed": config.seed,
        "phases": ", ".join(p.name for p in phases),
        "phase_ends": ", ".join(str(int(e)) for e in ends),
        "phase_tasks": " | ".join(p.training_task.describe() for p in phases),
        "phase_lrs": ", ".join(repr(float(p.lr)) for p in phases),
        "phase_optimizers": " | ".join(p.optimizer.describe() for p in phases),
        "config": json.dumps(config.resolved()),
    }


# ---------------------------------------------------------------------------- initial state
def read_final_state(folder) -> dict:
    """The final state of a finished run in ``folder``: {"network": its architecture, "config": its
    resolved config, "states": {engine: theta (network), S (overlaps*), (theta, weights) (particles)}}."""
    path = Path(folder) / CHECKPOINT / STATE_FILE
    if not path.is_file():
        raise RunError(f"no overlapflow run there (missing {path})")
    with open(path, "rb") as f:
        saved = pickle.load(f)
    if not saved.get("complete"):
        raise RunError(f"the run in {folder} is not finished (resume it first: overlapflow run --resume {folder})")
    config = json.loads(saved["config"])
    states = {}
    for name, entry in saved["engines"].items():
        state = entry["state"]
        if entry["kind"] == "network":
            states[name] = np.asarray(state[0])
        elif entry["kind"] == "overlaps":
            states[name] = np.asarray(state.S if isinstance(state, MomentumState) else state)
        else:
            states[name] = (np.asarray(state[0]), np.asarray(entry["weights"]))
    return {"network": config["network"], "config": config, "states": states}


def _initial_states(config: ExperimentConfig, rnn, names):
    """(theta0 or None, S0 (P, P) float64, particles (theta, weights) or None)."""
    init, N = config.init, config.N
    dtype = jnp.dtype(config.dtype)
    init_key = jax.random.key(config.seed if init.seed is None else init.seed)
    theta0, S0, cloud = None, None, None
    if init.from_run is not None:
        states = read_final_state(init.from_run)["states"]
        overlap_states = [v for k, v in states.items() if k.startswith("overlaps")]
        if "network" in states:
            theta0 = jnp.asarray(states["network"], dtype=dtype)
        if overlap_states:
            S0 = np.asarray(overlap_states[0], dtype=np.float64)
        elif theta0 is not None:
            S0 = np.asarray(Overlaps.from_params(rnn, theta0).matrix)
        else:
            theta_p, w = states["particles"]
            S0 = theta_p.T @ (theta_p * w[:, None])
        if "particles" in states:
            cloud = states["particles"]
        if theta0 is None and "network" in names:
            theta0 = sample_params(rnn, S0, N, init_key, dtype=dtype)
    elif init.overlaps is not None:
        S0 = np.asarray(Overlaps.from_dict(rnn, init.overlaps).matrix)
        if "network" in names:
            theta0 = sample_params(rnn, S0, N, init_key, dtype=dtype)
    else:
        theta0 = rnn.init(init_key, N=N, dtype=dtype)
        S0 = np.asarray(Overlaps.from_params(rnn, theta0).matrix)
    if init.twin is not None:
        from ..phenomena.twin import twin_network, twin_overlaps

        try:
            if theta0 is not None:
                theta0 = twin_network(rnn, theta0, dict(init.twin), jax.random.fold_in(init_key, 1)).astype(dtype)
                S0 = np.asarray(Overlaps.from_params(rnn, theta0).matrix)
            else:
                S0 = np.asarray(twin_overlaps(rnn, S0, dict(init.twin)).matrix)
        except ValueError as error:
            raise ConfigError([("init.twin", dict(init.twin), str(error))]) from None
        cloud = None
    return theta0, S0, cloud


def _make_engines(config: ExperimentConfig, rnn) -> list[_Engine]:
    names = config.engines.names()
    theta0, S0, cloud = _initial_states(config, rnn, names)
    engines = []
    for name in names:
        if name == "network":
            engines.append(_Engine(name, "network", None, (theta0, None)))
        elif name == "particles":
            p = config.engines.particles
            if cloud is None:
                made = (
                    make_particles(S0, p.rule, p.nodes, p.n, seed=config.seed)
                    if p.rule == "qmc"
                    else make_particles(S0, p.rule, p.nodes)
                )
                cloud = (np.asarray(made.theta), np.asarray(made.weights))
            extra = {"rule": p.rule, "n_particles": int(len(cloud[1]))}
            if p.rule == "gauss-hermite":
                extra["nodes"] = p.nodes
            engines.append(
                _Engine(
                    name,
                    "particles",
                    None,
                    (jnp.asarray(cloud[0]), None),
                    jnp.asarray(cloud[1]),
                    base_attrs_particles=extra,
                )
            )
        else:
            engines.append(_Engine(name, "overlaps", config.engines.method_of(name), jnp.asarray(S0)))
    for engine in engines:
        engine.state = _to_jax(_to_numpy(engine.state))
    return engines


# ---------------------------------------------------------------------------- checkpoints
def _write_checkpoint(out: Path, engines, rnn, run_attrs, position, segments, key, config, complete) -> None:
    folder = out / CHECKPOINT
    status = "complete" if complete else "partial"
    for engine in engines:
        _write_history(folder / f"{engine.name}.nc", engine.history(rnn, run_attrs, status))
    saved = {
        "format": FORMAT,
        "config": json.dumps(config.resolved()),
        "phase": position[0],
        "epoch": position[1],
        "segments": segments,
        "complete": complete,
        "key_data": np.asarray(jax.random.key_data(key)),
        "versions": {"overlapflow": __version__, "jax": jax.__version__},
        "engines": {
            e.name: {
                "kind": e.kind,
                "method": e.method,
                "state": _to_numpy(e.state),
                "weights": None if e.weights is None else np.asarray(e.weights),
                "records": e.records,
                "base_attrs": e.base_attrs,
                "base_attrs_particles": e.base_attrs_particles,
            }
            for e in engines
        },
    }

    def dump(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(saved, f, protocol=pickle.HIGHEST_PROTOCOL)

    _atomic_write(folder / STATE_FILE, dump)


def _read_checkpoint(out: Path, config: ExperimentConfig, rnn):
    path = out / CHECKPOINT / STATE_FILE
    if not path.is_file():
        raise RunError(f"nothing to resume in {out}: no checkpoint ({path} is missing)")
    with open(path, "rb") as f:
        saved = pickle.load(f)
    if saved.get("format") != FORMAT:
        raise RunError(f"{path}: checkpoint format {saved.get('format')!r}; this overlapflow reads format {FORMAT}")
    stored = _comparable(json.loads(saved["config"]))
    given = _comparable(config.resolved())
    if stored != given:
        keys = sorted(k for k in set(stored) | set(given) if stored.get(k) != given.get(k))
        raise RunError(
            f"the checkpoint in {out} was written for a different config (differs in: {', '.join(keys)}); "
            f"resume with the config stored there ({out / 'config.json'}), or start a new run in another folder"
        )
    engines = []
    for name, entry in saved["engines"].items():
        engine = _Engine(
            name,
            entry["kind"],
            entry["method"],
            _to_jax(entry["state"]),
            None if entry["weights"] is None else jnp.asarray(entry["weights"]),
            entry["base_attrs"],
            base_attrs_particles=entry.get("base_attrs_particles") or {},
        )
        n = entry["records"]
        if n:
            history = load_history(out / CHECKPOINT / f"{name}.nc")
            if history.sizes["epoch"] < n:
                raise RunError(
                    f"checkpoint {out / CHECKPOINT / name}.nc has {history.sizes['epoch']} records; "
                    f"state.pkl expects {n}"
                )
            engine.losses = [history.loss.values[:n]]
            engine.overlaps = [history.overlaps.values[:n]]
            engine.phases = [history.phase.values[:n].astype(np.int64)]
        engines.append(engine)
    if [e.name for e in engines] != config.engines.names():
        raise RunError(
            f"the checkpoint in {out} holds engines {[e.name for e in engines]}; "
            f"the config runs {config.engines.names()}"
        )
    key = jax.random.wrap_key_data(jnp.asarray(saved["key_data"]))
    return engines, (saved["phase"], saved["epoch"]), saved["segments"], key


def _occupied(out: Path) -> bool:
    return (out / CHECKPOINT).exists() or (out / "config.json").exists()


def _clear(out: Path) -> None:
    """Remove the files a run writes in out (its checkpoint, Histories, configs and summary)."""
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
    for pattern in ("network*.nc", "overlaps*.nc", "particles*.nc"):
        for path in out.glob(pattern):
            path.unlink()
    for name in ("config.toml", "config.json", "summary.txt"):
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()


# ---------------------------------------------------------------------------- the runner
def run_experiment(
    config: ExperimentConfig,
    out_dir=None,
    progress: bool = False,
    resume: bool = False,
    *,
    overwrite: bool = False,
    stop_after_segments: int | None = None,
) -> dict[str, xr.Dataset]:
    """Run ``config``'s phases on its engines with checkpoints; returns {engine: History}.

    Args:
        config: a validated :class:`~overlapflow.experiments.config.ExperimentConfig`.
        out_dir: output folder (default ``config.output``).
        progress: show a progress bar.
        resume: continue the run whose checkpoint is in ``out_dir`` (written for an equal config,
            the output folder aside). A finished run is not rerun: its results are written again.
        overwrite: start afresh in a folder that already holds a run (its files are removed).
        stop_after_segments: stop (as if killed) after this many segments in this call, returning
            the Histories so far; for tests of resuming.

    Returns:
        {engine: History}, engines named ``"network"``, ``"overlaps"`` (the first method),
        ``"overlaps-<method>"`` (further methods), ``"particles"``. Each History has ``phase``
        (epoch) and attrs naming the phases, their ends, tasks, rates and optimisers, the seed,
        the resolved config, and the overlapflow and JAX versions.

    Raises:
        ConfigError: the initial state cannot be built (e.g. an infeasible twin).
        RunError: the folder already holds a run (without resume / overwrite), or the checkpoint
            is missing or was written for another config.
        ExperimentDiverged: NaN/Inf; the last good checkpoint and ``<engine>.partial.nc`` are kept.
    """
    if not isinstance(config, ExperimentConfig):
        raise TypeError(
            f"config = {type(config).__name__}: must be an ExperimentConfig (overlapflow.experiments.load_config)"
        )
    started = time.perf_counter()
    out = Path(out_dir if out_dir is not None else config.output)
    rnn = config.build_network()
    phases = config.build_phases(rnn)
    run_attrs = _run_attrs(config, phases)
    chunk = min(config.checkpoint_every, max(p.epochs for p in phases)) + 1

    if resume:
        engines, (start_phase, start_epoch), segments, key = _read_checkpoint(out, config, rnn)
    else:
        if _occupied(out):
            if not overwrite:
                raise RunError(
                    f"{out} already holds a run; continue it with resume (overlapflow run --resume {out}), "
                    "choose another output folder, or start afresh with overwrite (--overwrite)"
                )
            _clear(out)
        out.mkdir(parents=True, exist_ok=True)
        _write_text(out / "config.toml", config.source_text())
        _write_text(out / "config.json", config.to_json() + "\n")
        key = jax.random.key(config.seed)
        engines = _make_engines(config, rnn)
        start_phase, start_epoch, segments = 0, 0, 0
        _write_checkpoint(out, engines, rnn, run_attrs, (0, 0), 0, key, config, complete=False)
    resumed_at = sum(p.epochs for p in phases[:start_phase]) + start_epoch

    done_segments = 0
    total = config.total_epochs * len(engines)
    with progress_bar(progress, "starting", total, resumed_at * len(engines)) as update:
        for j in range(start_phase, len(phases)):
            phase = phases[j]
            phase_key = jax.random.fold_in(key, j)
            offset = start_epoch if j == start_phase else 0
            while offset < phase.epochs:
                if stop_after_segments is not None and done_segments >= stop_after_segments:
                    return {e.name: e.history(rnn, run_attrs, "partial") for e in engines}
                length = min(config.checkpoint_every, phase.epochs - offset)
                for engine in engines:
                    try:
                        history, state = engine.advance(rnn, phase, phase_key, length, offset, chunk, fresh=offset == 0)
                    except DivergenceError as error:
                        _diverged(out, engines, engine, error, rnn, run_attrs, phases, j, offset)
                    engine.append(history, j)
                    engine.state = _to_jax(_to_numpy(state))  # the same round trip as a checkpoint
                    update(length, float(history.loss.values[-1]), description=f"{phase.name} · {engine.name}")
                offset += length
                position = (j, offset) if offset < phase.epochs else (j + 1, 0)
                segments += 1
                done_segments += 1
                complete = position[0] == len(phases)
                _write_checkpoint(out, engines, rnn, run_attrs, position, segments, key, config, complete)

    histories = {e.name: e.history(rnn, run_attrs, "complete") for e in engines}
    for name, history in histories.items():
        _write_history(out / f"{name}.nc", history)
        with contextlib.suppress(FileNotFoundError):
            (out / f"{name}.partial.nc").unlink()
    wall = time.perf_counter() - started
    _write_text(out / "summary.txt", summary_text(config, histories, out, wall, resumed_at if resume else None))
    return histories


def _diverged(out, engines, engine, error, rnn, run_attrs, phases, j, offset):
    """Write every engine's partial History, keep the last checkpoint, raise ExperimentDiverged."""
    partial, files = {}, []
    for e in engines:
        extra = error.history if e is engine else None
        partial[e.name] = e.history(rnn, run_attrs, "diverged" if e is engine else "partial", extra, j)
        path = out / f"{e.name}.partial.nc"
        _write_history(path, partial[e.name])
        files.append(str(path))
    good = error.history.sizes["epoch"]  # records 0..good-1 of the segment are finite
    start = max(engine.records - 1, 0)  # global epoch of the segment's first record
    bad = start + good
    history = partial[engine.name]
    last_loss = float(history.loss.values[-1]) if history.sizes["epoch"] else float("nan")
    largest = float(np.max(np.abs(history.overlaps.values[-1]))) if history.sizes["epoch"] else float("nan")
    checkpoint = out / CHECKPOINT
    with open(checkpoint / STATE_FILE, "rb") as f:
        saved = pickle.load(f)
    kept_at = sum(p.epochs for p in phases[: saved["phase"]]) + saved["epoch"]
    phase = phases[j]
    message = (
        f"{engine.name} diverged in phase '{phase.name}' ({j + 1} of {len(phases)}) at epoch {bad} "
        f"(epoch {offset + good} of the phase): the loss or the overlaps became NaN/Inf. "
        f"Last finite values, at epoch {bad - 1}: loss {last_loss:.3e}, largest |overlap| {largest:.3e}. "
        f"The learning rate is probably too large: lower lr of phase '{phase.name}' (now {phase.lr:g}) and run again. "
        f"Kept: the last good checkpoint ({checkpoint}, epoch {kept_at}) and the partial Histories {', '.join(files)}."
    )
    raise ExperimentDiverged(message, history, partial, engine.name, bad, str(checkpoint), files) from None


# ---------------------------------------------------------------------------- summary
def describe_config(config: ExperimentConfig) -> list[str]:
    """Lines naming the network, the phases and the engines of a config."""
    net = config.network
    lines = [
        f"network: rank {net.rank}, n_in {net.n_in}, n_out {net.n_out}, phi {net.phi}, dt {net.dt:g}, "
        f"tau {net.tau:g}; N = {config.N} ({config.dtype}); seed {config.seed}",
        "phases:",
    ]
    for phase in config.build_phases():
        task = phase.training_task.describe()
        lines.append(f"  {phase.name}: {task}, {phase.epochs} epochs, lr {phase.lr:g}, {phase.optimizer.kind}")
    engines = ", ".join(config.engines.names())
    lines.append(f"engines: {engines}; checkpoint every {config.checkpoint_every} epochs; output {config.output}")
    return lines


def summary_text(
    config: ExperimentConfig, histories: dict, out: Path, wall: float | None = None, resumed_at: int | None = None
) -> str:
    """The run's summary: versions, settings, final loss per engine, network-theory deviation."""
    lines = [
        f"overlapflow {__version__}, JAX {jax.__version__}",
        f"experiment: {config.name}" + (f" - {config.description}" if config.description else ""),
        f"output: {out}",
        *describe_config(config),
        "final loss:",
    ]
    for name, history in histories.items():
        lines.append(f"  {name:<24} {float(history.loss.values[-1]):.6e}")
    if "network" in histories:
        for name, history in histories.items():
            if name != "network" and history.sizes["epoch"] == histories["network"].sizes["epoch"]:
                deviation = max_overlap_deviation(histories["network"], history)
                lines.append(f"max |S_network - S_{name}| over epochs and overlaps: {deviation:.3e}")
    if resumed_at is not None:
        lines.append(f"resumed from the checkpoint at epoch {resumed_at}")
    if wall is not None:
        lines.append(f"wall time: {wall:.1f} s")
    return "\n".join(lines) + "\n"


def load_results(out_dir) -> dict[str, xr.Dataset]:
    """The final Histories of a finished run folder, {engine: History}."""
    from .config import EnginesConfig

    out = Path(out_dir)
    engines = json.loads((out / "config.json").read_text())["engines"]
    return {name: load_history(out / f"{name}.nc") for name in EnginesConfig.model_validate(engines).names()}
