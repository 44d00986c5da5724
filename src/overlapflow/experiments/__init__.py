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

from .config import ConfigError, ExperimentConfig, load_config, load_config_text, parse_config
from .runner import ExperimentDiverged, RunError, load_results, read_final_state, run_experiment
from .sweep import Sweep, SweepConfigError, SweepStatus, load_sweep, read_sweep, run_sweep, sweep_status

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "ExperimentDiverged",
    "RunError",
    "load_config",
    "load_config_text",
    "load_results",
    "parse_config",
    "read_final_state",
    "run_experiment",
    "Sweep",
    "SweepConfigError",
    "SweepStatus",
    "load_sweep",
    "read_sweep",
    "run_sweep",
    "sweep_status",
]
