"""Figures comparing Histories (full network vs overlap theory, or several theories).

Drawn with :class:`matplotlib.figure.Figure` directly (no pyplot), so no GUI backend is needed
and nothing global is changed: the figure renders through matplotlib's Agg canvas when saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .history import overlap_labels, overlap_series
from .precision import float64

# First history solid; the others dashed, each with its own dash pattern.
_STYLES = ("-", "--", (0, (1, 1.5)), "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (8, 3)))
_STYLE_NAMES = ("solid", "dashed", "dotted", "dash-dot", "dash-dot-dot", "long dashes")


def history_label(history: xr.Dataset) -> str:
    """A short name for a History from its attributes, e.g. ``"network N=500 (float32)"``."""
    a = history.attrs
    engine = a.get("engine", "history")
    if engine == "network":
        return f"network N={a.get('N', '?')} ({a.get('dtype', '?')})"
    if engine == "overlaps":
        return f"overlaps ({a.get('method', '?')})"
    return str(engine)


def _tex(label: str) -> str:
    """Overlap label ``"zm"`` -> ``$\\sigma_{zm}$``."""
    return rf"$\sigma_{{{label}}}$"


def compare(*histories: xr.Dataset, labels: Sequence[str] | None = None, path=None) -> Figure:
    r"""Draw Histories side by side in three panels and return the Figure.

    1. loss(epoch) on a log scale, one line per History;
    2. the loss-visible overlaps sigma_ab(epoch) (``overlap_labels(h, "visible")``);
    3. the loss-invisible overlaps (``overlap_labels(h, "invisible")``).

    The first History (typically the full-network simulation) is drawn solid, the second dashed,
    further ones dotted, dash-dot, ...; an overlap keeps one colour across Histories. Legends name
    the overlaps (sigma_zm, ...) and which line style is which History. Overlap labels come from
    the first History; a later History that lacks an overlap simply has no line for it.

    Args:
        *histories: one or more History Datasets (``loss(epoch)``, ``overlaps(epoch, row, col)``,
            ``visible(row, col)``), e.g. ``compare(sim, thy)``.
        labels: one name per History (default: from each History's attributes, e.g.
            ``"network N=500 (float32)"``, ``"overlaps (exact)"``).
        path: if given, save the figure there; the format follows the extension (``.png``, ``.pdf``,
            ``.svg``, ...).

    Returns:
        The :class:`matplotlib.figure.Figure` (3 axes, 15 x 4.6 inches).
    """
    if not histories:
        raise ValueError("compare: give at least one History")
    for k, h in enumerate(histories):
        if not isinstance(h, xr.Dataset) or not {"loss", "overlaps", "visible"} <= set(h.variables):
            raise TypeError(
                f"histories[{k}] = {type(h).__name__}: must be a History (xarray.Dataset with loss, overlaps, visible)"
            )
    if labels is None:
        labels = [history_label(h) for h in histories]
    labels = list(labels)
    if len(labels) != len(histories):
        raise ValueError(f"labels: {len(labels)} names for {len(histories)} histories; give one per History")
    if len(histories) > len(_STYLES):
        raise ValueError(f"compare: {len(histories)} histories; at most {len(_STYLES)} can be told apart by line style")

    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax_loss, ax_vis, ax_inv = fig.subplots(1, 3)
    first = histories[0]
    styles = _STYLES[: len(histories)]
    # The first History is a wide translucent band, the others thin lines on top of it, so
    # agreement shows as a dashed line running inside the band.
    widths = [(2.8, 0.5)] + [(1.3, 1.0)] * (len(histories) - 1)

    # Panel 1: loss.
    for h, style, (lw, alpha), label in zip(histories, styles, widths, labels, strict=False):
        loss = np.asarray(h.loss.values, dtype=float)
        ax_loss.plot(
            h.epoch.values,
            np.where(loss > 0, loss, np.nan),
            color="k",
            linestyle=style,
            lw=lw,
            alpha=alpha,
            label=label,
        )
    ax_loss.set_yscale("log")
    ax_loss.set_title("loss")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper right", fontsize="small", title="line style", title_fontsize="small")

    # Panels 2 and 3: overlaps, one colour per overlap, one line style per History.
    for ax, which in ((ax_vis, "visible"), (ax_inv, "invisible")):
        names = overlap_labels(first, which)
        colours = [f"C{i % 10}" for i in range(len(names))]
        for name, colour in zip(names, colours, strict=False):
            for h, style, (lw, alpha) in zip(histories, styles, widths, strict=False):
                try:
                    series = overlap_series(h, name)
                except ValueError:
                    continue
                ax.plot(series.epoch.values, series.values, color=colour, linestyle=style, lw=lw, alpha=alpha)
        ax.set_title(f"{which} overlaps")
        ax.set_ylabel("overlap")
        ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
        if names:
            handles = [Line2D([], [], color=c, lw=2) for c in colours]
            ax.legend(handles, [_tex(n) for n in names], fontsize="small", ncol=2 if len(names) > 4 else 1, loc="best")
        else:
            ax.text(0.5, 0.5, f"no {which} overlaps", transform=ax.transAxes, ha="center", va="center", color="0.5")

    for ax in (ax_loss, ax_vis, ax_inv):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    title = "  vs  ".join(f"{label} ({_STYLE_NAMES[k]})" for k, label in enumerate(labels))
    fig.suptitle(title, fontsize="medium")

    return save_figure(fig, path)


def save_figure(fig: Figure, path, dpi: int = 150) -> Figure:
    """Save ``fig`` to ``path`` (format from the extension, folders created); None saves nothing."""
    if path is not None:
        path = Path(path)
        supported = fig.canvas.get_supported_filetypes()
        ext = path.suffix.lower().lstrip(".")
        if ext not in supported:
            raise ValueError(f"path = {str(path)!r}: unknown figure format {ext!r}; allowed: {sorted(supported)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


@float64
def task_gallery(tasks: dict, dt: float = 0.05, key=None, path=None) -> Figure:
    """One panel per task: inputs, targets and the masked-out time of one sampled trial.

    Args:
        tasks: {title: task}; each task's first trial (first input and output channel) is drawn.
        dt: Euler step used to sample.
        key: JAX key for stochastic tasks (default ``jax.random.key(0)``).
    """
    import jax

    key = jax.random.key(0) if key is None else key
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    for ax, (title, task) in zip(axes, tasks.items(), strict=False):
        batch = task.sample(key, dt)
        t = dt * np.arange(batch.inputs.shape[1])
        x, y, mask = (np.asarray(a[0, :, 0]) for a in batch)
        scale = max(1.0, float(np.max(np.abs(x)) / (2 * max(np.max(np.abs(y)), 1e-12))))  # impulses of 1/dt
        ax.plot(t, x / scale, color="0.55", lw=1, label="input" if scale == 1 else f"input / {scale:.0f}")
        ax.plot(t, y, color="C3", lw=1.6, label="target")
        ax.fill_between(t, 0, 1, where=mask == 0, transform=ax.get_xaxis_transform(), color="0.9", label="masked")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time")
        ax.legend(fontsize=7, loc="upper right")
    return save_figure(fig, path, dpi=120)
