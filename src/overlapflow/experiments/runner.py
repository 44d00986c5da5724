r"""Run an experiment config: its phases on the chosen engines, in checkpointed segments.

The phases run through the one phase loop, :func:`~overlapflow.phenomena.curriculum.run_phases`:
the state carries over from phase to phase, each phase restarts its optimiser and draws the
batches of its epoch k from ``fold_in(fold_in(key, j), k)`` (phase j), so all engines see the same
batches. Each phase is cut into segments of ``checkpoint_every`` epochs (the last one may be
shorter); after every segment of every engine a checkpoint is written: the segment's records are
appended and ``state.pkl`` replaced (the folder: :class:`~overlapflow.run_folder.RunFolder`).

``resume=True`` continues from the checkpoint with the same segments, and the result equals the
uninterrupted run bit for bit (states pass through the same numpy round trip after every segment
in both). At the end: ``OUT/<engine>.nc`` and ``OUT/summary.txt`` (``overlapflow run`` then draws
the figure from the Histories it holds).

A NaN/Inf stops the run with :class:`ExperimentDiverged` (a :class:`~overlapflow.DivergenceError`):
the last good checkpoint stays, and ``OUT/<engine>.partial.nc`` hold every engine's History up to
its last good epoch.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .._version import __version__
from ..engines import NetworkEngine, ParticleEngine, overlap_engine
from ..history import load_history, max_overlap_deviation
from ..mixture import Mixture, population_sizes
from ..overlaps import Overlaps, sample_params
from ..particles import Particles
from ..phenomena.curriculum import CurriculumDiverged, Track, phase_table, run_phases
from ..precision import float64
from ..run_folder import RunError, RunFolder, write_text
from ..training import DivergenceError
from .config import ConfigError, ExperimentConfig
from .interrupts import raise_if_interrupted

__all__ = ["ExperimentDiverged", "RunError", "RunFolder", "load_results", "run_experiment"]


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


def _comparable(resolved: dict) -> dict:
    return {k: v for k, v in resolved.items() if k != "output"}


def _run_attrs(config: ExperimentConfig) -> dict:
    return {"experiment": config.name, "seed": config.seed, "config": json.dumps(config.resolved())}


# ---------------------------------------------------------------------------- engines and initial state
@dataclasses.dataclass
class _Start:
    """Where the engines start: the network's theta (N, P) and the population of each row (N,) or
    None; ``law``, the overlap engines' S0 (P, P) or Mixture (and the particles', unless ``cloud``);
    ``cloud``, a previous run's Particles, and the population of each particle or None."""

    theta: jax.Array | None = None
    labels: np.ndarray | None = None
    law: np.ndarray | Mixture | None = None
    cloud: Particles | None = None
    cloud_labels: np.ndarray | None = None


def _initial_states(config: ExperimentConfig, rnn, names) -> _Start:
    """The initial state of every engine, from ``config.init`` (see :class:`InitConfig`)."""
    init, N = config.init, config.N
    dtype = jnp.dtype(config.dtype)
    init_key = jax.random.key(config.seed if init.seed is None else init.seed)
    if init.population_tables is not None:
        start = _Start(law=init.build_mixture(rnn))
    elif init.from_file is not None:
        start = _from_file(init, rnn, dtype, config.seed if init.seed is None else init.seed)
    elif init.from_run is not None:
        start = _from_run(init.from_run, rnn, dtype)
    elif init.overlaps is not None:
        start = _Start(law=np.asarray(Overlaps.from_dict(rnn, init.overlaps).matrix))
    else:
        theta0 = rnn.init(init_key, N=N, dtype=dtype)
        start = _Start(theta0, law=np.asarray(Overlaps.from_params(rnn, theta0).matrix))
    if start.theta is None and "network" in names:
        start.theta, start.labels = _sample(rnn, start.law, N, init_key, dtype)
    if init.twin is not None:
        from ..phenomena.twin import twin_network, twin_overlaps

        try:
            if start.theta is not None:
                start.theta = twin_network(rnn, start.theta, dict(init.twin), jax.random.fold_in(init_key, 1))
                start.theta = start.theta.astype(dtype)
                start.law = np.asarray(Overlaps.from_params(rnn, start.theta).matrix)
            else:
                start.law = np.asarray(twin_overlaps(rnn, start.law, dict(init.twin)).matrix)
        except ValueError as error:
            raise ConfigError([("init.twin", dict(init.twin), str(error))]) from None
        start.cloud = None
    return start


def _sample(rnn, law, N: int, key, dtype):
    """A network of N neurons from S0 (Gram matrix exactly S0) or from a Mixture (each population's
    mean and covariance exactly the mixture's when every population has more than P neurons, else
    i.i.d. rows): (theta (N, P), labels (N,) or None)."""
    if isinstance(law, Mixture):
        exact = min(population_sizes(law.weights, N)) > rnn.n_vectors
        theta, labels = law.sample(rnn, key, N, dtype=dtype, exact=exact)
        return theta, np.asarray(labels)
    return sample_params(rnn, law, N, key, dtype=dtype), None


def _from_run(folder, rnn, dtype) -> _Start:
    """The final state of a finished run (:meth:`RunFolder.final_states`), populations included: the
    overlap engines continue its overlap state, else the law of its network or particles."""
    previous = RunFolder(folder).final_states()
    states, labels = previous["states"], previous["populations"]
    start = _Start()
    if "network" in states:
        start.theta, start.labels = jnp.asarray(states["network"], dtype=dtype), labels.get("network")
    if "particles" in states:
        start.cloud, start.cloud_labels = states["particles"], labels.get("particles")
    overlap_states = [v for k, v in states.items() if k.startswith("overlaps")]
    if overlap_states:
        law = overlap_states[0]
        start.law = law if isinstance(law, Mixture) else np.asarray(law, dtype=np.float64)
    elif start.theta is not None:
        if start.labels is None:
            start.law = np.asarray(Overlaps.from_params(rnn, start.theta).matrix)
        else:
            start.law = Mixture.from_params(rnn, start.theta, start.labels)
    elif start.cloud_labels is None:
        start.law = np.asarray(start.cloud.overlaps)
    else:
        start.law = Mixture.from_params(rnn, start.cloud.theta, start.cloud_labels, start.cloud.weights)
    return start


def _from_file(init, rnn, dtype, seed: int) -> _Start:
    """A ``low_rank_rnns`` network file (read with the config's alpha = dt / tau): the network from its
    theta, and the law of its rows: populations fitted (``init.populations = "fit"``: the K of lowest
    BIC, :func:`~overlapflow.inspection.fit_populations`; a number K: :meth:`Mixture.fit`), the file's
    own (a ``SupportLowRankRNN``), or one Gaussian N(0, S) (a ``LowRankRNN``). Fits use ``seed``."""
    from ..inspection import fit_populations
    from ..interop import load_low_rank_rnns

    imported = load_low_rank_rnns(init.from_file, alpha=rnn.alpha, tau=rnn.tau)
    theta = imported.theta
    if init.populations == "fit":
        fit = fit_populations(rnn, theta, seed=seed)
        law, labels = fit.mixture, fit.labels
    elif init.populations is not None:
        law, labels = Mixture.fit(rnn, theta, init.populations, seed)
    elif imported.model == "SupportLowRankRNN":
        law, labels = imported.mixture(), imported.labels
    else:
        law, labels = np.asarray(Overlaps.from_params(rnn, theta).matrix), None
    return _Start(jnp.asarray(theta, dtype=dtype), None if labels is None else np.asarray(labels), law)


def _engine(config: ExperimentConfig, name: str):
    """The engine a config names (its optimiser is the phase's, set by the phase loop)."""
    if name == "network":
        return NetworkEngine()
    if name == "particles":
        p = config.engines.particles
        return ParticleEngine(
            rule=p.rule, nodes=p.nodes, n=p.n, seed=config.seed, level=p.level, right_nodes=p.right_nodes
        )
    return overlap_engine(config.engines.method_of(name))


def _engines(config: ExperimentConfig) -> dict:
    """{name: engine} in run order."""
    return {name: _engine(config, name) for name in config.engines.names()}


def _tracks(config: ExperimentConfig, rnn) -> list[Track]:
    names = config.engines.names()
    start = _initial_states(config, rnn, names)
    law = start.law if isinstance(start.law, Mixture) else jnp.asarray(start.law)
    tracks = []
    for name, engine in _engines(config).items():
        if name == "network":
            tracks.append(Track(name, engine, start.theta, populations=start.labels))
        elif name == "particles" and start.cloud is not None:
            cloud = Particles(jnp.asarray(start.cloud.theta), jnp.asarray(start.cloud.weights))
            tracks.append(Track(name, engine, cloud, populations=start.cloud_labels))
        else:
            tracks.append(Track(name, engine, law))
    return tracks


# ---------------------------------------------------------------------------- checkpoints
def _resume(folder: RunFolder, config: ExperimentConfig):
    """The tracks, position, segment count and key of the checkpoint in ``folder`` (checked against ``config``)."""
    saved = folder.read_checkpoint()
    stored = _comparable(json.loads(saved["config"]))
    given = _comparable(config.resolved())
    if stored != given:
        keys = sorted(k for k in set(stored) | set(given) if stored.get(k) != given.get(k))
        raise RunError(
            f"the checkpoint in {folder.path} was written for a different config (differs in: {', '.join(keys)}); "
            f"resume with the config stored there ({folder.config_json}), or start a new run in another folder"
        )
    if list(saved["engines"]) != config.engines.names():
        raise RunError(
            f"the checkpoint in {folder.path} holds engines {list(saved['engines'])}; "
            f"the config runs {config.engines.names()}"
        )
    key = jax.random.wrap_key_data(jnp.asarray(saved["key_data"]))
    return folder.tracks(_engines(config)), (saved["phase"], saved["epoch"]), saved["segments"], key


class _Stop(Exception):
    """Raised by the checkpoint callback to stop a run after a number of segments (tests of resuming)."""


# ---------------------------------------------------------------------------- the runner
@float64
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
        (epoch) and the phase table (names, ends, tasks, rates, optimisers; see
        :mod:`~overlapflow.phenomena.curriculum`), attrs with the seed, the resolved config, and
        the overlapflow and JAX versions.

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
    folder = RunFolder(out_dir if out_dir is not None else config.output)
    rnn = config.build_network()
    phases = config.build_phases(rnn)
    table = phase_table(phases)
    run_attrs = _run_attrs(config)
    chunk = min(config.checkpoint_every, max(p.epochs for p in phases)) + 1

    if resume:
        tracks, position, segments, key = _resume(folder, config)
    else:
        if folder.holds_run():
            if not overwrite:
                raise RunError(
                    f"{folder.path} already holds a run; continue it with resume (overlapflow run --resume "
                    f"{folder.path}), choose another output folder, or start afresh with overwrite (--overwrite)"
                )
            folder.clear()
        folder.begin(config.source_text(), config.to_json())
        key = jax.random.key(config.seed)
        tracks = _tracks(config, rnn)
        position, segments = (0, 0), 0
    resumed_at = sum(p.epochs for p in phases[: position[0]]) + position[1]
    written = {t.name: len(t.pieces) for t in tracks}
    done = {"segments": segments, "here": 0}
    stored = {
        "config": json.dumps(config.resolved()),
        "key_data": np.asarray(jax.random.key_data(key)),
        "network": config.network.describe(),
        "phase_table": table,
        "attrs": run_attrs,
        "versions": {"overlapflow": __version__, "jax": jax.__version__},
    }

    def write_checkpoint(reached, segments, complete):
        folder.write_checkpoint(tracks, written, phase=reached[0], epoch=reached[1], segments=segments,
                                complete=complete, **stored)  # fmt: skip

    if not resume:
        write_checkpoint(position, 0, False)

    def checkpoint(reached, tracks):
        done["segments"] += 1
        done["here"] += 1
        complete = reached[0] == len(phases)
        write_checkpoint(reached, done["segments"], complete)
        if stop_after_segments is not None and done["here"] >= stop_after_segments and not complete:
            raise _Stop
        raise_if_interrupted()  # a Ctrl-C swallowed inside a callback still stops the run here

    try:
        run_phases(
            rnn,
            phases,
            tracks,
            key,
            segment=config.checkpoint_every,
            position=position,
            on_segment=checkpoint,
            progress=progress,
            chunk=chunk,
        )
    except _Stop:
        return {t.name: t.history(rnn, table, {**run_attrs, "status": "partial"}) for t in tracks}
    except CurriculumDiverged as error:
        _diverged(folder, tracks, error, rnn, phases, run_attrs)

    histories = {t.name: t.history(rnn, table, {**run_attrs, "status": "complete"}) for t in tracks}
    for name, history in histories.items():
        folder.write_history(name, history)
    wall = time.perf_counter() - started
    summary = summary_text(config, phases, histories, folder.path, wall, resumed_at if resume else None)
    write_text(folder.summary, summary)
    return histories


def _diverged(folder: RunFolder, tracks, error: CurriculumDiverged, rnn, phases, run_attrs):
    """Write every engine's partial History, keep the last checkpoint, raise ExperimentDiverged."""
    partial, files = {}, []
    table = phase_table(phases)
    for t in tracks:
        if t is error.track:
            partial[t.name] = error.history.assign_attrs({**run_attrs, "status": "diverged"})
        else:
            partial[t.name] = t.history(rnn, table, {**run_attrs, "status": "partial"})
        files.append(str(folder.write_history(t.name, partial[t.name], partial=True)))
    kept_at = folder.position()[0]
    bad = error.history.sizes["epoch"]
    history = partial[error.track.name]
    last_loss = float(history.loss.values[-1]) if bad else float("nan")
    largest = float(np.max(np.abs(history.overlaps.values[-1]))) if bad else float("nan")
    message = (
        f"{error} Last finite values, at epoch {bad - 1}: loss {last_loss:.3e}, largest |overlap| {largest:.3e}. "
        f"Kept: the last good checkpoint ({folder.checkpoint}, epoch {kept_at}) and the partial Histories "
        f"{', '.join(files)}."
    )
    raise ExperimentDiverged(message, history, partial, error.track.name, bad, str(folder.checkpoint), files) from None


# ---------------------------------------------------------------------------- summary
def describe_config(config: ExperimentConfig, phases=None) -> list[str]:
    """Lines naming the network, the phases (built from the config unless given) and the engines of a config."""
    net = config.network
    lines = [
        f"network: rank {net.rank}, n_in {net.n_in}, n_out {net.n_out}, phi {net.phi}, dt {net.dt:g}, "
        f"tau {net.tau:g}; N = {config.N} ({config.dtype}); seed {config.seed}",
        "phases:",
    ]
    for phase in config.build_phases() if phases is None else phases:
        task = phase.training_task.describe()
        lines.append(f"  {phase.name}: {task}, {phase.epochs} epochs, lr {phase.lr:g}, {phase.optimizer.kind}")
    tables, init = config.init.population_tables, config.init
    if tables is not None:
        weights = ", ".join(f"{p.weight:g}" for p in tables)
        lines.append(f"init: {len(tables)} populations (weights {weights})")
    elif init.from_file is not None:
        populations = {None: "the file's, or one Gaussian", "fit": "fitted, K of lowest BIC"}.get(
            init.populations, f"{init.populations} fitted"
        )
        lines.append(f"init: the network of {init.from_file}; populations: {populations}")
    engines = ", ".join(config.engines.names())
    lines.append(f"engines: {engines}; checkpoint every {config.checkpoint_every} epochs; output {config.output}")
    return lines


def summary_text(
    config: ExperimentConfig,
    phases,
    histories: dict,
    out: Path,
    wall: float | None = None,
    resumed_at: int | None = None,
) -> str:
    """The run's summary: versions, settings, final loss per engine, network-theory deviation."""
    lines = [
        f"overlapflow {__version__}, JAX {jax.__version__}",
        f"experiment: {config.name}" + (f" - {config.description}" if config.description else ""),
        f"output: {out}",
        *describe_config(config, phases),
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
    folder = RunFolder(out_dir)
    return {name: load_history(folder.history_file(name)) for name in folder.read_checkpoint()["engines"]}
