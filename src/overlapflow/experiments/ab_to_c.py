r"""The A/B -> C protocol at the paper's scale: every core busy, resumable, nothing computed twice.

The work of :func:`~overlapflow.phenomena.memory.run_ab_to_c` (engine ``"overlaps"``) is split
into jobs, one phase of one pair each:

- ``(p, "A")``: member A of pair p learns task A from the pair's S0;
- ``(p, "B")``: member B learns task B from the same S0;
- ``(p, "C")``: both members learn C from their end states of A and B, in one vmapped call that
  samples one batch per epoch for both (they see the same trials, as in ``run_ab_to_c``).

Jobs run in worker processes (one single-threaded JAX process per core, started with ``spawn``,
each with float64 enabled for the whole process: :func:`~overlapflow.precision.enable_globally`).
A C job is started as soon as its A and B jobs are done, ahead of the remaining A / B jobs, so the
run ends with at most one job still going. Every job saves a checkpoint each ``segment`` epochs
(its state, the learning-rate drop flags, the losses so far) and its result when done, all with
atomic writes: a run stopped anywhere (Ctrl-C, kill -9) continues from its last checkpoints when
started again with the same settings, and gives the same numbers as an uninterrupted run. Keys
and batches are those of ``run_ab_to_c``, so the result equals it to round-off.

Layout of ``out``: ``settings.json``; ``jobs/pair<p>_<phase>.nc`` (done jobs: loss (member, epoch)
and overlaps every ``record_every`` epochs (member, record, row, col)); ``jobs/*.partial.npz``
(checkpoints of unfinished jobs).
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
import xarray as xr

from ..engines import OverlapEngine, TrainState
from ..files import RunError, atomic_write
from ..model import LowRankRNN
from ..optimizers import LrDropState
from ..overlaps import visible_mask
from ..phenomena.memory import STAGES, ab_to_c_phases, pair_keys, random_initial_overlaps, run_ab_to_c
from ..precision import float64
from ..progress import format_duration, progress_line
from ..run_folder import RunFolder, write_history
from ..training import train_batch
from ..worker_pool import worker_pool

PHASES = ("A", "B", "C")


@dataclasses.dataclass(frozen=True)
class ABtoCSettings:
    """One A/B -> C run in overlap space (the paper's values by default; see
    :func:`~overlapflow.phenomena.memory.ab_to_c_phases`).

    Args:
        n_pairs: twin pairs (10).
        epochs: epochs of phases A and B (30000), at ``lr`` (0.01) with the drop (``lr_drop``).
        c_epochs: epochs of phase C (default ``epochs``), at the constant ``c_lr`` (0.001).
        batch_size: trials per batch (128).
        seed: pair p starts from ``random_initial_overlaps(rnn, fold_in(key(seed), p))``.
        readout: when the student and the teacher read their output (``"before"`` the step, as the
            authors' erf network).
        segment: epochs between two checkpoints of a job.
        record_every: the stored overlap trajectory keeps every ``record_every``-th epoch (and
            the last); losses are kept at every epoch.
    """

    n_pairs: int = 10
    epochs: int = 30000
    c_epochs: int | None = None
    lr: float = 0.01
    c_lr: float = 0.001
    lr_drop: tuple[float, float] | None = (0.015, 5.0)
    batch_size: int = 128
    seed: int = 0
    readout: str = "before"
    segment: int = 2500
    record_every: int = 10

    def __post_init__(self):
        for name in ("n_pairs", "epochs", "batch_size", "segment", "record_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ABtoCSettings.{name} = {value!r}: must be an integer >= 1")
        if self.c_epochs is not None and (not isinstance(self.c_epochs, int) or self.c_epochs < 1):
            raise ValueError(f"ABtoCSettings.c_epochs = {self.c_epochs!r}: must be an integer >= 1 or None")
        if isinstance(self.lr_drop, list):
            object.__setattr__(self, "lr_drop", tuple(self.lr_drop))
        LowRankRNN(readout=self.readout)  # one-line error for an unknown readout

    @property
    def rnn(self) -> LowRankRNN:
        return LowRankRNN(rank=1, phi="erf", readout=self.readout)

    @property
    def phase_epochs(self) -> dict[str, int]:
        return {"A": self.epochs, "B": self.epochs, "C": self.epochs if self.c_epochs is None else self.c_epochs}

    def phases(self):
        return ab_to_c_phases(
            self.epochs, self.lr, self.batch_size, self.lr_drop, self.c_epochs, self.c_lr, self.readout
        )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def in_process(self, engine: str = "overlaps", pairs=None, progress: bool = False, **options) -> xr.Dataset:
        """The same protocol by :func:`~overlapflow.phenomena.memory.run_ab_to_c` in this process:
        any engine, any subset of ``pairs``; ``options`` go to it (e.g. ``N``, ``particle_options``)."""
        return run_ab_to_c(
            n_pairs=self.n_pairs,
            epochs=self.epochs,
            c_epochs=self.c_epochs,
            lr=self.lr,
            c_lr=self.c_lr,
            lr_drop=self.lr_drop,
            batch_size=self.batch_size,
            engine=engine,
            rnn=self.rnn,
            key=jax.random.key(self.seed),
            progress=progress,
            pairs=pairs,
            **options,
        )


# ---------------------------------------------------------------------------- one job
def _pair_start(settings: ABtoCSettings, pair: int):
    """(S0 (P, P), the key of phase j of the pair's curriculum), the keys of ``run_ab_to_c``."""
    pair_key, curriculum_key = pair_keys(jax.random.key(settings.seed), pair)
    return random_initial_overlaps(settings.rnn, pair_key), lambda j: jax.random.fold_in(curriculum_key, j)


def _job(pair: int, phase: str) -> str:
    return f"pair{pair}_{phase}"


def _job_result(out: Path, pair: int, phase: str) -> Path:
    return RunFolder(out).job_result(_job(pair, phase), ".nc")


def _load_job(out: Path, pair: int, phase: str) -> xr.Dataset:
    with xr.open_dataset(_job_result(out, pair, phase)) as stored:
        return stored.load()


def _drop_state(engine, dropped):
    """The learning-rate schedule's state of runs whose drop flags (K,) a job file stores."""
    fresh = engine.rate_schedule.init(None)
    return LrDropState(jnp.asarray(dropped)) if isinstance(fresh, LrDropState) else fresh


def _dropped(schedule, K: int) -> np.ndarray:
    """The drop flags (K,) a job file stores, from the runs' schedule state."""
    return np.asarray(schedule.dropped) if isinstance(schedule, LrDropState) else np.zeros(K, dtype=bool)


@float64
def run_job(out, settings: ABtoCSettings, pair: int, phase: str, budget: int | None = None) -> bool:
    """Run (or continue) one job, checkpointing each ``settings.segment`` epochs.

    Args:
        out: the run's folder (the A and B results of the pair must be there for a C job).
        budget: stop after this many epochs (the checkpoint is kept); None runs to the end.

    Returns:
        True when the job is done (its result is in ``out/jobs``), False when stopped by ``budget``.
    """
    out = Path(out)
    if _job_result(out, pair, phase).is_file():
        return True
    rnn, phases = settings.rnn, settings.phases()
    S0, phase_key = _pair_start(settings, pair)
    if phase == "C":
        ends = [_load_job(out, pair, first) for first in "AB"]
        S = np.stack([end.final.values[0] for end in ends])
        task_phase, key = phases["C"], phase_key(1)
    else:
        S, task_phase, key = S0[None], phases[phase], phase_key(0)[None]
    folder, job = RunFolder(out), _job(pair, phase)
    saved = folder.load_job(job)
    if saved is not None:
        S, dropped, losses = saved["S"], saved["dropped"], saved["loss"]
        records, recorded_at = saved["records"], saved["recorded_at"]
    else:
        dropped, losses = np.zeros(len(S), dtype=bool), np.zeros((len(S), 0))
        records, recorded_at = np.zeros((len(S), 0) + S.shape[1:]), np.zeros(0, dtype=int)
    total = settings.phase_epochs[phase]
    done = max(losses.shape[1] - 1, 0)
    engine = OverlapEngine(task_phase.optimizer)
    while done < total:
        if budget is not None and budget <= 0:
            return False
        length = min(settings.segment, total - done, total if budget is None else budget)
        starts = jnp.stack([engine.init(rnn, s) for s in S])  # checked and symmetrised, as every start
        state = TrainState(starts, _drop_state(engine, dropped))
        result = train_batch(
            engine, rnn, task_phase.training_task, None, task_phase.lr, length, key=key, state=state, epoch_offset=done
        )
        history, S, dropped = result.history, result.overlaps, _dropped(result.state.schedule, len(S))
        new_losses = history.loss.values
        losses = new_losses if done == 0 else np.concatenate([losses, new_losses[:, 1:]], axis=1)
        epochs = done + np.arange(length + 1)
        keep = ((epochs % settings.record_every == 0) | (epochs == total)) & ((epochs > done) | (done == 0))
        records = np.concatenate([records, history.overlaps.values[:, keep]], axis=1)
        recorded_at = np.concatenate([recorded_at, epochs[keep]])
        S, dropped, done = np.asarray(S), np.asarray(dropped), done + length
        budget = None if budget is None else budget - length
        folder.save_job(job, dict(S=S, dropped=dropped, loss=losses, records=records, recorded_at=recorded_at))
    names = list(rnn.vector_names)
    members = ["A"] if phase == "A" else ["B"] if phase == "B" else ["A", "B"]
    result = xr.Dataset(
        {
            "loss": (("member", "epoch"), losses),
            "overlaps": (("member", "record", "row", "col"), records),
            "final": (("member", "row", "col"), S),
            "dropped": ("member", dropped),
        },
        coords={"member": members, "epoch": np.arange(total + 1), "record": recorded_at, "row": names, "col": names},
        attrs={"pair": pair, "phase": phase, "settings": json.dumps(settings.as_dict(), sort_keys=True)},
    )
    write_history(_job_result(out, pair, phase), result)
    folder.drop_job(job)
    return True


# ---------------------------------------------------------------------------- the whole run
def _worker_job(out: str, settings: dict, pair: int, phase: str) -> tuple[int, str]:
    run_job(out, ABtoCSettings(**settings), pair, phase)
    return pair, phase


def _check_settings(out: Path, settings: ABtoCSettings) -> None:
    """Write ``settings.json``, or check it against the stored one. The one change allowed is a
    longer phase C: the finished C jobs then become checkpoints and continue."""
    path = out / "settings.json"
    wanted = settings.as_dict()
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored == json.loads(json.dumps(wanted)):
            return
        before = ABtoCSettings(**stored)
        if {**stored, "c_epochs": None} != json.loads(json.dumps({**wanted, "c_epochs": None})) or (
            settings.phase_epochs["C"] < before.phase_epochs["C"]
        ):
            raise RunError(
                f"{path} holds an A/B -> C run with other settings ({json.dumps(stored, sort_keys=True)}, not "
                f"{json.dumps(wanted, sort_keys=True)}); choose another output folder or remove it (only c_epochs "
                "may grow: phase C then continues)"
            )
        for pair in range(settings.n_pairs):
            _reopen_c_job(out, pair, settings.record_every)
    text = json.dumps(wanted, sort_keys=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def _reopen_c_job(out: Path, pair: int, record_every: int) -> None:
    """Turn a finished C job into the checkpoint it would have left, so that it runs on (its last
    record goes unless it falls on the ``record_every`` grid: it was kept as the last one)."""
    if not _job_result(out, pair, "C").is_file():
        return
    done = _load_job(out, pair, "C")
    keep = done.record.values % record_every == 0
    arrays = dict(
        S=done.final.values,
        dropped=done.dropped.values,
        loss=done.loss.values,
        records=done.overlaps.values[:, keep],
        recorded_at=done.record.values[keep],
    )
    RunFolder(out).save_job(_job(pair, "C"), arrays)
    _job_result(out, pair, "C").unlink()


def run_ab_to_c_parallel(
    settings: ABtoCSettings, out, workers: int | None = None, progress: bool = False
) -> xr.Dataset:
    """Run (or continue) the A/B -> C protocol in ``out`` with ``workers`` processes.

    Worker processes are started with ``spawn``: they import the calling script's main module, so
    in a script call this under ``if __name__ == "__main__":`` (the ``overlapflow`` command does).

    Args:
        workers: processes (default: one per core); 0 runs every job in this process.
        progress: print one line per finished job on stderr (:func:`~overlapflow.progress.progress_line`),
            with the time so far and an estimate of what is left.

    Returns:
        The Dataset of :func:`~overlapflow.phenomena.memory.run_ab_to_c` (``overlaps`` (stage, pair,
        member, row, col), ``loss`` (pair, member, epoch), ``visible``), plus ``trajectory`` (pair,
        member, record, row, col): the overlaps every ``record_every`` epochs, A/B then C.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    workers = (os.cpu_count() or 1) if workers is None else workers
    jobs = [(p, phase) for p in range(settings.n_pairs) for phase in PHASES]
    pending = [job for job in jobs if not _job_result(out, *job).is_file()]
    start, total = time.perf_counter(), len(pending)

    def report(job, finished):
        if progress:
            elapsed = time.perf_counter() - start
            left = elapsed / finished * (total - finished)
            progress_line(
                f"{100 * finished / total:.0f}% (A/B -> C job {finished} of {total}: pair {job[0]} phase {job[1]} "
                f"done), {format_duration(elapsed)} elapsed, about {format_duration(left)} left"
            )

    if workers == 0:
        for finished, job in enumerate(pending, 1):
            run_job(out, settings, *job)
            report(job, finished)
    else:
        _run_in_pool(out, settings, pending, workers, report)
    return assemble(out, settings)


def _run_in_pool(out: Path, settings: ABtoCSettings, pending: list, workers: int, report) -> None:
    """Keep ``workers`` jobs in flight; a C job goes first as soon as its pair's A and B are done."""
    done = {job for job in ((p, ph) for p in range(settings.n_pairs) for ph in PHASES) if job not in pending}
    waiting_c = [job for job in pending if job[1] == "C"]
    queue = [job for job in pending if job[1] != "C"]
    with worker_pool(workers) as pool:
        running = {}

        def fill():
            while len(running) < workers:
                ready = [job for job in waiting_c if (job[0], "A") in done and (job[0], "B") in done]
                if ready:
                    job = ready[0]
                    waiting_c.remove(job)
                elif queue:
                    job = queue.pop(0)
                else:
                    return
                running[pool.submit(_worker_job, str(out), settings.as_dict(), *job)] = job

        fill()
        finished = 0
        while running:
            completed, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in completed:
                job = running.pop(future)
                future.result()
                done.add(job)
                finished += 1
                report(job, finished)
            fill()


def assemble(out, settings: ABtoCSettings) -> xr.Dataset:
    """The finished jobs in ``out`` as one A/B -> C Dataset (see :func:`run_ab_to_c_parallel`)."""
    out = Path(out)
    rnn, E = settings.rnn, settings.epochs
    pairs = range(settings.n_pairs)
    missing = [f"pair{p}_{ph}" for p in pairs for ph in PHASES if not _job_result(out, p, ph).is_file()]
    if missing:
        raise RunError(f"{out}: jobs not done yet: {', '.join(missing)}; run again to finish them")
    loss, stages, trajectory = [], [], []
    for p in pairs:
        first = {m: _load_job(out, p, m) for m in "AB"}
        second = _load_job(out, p, "C")
        loss.append([np.concatenate([first[m].loss.values[0], second.loss.sel(member=m).values[1:]]) for m in "AB"])
        stages.append(
            [
                [first[m].overlaps.values[0, 0], first[m].final.values[0], second.final.sel(member=m).values]
                for m in "AB"
            ]
        )
        trajectory.append(
            [np.concatenate([first[m].overlaps.values[0], second.overlaps.sel(member=m).values[1:]]) for m in "AB"]
        )
    records = np.concatenate([first["A"].record.values, E + second.record.values[1:]])
    names = list(rnn.vector_names)
    return xr.Dataset(
        {
            "overlaps": (("stage", "pair", "member", "row", "col"), np.moveaxis(np.asarray(stages), 2, 0)),
            "loss": (("pair", "member", "epoch"), np.asarray(loss)),
            "trajectory": (("pair", "member", "record", "row", "col"), np.asarray(trajectory)),
            "visible": (("row", "col"), np.asarray(visible_mask(rnn))),
        },
        coords={
            "stage": list(STAGES),
            "pair": list(pairs),
            "member": ["A", "B"],
            "row": names,
            "col": names,
            "epoch": np.arange(E + settings.phase_epochs["C"] + 1),
            "record": records,
        },
        attrs={
            "engine": "overlaps",
            "epochs_per_phase": E,
            "c_epochs": settings.phase_epochs["C"],
            "lr": settings.lr,
            "c_lr": settings.c_lr,
            "batch_size": settings.batch_size,
            **{f"rnn_{k}": v for k, v in rnn.describe().items()},
        },
    )
