r"""Parameter sweeps: one experiment config, many points, run on Dask, gathered in one zarr store.

A sweep file (TOML) names a base experiment config and the values to change, by dotted keys into
the resolved experiment config (the ``config.json`` of a run: ``N``, ``seed``, ``network.phi``,
``phases.0.lr``, ``phases.1.task.c``, ``init.seed``, ...)::

    name = "fig5-seeds"              # default: the sweep file's name
    base = "fig5"                    # a TOML file relative to the sweep file, or a shipped config
    output = "sweep-fig5"            # relative to the working directory; default "sweep-<name>"

    [set]                            # overrides of every point (any value, tables too)
    "phases.0.epochs" = 200

    [grid]                           # swept: every combination of these lists
    N = [250, 500, 1000]
    seed = [0, 1, 2]
    "phases.0.lr" = [2e-3, 5e-3]

    # points = [{"phases.0.task.c" = 0.1, "network.dt" = 0.05}, ...]
    #                                # swept: a list of tables, each setting the same keys; with a
    #                                # grid, every point is combined with every grid combination

Swept values are numbers, strings or booleans (one kind per key, each value once). Keys of
``set``, ``grid`` and ``points`` are distinct; ``output`` is set by the sweep. Every point is
validated as an experiment config before anything runs (:func:`read_sweep`); a problem is reported
at the sweep field it comes from (``grid.N: value 1: must be greater than or equal to 2 ...``) in one
:class:`~overlapflow.experiments.config.ConfigError`.

Running (:func:`run_sweep`, ``overlapflow sweep SWEEP.toml``) submits every point that is not done
to worker processes on this machine (:mod:`~overlapflow.worker_pool`, the one process pool of
overlapflow: one single-threaded process per core by default) or to a ``dask.distributed`` scheduler
(a cluster, e.g. SLURM's), and writes each result as soon as it arrives::

    OUT/sweep.json                  the sweep: its swept values and every point (id, coordinates)
    OUT/sweep.zarr                  the combined results (below)
    OUT/points/<id>/                the point's run folder (run_experiment: <engine>.nc, checkpoint/,
                                    config.json, summary.txt)
    OUT/points/<id>/status.json     written when the point ends: "done", or "failed" with the error
                                    and its traceback; seconds on the worker, the worker's host and pid

A point's id is a hash of its resolved experiment config, so a changed base config or ``set``
gives new points and never reuses stale results. Running the sweep again runs only the points
that are not done (``retry_failed=True``, ``--retry-failed``: the failed ones too); a point that
was stopped midway continues from its last checkpoint. Points run with
:func:`~overlapflow.experiments.runner.run_experiment` on the workers, which therefore need
overlapflow installed and the output folder on a filesystem they share with the client. Running
and reading sweeps needs the ``sweep`` extra (dask, distributed, zarr: ``pip install
'overlapflow[sweep]'``); without it :func:`run_sweep` and :func:`load_sweep` stop with that line.

The store ``OUT/sweep.zarr`` (read with :func:`load_sweep`, or ``xarray.open_zarr``)::

    loss      (*swept, engine, epoch)              float64, NaN where a point is missing
    overlaps  (*swept, engine, epoch, row, col)    float64, NaN where a point is missing
    point     (*swept)                             the point's id ("" where the sweep has none)

One coordinate per swept key (named by the key: ``N``, ``phases.0.lr``), in the grid's order, or
sorted for ``points``; ``engine``: every engine any point runs; ``epoch``: 0 .. the longest run;
``row``/``col``: every vector name. Each point is one chunk of each variable, written in place
(``to_zarr(region=...)``) by the client only. The store is rebuilt from the points' Histories when
the sweep's coordinates change (e.g. a grid gains values).

Running on SLURM
----------------
Start the workers as SLURM jobs with ``dask_jobqueue`` (``pip install overlapflow[slurm]``) and
hand the cluster to :func:`run_sweep`::

    from dask_jobqueue import SLURMCluster
    from overlapflow.experiments import run_sweep

    cluster = SLURMCluster(queue="cpu", cores=1, processes=1, memory="4GB", walltime="02:00:00")
    cluster.adapt(minimum_jobs=1, maximum_jobs=50)      # or cluster.scale(jobs=20)
    results = run_sweep("sweep.toml", scheduler=cluster, progress=True)

or, from a shell, start a scheduler (``dask scheduler``) and SLURM jobs running ``dask worker
tcp://HOST:8786 --nthreads 1``, then ``overlapflow sweep sweep.toml --scheduler tcp://HOST:8786``.
If the client is stopped (or the allocation ends), run the same command again: it continues with
the points that are not done. See ``docs/sweeps.md``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
import socket
import time
import traceback
import warnings
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._extras import require
from .._version import __version__
from ..precision import float64_scope
from ..progress import progress_bar
from ..run_folder import RunFolder, write_text
from ..worker_pool import worker_pool
from .config import (
    SHORTHAND,
    ConfigError,
    ExperimentConfig,
    load_config,
    parse_config,
    pydantic_problems,
    read_toml,
    toml_key,
)
from .runner import load_results, run_experiment

STORE = "sweep.zarr"
DEFINITION = "sweep.json"
POINTS = "points"
STATUS = "status.json"
STATES = ("done", "failed", "pending")
MAX_PROBLEMS = 20


class SweepConfigError(ConfigError):
    """An invalid sweep file: a :class:`ConfigError` whose paths are fields of the sweep file."""

    def __str__(self) -> str:
        return super().__str__().replace("invalid experiment config", "invalid sweep", 1)


# ---------------------------------------------------------------------------- the sweep file
class SweepConfig(BaseModel):
    """A sweep file as written (see the module docstring); :func:`parse_sweep` checks the rest."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, description="a non-empty label")] | None = None
    base: Annotated[
        str,
        Field(min_length=1, description="a TOML experiment config relative to the sweep file, or a shipped config"),
    ]
    output: Annotated[str, Field(min_length=1, description="the output folder")] | None = None
    fixed: Annotated[
        dict[str, Any], Field(alias="set", description="a table of overrides of every point, by dotted key")
    ] = {}
    grid: Annotated[dict[str, list], Field(description="a table of value lists by dotted key")] = {}
    points: Annotated[
        list[dict[str, Any]], Field(description="an array of tables of overrides, each setting the same keys")
    ] = []


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One point: ``id`` (hash of its config), ``coords`` {swept key: value}, its validated ``config``."""

    id: str
    coords: dict
    config: ExperimentConfig


@dataclasses.dataclass(frozen=True)
class Sweep:
    """An expanded, validated sweep (:func:`read_sweep`).

    ``dims``: {swept key: coordinate values}, in dimension order; ``points``: every point;
    ``engines``, ``vector_names``: the union over points; ``records``: epochs + 1 of the longest
    point (the length of the store's ``epoch``)."""

    name: str
    output: Path
    dims: dict
    points: tuple
    engines: tuple
    vector_names: tuple
    records: int
    source: str | None = None

    def layout(self) -> dict:
        """What fixes the store's shape and coordinates (JSON values)."""
        return {
            "dims": {key: list(values) for key, values in self.dims.items()},
            "points": {p.id: list(p.coords.values()) for p in self.points},
            "engines": list(self.engines),
            "vector_names": list(self.vector_names),
            "records": self.records,
        }

    def region(self, point: SweepPoint) -> dict:
        """The point's place in the store: {swept key: slice(i, i + 1)}."""
        index = {key: values.index(point.coords[key]) for key, values in self.dims.items()}
        return {key: slice(i, i + 1) for key, i in index.items()}


def read_sweep(path) -> Sweep:
    """Read a sweep file and validate every point (raises :class:`SweepConfigError`).

    ``path``: a TOML file, or the name of a shipped sweep (``sweep_example``)."""
    path = Path(path)
    shipped = _shipped("sweep")
    if not path.is_file() and path.name.removesuffix(".toml") in shipped:
        path = shipped[path.name.removesuffix(".toml")]
    data = read_toml(path, SweepConfigError).data
    return parse_sweep(data, folder=path.parent, name=path.stem, source=str(path))


def _shipped(kind: str) -> dict:
    """The shipped configs/*.toml by name: sweeps (``sweep*``) or experiments (the others)."""
    configs = resources.files(__package__).joinpath("configs")
    names = {p.name.removesuffix(".toml"): p for p in configs.iterdir() if p.name.endswith(".toml")}
    return {name: Path(str(p)) for name, p in sorted(names.items()) if name.startswith("sweep") == (kind == "sweep")}


def parse_sweep(data, folder=".", name: str = "sweep", source: str | None = None) -> Sweep:
    """Validate a sweep given as a dict (as read from TOML) and expand it into points.

    Args:
        data: the sweep table (``base``, ``output``, ``set``, ``grid``, ``points``, ``name``).
        folder: where a relative ``base`` path is looked up (the sweep file's folder).
        name: the default name (the sweep file's stem).
        source: where the sweep came from, for error messages.

    Returns:
        The :class:`Sweep`: the product of the grid's lists (in the grid's order) with the
        points (in their order), each point applied to the resolved base config and validated.

    Raises:
        SweepConfigError: every problem of the sweep file, by its path in the file, found in one
            pass: the fields with problems are left out and the rest is still checked (the base
            config is read, and the points of the valid swept keys are validated); the base
            config's own problems are reported at their path in it, ``... (in base NAME)``.
    """
    if not isinstance(data, Mapping):
        raise SweepConfigError([("(sweep)", data, "must be a table")], source=source)
    data = dict(data)
    try:
        spec, invalid, problems = SweepConfig.model_validate(data), set(), []
    except ValidationError as error:
        spec, invalid = _partial_spec(data, error)
        problems = pydantic_problems(error, data, SweepConfig, allowed_keys="allowed keys")
    key_problems, bad = _check_keys(spec, invalid)
    problems += key_problems
    base = None if spec.base is None else _read_base(spec.base, Path(folder), problems)
    if problems:
        if base is not None:  # the points of the keys that passed: their problems too, in the same pass
            valid = spec.model_copy(
                update={
                    "fixed": {k: v for k, v in spec.fixed.items() if k not in bad["set"]},
                    "grid": {k: v for k, v in spec.grid.items() if k not in bad["grid"]},
                    "points": [] if bad["points"] else spec.points,
                }
            )
            _expand(valid, base, problems, distinct=False)
        raise SweepConfigError(_unique(problems), source=source)
    points, dims = _expand(spec, base, problems)
    if problems:
        raise SweepConfigError(_unique(problems), source=source)
    name = spec.name or name
    output = Path(spec.output or f"sweep-{name}")
    points = [
        dataclasses.replace(p, config=p.config.model_copy(update={"output": str(output / POINTS / p.id)}))
        for p in points
    ]
    networks = [p.config.build_network() for p in points]
    return Sweep(
        name=name,
        output=output,
        dims={key: tuple(values) for key, values in dims.items()},
        points=tuple(points),
        engines=tuple(dict.fromkeys(e for p in points for e in p.config.engines.names())),
        vector_names=tuple(dict.fromkeys(v for rnn in networks for v in rnn.vector_names)),
        records=max(p.config.total_epochs for p in points) + 1,
        source=source,
    )


def _expand(spec: SweepConfig, base: ExperimentConfig, problems, distinct: bool = True):
    """(points, dims): every point of the grid x points product, validated; problems are added.
    ``distinct``: also report points giving the same experiment (only meaningful for the whole sweep)."""
    dims = {**spec.grid, **{key: _sorted_values([p[key] for p in spec.points]) for key in _point_keys(spec)}}
    sources = {key: f"set.{toml_key(key)}" for key in spec.fixed} | {key: f"grid.{toml_key(key)}" for key in spec.grid}
    points, ids = [], {}
    base_data = base.resolved()
    for grid_values in itertools.product(*spec.grid.values()):
        for j, point in enumerate(spec.points or [{}]):
            coords = {**dict(zip(spec.grid, grid_values, strict=True)), **point}
            coords = {key: coords[key] for key in dims}
            where = sources | {key: f"points.{j}.{toml_key(key)}" for key in point}
            config = _point_config(base_data, {**spec.fixed, **coords}, where, coords, problems)
            if config is None:
                continue
            resolved = {k: v for k, v in config.resolved().items() if k != "output"}
            point_id = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:12]
            if point_id in ids and distinct:
                problems.append(
                    (f"(point {_label(coords)})", coords, f"gives the same experiment as point {ids[point_id]}")
                )
                continue
            ids[point_id] = _label(coords)
            points.append(SweepPoint(point_id, coords, config))
    return points, dims


def _partial_spec(data: dict, error: ValidationError) -> tuple[SweepConfig, set]:
    """The sweep's fields that passed their checks, and the names of those that did not.

    A ``set`` or ``grid`` table keeps its entries without problems; any other field with a
    problem is left out (its default; ``base``: None)."""
    locs = [err["loc"] for err in error.errors(include_url=False)]
    values, invalid = {}, set()
    for name, info in SweepConfig.model_fields.items():
        key = info.alias or name
        if key not in data:
            continue
        inside = [loc[1:] for loc in locs if loc and loc[0] == key]
        if not inside:
            values[name] = data[key]  # plain values (strings, tables, lists): valid as given
            continue
        invalid.add(key)
        value = data[key]
        if key in ("set", "grid") and isinstance(value, Mapping) and () not in inside:
            wrong = {loc[0] for loc in inside}
            values[name] = {k: v for k, v in value.items() if k not in wrong}
    values.setdefault("base", None)
    return SweepConfig.model_construct(**values), invalid


def _label(coords: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in coords.items())


def _point_keys(spec: SweepConfig) -> list[str]:
    return list(spec.points[0]) if spec.points else []


def _kind(value) -> str | None:
    """ "boolean", "number" (finite int or float), "string", or None for anything else."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return "number"
    return "string" if isinstance(value, str) else None


def _sorted_values(values: list) -> list:
    return sorted(dict.fromkeys(values))


def _check_keys(spec: SweepConfig, invalid: set = frozenset()) -> tuple[list, dict]:
    """Problems of the swept values and keys that need no experiment config, and the keys with
    problems by table ({"set": keys, "grid": keys, "points": keys}; any key of points: all of them).
    ``invalid``: the fields whose values failed their types (left out of ``spec``)."""
    problems = []
    bad = {"set": set(), "grid": set(), "points": set()}
    allowed = "must be numbers, strings or booleans, all of one kind"
    if not spec.grid and not spec.points and not {"grid", "points"} & invalid:
        problems.append(("grid", {}, "give a [grid] table and/or a points array (the swept values)"))
    for key, values in spec.grid.items():
        kinds = {_kind(v) for v in values}
        if not values:
            problems.append((f"grid.{toml_key(key)}", values, "must be a non-empty list of values"))
        elif None in kinds or len(kinds) > 1:
            problems.append((f"grid.{toml_key(key)}", values, allowed))
        elif len(set(values)) < len(values):
            problems.append((f"grid.{toml_key(key)}", values, "must not repeat a value"))
        else:
            continue
        bad["grid"].add(key)
    keys = _point_keys(spec)
    point_problems = []
    for j, point in enumerate(spec.points):
        if set(point) != set(keys):
            point_problems.append(
                (
                    f"points.{j}",
                    point,
                    f"sets keys {sorted(point)}; points.0 sets {sorted(keys)}: every point must set the same keys",
                )
            )
            continue
        point_problems += [
            (f"points.{j}.{toml_key(key)}", value, allowed) for key, value in point.items() if _kind(value) is None
        ]
    if not point_problems:
        for key in keys:
            if len({_kind(p[key]) for p in spec.points}) > 1:
                point_problems.append((f"points.*.{toml_key(key)}", [p[key] for p in spec.points], allowed))
        seen = {}
        for j, point in enumerate(spec.points):
            coords = tuple(point[key] for key in keys)
            if coords in seen:
                point_problems.append((f"points.{j}", point, f"repeats points.{seen[coords]}"))
            seen.setdefault(coords, j)
    tables = {"set": list(spec.fixed), "grid": list(spec.grid), "points": keys}
    for table, table_keys in tables.items():
        for key in table_keys:
            field = f"{table}.{toml_key(key)}"
            found = []
            others = [t for t, k in tables.items() if t != table and key in k]
            if others and table != "points":
                found.append((field, key, f"is also given in {others[0]}: give each key in one place"))
            top = key.split(".")[0]
            if top == "output":
                found.append((field, key, "is set by the sweep: each point runs in OUTPUT/points/<id>"))
            elif top in SHORTHAND:
                found.append(
                    (
                        field,
                        key,
                        f"use phases.<j>.{key} (the base config's phases are resolved into [[phases]])",
                    )
                )
            if found:
                bad[table].add(key)
                (point_problems if table == "points" else problems).extend(found)
    if point_problems:
        bad["points"] = set(keys)
    return problems + point_problems, bad


def _read_base(base: str, folder: Path, problems) -> ExperimentConfig | None:
    """The base config: a file relative to the sweep file's folder, else a shipped config by name.
    None if there is none or it is not valid (its problems are added, at their paths in it)."""
    path = folder / base
    shipped = _shipped("experiment")
    name = base.removesuffix(".toml")
    if not path.is_file() and name in shipped:
        path = shipped[name]
    elif not path.is_file():
        problems.append(("base", base, f"no such file ({path}) and not a shipped config ({', '.join(shipped)})"))
        return None
    try:
        return load_config(path)
    except ConfigError as error:
        problems += [(f"{where} (in base {base})", value, allowed) for where, value, allowed in error.problems]
        return None


def _point_config(base_data: dict, overrides: dict, where: dict, coords: dict, problems) -> ExperimentConfig | None:
    """The base config with ``overrides`` applied and validated; problems are added at the sweep
    field each override comes from (``where``: {key: sweep path})."""
    data = json.loads(json.dumps(base_data))
    unassigned = [(where[key], value, _assign(data, key, value)) for key, value in overrides.items()]
    unassigned = [problem for problem in unassigned if problem[2] is not None]
    if unassigned:
        problems += unassigned
        return None
    try:
        return parse_config(data)
    except ConfigError as error:
        for path, value, allowed in error.problems:
            matches = [
                key for key in overrides if path == key or path.startswith(key + ".") or key.startswith(path + ".")
            ]
            if matches:
                key = max(matches, key=len)
                where_in_config = "" if path == key else f" (at {path} of the experiment config)"
                problems.append((where[key], overrides[key], allowed + where_in_config))
            else:
                problems.append((f"{path} (at point {_label(coords)})", value, allowed))
        return None


def _assign(data: dict, key: str, value) -> str | None:
    """Set ``data[a][b]...`` for key "a.b..." (list entries by index); returns what is wrong, or None."""
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        at = ".".join(parts[:depth]) or "the config"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"{at} is an array of {len(node)} entries: index {part!r} must be one of 0..{len(node) - 1}"
            part = int(part)
        elif not isinstance(node, dict):
            return f"{at} is a value ({node!r}), not a table: it has no key {part!r}"
        if last:
            node[part] = value
        else:
            if isinstance(node, dict) and node.get(part) is None:
                node[part] = {}
            node = node[part]
    return None


def _unique(problems: list) -> list:
    """Problems without repeats, at most MAX_PROBLEMS of them (and a line counting the rest)."""
    seen = list({(p, json.dumps(v, default=repr), a): (p, v, a) for p, v, a in problems}.values())
    if len(seen) > MAX_PROBLEMS:
        return [*seen[:MAX_PROBLEMS], ("(more)", len(seen) - MAX_PROBLEMS, "further problems not shown")]
    return seen


# ---------------------------------------------------------------------------- status
@dataclasses.dataclass(frozen=True)
class PointStatus:
    """A point's state: "done", "failed" (``error``, ``traceback``) or "pending"."""

    id: str
    coords: dict
    state: str
    error: str | None = None
    traceback: str | None = None
    seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class SweepStatus:
    """Every point's :class:`PointStatus`; ``counts`` {state: number of points}."""

    output: Path
    points: tuple

    @property
    def counts(self) -> dict:
        return {state: sum(p.state == state for p in self.points) for state in STATES}

    def with_state(self, state: str) -> list:
        return [p for p in self.points if p.state == state]


def _status_path(output: Path, point_id: str) -> Path:
    return output / POINTS / point_id / STATUS


def _point_status(output: Path, point_id: str, coords: dict) -> PointStatus:
    path = _status_path(output, point_id)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return PointStatus(point_id, coords, "pending")
    state = saved.get("state") if saved.get("state") in ("done", "failed") else "pending"
    return PointStatus(point_id, coords, state, saved.get("error"), saved.get("traceback"), saved.get("seconds"))


def sweep_status(path) -> SweepStatus:
    """The state of every point of a sweep: ``path`` is a sweep file, a :class:`Sweep`, or a
    sweep's output folder (it holds ``sweep.json``)."""
    if isinstance(path, Sweep):
        output, points = path.output, [(p.id, p.coords) for p in path.points]
    elif Path(path).is_dir():
        output = Path(path)
        definition = output / DEFINITION
        if not definition.is_file():
            raise FileNotFoundError(f"{output} holds no sweep ({definition} is missing)")
        points = [(p["id"], p["coords"]) for p in json.loads(definition.read_text(encoding="utf-8"))["points"]]
    else:
        return sweep_status(read_sweep(path))
    return SweepStatus(output, tuple(_point_status(output, point_id, coords) for point_id, coords in points))


# ---------------------------------------------------------------------------- the store
def _store_template(sweep: Sweep) -> xr.Dataset:
    """The store's variables as lazy NaN arrays, one chunk per point, and the ``point`` ids."""
    import dask.array as da

    swept = list(sweep.dims)
    shape = tuple(len(values) for values in sweep.dims.values())
    K, E, P = len(sweep.engines), sweep.records, len(sweep.vector_names)
    ids = np.full(shape, "", dtype=object)
    for point in sweep.points:
        ids[tuple(sweep.dims[key].index(point.coords[key]) for key in swept)] = point.id
    ones = (1,) * len(shape)
    return xr.Dataset(
        {
            "loss": ([*swept, "engine", "epoch"], da.full(shape + (K, E), np.nan, chunks=ones + (K, E))),
            "overlaps": (
                [*swept, "engine", "epoch", "row", "col"],
                da.full(shape + (K, E, P, P), np.nan, chunks=ones + (K, E, P, P)),
            ),
        },
        coords={
            **{key: _coordinate(values) for key, values in sweep.dims.items()},
            "point": (swept, ids),
            "engine": np.array(sweep.engines, dtype=object),
            "epoch": np.arange(E),
            "row": np.array(sweep.vector_names, dtype=object),
            "col": np.array(sweep.vector_names, dtype=object),
        },
        attrs={
            "sweep": sweep.name,
            "source": sweep.source or "",
            "layout": json.dumps(sweep.layout()),
            "overlapflow_version": __version__,
        },
    )


def _coordinate(values) -> np.ndarray:
    """Coordinate values: int64, float64, bool, or strings (object: zarr's variable-length strings)."""
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    return np.array(values, dtype=np.int64 if all(isinstance(v, int) for v in values) else np.float64)


def _create_store(store: Path, sweep: Sweep) -> None:
    shutil.rmtree(store, ignore_errors=True)
    with warnings.catch_warnings():  # consolidated metadata lets xarray.open_zarr open the store without warnings
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        _store_template(sweep).to_zarr(store, mode="w", compute=False, consolidated=True)


def _write_point(store: Path, sweep: Sweep, point: SweepPoint, histories: Mapping) -> None:
    """Write one point's Histories into its region: loss (1.., K, E), overlaps (1.., K, E, P, P)."""
    K, E, P = len(sweep.engines), sweep.records, len(sweep.vector_names)
    loss = np.full((K, E), np.nan)
    overlaps = np.full((K, E, P, P), np.nan)
    for name, history in histories.items():
        k = sweep.engines.index(name)
        n = history.sizes["epoch"]
        rows = [sweep.vector_names.index(v) for v in history.row.values]
        loss[k, :n] = history.loss.values
        overlaps[k][np.ix_(range(n), rows, rows)] = history.overlaps.values
    ones = (1,) * len(sweep.dims)
    swept = list(sweep.dims)
    xr.Dataset(
        {
            "loss": ([*swept, "engine", "epoch"], loss.reshape(ones + loss.shape)),
            "overlaps": ([*swept, "engine", "epoch", "row", "col"], overlaps.reshape(ones + overlaps.shape)),
        }
    ).to_zarr(store, region=sweep.region(point), consolidated=False)


def _stored_layout(store: Path) -> dict | None:
    if not store.is_dir():
        return None
    try:
        with xr.open_zarr(store) as existing:
            return json.loads(existing.attrs["layout"])
    except Exception:  # noqa: BLE001 - missing, partly written or foreign: the store is rebuilt
        return None


def _prepare_store(sweep: Sweep, statuses: SweepStatus) -> SweepStatus:
    """Make sure OUT/sweep.zarr has this sweep's layout; a new store is filled from the Histories of
    the points already done (a point whose Histories cannot be read becomes pending)."""
    store = sweep.output / STORE
    if _stored_layout(store) == json.loads(json.dumps(sweep.layout())):
        return statuses
    _create_store(store, sweep)
    points = {p.id: p for p in sweep.points}
    updated = []
    for status in statuses.points:
        if status.state == "done":
            try:
                _write_point(store, sweep, points[status.id], load_results(sweep.output / POINTS / status.id))
            except (OSError, KeyError, ValueError):
                _status_path(sweep.output, status.id).unlink()
                status = dataclasses.replace(status, state="pending")
        updated.append(status)
    return dataclasses.replace(statuses, points=tuple(updated))


def load_sweep(path) -> xr.Dataset:
    """The combined results of a sweep, lazily (dask arrays; ``.load()`` reads them).

    ``path``: the output folder, its ``sweep.zarr``, or the sweep file. Dimensions: the swept
    keys, then ``engine``, ``epoch``, ``row``, ``col``; ``loss`` and ``overlaps`` are NaN at
    points that are not done; ``point`` holds the ids (folders ``OUT/points/<id>``)."""
    require("sweep", "overlapflow.experiments.load_sweep")
    path = Path(path)
    if path.is_file():
        path = read_sweep(path).output
    store = path if path.name.endswith(".zarr") else path / STORE
    if not store.is_dir():
        raise FileNotFoundError(f"no sweep results at {store}")
    results = xr.open_zarr(store)
    strings = [name for name, coord in results.coords.items() if coord.dtype.kind == "T"]  # numpy's StringDType
    return results.assign_coords(
        {name: (results[name].dims, np.array(results[name].values.tolist())) for name in strings}
    )


# ---------------------------------------------------------------------------- running
def _run_point(config_data: dict) -> dict:
    """Run one point (on a worker) in its output folder, continuing from its checkpoint if it has one.

    Returns {"state": "done", "histories": {engine: History}, "seconds"} or {"state": "failed",
    "error", "traceback", "seconds"}: a failure is a result, so the sweep goes on."""
    import dask

    started = time.perf_counter()
    worker = f"{socket.gethostname()} pid {os.getpid()}"
    try:
        config = parse_config(config_data)
        folder = Path(config.output)
        resume = RunFolder(folder).has_checkpoint()
        # Not the worker's distributed scheduler: with it, xarray guards every netCDF write with a lock
        # held by the scheduler (a round trip per access, about 0.5 s per point). Float64 as in the client:
        # the worker's thread gets its own scope (JAX's setting is per thread and per process).
        with dask.config.set(scheduler="synchronous"), float64_scope():
            histories = run_experiment(config, folder, resume=resume, overwrite=True)
    except Exception as error:  # noqa: BLE001 - every failure is recorded in the point's status
        return {
            "state": "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
            "seconds": time.perf_counter() - started,
            "worker": worker,
        }
    return {"state": "done", "histories": histories, "seconds": time.perf_counter() - started, "worker": worker}


def _payload(point: SweepPoint) -> dict:
    """The point's resolved config with absolute paths (the workers' working folder may differ)."""
    data = point.config.resolved()
    data["output"] = str(Path(data["output"]).resolve())
    if data["init"].get("from_run") is not None:
        data["init"]["from_run"] = str(Path(data["init"]["from_run"]).resolve())
    return data


@contextlib.contextmanager
def _executor(scheduler, workers: int | None, n_points: int):
    """(submit, as_completed) for the points: the worker pool of this machine (``scheduler`` None:
    min(workers or the cores, n_points) single-threaded processes), else the workers of a Dask
    scheduler (an address, a cluster object or a Client)."""
    if scheduler is None:
        with worker_pool(max(1, min(workers or os.cpu_count() or 1, n_points))) as pool:
            yield pool.submit, concurrent.futures.as_completed
        return
    from dask.distributed import Client, as_completed

    with contextlib.nullcontext(scheduler) if isinstance(scheduler, Client) else Client(scheduler) as client:
        yield (lambda function, *args: client.submit(function, *args, pure=False)), as_completed


def run_sweep(
    sweep, scheduler=None, workers: int | None = None, progress: bool = False, *, retry_failed: bool = False
) -> xr.Dataset:
    """Run every point of a sweep that is not done on Dask; returns the combined results.

    Args:
        sweep: a sweep file or a :class:`Sweep` (:func:`read_sweep`).
        scheduler: a scheduler address (``"tcp://host:8786"``), a cluster object (e.g.
            ``dask_jobqueue.SLURMCluster``) or a ``dask.distributed.Client``; None runs the points
            in ``workers`` single-threaded processes on this machine (default: one per core).
        workers: the processes on this machine (at most one per point to run).
        progress: show a progress bar over the points.
        retry_failed: run the failed points again too.

    Returns:
        :func:`load_sweep` of the output folder: loss (*swept, engine, epoch) and overlaps
        (*swept, engine, epoch, row, col), NaN at points that are not done. A point that fails
        is recorded in its ``status.json`` (see :func:`sweep_status`) and does not stop the others.
    """
    require("sweep", "overlapflow.experiments.run_sweep")
    if not isinstance(sweep, Sweep):
        sweep = read_sweep(sweep)
    if workers is not None and scheduler is not None:
        raise ValueError(
            f"workers = {workers!r}: only for this machine's processes; with a scheduler its workers run the points"
        )
    output = sweep.output
    output.mkdir(parents=True, exist_ok=True)
    definition = {
        "name": sweep.name,
        "source": sweep.source,
        "dims": {key: list(values) for key, values in sweep.dims.items()},
        "points": [{"id": p.id, "coords": p.coords} for p in sweep.points],
    }
    write_text(output / DEFINITION, json.dumps(definition, indent=1) + "\n")
    statuses = _prepare_store(sweep, sweep_status(sweep))
    todo_states = ("pending", "failed") if retry_failed else ("pending",)
    todo_ids = {s.id for s in statuses.points if s.state in todo_states}
    todo = [p for p in sweep.points if p.id in todo_ids]
    if todo:
        _run_points(sweep, todo, scheduler, workers, progress)
    return load_sweep(output)


def _run_points(sweep: Sweep, todo: list, scheduler, workers: int | None, progress: bool) -> None:
    """Submit ``todo`` and record each point as it completes (store region, then status.json)."""
    store = sweep.output / STORE
    counts = {"done": 0, "failed": 0}
    with (
        _executor(scheduler, workers, len(todo)) as (submit, as_completed),
        progress_bar(progress, f"sweep {sweep.name}", len(todo)) as update,
    ):
        futures = {submit(_run_point, _payload(p)): p for p in todo}
        for future in as_completed(list(futures)):
            point = futures.pop(future)
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - a worker died, the task was cancelled, ...
                text = "".join(traceback.format_exception(error))
                result = {"state": "failed", "error": f"{type(error).__name__}: {error}", "traceback": text}
            loss = math.nan
            if result["state"] == "done":
                histories = result.pop("histories")
                _write_point(store, sweep, point, histories)
                loss = float(next(iter(histories.values())).loss.values[-1])
            status = {"id": point.id, "coords": point.coords, **result, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_text(_status_path(sweep.output, point.id), json.dumps(status, indent=1) + "\n")
            counts[result["state"]] += 1
            update(1, loss, description=f"sweep {sweep.name}: {counts['done']} done, {counts['failed']} failed")
