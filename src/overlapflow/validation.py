r"""How far each theory is from finite networks: the finite-N study of a nonlinear network.

Three descriptions of the same learning run, all from the same initial overlaps S_0 and batches:

- finite networks at several N (rows drawn with Gram matrix exactly S_0, one or more seeds per N);
- the infinite-N limit computed by particles (:mod:`overlapflow.particles`);
- the Gaussian closure (:class:`~overlapflow.engines.OverlapEngine`, :mod:`overlapflow.meanfield`).

Each is one job (:mod:`overlapflow.validation_jobs`): a study kept in a folder resumes where it stopped.

Measured quantities (``max`` over overlaps, or over function coordinates
(:func:`~overlapflow.gauge.function_coordinates`, gauge-free), per epoch, then max over a span of
epochs and mean over seeds):

    d_limit(N, t)    = max |S_N(t) - S_inf(t)|        ~ C N^p,  p ~ -1/2
    d_closure(N, t)  = max |S_N(t) - S_closure(t)|
    closure(t)       = max |S_closure(t) - S_inf(t)|   (small until learning moves the rows)

over the whole run, over the first ``early_epochs`` epochs, and over the learned epochs: from the
first epoch where the limit's loss is below ``learned_factor`` times its final value.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from .engines import ParticleEngine
from .gauge import function_coordinates
from .model import LowRankRNN
from .optimizers import Optimizer
from .overlaps import visible_mask
from .precision import float64
from .tasks import AbstractTask
from .validation_jobs import Job, Study, check_settings, load_job, read_calls, run_jobs


def per_epoch_deviation(a: xr.Dataset, b: xr.Dataset) -> np.ndarray:
    """max over overlaps of |S_a - S_b| at every epoch, shape (epochs + 1,)."""
    return np.max(np.abs(a.overlaps.values - b.overlaps.values), axis=(1, 2))


def fit_power_law(x, y) -> tuple[float, float]:
    """Least-squares fit of log y = log C + p log x; returns (p, C)."""
    p, log_c = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(p), float(np.exp(log_c))


def learned_from(loss, factor: float = 10.0) -> int:
    """The first epoch whose loss is below ``factor`` times the final one (loss: (epochs + 1,))."""
    loss = np.asarray(loss, dtype=float)
    return int(np.argmax(loss < factor * loss[-1]))


def seed_counts(sizes: Sequence[int], seeds: int | Sequence[int]) -> list[int]:
    """Seeds per size: ``seeds`` for every size, or one count per size (in the order of ``sizes``)."""
    counts = [seeds] * len(sizes) if isinstance(seeds, int) and not isinstance(seeds, bool) else list(seeds)
    if len(counts) != len(sizes) or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in counts):
        raise ValueError(
            f"seeds = {seeds!r}: must be an integer >= 1, or one such integer per size ({len(sizes)} sizes)"
        )
    return counts


def _fit(sizes, distances) -> tuple[float, float]:
    """(p, C) of the seed-mean distances (N, seed) against N; NaN for fewer than 2 sizes."""
    return fit_power_law(sizes, np.nanmean(distances, axis=1)) if len(sizes) > 1 else (float("nan"), float("nan"))


def make_study(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0,
    lr: float,
    epochs: int,
    key: jax.Array | None = None,
    rule: str = "split",
    nodes: int = 6,
    n_particles: int = 2**14,
    right_nodes: int = 3,
    network_dtype: str = "float64",
    checkpoint_every: int = 250,
) -> Study:
    """The :class:`~overlapflow.validation_jobs.Study` that :func:`validate_theory` runs with these arguments."""
    key = jax.random.key(0) if key is None else key
    return Study(
        rnn,
        task,
        tuple(map(tuple, np.asarray(getattr(S0, "matrix", S0), dtype=float).tolist())),
        float(lr),
        int(epochs),
        tuple(int(x) for x in np.asarray(jax.random.key_data(key))),
        ParticleEngine(Optimizer("sgd"), rule, nodes, n_particles, right_nodes=right_nodes),
        network_dtype,
        checkpoint_every,
    )


@float64
def validate_theory(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0,
    lr: float,
    epochs: int,
    sizes=(250, 1000, 4000, 16000),
    seeds: int | Sequence[int] = 3,
    rule: str = "split",
    nodes: int = 6,
    n_particles: int = 2**14,
    key: jax.Array | None = None,
    progress: bool = False,
    right_nodes: int = 3,
    workers: int = 1,
    network_dtype: str = "float64",
    out=None,
    overwrite: bool = False,
    checkpoint_every: int = 250,
    early_epochs: int = 200,
    learned_factor: float = 10.0,
) -> xr.Dataset:
    """Run networks at each N, the particle limit and the Gaussian closure, and measure their distances.

    All runs share S_0 and the batches (``key``). Each run is a job (:mod:`~overlapflow.validation_jobs`):
    with ``workers`` > 1 the jobs go to that many single-threaded worker processes
    (:mod:`~overlapflow.worker_pool`), largest first, with the numbers of one process to round-off.
    With ``out``, the jobs are kept there and a later call with the same settings reuses the done ones
    and continues the stopped ones (it may add sizes and seeds).

    Args:
        sizes: network sizes N.
        seeds: networks per size, one count for all or one per size.
        rule: the particle rule of the limit (:class:`~overlapflow.engines.ParticleEngine`; default:
            split, 6 x 3 nodes).
        nodes: the rule's nodes per direction (split: of the coordinates inside phi).
        n_particles: the particles of the ``"qmc"`` rule.
        right_nodes: split: the nodes per direction of the coordinates outside phi.
        workers: processes for the jobs (1: all in this process).
        network_dtype: ``"float64"`` or ``"float32"`` for the networks (the limit and the closure are
            always float64). With float32, seed 0 of the smallest N also runs in float64, and the
            difference is the float32 round-off (``float32_round_off``).
        out: the folder of the jobs (None: a temporary one); overwrite: delete the jobs of a study
            with other settings there instead of refusing.
        checkpoint_every: epochs between two checkpoints of a job.
        early_epochs: the early distances are over epochs 0..``early_epochs`` (module docstring).
        learned_factor: the learned distances are over the epochs from the first where the limit's
            loss is below ``learned_factor`` times its final value (module docstring).

    Returns a Dataset with, for the networks (``NaN`` where a size has fewer seeds):

    - ``distance_to_limit``, ``distance_to_closure`` (N, seed, epoch): max over overlaps of
      |S_N - S_inf|, |S_N - S_closure|; ``function_distance_to_limit``, ``function_distance_to_closure``:
      the same in function coordinates;
    - ``learned_distance_to_limit``, ``learned_distance_to_closure`` and their ``function_`` variants
      (N, seed): max over the learned epochs; ``learned_distance_to_finer_limit`` (N, seed): the same
      from the limit on the finer rule; ``early_distance_to_limit`` (N, seed): over epochs
      0..``early_epochs``; ``network_deviation`` (N, seed): over the run; fitted exponents and
      prefactors (seed means against N) in ``attrs``: ``exponent`` / ``prefactor`` (whole run),
      ``exponent_learned``, ``exponent_early``, ``exponent_learned_function``;
    - ``network_epoch_deviation`` (N, epoch): ``distance_to_limit``'s seed mean; ``loss_network``
      (N, epoch; seed mean); ``overlaps_network`` (N, epoch, row, col; seed 0); ``seeds`` (N,);
      ``network_wall_s`` (N, seed);

    for the theories: ``closure_deviation``, ``closure_function_deviation`` (epoch): the closure's
    distance from the limit; ``limit_error`` (epoch): the limit's own, from the limit on a finer rule
    (:attr:`~overlapflow.validation_jobs.Study.finer_limit`); ``loss_particles``, ``loss_closure``
    (epoch), ``overlaps_particles``, ``overlaps_closure``, ``overlaps_finer_limit`` (epoch, row, col);
    and ``attrs``: ``learned_from`` (epoch), ``closure_max_deviation`` (over the run),
    ``closure_to_limit`` and ``closure_to_limit_function`` (over the learned epochs),
    ``limit_error_max``, ``limit_error_learned``, ``float32_round_off`` (max over the run; per epoch as a variable),
    ``wall_s``, ``jobs_run``, ``load_average_mean``, ``load_average_max`` (this call), ``calls`` and
    ``study_wall_s`` (the calls that ran jobs in ``out``, and their wall times summed).
    """
    if network_dtype not in ("float32", "float64"):
        raise ValueError(f"network_dtype = {network_dtype!r}: must be 'float32' or 'float64'")
    counts = seed_counts(sizes, seeds)
    order = np.argsort(sizes)
    sizes, counts = [int(sizes[i]) for i in order], [counts[i] for i in order]
    study = make_study(
        rnn, task, S0, lr, epochs, key, rule, nodes, n_particles, right_nodes, network_dtype, checkpoint_every
    )
    networks = [[Job("network", N, s, network_dtype) for s in range(k)] for N, k in zip(sizes, counts, strict=True)]
    check = [Job("network", sizes[0], 0, "float64")] if network_dtype == "float32" else []
    jobs = [Job("limit"), Job("finer-limit"), Job("closure"), *(job for row in networks for job in row), *check]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() if out is None else _folder(out) as folder:
        check_settings(folder, study, overwrite)
        ran = run_jobs(folder, study, jobs, workers, progress)
        records = {job.name: load_job(folder, job) for job in jobs}
        calls = read_calls(folder)
    limit, finer, closure = records["limit"], records["limit_finer"], records["closure"]
    S_inf, S_closure = limit["overlaps"], closure["overlaps"]
    per_epoch, wall = _network_distances(rnn, networks, records, S_inf, S_closure, finer["overlaps"])
    learned = learned_from(limit["loss"], learned_factor)
    early = min(early_epochs, epochs)
    over_learned, over_early, whole = (
        _span_max(per_epoch, s) for s in (slice(learned, None), slice(0, early + 1), slice(None))
    )
    loss_net = np.stack([np.mean([records[job.name]["loss"] for job in row], axis=0) for row in networks])
    overlaps_net = np.stack([records[row[0].name]["overlaps"] for row in networks])
    closure_dev = np.abs(S_closure - S_inf).max(axis=(1, 2))
    closure_f_dev = np.abs(_function(rnn, S_closure) - _function(rnn, S_inf)).max(axis=1)
    limit_error = np.abs(finer["overlaps"] - S_inf).max(axis=(1, 2))
    fits = {
        "": _fit(sizes, whole[0]),
        "_learned": _fit(sizes, over_learned[0]),
        "_early": _fit(sizes, over_early[0]),
        "_learned_function": _fit(sizes, over_learned[2]),
    }
    data = {
        "distance_to_limit": (("N", "seed", "epoch"), per_epoch[0]),
        "distance_to_closure": (("N", "seed", "epoch"), per_epoch[1]),
        "function_distance_to_limit": (("N", "seed", "epoch"), per_epoch[2]),
        "function_distance_to_closure": (("N", "seed", "epoch"), per_epoch[3]),
        "learned_distance_to_limit": (("N", "seed"), over_learned[0]),
        "learned_distance_to_closure": (("N", "seed"), over_learned[1]),
        "function_learned_distance_to_limit": (("N", "seed"), over_learned[2]),
        "function_learned_distance_to_closure": (("N", "seed"), over_learned[3]),
        "learned_distance_to_finer_limit": (("N", "seed"), over_learned[4]),
        "early_distance_to_limit": (("N", "seed"), over_early[0]),
        "network_deviation": (("N", "seed"), whole[0]),
        "network_epoch_deviation": (("N", "epoch"), np.nanmean(per_epoch[0], axis=1)),
        "network_wall_s": (("N", "seed"), wall),
        "seeds": ("N", counts),
        "closure_deviation": ("epoch", closure_dev),
        "closure_function_deviation": ("epoch", closure_f_dev),
        "limit_error": ("epoch", limit_error),
        "loss_particles": ("epoch", limit["loss"]),
        "loss_closure": ("epoch", closure["loss"]),
        "loss_network": (("N", "epoch"), loss_net),
        "overlaps_particles": (("epoch", "row", "col"), S_inf),
        "overlaps_closure": (("epoch", "row", "col"), S_closure),
        "overlaps_finer_limit": (("epoch", "row", "col"), finer["overlaps"]),
        "overlaps_network": (("N", "epoch", "row", "col"), overlaps_net),
        "visible": (("row", "col"), np.asarray(visible_mask(rnn))),
    }
    attrs = {}
    if check:
        round_off = np.abs(records[networks[0][0].name]["overlaps"] - records[check[0].name]["overlaps"]).max(
            axis=(1, 2)
        )
        data["float32_round_off"] = ("epoch", round_off)
        attrs.update(float32_round_off=float(round_off.max()), float32_round_off_N=sizes[0])
    for suffix, (p, c) in fits.items():
        attrs[f"exponent{suffix}"], attrs[f"prefactor{suffix}"] = p, c
    names = list(rnn.vector_names)
    return xr.Dataset(
        data,
        coords={"N": sizes, "seed": np.arange(max(counts)), "epoch": np.arange(epochs + 1), "row": names, "col": names},
        attrs={
            **attrs,
            "learned_from": learned,
            "learned_factor": float(learned_factor),
            "early_epochs": early,
            "closure_max_deviation": float(closure_dev.max()),
            "closure_to_limit": float(closure_dev[learned:].max()),
            "closure_to_limit_function": float(closure_f_dev[learned:].max()),
            "particles": _rule(study.limit),
            "limit_error_max": float(limit_error.max()),
            "limit_error_learned": float(limit_error[learned:].max()),
            "finer_particles": _rule(study.finer_limit),
            "limit_wall_s": limit["wall_s"],
            "closure_wall_s": closure["wall_s"],
            "wall_s": time.perf_counter() - started,
            "jobs_run": len(ran["ran"]),
            "load_average_mean": ran["load_average_mean"],
            "load_average_max": ran["load_average_max"],
            "calls": len(calls),
            "study_wall_s": float(sum(call["wall_s"] for call in calls)),
            "workers": int(workers),
            "network_dtype": network_dtype,
            "lr": float(lr),
            "epochs": int(epochs),
            "task": task.describe(),
            **{f"rnn_{k}": (v if not isinstance(v, bool) else int(v)) for k, v in rnn.describe().items()},
        },
    )


def _rule(engine: ParticleEngine) -> str:
    """``split, 6 x 3 nodes``, ``gauss-hermite, 8 nodes``, ``smolyak, level 4``, ``qmc, 16384 particles``."""
    detail = {
        "split": f"{engine.nodes} x {engine.right_nodes} nodes",
        "gauss-hermite": f"{engine.nodes} nodes",
        "smolyak": f"level {engine.level}",
    }
    return f"{engine.rule}, {detail.get(engine.rule, f'{engine.n} particles')}"


def _function(rnn, S) -> np.ndarray:
    """Function coordinates (epoch, F) of overlaps S (epoch, P, P)."""
    return np.asarray(function_coordinates(rnn, S)[0])


def _network_distances(rnn, networks, records, S_inf, S_closure, S_finer) -> tuple[np.ndarray, np.ndarray]:
    """Per network and epoch, the max distance from the limit and from the closure in overlaps and in
    function coordinates, and from the finer limit in overlaps: (5, N, seed, epoch), in that order (NaN
    where a size has fewer seeds); and each network's wall time (N, seed)."""
    references = (S_inf, S_closure, _function(rnn, S_inf), _function(rnn, S_closure))
    per_epoch = np.full((5, len(networks), max(map(len, networks)), len(S_inf)), np.nan)
    wall = np.full(per_epoch.shape[1:3], np.nan)
    for i, row in enumerate(networks):
        for job in row:
            S = records[job.name]["overlaps"]
            f = _function(rnn, S)
            per_epoch[:2, i, job.seed] = [np.abs(S - ref).max(axis=(1, 2)) for ref in references[:2]]
            per_epoch[2:4, i, job.seed] = [np.abs(f - ref).max(axis=1) for ref in references[2:]]
            per_epoch[4, i, job.seed] = np.abs(S - S_finer).max(axis=(1, 2))
            wall[i, job.seed] = records[job.name]["wall_s"]
    return per_epoch, wall


def _span_max(per_epoch: np.ndarray, span: slice) -> np.ndarray:
    """Max over the epochs ``span`` of the last axis (NaN stays NaN, without a warning)."""
    return np.fmax.reduce(per_epoch[..., span], axis=-1)


@contextlib.contextmanager
def _folder(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    yield out
