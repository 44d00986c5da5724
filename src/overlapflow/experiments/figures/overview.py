"""Fig 4: the nonlinear overview, the flip-flop (a-c) and A/B -> C (d-f)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure

from ...precision import float64
from .drawing import draw_loss, draw_overlaps
from .flipflop import (
    FlipFlopSettings,
    _draw_trial,
    _flipflop_curves,
    _flipflop_numbers,
    _flipflop_runs,
    _flipflop_trial,
)
from .memory import (
    MemorySettings,
    _decoding_numbers,
    _distance_numbers,
    _draw_decoding,
    _draw_member_distance,
    _draw_memory_loss,
    _member_distance,
    run_memory,
)


@dataclasses.dataclass(frozen=True)
class OverviewSettings:
    """Fig 4: panels a-c from the flip-flop (:class:`FlipFlopSettings`; gradient descent, network and
    theory), panels d-f from the A/B -> C protocol (:class:`MemorySettings`)."""

    flipflop: FlipFlopSettings = FlipFlopSettings()
    memory: MemorySettings = MemorySettings()


@float64
def run_overview(settings: OverviewSettings, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Fig 4's data: the flip-flop's gradient-descent run and :func:`run_memory`'s data."""
    from ..._extras import require

    require("decode", "figures 4, 9 and 10 (decoding the training history)")
    return {
        **_flipflop_runs(settings.flipflop, out, progress, ("descent",)),
        **run_memory(settings.memory, out, progress),
    }


@float64
def draw_fig4(data, settings: OverviewSettings, out):
    flipflop, memory = settings.flipflop, settings.memory
    trial = _flipflop_trial(flipflop, out)
    fig = Figure(figsize=(17, 9.5), layout="constrained")
    axes = fig.subplots(2, 3)
    curves = _flipflop_curves(data, flipflop)
    _draw_trial(axes[0, 0], trial, curves[0][2])
    draw_loss(axes[0, 1], curves)
    draw_overlaps(axes[0, 2], curves, "all")
    _draw_memory_loss(axes[1, 0], data["ab_to_c"])
    _draw_member_distance(axes[1, 1], _member_distance(data["ab_to_c"]))
    _draw_decoding(axes[1, 2], data["decoding"], memory.noise_levels[0])
    for ax, letter in zip(axes.ravel(), "abcdef", strict=True):
        ax.set_title(f"({letter}) {ax.get_title()}", fontsize="medium")
    fig.suptitle(
        "Fig 4: nonlinear (erf) networks. a-c: the flip-flop, network vs theory; "
        "d-f: A/B -> C, the history stays in the invisible overlaps"
    )
    numbers = _flipflop_numbers(data, flipflop, trial) + _distance_numbers(data["ab_to_c"])
    numbers += _decoding_numbers(data, memory.noise_levels[:1])
    return fig, numbers
