r"""The paper's figures (arXiv 2605.04115), each reproduced with the paper's settings.

``overlapflow reproduce FIG [--quick] [--out DIR]`` makes a figure from one of two sources:

- a shipped experiment config (``overlapflow/experiments/configs/*.toml``: figs 1c, 3, 5, 6, 7, 12),
  run by :func:`~overlapflow.experiments.run_experiment`;
- a runner built on the phenomena APIs (figs 2, 4, 8, 9, 10, 11), whose settings are a frozen
  dataclass with the paper's values as defaults (:class:`TwinSettings`, :class:`FlipFlopSettings`,
  :class:`MemorySettings`, :class:`OverviewSettings`); the flip-flop runs are themselves a shipped
  config (``flipflop.toml``).

Either way the figure is drawn (``figFIG.png`` and ``.pdf``) and its key numbers are written next to
the paper's (``summary.txt`` and ``figFIG.json``); the data stay in the folder as netCDF (a config's
Histories ``<engine>.nc`` and checkpoint, a runner's ``<name>.nc``). Running again in the same folder
continues an interrupted config run, reuses finished runs and stored data (computed with the same
settings), and redraws. Figures that share data share a default folder (``overlapflow-<folder>``:
figs 3 and 6 in ``aba``; figs 4, 8, 9 and 10 in ``nonlinear``), so the data are computed once.

``--quick`` shrinks N, the epochs and (for the nonlinear runs) the time steps, with settings in
:data:`FIGURES`, so that each figure takes about a minute or less on a laptop CPU; its key numbers
come close to the paper's, or show the paper's trend, but are not the paper's.

The modules of this package (their public names are re-exported here):

- :mod:`~overlapflow.experiments.figures.spec`: the types, :class:`FigureSpec`, :class:`KeyNumber`,
  :class:`FigureResult`, :class:`FigureUnavailable`;
- :mod:`~overlapflow.experiments.figures.registry`: :data:`FIGURES` and looking a figure up
  (:func:`figure_id`, :func:`figure_setup`, :func:`figure_config`, :func:`default_folder`);
- :mod:`~overlapflow.experiments.figures.reproduce`: :func:`reproduce_figure` and the key numbers'
  ``summary.txt`` (:func:`format_numbers`);
- :mod:`~overlapflow.experiments.figures.data`, :mod:`~overlapflow.experiments.figures.drawing`: the
  figures' data (shipped configs, runs, stored netCDF) and the shared drawing helpers;
- one module per family of figures: :mod:`~overlapflow.experiments.figures.linear` (the config figures
  1c, 3, 5, 6, 7, 12), :mod:`~overlapflow.experiments.figures.twins` (2),
  :mod:`~overlapflow.experiments.figures.flipflop` (8, and 4a-c), :mod:`~overlapflow.experiments.figures.memory`
  (9, 10, and 4d-f), :mod:`~overlapflow.experiments.figures.overview` (4), :mod:`~overlapflow.experiments.figures.gram`
  (11).
"""

from .flipflop import FLIPFLOP_RUNS, FlipFlopSettings, draw_fig8, run_flipflop_study
from .flipflop import flipflop_config as flipflop_config
from .gram import GRAM_NETWORKS, draw_fig11, run_gram_map
from .linear import draw_fig1c, draw_fig3, draw_fig5, draw_fig6, draw_fig7, draw_fig12
from .memory import MemorySettings, draw_fig9, draw_fig10, run_memory
from .overview import OverviewSettings, draw_fig4, run_overview
from .registry import FIGURES, default_folder, figure_config, figure_id, figure_setup
from .reproduce import format_numbers, reproduce_figure
from .reproduce import write_summary as write_summary
from .spec import FigureResult, FigureSpec, FigureUnavailable, KeyNumber
from .twins import TwinSettings, draw_fig2, run_twins

__all__ = [
    "FIGURES",
    "FLIPFLOP_RUNS",
    "GRAM_NETWORKS",
    "FigureResult",
    "FigureSpec",
    "FigureUnavailable",
    "FlipFlopSettings",
    "KeyNumber",
    "MemorySettings",
    "OverviewSettings",
    "TwinSettings",
    "default_folder",
    "draw_fig1c",
    "draw_fig2",
    "draw_fig3",
    "draw_fig4",
    "draw_fig5",
    "draw_fig6",
    "draw_fig7",
    "draw_fig8",
    "draw_fig9",
    "draw_fig10",
    "draw_fig11",
    "draw_fig12",
    "figure_config",
    "figure_id",
    "figure_setup",
    "format_numbers",
    "reproduce_figure",
    "run_flipflop_study",
    "run_gram_map",
    "run_memory",
    "run_overview",
    "run_twins",
]
