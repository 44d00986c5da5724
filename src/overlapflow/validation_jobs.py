r"""The runs of a finite-N study as resumable jobs, one file each (:func:`~overlapflow.validation.validate_theory`).

A job is one run of the study: a network of N rows and one seed (``N1000_seed0``; its float64 twin,
``N1000_seed0_float64``, measures the float32 round-off), the particle limit (``limit``), the limit on
a finer rule (``limit_finer``: the limit's own error) or the Gaussian closure (``closure``). Jobs run
in worker processes (:mod:`~overlapflow.worker_pool`), largest first, and write, all atomically:

    OUT/settings.json                  what fixes every job's numbers (network, task, S0, lr, epochs,
                                       batch key, particle rule, networks' dtype)
    OUT/jobs/<name>.partial.npz        every ``checkpoint_every`` epochs: the records so far and the
                                       engine's state
    OUT/jobs/<name>.npz                when done: loss (epochs + 1,), overlaps (epochs + 1, P, P), wall_s
    OUT/calls.jsonl                    one line per call that ran jobs: its wall time, the jobs, the load

Run again, a study skips the done jobs and continues the partial ones from their checkpoint (the
same numbers as an uninterrupted run: the batches of epoch k are ``fold_in(key, k)`` in every
segment). Sizes and seeds are not settings: a later call may add them. Any other change is refused
(:func:`check_settings`), unless ``overwrite``, which deletes the old jobs.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .engines import NetworkEngine, ParticleEngine, overlap_engine
from .files import RunError, atomic_write
from .model import LowRankRNN
from .overlaps import sample_params
from .precision import float64
from .progress import progress_bar
from .run_folder import RunFolder
from .tasks import AbstractTask
from .training import train
from .worker_pool import worker_pool

#: the network rows' keys fold this into the batches' key first; no run has this many epochs, so no
#: batch key (``fold_in(key, epoch)``) is reused for rows
ROWS_STREAM = 2**32 - 1
#: the limit's cost in rows, for the progress count (particles are few, but each costs more), and the
#: finer rule's (2.4x the particles of split 6 x 3 at 7 x 4)
LIMIT_ROWS = {"limit": 1000, "finer-limit": 2400}


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the study: ``kind`` is ``"network"`` (N rows, ``seed``, ``dtype``), ``"limit"``,
    ``"finer-limit"`` or ``"closure"``."""

    kind: str
    N: int = 0
    seed: int = 0
    dtype: str = "float32"

    @property
    def name(self) -> str:
        if self.kind != "network":
            return {"finer-limit": "limit_finer"}.get(self.kind, self.kind)
        return f"N{self.N}_seed{self.seed}" + ("_float64" if self.dtype == "float64" else "")

    @property
    def rows(self) -> int:
        """The job's cost in rows (for the progress count and the largest-first order)."""
        return self.N if self.kind == "network" else LIMIT_ROWS.get(self.kind, 1)


@dataclasses.dataclass(frozen=True)
class Study:
    """What every job of a study shares (picklable: it travels to the worker processes).

    Attributes:
        S0: initial overlaps (P, P) as nested lists; key_data: the batches' key (its data, (2,) uint32).
        limit: the particle limit's engine.
        checkpoint_every: epochs between two checkpoints of a job (not a setting: any value gives the
            same numbers).
    """

    rnn: LowRankRNN
    task: AbstractTask
    S0: tuple
    lr: float
    epochs: int
    key_data: tuple
    limit: ParticleEngine
    network_dtype: str
    checkpoint_every: int = 250

    def settings(self) -> dict:
        """The fields that fix the jobs' numbers, as JSON values (``OUT/settings.json``)."""
        return {
            "rnn": self.rnn.describe(),
            "task": self.task.describe(),
            "S0": [list(row) for row in self.S0],
            "lr": self.lr,
            "epochs": self.epochs,
            "key": list(self.key_data),
            "limit": {
                "rule": self.limit.rule,
                "nodes": self.limit.nodes,
                "right_nodes": self.limit.right_nodes,
                "n": self.limit.n,
            },
            "network_dtype": self.network_dtype,
        }

    @property
    def finer_limit(self) -> ParticleEngine:
        """The limit on a finer rule: one more node per direction (split, Gauss-Hermite), one more
        Smolyak level, or 4x the quasi-Monte Carlo particles."""
        finer = {"smolyak": {"level": self.limit.level + 1}, "qmc": {"n": 4 * self.limit.n}}
        more = {"nodes": self.limit.nodes + 1, "right_nodes": self.limit.right_nodes + 1}
        return dataclasses.replace(self.limit, **finer.get(self.limit.rule, more))

    @property
    def key(self) -> jax.Array:
        return jax.random.wrap_key_data(jnp.asarray(self.key_data, dtype=jnp.uint32))

    def engine_and_start(self, job: Job):
        """The engine of ``job`` and what it starts from: network rows theta (N, P) with Gram matrix
        exactly S0, from ``fold_in(fold_in(fold_in(key, ROWS_STREAM), N), seed)``; S0 otherwise."""
        S0 = np.asarray(self.S0, dtype=float)
        if job.kind == "limit":
            return self.limit, S0
        if job.kind == "finer-limit":
            return self.finer_limit, S0
        if job.kind == "closure":
            return overlap_engine("exact"), S0
        rows_key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(self.key, ROWS_STREAM), job.N), job.seed)
        theta = sample_params(self.rnn, S0, int(job.N), rows_key).astype(job.dtype)
        return NetworkEngine(), theta


def check_settings(out: Path, study: Study, overwrite: bool = False) -> None:
    """Write ``out/settings.json``, or check it against the stored one.

    Raises:
        RunError: the folder holds a study with other settings (one line naming the first field that
            differs, both values, and what to do), unless ``overwrite``: its jobs are then deleted.
    """
    out = Path(out)
    path = out / "settings.json"
    wanted = json.loads(json.dumps(study.settings()))
    if path.is_file() and not overwrite:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored == wanted:
            return
        field = next(name for name in sorted(set(stored) | set(wanted)) if stored.get(name) != wanted.get(name))
        raise RunError(
            f"{out}: holds a study with {field} = {_short(stored.get(field))}, not {_short(wanted.get(field))}; "
            "use another output folder, or --overwrite (overwrite=True) to delete its jobs"
        )
    if overwrite:
        RunFolder(out).clear_jobs()
    text = json.dumps(wanted, sort_keys=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


@float64
def run_job(out, study: Study, job: Job, stop_after: int | None = None) -> bool:
    """Run (or continue) one job, with a checkpoint every ``study.checkpoint_every`` epochs.

    Args:
        out: the study's folder.
        stop_after: stop after this many epochs in this call (the checkpoint is kept), as a kill would;
            None runs to the end.

    Returns:
        True when the job is done (``out/jobs/<name>.npz`` is there), False when stopped by ``stop_after``.
    """
    folder = RunFolder(out)
    if folder.job_result(job.name).is_file():
        return True
    rnn = study.rnn
    engine, start = study.engine_and_start(job)
    state = engine.train_state(engine.init(rnn, start))
    saved = folder.load_job(job.name, like=state)
    if saved is not None:
        state, loss, overlaps, wall = saved["state"], saved["loss"], saved["overlaps"], float(saved["wall_s"])
    else:
        loss, overlaps, wall = np.zeros(0), np.zeros((0, rnn.n_vectors, rnn.n_vectors)), 0.0
    done = max(loss.size - 1, 0)
    left = stop_after
    while done < study.epochs:
        if left is not None and left <= 0:
            return False
        length = min(study.checkpoint_every, study.epochs - done, study.epochs if left is None else left)
        started = time.perf_counter()
        result = train(engine, rnn, study.task, None, study.lr, length, key=study.key, state=state, epoch_offset=done)
        wall += time.perf_counter() - started
        first = 0 if done == 0 else 1  # a continued segment's first record is the previous one's last
        loss = np.concatenate([loss, result.history.loss.values[first:]])
        overlaps = np.concatenate([overlaps, result.history.overlaps.values[first:]])
        state, done = result.state, done + length
        left = None if left is None else left - length
        folder.save_job(job.name, {"loss": loss, "overlaps": overlaps, "wall_s": wall}, state)
    final = {"loss": loss, "overlaps": overlaps, "wall_s": wall}
    atomic_write(folder.job_result(job.name), lambda tmp: np.savez(tmp, **final))
    folder.drop_job(job.name)
    return True


def load_job(out, job: Job) -> dict:
    """A done job's records: ``loss`` (epochs + 1,), ``overlaps`` (epochs + 1, P, P), ``wall_s``."""
    with np.load(RunFolder(out).job_result(job.name)) as saved:
        return {"loss": saved["loss"], "overlaps": saved["overlaps"], "wall_s": float(saved["wall_s"])}


def run_jobs(out, study: Study, jobs: list[Job], workers: int, progress: bool) -> dict:
    """Run the jobs not done yet, largest first: in this process (``workers`` <= 1) or in ``workers``
    worker processes. The progress counts rows (:attr:`Job.rows`) of the jobs run in this call.

    Returns:
        this call's record (also appended to ``out/calls.jsonl`` when it ran jobs): ``{"ran": the
        jobs run (or continued), "wall_s": its wall time, "workers", "load_average_mean",
        "load_average_max": of the 1-minute load average, sampled once a minute while they ran}``.
    """
    out, started = Path(out), time.perf_counter()
    pending = sorted(
        (job for job in jobs if not RunFolder(out).job_result(job.name).is_file()), key=lambda job: -job.rows
    )
    loads = [os.getloadavg()[0]]
    with progress_bar(
        progress, "validate-theory: networks, the limit, the closure", sum(j.rows for j in pending)
    ) as update:
        if workers <= 1:
            for job in pending:
                run_job(out, study, job)
                update(job.rows, float(load_job(out, job)["loss"][-1]))
                loads.append(os.getloadavg()[0])
        else:
            with worker_pool(workers) as pool:
                running = {pool.submit(run_job, str(out), study, job): job for job in pending}
                while running:
                    finished, _ = concurrent.futures.wait(running, timeout=60, return_when="FIRST_COMPLETED")
                    loads.append(os.getloadavg()[0])
                    for future in finished:
                        job = running.pop(future)
                        future.result()
                        update(job.rows, float(load_job(out, job)["loss"][-1]))
    record = {
        "ran": [job.name for job in pending],
        "wall_s": time.perf_counter() - started,
        "workers": workers,
        "load_average_mean": float(np.mean(loads)),
        "load_average_max": float(np.max(loads)),
    }
    if pending:
        with open(out / "calls.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
    return record


def read_calls(out) -> list[dict]:
    """The records of the calls that ran jobs in ``out`` (:func:`run_jobs`), oldest first."""
    path = Path(out) / "calls.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [json.loads(line) for line in lines if line.strip()]
