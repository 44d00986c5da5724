"""The figures' data: shipped configs, checkpointed config runs, and netCDF data stored with the
settings they were computed with."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import xarray as xr

from ...run_folder import RunError, RunFolder, write_history
from ..config import ExperimentConfig, load_config_text
from ..runner import run_experiment


def shipped_config(name: str) -> ExperimentConfig:
    """A config shipped in ``overlapflow/experiments/configs``."""
    text = resources.files("overlapflow.experiments").joinpath("configs", name).read_text(encoding="utf-8")
    return load_config_text(text, source=f"overlapflow/experiments/configs/{name}")


def run_config(config: ExperimentConfig, out: Path, progress: bool) -> dict[str, xr.Dataset]:
    """``run_experiment`` in ``out``: continues an interrupted run there, or reuses a finished one. The
    run's config.json and summary name ``out``, not the shipped config's output folder."""
    config = config.model_copy(update={"output": str(out)})
    return run_experiment(config, out, progress=progress, resume=RunFolder(out).has_checkpoint())


def write_data(out: Path, name: str, data: xr.Dataset) -> xr.Dataset:
    write_history(out / f"{name}.nc", data)
    return data


def stored(out: Path, name: str, settings: dict, compute: Callable[[], xr.Dataset]) -> xr.Dataset:
    """``out/<name>.nc`` if it was computed with ``settings``; else ``compute()``, written there.

    The settings are kept as JSON in the Dataset's attrs (``figure_settings``). A file computed with
    other settings is not overwritten: RunError."""
    path = out / f"{name}.nc"
    key = json.dumps(settings, sort_keys=True)
    if path.is_file():
        with xr.open_dataset(path) as stored:
            stored = stored.load()
        if stored.attrs.get("figure_settings") == key:
            return stored
        raise RunError(
            f"{path} holds {name} data computed with other settings ({stored.attrs.get('figure_settings')}, "
            f"not {key}); choose another output folder or remove the file"
        )
    return write_data(out, name, compute().assign_attrs(figure_settings=key))
