r"""A run folder: the one place that knows its layout, its checkpoint, its phase table and its final states.

    OUT/config.toml, config.json         the config as given, and resolved (written first)
    OUT/checkpoint/<engine>/NNNNNN.nc    the records of segment NNNNNN of each engine (netCDF: loss,
                                         overlaps, phase, and the population records of a run with
                                         populations), written once: a checkpoint appends, its cost
                                         does not grow with the run
    OUT/checkpoint/state.pkl             the position (phase, epoch within it), the key data, the
                                         network, the phase table and the run's attributes, and per
                                         engine: its TrainState (numpy; the lr drop inside), what the
                                         next run starts from (``engine.carry``) and the population
                                         of each of its rows, its segment count and attributes
    OUT/jobs/<job>.partial.npz           a worker job's checkpoint (:meth:`RunFolder.save_job`): the
    OUT/jobs/<job>.npz or .nc            A/B -> C runner's and validate-theory's jobs, and their results
    OUT/<engine>.nc, summary.txt         at the end (``<engine>.partial.nc`` after a divergence)
    OUT/figure.png, figure.pdf           the run's figure

Every file is written to a temporary file in the same folder and moved over the old one
(:func:`~overlapflow.files.atomic_write`), segments before ``state.pkl``; a checkpoint read back uses
the segments that ``state.pkl`` counts, so it is consistent even if the process died between two
writes. Files get the permissions of any file the user creates (0666 less the umask).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from .files import RunError, atomic_write
from .history import POPULATION_DIMS, load_history
from .model import LowRankRNN
from .phenomena.curriculum import Piece, Track

__all__ = ["FORMAT", "RunError", "RunFolder", "write_history", "write_text"]

FORMAT = 3  # 3: each engine's state is a TrainState; the carry, its populations and the phase table are stored


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_history(path: Path, history: xr.Dataset) -> None:
    atomic_write(path, lambda tmp: history.to_netcdf(tmp))


def _write_pickle(path: Path, value) -> None:
    def dump(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, dump)


class RunFolder:
    """A run folder (module docstring). ``RunFolder(path)`` reads nothing until asked.

    Example:
        >>> import tempfile
        >>> folder = RunFolder(tempfile.mkdtemp())
        >>> folder.holds_run(), folder.position()
        (False, None)
    """

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ---------------------------------------------------------------- layout
    @property
    def config_toml(self) -> Path:
        return self.path / "config.toml"

    @property
    def config_json(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    @property
    def state_file(self) -> Path:
        return self.checkpoint / "state.pkl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.txt"

    def segment(self, engine: str, index: int) -> Path:
        return self.checkpoint / engine / f"{index:06d}.nc"

    def history_file(self, engine: str, partial: bool = False) -> Path:
        return self.path / f"{engine}{'.partial' if partial else ''}.nc"

    def job_result(self, job: str, suffix: str = ".npz") -> Path:
        return self.path / "jobs" / f"{job}{suffix}"

    def job_checkpoint(self, job: str) -> Path:
        return self.path / "jobs" / f"{job}.partial.npz"

    # ---------------------------------------------------------------- starting and clearing
    def holds_run(self) -> bool:
        """Whether a run was started here (a checkpoint or a resolved config)."""
        return self.checkpoint.exists() or self.config_json.exists()

    def has_checkpoint(self) -> bool:
        return self.state_file.is_file()

    def clear(self) -> None:
        """Remove what a run writes here: the checkpoint, the engines' Histories, configs, summary, figure."""
        engines = self._engine_names()
        shutil.rmtree(self.checkpoint, ignore_errors=True)
        files = [self.config_toml, self.config_json, self.summary, self.path / "figure.png", self.path / "figure.pdf"]
        files += [self.history_file(name, partial) for name in engines for partial in (False, True)]
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _engine_names(self) -> list[str]:
        """The engines ``state.pkl`` names, whatever overlapflow wrote it (none when unreadable)."""
        try:
            with open(self.state_file, "rb") as f:
                return list(pickle.load(f).get("engines", {}))
        except Exception:  # noqa: BLE001 - no checkpoint, or one this overlapflow cannot unpickle
            return []

    def begin(self, config_text: str, config_json: str) -> None:
        """Create the folder and write the config as given and resolved."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.config_toml, config_text)
        write_text(self.config_json, config_json + "\n")

    def config(self) -> dict:
        """The resolved config (``config.json``)."""
        return json.loads(self.config_json.read_text(encoding="utf-8"))

    # ---------------------------------------------------------------- the checkpoint
    def write_segment(self, engine: str, index: int, piece: Piece) -> None:
        """Segment ``index`` of an engine: the records of a :class:`~overlapflow.phenomena.curriculum.Piece`."""
        data = xr.Dataset(
            {
                "loss": ("epoch", piece.loss),
                "overlaps": (("epoch", "row", "col"), piece.overlaps),
                "phase": ("epoch", piece.phase),
                **{name: (POPULATION_DIMS[name], values) for name, values in piece.populations.items()},
            }
        )
        write_history(self.segment(engine, index), data)

    def read_segments(self, engine: str, count: int) -> list[Piece]:
        """The first ``count`` segments of an engine, as :meth:`write_segment` wrote them."""
        pieces = []
        for index in range(count):
            path = self.segment(engine, index)
            if not path.is_file():
                raise RunError(f"checkpoint segment {path} is missing; state.pkl counts {count} segments")
            with xr.open_dataset(path) as data:
                data = data.load()
            populations = {name: data[name].values for name in POPULATION_DIMS if name in data}
            pieces.append(
                Piece(data.loss.values, data.overlaps.values, data.phase.values.astype(np.int64), populations)
            )
        return pieces

    def write_checkpoint(self, tracks: list[Track], written: dict, **run) -> None:
        """Append each track's new segments (``written``: how many are on disk, updated), then replace
        ``state.pkl`` with ``run`` (position, segments, key data, network, phase table, attrs, config,
        complete, versions) and each engine's state, carry and populations."""
        for track in tracks:
            for index in range(written.get(track.name, 0), len(track.pieces)):
                self.write_segment(track.name, index, track.pieces[index])
            written[track.name] = len(track.pieces)
        engines = {}
        for t in tracks:
            state = None if t.state is None else jax.device_get(t.state)
            carry, populations = t.restart()
            engines[t.name] = {
                "kind": t.engine.kind,
                "state": state,
                "carry": jax.tree.map(np.asarray, carry),
                "populations": None if populations is None else np.asarray(populations),
                "pieces": len(t.pieces),
                "attrs": t.attrs,
            }
        _write_pickle(self.state_file, {"format": FORMAT, **run, "engines": engines})

    def read_checkpoint(self) -> dict:
        """``state.pkl`` (RunError when there is none or its format is another overlapflow's)."""
        if not self.state_file.is_file():
            raise RunError(f"nothing to resume in {self.path}: no checkpoint ({self.state_file} is missing)")
        with open(self.state_file, "rb") as f:
            saved = pickle.load(f)
        if saved.get("format") != FORMAT:
            raise RunError(
                f"{self.state_file}: checkpoint format {saved.get('format')!r}; this overlapflow reads format "
                f"{FORMAT} (finish the run with the overlapflow that started it, or rerun it with --overwrite)"
            )
        return saved

    def tracks(self, engines: dict) -> list[Track]:
        """The runner's tracks as the checkpoint left them, for ``engines`` {name: Engine} (states as jax arrays)."""
        saved = self.read_checkpoint()
        tracks = []
        for name, engine in engines.items():
            entry = saved["engines"][name]
            state = None if entry["state"] is None else jax.tree.map(jax.numpy.asarray, entry["state"])
            pieces = self.read_segments(name, entry["pieces"])
            start = jax.tree.map(jax.numpy.asarray, entry["carry"])  # the start, while the state is None
            populations = entry["populations"]
            tracks.append(Track(name, engine, start, state, pieces, entry["attrs"], populations))
        return tracks

    def position(self) -> tuple[int, int, bool] | None:
        """(epoch reached, total epochs, complete) of the checkpoint, or None when there is none (or
        it is another overlapflow's)."""
        if not self.has_checkpoint():
            return None
        try:
            saved = self.read_checkpoint()
        except RunError:
            return None
        ends = saved["phase_table"]["phase_end"][1]
        reached = (int(ends[saved["phase"] - 1]) if saved["phase"] else 0) + saved["epoch"]
        return reached, int(ends[-1]), bool(saved["complete"])

    def final_states(self) -> dict:
        """What a next run starts from, as this finished run left it: {"network": its architecture,
        "config": its resolved config, "states": {engine: ``engine.carry`` of its final state: theta
        (N, P), S (P, P), a :class:`~overlapflow.Mixture` or :class:`~overlapflow.Particles`},
        "populations": {engine: the population of each row (n,)} (engines on rows with populations)}.
        Arrays are numpy."""
        if not self.has_checkpoint():
            raise RunError(f"no overlapflow run there (missing {self.state_file})")
        saved = self.read_checkpoint()
        if not saved.get("complete"):
            raise RunError(
                f"the run in {self.path} is not finished (resume it first: overlapflow run --resume {self.path})"
            )
        config = json.loads(saved["config"])
        states = {name: entry["carry"] for name, entry in saved["engines"].items()}
        populations = {
            name: entry["populations"] for name, entry in saved["engines"].items() if entry["populations"] is not None
        }
        return {"network": config["network"], "config": config, "states": states, "populations": populations}

    # ---------------------------------------------------------------- Histories
    def write_history(self, engine: str, history: xr.Dataset, partial: bool = False) -> Path:
        """Write an engine's History (``partial``: a diverged run's); a final one removes the partial."""
        path = self.history_file(engine, partial)
        write_history(path, history)
        if not partial:
            with contextlib.suppress(FileNotFoundError):
                self.history_file(engine, partial=True).unlink()
        return path

    def histories(self) -> dict[str, xr.Dataset]:
        """Every engine's History, {engine: History} in run order: ``<engine>.nc`` of a finished run;
        else the longer of ``<engine>.partial.nc`` (a diverged run) and the checkpoint's records (a
        stopped run, with the phase table and ``status`` "partial").

        Raises:
            FileNotFoundError: no run here.
        """
        if not self.path.is_dir():
            raise FileNotFoundError(f"run folder {self.path} does not exist")
        if not self.has_checkpoint():
            raise FileNotFoundError(f"no overlapflow run in {self.path} (missing {self.state_file})")
        saved = self.read_checkpoint()
        rnn = LowRankRNN(**saved["network"])
        histories = {}
        for name, entry in saved["engines"].items():
            if self.history_file(name).is_file():
                histories[name] = load_history(self.history_file(name))
                continue
            candidates = []
            if self.history_file(name, partial=True).is_file():
                candidates.append(load_history(self.history_file(name, partial=True)))
            if entry["pieces"]:
                track = Track(name, None, None, pieces=self.read_segments(name, entry["pieces"]), attrs=entry["attrs"])
                candidates.append(track.history(rnn, saved["phase_table"], {**saved["attrs"], "status": "partial"}))
            if candidates:
                histories[name] = max(candidates, key=lambda h: h.sizes["epoch"])
        return histories

    def title(self, histories: dict[str, xr.Dataset]) -> str:
        """The figure's title: the experiment, its description, the folder and, for an unfinished
        run, how far each engine got."""
        config = self.config() if self.config_json.is_file() else {}
        name, description = config.get("name", self.path.name), config.get("description") or ""
        return (
            f"experiment {name!s}"
            + (f": {description}" if description else "")
            + f"\n{self.path}"
            + (_status_note(histories))
        )

    # ---------------------------------------------------------------- worker jobs
    def load_job(self, job: str, like=None) -> dict | None:
        """A job's checkpoint, {name: numpy array}, or None when it has none; with ``like`` (a PyTree
        of the state's structure) its ``"state"`` is the saved state, as jax arrays."""
        path = self.job_checkpoint(job)
        if not path.is_file():
            return None
        with np.load(path) as saved:
            arrays = {name: saved[name] for name in saved.files if not name.startswith("state")}
            if like is not None:
                leaves, treedef = jax.tree_util.tree_flatten(like)
                saved_leaves = [jax.numpy.asarray(saved[f"state{i}"]) for i in range(len(leaves))]
                arrays["state"] = jax.tree_util.tree_unflatten(treedef, saved_leaves)
        return arrays

    def save_job(self, job: str, arrays: dict, state=None) -> None:
        """Replace a job's checkpoint by ``arrays`` {name: array} and the leaves of ``state`` (a
        PyTree, or None), atomically."""
        leaves = {} if state is None else {f"state{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
        path = self.job_checkpoint(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.savez(tmp, **arrays, **leaves))

    def drop_job(self, job: str) -> None:
        """Remove a finished job's checkpoint."""
        self.job_checkpoint(job).unlink(missing_ok=True)

    def has_jobs(self) -> bool:
        """Whether any worker job has written here (a result or a checkpoint)."""
        return (self.path / "jobs").is_dir()

    def done_jobs(self, suffix: str = ".npz") -> list[str]:
        """The names of the jobs whose result (``jobs/<job><suffix>``) is here, sorted."""
        folder = self.path / "jobs"
        done = folder.glob(f"*{suffix}") if folder.is_dir() else []
        return sorted(p.name.removesuffix(suffix) for p in done if not p.name.endswith(".partial.npz"))

    def clear_jobs(self) -> None:
        """Remove every job's result and checkpoint."""
        shutil.rmtree(self.path / "jobs", ignore_errors=True)


def _status_note(histories: dict[str, xr.Dataset]) -> str:
    statuses = {str(h.attrs.get("status", "complete")) for h in histories.values()}
    if statuses <= {"complete"}:
        return ""
    last = {name: int(h.epoch.values[-1]) if h.sizes["epoch"] else 0 for name, h in histories.items()}
    ends = [int(h.phase_end.values[-1]) for h in histories.values() if "phase_end" in h.variables]
    reached = (
        str(next(iter(last.values())))
        if len(set(last.values())) == 1
        else ", ".join(f"{name} {epoch}" for name, epoch in last.items())
    )
    return f" [{'/'.join(sorted(statuses - {'complete'}))}: epoch {reached}" + (f" of {max(ends)}]" if ends else "]")
