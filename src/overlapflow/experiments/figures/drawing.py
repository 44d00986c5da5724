"""Drawing helpers shared by the figures: line styles, loss and overlap panels, phase shading, saving,
and the network and theory outputs on given inputs."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from ...meanfield import meanfield_forward
from ...network import network_forward
from ...plot import (
    EPOCH_LABEL,
    LOSS_LABEL,
    MAX_POINTS,
    OUTPUT_LABEL,
    OVERLAP_LABEL,
    draw_loss_panel,
    draw_overlap_panel,
    plain_log_labels,
    shade_phases,
    thinned,
    time_label,
)
from ...plot import NAIVE_STYLE as NAIVE
from ...plot import NETWORK_STYLE as NETWORK
from ...plot import THEORY_STYLE as THEORY

__all__ = [
    "EPOCH_LABEL",
    "LOSS_LABEL",
    "MAX_POINTS",
    "NAIVE",
    "NETWORK",
    "OUTPUT_LABEL",
    "OVERLAP_LABEL",
    "THEORY",
    "draw_loss",
    "draw_overlaps",
    "plain_log_labels",
    "forward_outputs",
    "jitted_meanfield_forward",
    "jitted_network_forward",
    "save_figure",
    "shade_phases",
    "thinned",
    "time_label",
]


def draw_loss(ax, curves) -> None:
    """loss(epoch) of ``(history, style, label)`` curves (:func:`overlapflow.plot.draw_loss_panel`)."""
    draw_loss_panel(ax, curves)


def draw_overlaps(ax, curves, which: str) -> None:
    """The ``which`` overlaps of ``(history, style, label)`` curves, one colour and marker per overlap
    (:func:`overlapflow.plot.draw_overlap_panel`)."""
    draw_overlap_panel(ax, curves, which)


def save_figure(fig: Figure, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    return paths


jitted_network_forward = jax.jit(network_forward, static_argnums=0)
jitted_meanfield_forward = jax.jit(meanfield_forward, static_argnums=0)


def forward_outputs(rnn, theta, S, inputs):
    """(network output, theory output) (T,) for inputs (1, T, n_in)."""
    y_net = jitted_network_forward(rnn, jnp.asarray(theta), jnp.asarray(inputs, dtype=jnp.asarray(theta).dtype))
    y_thy = jitted_meanfield_forward(rnn, jnp.asarray(S), jnp.asarray(inputs, dtype=jnp.float64))
    return np.asarray(y_net)[0, :, 0], np.asarray(y_thy)[0, :, 0]
