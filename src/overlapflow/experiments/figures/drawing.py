"""Drawing helpers shared by the figures: line styles, loss and overlap panels, phase shading, saving,
and the network and theory outputs on given inputs."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ...history import overlap_labels, overlap_series, phase_ends, phase_names
from ...meanfield import meanfield_forward
from ...network import network_forward

NETWORK = dict(lw=2.8, alpha=0.5, linestyle="-")
THEORY = dict(lw=1.3, alpha=1.0, linestyle="--")
NAIVE = dict(lw=1.3, alpha=1.0, linestyle=(0, (1, 1.5)))


MAX_POINTS = 800  # points per drawn curve (long runs are thinned for drawing only)


def thinned(epochs) -> np.ndarray:
    """Indices of at most MAX_POINTS records, the first and the last included."""
    n = len(epochs)
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int))


def draw_loss(ax, curves) -> None:
    for history, style, label in curves:
        pick = thinned(history.epoch.values)
        loss = np.asarray(history.loss.values, dtype=float)[pick]
        ax.plot(history.epoch.values[pick], np.where(loss > 0, loss, np.nan), color="k", label=label, **style)
    ax.set_yscale("log")
    ax.set_title("loss")
    ax.set_xlabel("epoch")
    ax.legend(fontsize="small", loc="upper right")


def draw_overlaps(ax, curves, which: str) -> None:
    names = overlap_labels(curves[0][0], which)
    for k, name in enumerate(names):
        for history, style, _ in curves:
            series = overlap_series(history, name)
            pick = thinned(series.epoch.values)
            ax.plot(
                series.epoch.values[pick],
                series.values[pick],
                color=f"C{k % 10}",
                label=rf"$\sigma_{{{name}}}$" if history is curves[0][0] else None,
                **style,
            )
    ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
    ax.set_title(
        f"{which} overlaps ({len(names)})" + ("; " + ", ".join(lbl for _, _, lbl in curves) if len(curves) > 1 else ""),
        fontsize="medium",
    )
    ax.set_xlabel("epoch")
    if names:
        ax.legend(fontsize="x-small", ncol=2 if len(names) > 4 else 1, loc="upper right")


def shade_phases(ax, history: xr.Dataset) -> None:
    """Shade every other phase and name the phases above the axes (the title moves up to make room)."""
    start = 0
    for k, (end, name) in enumerate(zip(phase_ends(history), phase_names(history), strict=True)):
        if k % 2:
            ax.axvspan(start, end, color="0.93", zorder=-1)
        x = (start + end) / 2
        ax.text(
            x,
            1.005,
            name,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize="x-small",
            color="0.4",
        )
        start = end
    ax.set_title(ax.get_title(), y=1.05, fontsize=ax.title.get_fontsize())  # above the phase names


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
