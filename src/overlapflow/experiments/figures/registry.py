"""The paper's figures, :data:`FIGURES` (with the ``--quick`` settings), and looking one up: its id,
setup, config and default folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import ExperimentConfig
from .data import shipped_config
from .flipflop import FlipFlopSettings, draw_fig8, run_flipflop_study
from .gram import draw_fig11, run_gram_map
from .linear import draw_fig1c, draw_fig3, draw_fig5, draw_fig6, draw_fig7, draw_fig12
from .memory import MemorySettings, draw_fig9, draw_fig10, run_memory
from .overview import OverviewSettings, draw_fig4, run_overview
from .spec import FigureSpec, FigureUnavailable
from .twins import TwinSettings, draw_fig2, run_twins

_QUICK_FILTER = dict(N=100, epoch_scale=0.5, checkpoint_every=1000)
_QUICK_ABA = dict(N=100, epoch_scale=0.3, checkpoint_every=300)
# --quick flip-flop: N 200, dt 0.05 and t_max 10 (T = 200 steps, not 800), lr 0.2 (4x) for 300 epochs
_QUICK_FLIPFLOP = dict(N=200, dt=0.05, t_max=10.0, lr=0.2, epochs=300, flow_factor=2)
# --quick A/B -> C: 150 epochs per phase (not 30000), batch 16, in this process; decoding with 20 resamplings
_QUICK_MEMORY = dict(epochs=150, batch_size=16, resamples=20, workers=0)

# Wall time of `overlapflow reproduce FIG [--quick] --out EMPTY` on a 2-core CPU, in seconds: (--quick,
# the paper's settings), start-up and compilation included, one figure per process (2026-11, JAX on CPU;
# the machine was shared: load average 0.5-5, so a quiet machine is faster). Measured, but for the
# paper's settings of figs 4, 9 and 10: those run the A/B -> C protocol (30 jobs of 30000 epochs on 2
# worker processes), 33 min on a quiet 2-core machine (benchmarks/bench_memory.py) and 41 min measured
# under load (docs/results/memory_paper_scale.json), so 35 min estimated; fig 4 adds its flip-flop run
# (74 s, measured within fig 8).
RUN_TIMES: dict[str, tuple[float, float]] = {
    "1c": (13, 17),
    "2": (20, 24),
    "3": (27, 33),
    "4": (51, 35 * 60 + 75),
    "5": (18, 19),
    "6": (26, 36),
    "7": (13, 29),
    "8": (31, 415),
    "9": (40, 35 * 60),
    "10": (38, 35 * 60),
    "11": (7, 7),
    "12": (23, 33),
}
FULL_MEASURED = ("1c", "2", "3", "5", "6", "7", "8", "11", "12")
#: how the run times were obtained, in words (``reproduce --list`` prints it under the table)
RUN_TIME_NOTE = (
    "Run times on a 2-core CPU from an empty folder (start-up and compilation included; other jobs on the "
    "machine slow them down): --quick measured; the paper's settings measured for figs "
    f"{', '.join(FULL_MEASURED)}, estimated for figs 4, 9 and 10 from the A/B -> C run they share (33 min on a "
    "quiet 2-core machine, 41 min measured under load; fig 4 adds a 74 s flip-flop run). Figures that share a "
    "folder share their data: the second one takes seconds."
)

FIGURES: dict[str, FigureSpec] = {
    spec.id: dataclasses.replace(spec, seconds=RUN_TIMES.get(spec.id))
    for spec in (
        FigureSpec(
            "1c",
            "loss: full network vs overlap theory vs naive descent on the visible overlaps",
            "fig1c.toml",
            draw_fig1c,
            _QUICK_FILTER,
        ),
        FigureSpec(
            "2",
            "degeneracy: twin networks, identical output, different learning",
            draw=draw_fig2,
            quick=dict(epochs=300),
            run=run_twins,
            settings=TwinSettings(),
        ),
        FigureSpec(
            "3",
            "A-B-A memory: invisible overlaps keep a trace of B",
            "aba.toml",
            draw_fig3,
            _QUICK_ABA,
            folder="aba",
        ),
        FigureSpec(
            "4",
            "nonlinear: flip-flop network vs theory (a-c); A/B -> C memory in invisible overlaps (d-f)",
            draw=draw_fig4,
            quick=dict(flipflop=FlipFlopSettings(**_QUICK_FLIPFLOP), memory=MemorySettings(**_QUICK_MEMORY)),
            run=run_overview,
            settings=OverviewSettings(),
            folder="nonlinear",
        ),
        FigureSpec(
            "5",
            "filter task: learned impulse response, loss, 4 visible / 6 invisible overlaps",
            "fig5.toml",
            draw_fig5,
            _QUICK_FILTER,
        ),
        FigureSpec(
            "6",
            "conservation matrix K = A A^T - B B^T through A-B-A; noise breaks it",
            "aba.toml",
            draw_fig6,
            _QUICK_ABA,
            folder="aba",
        ),
        FigureSpec(
            "7",
            "the A-B protocol with Adam (full network)",
            "fig7.toml",
            draw_fig7,
            dict(N=100, epoch_scale=0.25, checkpoint_every=1000),
        ),
        FigureSpec(
            "8",
            "flip-flop: network vs theory; Gaussianity of the learned vectors; gradient flow vs descent vs Adam",
            draw=draw_fig8,
            quick=_QUICK_FLIPFLOP,
            run=run_flipflop_study,
            settings=FlipFlopSettings(),
            folder="nonlinear",
        ),
        FigureSpec(
            "9",
            "A/B -> C: visible overlaps agree, invisible differ (10 twin pairs)",
            draw=draw_fig9,
            quick=_QUICK_MEMORY,
            run=run_memory,
            settings=MemorySettings(),
            folder="nonlinear",
        ),
        FigureSpec(
            "10",
            "A/B -> C: decoding the training history from visible vs invisible overlaps",
            draw=draw_fig10,
            quick=_QUICK_MEMORY,
            run=run_memory,
            settings=MemorySettings(),
            folder="nonlinear",
        ),
        FigureSpec(
            "11",
            "structure of the overlap Gram map, linear vs nonlinear",
            draw=draw_fig11,
            run=run_gram_map,
        ),
        FigureSpec(
            "12",
            "rank 2: damped oscillator, 9 visible / 12 invisible overlaps",
            "fig12.toml",
            draw_fig12,
            dict(N=100, epoch_scale=0.5, checkpoint_every=1000),
        ),
    )
}


def figure_id(text: str) -> str:
    """Normalise ``"fig5"``, ``"Figure 5"``, ``"5"``, ``"1"`` -> ``"1c"``, ``"4b"`` -> ``"4"``.

    Raises FigureUnavailable for an unknown figure."""
    key = str(text).strip().lower().replace(" ", "")
    for prefix in ("figure", "fig.", "fig"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    if key == "1":
        key = "1c"
    if key not in FIGURES and key[:-1] in FIGURES and key[-1:].isalpha():
        key = key[:-1]
    if key not in FIGURES:
        raise FigureUnavailable(f"unknown figure {text!r}; the paper's figures: {', '.join(FIGURES)}")
    return key


def figure_setup(fig: str, quick: bool = False):
    """What a figure is made from: its :class:`ExperimentConfig` (config figures) or its settings (runner
    figures; None for fig 11); ``quick``: the ``--quick`` version."""
    spec = FIGURES[figure_id(fig)]
    if spec.config is not None:
        config = shipped_config(spec.config)
        return config.scaled(**spec.quick, suffix="-quick") if quick else config
    return dataclasses.replace(spec.settings, **spec.quick) if quick and spec.quick else spec.settings


def figure_config(fig: str, quick: bool = False) -> ExperimentConfig:
    """The shipped config of a config figure (``quick``: its smaller version)."""
    spec = FIGURES[figure_id(fig)]
    if spec.config is None:
        raise FigureUnavailable(f"figure {spec.id} is made by {spec.source}, not from one experiment config")
    return figure_setup(fig, quick)


def default_folder(fig: str, quick: bool = False) -> Path:
    """``overlapflow-<folder>`` (``-quick``): figures that share data share it."""
    return Path(f"overlapflow-{FIGURES[figure_id(fig)].folder}" + ("-quick" if quick else ""))
