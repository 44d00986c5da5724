"""History: the one record every engine returns, an ``xarray.Dataset``.

    loss      (epoch)              loss of the state after k updates, k = 0..epochs
    overlaps  (epoch, row, col)    S after k updates; row/col are the vector names
    visible   (row, col)           True on loss-visible entries

A curriculum's History (:mod:`~overlapflow.phenomena.curriculum`) adds ``phase`` (epoch) and
the phase table on the ``phases`` dimension (``phase_name``, ``phase_end``, ``phase_task``,
``phase_lr``, ``phase_optimizer``).

``attrs`` hold the run's settings (engine, method, lr, epochs, network, task, N, versions).
Save with ``history.to_netcdf(path)``; load with :func:`load_history`.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from .model import LowRankRNN
from .overlaps import canonical_pairs, parse_pair, visible_mask

#: The History's population variables and their dimensions (a batch of runs adds ``run`` in front).
POPULATION_DIMS = {
    "population_means": ("epoch", "population", "row"),
    "population_overlaps": ("epoch", "population", "row", "col"),
    "population_weights": ("population",),
}


def make_history(rnn: LowRankRNN, losses, overlaps, attrs: dict, populations: dict | None = None) -> xr.Dataset:
    """Build a History from losses (E+1,) and overlaps (E+1, P, P), or a batch of runs:
    losses (K, E+1) and overlaps (K, E+1, P, P) with a leading ``run`` dimension.

    ``populations``: ``population_means`` (E+1, K, P), ``population_overlaps`` (E+1, K, P, P) (each
    with the leading ``run`` dimension of a batch) and ``population_weights`` (K,)."""
    names = list(rnn.vector_names)
    losses = np.asarray(losses, dtype=np.float64)
    overlaps = np.asarray(overlaps, dtype=np.float64)
    runs = ("run",) if losses.ndim == 2 else ()
    attrs = {key: _attr_value(value) for key, value in attrs.items()}
    attrs.update({f"rnn_{k}": _attr_value(v) for k, v in rnn.describe().items()})
    variables = {
        "loss": (runs + ("epoch",), losses),
        "overlaps": (runs + ("epoch", "row", "col"), overlaps),
        "visible": (("row", "col"), visible_mask(rnn)),
    }
    if populations is not None:
        for name, dims in POPULATION_DIMS.items():
            variables[name] = ((runs if "epoch" in dims else ()) + dims, populations[name])
    return xr.Dataset(variables, coords={"epoch": np.arange(losses.shape[-1]), "row": names, "col": names}, attrs=attrs)


def _attr_value(value):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if value is None:
        return "none"
    return json.dumps(value, default=str)


def rnn_from_history(history: xr.Dataset) -> LowRankRNN:
    """The architecture a History was recorded for (built-in phi only)."""
    a = history.attrs
    return LowRankRNN(
        int(a["rnn_rank"]),
        int(a["rnn_n_in"]),
        int(a["rnn_n_out"]),
        a["rnn_phi"],
        float(a["rnn_dt"]),
        float(a["rnn_tau"]),
        a.get("rnn_readout", "after"),
    )


def overlap_series(history: xr.Dataset, label: str) -> xr.DataArray:
    """One overlap over epochs, e.g. ``overlap_series(h, "zm")``; labels read in either order."""
    i, j = parse_pair(tuple(history.row.values), label)
    return history.overlaps.isel(row=i, col=j).rename(label)


def overlap_labels(history: xr.Dataset, which: str = "all") -> list[str]:
    """Labels of distinct overlaps: ``"all"``, ``"visible"`` or ``"invisible"`` (canonical order)."""
    if which not in ("all", "visible", "invisible"):
        raise ValueError(f"which = {which!r}: allowed 'all', 'visible', 'invisible'")
    names, mask = list(history.row.values), history.visible.values
    return [
        names[i] + names[j]
        for i, j in canonical_pairs(len(names))
        if which == "all" or (which == "visible") == bool(mask[i, j])
    ]


def max_overlap_deviation(a: xr.Dataset, b: xr.Dataset, which: str = "all") -> float:
    """max over epochs and the chosen overlaps of |S_a - S_b| (both Histories on the same epochs)."""
    if a.sizes["epoch"] != b.sizes["epoch"]:
        raise ValueError(f"Histories have {a.sizes['epoch']} and {b.sizes['epoch']} epochs; compare equal lengths")
    diff = np.abs(a.overlaps.values - b.overlaps.values)
    if which != "all":
        mask = a.visible.values if which == "visible" else ~a.visible.values
        diff = diff[:, mask]
    return float(np.max(diff))


def phase_names(history: xr.Dataset) -> list[str]:
    """The names of a curriculum History's phases (its ``phase_name`` variable)."""
    return [str(name) for name in history.phase_name.values]


def phase_ends(history: xr.Dataset) -> list[int]:
    """The epoch at which each phase of a curriculum History ends (its ``phase_end`` variable)."""
    return [int(end) for end in history.phase_end.values]


def load_history(path) -> xr.Dataset:
    """Read a History written by ``to_netcdf``."""
    with xr.open_dataset(path) as ds:
        history = ds.load()
    history["visible"] = history.visible.astype(bool)
    return history
