"""Experiments as configs: validated TOML configs, a checkpointed runner, the paper's figures.

- :mod:`~overlapflow.experiments.config`: :func:`load_config` reads a TOML experiment into an
  :class:`ExperimentConfig` (errors: one :class:`ConfigError` listing every problem by path).
- :mod:`~overlapflow.experiments.runner`: :func:`run_experiment` runs it on the chosen engines in
  checkpointed segments; ``resume=True`` continues an interrupted run to the same bits.
- :mod:`~overlapflow.experiments.figures`: every figure of the paper, from a shipped config or a
  runner of the phenomena APIs with the paper's settings (``overlapflow reproduce FIG|all``).
- :mod:`~overlapflow.experiments.sweep`: sweeps of config overrides on Dask, gathered in a zarr
  store (``overlapflow sweep SWEEP.toml``).
- :mod:`~overlapflow.experiments.commands`, :mod:`~overlapflow.experiments.sweep_commands`: the
  ``run``, ``validate``, ``reproduce`` and ``sweep`` commands (``register(app)`` adds them to a typer app).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and the API docs; at run time the names load on first use (below)
    from .config import ConfigError, ExperimentConfig, load_config, load_config_text, parse_config
    from .runner import ExperimentDiverged, RunError, RunFolder, load_results, run_experiment
    from .sweep import Sweep, SweepConfigError, SweepStatus, load_sweep, read_sweep, run_sweep, sweep_status

# Loaded on first use (PEP 562): the command line imports overlapflow.experiments.commands without
# loading JAX, xarray or pydantic (``overlapflow --help`` starts in a fraction of a second).
_EXPORTS = {
    "config": ("ConfigError", "ExperimentConfig", "load_config", "load_config_text", "parse_config"),
    "runner": ("ExperimentDiverged", "RunError", "RunFolder", "load_results", "run_experiment"),
    "sweep": (
        "Sweep",
        "SweepConfigError",
        "SweepStatus",
        "load_sweep",
        "read_sweep",
        "run_sweep",
        "sweep_status",
    ),
}
_SUBMODULES = ("ab_to_c", "commands", "config", "figures", "runner", "sweep", "sweep_commands")
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "ExperimentDiverged",
    "RunError",
    "load_config",
    "load_config_text",
    "load_results",
    "parse_config",
    "RunFolder",
    "run_experiment",
    "Sweep",
    "SweepConfigError",
    "SweepStatus",
    "load_sweep",
    "read_sweep",
    "run_sweep",
    "sweep_status",
]


def __getattr__(name: str):
    import importlib

    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
