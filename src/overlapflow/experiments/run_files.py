r"""The files of a run folder: atomic writes, the checkpoint, and a finished run's final state.

    OUT/config.toml, config.json         the config as given, and resolved (written first)
    OUT/checkpoint/<engine>/NNNNNN.nc    the records of segment NNNNNN of each engine (netCDF:
                                         loss, overlaps, phase, and the population records of a
                                         run with populations), written once: a checkpoint
                                         appends, its cost does not grow with the run
    OUT/checkpoint/state.pkl             the position (phase, epoch within it), the key data, each
                                         engine's TrainState (numpy; the lr drop's state in it),
                                         segment count and attrs
    OUT/<engine>.nc, summary.txt         at the end

Every file is written to a temporary file in the same folder and moved over the old one
(``os.replace``), segments before ``state.pkl``; a checkpoint read back uses the segments that
``state.pkl`` counts, so it is consistent even if the process died between two writes. Files get
the permissions of any file the user creates (0666 less the umask), not the private 0600 of a
temporary file.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from ..files import RunError, atomic_write
from ..history import POPULATION_DIMS
from ..mixture import Mixture
from ..optimizers import MomentumState
from ..particles import Particles, unfold
from ..phenomena.curriculum import Piece

CHECKPOINT = "checkpoint"
STATE_FILE = "state.pkl"
FORMAT = 3  # 3: each engine's state is a TrainState (the lr drop inside it)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_history(path: Path, history: xr.Dataset) -> None:
    atomic_write(path, lambda tmp: history.to_netcdf(tmp))


def write_pickle(path: Path, value) -> None:
    def dump(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, dump)


def segment_path(out: Path, engine: str, index: int) -> Path:
    return Path(out) / CHECKPOINT / engine / f"{index:06d}.nc"


def write_segment(out: Path, engine: str, index: int, piece: Piece) -> None:
    """Segment ``index`` of an engine: the records of a :class:`~overlapflow.phenomena.curriculum.Piece`
    (loss (n,), overlaps (n, P, P), phase (n,), and its population records, if any)."""
    data = xr.Dataset(
        {
            "loss": ("epoch", piece.loss),
            "overlaps": (("epoch", "row", "col"), piece.overlaps),
            "phase": ("epoch", piece.phase),
            **{name: (POPULATION_DIMS[name], values) for name, values in piece.populations.items()},
        }
    )
    write_history(segment_path(out, engine, index), data)


def read_segments(out: Path, engine: str, count: int) -> list[Piece]:
    """The first ``count`` segments of an engine, as written by :func:`write_segment`."""
    pieces = []
    for index in range(count):
        path = segment_path(out, engine, index)
        if not path.is_file():
            raise RunError(f"checkpoint segment {path} is missing; state.pkl counts {count} segments")
        with xr.open_dataset(path) as data:
            data = data.load()
        populations = {name: data[name].values for name in POPULATION_DIMS if name in data}
        pieces.append(Piece(data.loss.values, data.overlaps.values, data.phase.values.astype(np.int64), populations))
    return pieces


def read_state(out: Path) -> dict:
    """``state.pkl`` of a run folder (RunError when there is none or its format is foreign)."""
    path = Path(out) / CHECKPOINT / STATE_FILE
    if not path.is_file():
        raise RunError(f"nothing to resume in {out}: no checkpoint ({path} is missing)")
    with open(path, "rb") as f:
        saved = pickle.load(f)
    if saved.get("format") != FORMAT:
        raise RunError(
            f"{path}: checkpoint format {saved.get('format')!r}; this overlapflow reads format {FORMAT} "
            "(finish the run with the overlapflow that started it, or rerun it with --overwrite)"
        )
    return saved


def read_final_state(folder) -> dict:
    """The final state of a finished run in ``folder``: {"network": its architecture, "config": its
    resolved config, "states": {engine: theta (N, P) (network), S (P, P) or, with populations, a
    :class:`~overlapflow.Mixture` (overlaps*), (theta (n, P), weights (n,)) (particles)},
    "populations": {engine: the population of each row (n,)} (networks and particles with
    populations; ``{}`` without)}. Arrays are numpy."""
    path = Path(folder) / CHECKPOINT / STATE_FILE
    if not path.is_file():
        raise RunError(f"no overlapflow run there (missing {path})")
    saved = read_state(folder)
    if not saved.get("complete"):
        raise RunError(f"the run in {folder} is not finished (resume it first: overlapflow run --resume {folder})")
    config = json.loads(saved["config"])
    states, populations = {}, {}
    for name, entry in saved["engines"].items():
        state = entry["state"].engine
        if getattr(state, "labels", None) is not None:  # rows with populations (never a mirrored half)
            populations[name] = np.asarray(state.labels)
        if entry["kind"] == "network":
            states[name] = np.asarray(state.theta)
        elif entry["kind"] == "particles":  # the whole cloud, also where the engine ran its mirrored half
            cloud = Particles(state.theta, state.weights)
            if getattr(state, "mirrored", None) is not None:
                cloud = unfold(cloud, state.mirrored)
            states[name] = (np.asarray(cloud.theta), np.asarray(cloud.weights))
        elif isinstance(state, Mixture):
            states[name] = jax.tree.map(np.asarray, state)
        else:
            states[name] = np.asarray(state.S if isinstance(state, MomentumState) else state)
    return {"network": config["network"], "config": config, "states": states, "populations": populations}
