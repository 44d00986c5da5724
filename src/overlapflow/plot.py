r"""Figures comparing Histories (full network vs overlap theory, or several theories), and the figure
of a run (:func:`plot_run`).

Drawn with :class:`matplotlib.figure.Figure` directly (no pyplot), so no GUI backend is needed
and nothing global is changed: the figure renders through matplotlib's Agg canvas when saved.

One convention for every figure of the package (the paper's figures in
:mod:`overlapflow.experiments.figures` use the same styles):

- the line style says what made a curve: the full **network** is a wide translucent solid band
  (:data:`NETWORK_STYLE`), the overlap **theory** a thin dashed line on top of it
  (:data:`THEORY_STYLE`), **naive descent** on the visible overlaps dotted (:data:`NAIVE_STYLE`),
  the **particles** (N -> infinity without the closure) dash-dot (:data:`PARTICLES_STYLE`); a theory
  that follows the network is a dashed line running inside the band;
- in overlap panels the colour *and* the marker say which overlap a curve is (:func:`overlap_marker`);
  the markers sit at a few epochs, staggered from one overlap to the next, so overlaps whose curves
  coincide (sigma_zz and sigma_mm of a random network, both near 1) are still told apart. The band
  carries filled markers, the other curves hollow ones at the same epochs;
- every panel labels both axes with units: epoch, loss, overlap value (dimensionless),
  time t (s) = step x dt, output y, ...; each line carries a ``gid`` naming its kind
  (``"network"``, ``"theory"``, ``"naive"``, ``"particles"``, ``"other"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .history import overlap_labels, overlap_series, phase_ends, phase_names
from .precision import float64

# ---------------------------------------------------------------------------- styles and labels
NETWORK_STYLE = dict(linestyle="-", lw=3.0, alpha=0.45, zorder=2, gid="network")
THEORY_STYLE = dict(linestyle="--", lw=1.3, alpha=1.0, zorder=3, markerfacecolor="none", gid="theory")
NAIVE_STYLE = dict(linestyle=(0, (1, 1.5)), lw=1.5, alpha=1.0, zorder=3, markerfacecolor="none", gid="naive")
PARTICLES_STYLE = dict(linestyle="-.", lw=1.3, alpha=1.0, zorder=3, markerfacecolor="none", gid="particles")
_OTHER_STYLES = (
    dict(linestyle=(0, (6, 2, 1, 2, 1, 2)), lw=1.3, alpha=1.0, zorder=3, markerfacecolor="none", gid="other"),
    dict(linestyle=(0, (8, 3)), lw=1.3, alpha=1.0, zorder=3, markerfacecolor="none", gid="other"),
)
ROLE_STYLES = {"network": NETWORK_STYLE, "theory": THEORY_STYLE, "naive": NAIVE_STYLE, "particles": PARTICLES_STYLE}
_ALL_STYLES = (NETWORK_STYLE, THEORY_STYLE, NAIVE_STYLE, PARTICLES_STYLE, *_OTHER_STYLES)
_STYLE_NAMES = ("solid band", "dashed", "dotted", "dash-dot", "dash-dot-dot", "long dashes")

EPOCH_LABEL = "epoch"
LOSS_LABEL = "loss"
OVERLAP_LABEL = r"overlap value $\sigma_{ab}$ (dimensionless)"
OUTPUT_LABEL = "output y"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "d", "H", "8")
MARKS_PER_CURVE = 6
MAX_POINTS = 800  # points per drawn curve (long runs are thinned for drawing only)


def time_label(dt: float | None = None) -> str:
    """The label of a time axis: ``"time t (s) = step x dt"`` (with dt's value when given)."""
    return r"time $t$ (s) = step $\times$ dt" + (f", dt = {dt:g} s" if dt is not None else "")


def history_label(history: xr.Dataset) -> str:
    """A short name for a History from its attributes, e.g. ``"network N=500 (float32)"``,
    ``"overlap theory (exact)"``, ``"naive descent on visible overlaps"``, ``"particles (16)"``."""
    a = history.attrs
    engine = a.get("engine", "history")
    if engine == "network":
        return f"network N={a.get('N', '?')} ({a.get('dtype', '?')})"
    if engine == "overlaps":
        if a.get("method") == "visible-only":
            return "naive descent on visible overlaps"
        return f"overlap theory ({a.get('method', '?')})"
    if engine == "particles":
        return f"particles ({a.get('n_particles', a.get('rule', '?'))}, N -> infinity)"
    return str(engine)


def history_role(history: xr.Dataset) -> str:
    """What made a History: ``"network"``, ``"theory"`` (an overlap engine), ``"naive"`` (descent on
    the visible overlaps, method ``"visible-only"``), ``"particles"`` or ``"other"``."""
    a = history.attrs
    engine = a.get("engine")
    if engine == "network":
        return "network"
    if engine == "particles":
        return "particles"
    if engine == "overlaps":
        return "naive" if a.get("method") == "visible-only" else "theory"
    return "other"


def history_styles(histories: Sequence[xr.Dataset]) -> list[dict]:
    """One line style per History: its kind's (:func:`history_role`), or, for a second History of the
    same kind or one of no known kind, a style of no kind (dash-dot-dot, long dashes), then any style
    not yet taken."""
    if len(histories) > len(_ALL_STYLES):
        raise ValueError(f"{len(histories)} histories; at most {len(_ALL_STYLES)} can be told apart by line style")
    styles: list[dict | None] = [None] * len(histories)
    taken: set[int] = set()
    for k, h in enumerate(histories):
        style = ROLE_STYLES.get(history_role(h))
        if style is not None and id(style) not in taken:
            styles[k] = style
            taken.add(id(style))
    spare = (*_OTHER_STYLES, *_ALL_STYLES)  # a kind's style keeps its meaning while others are free
    for k in range(len(histories)):
        if styles[k] is None:
            styles[k] = next(s for s in spare if id(s) not in taken)
            taken.add(id(styles[k]))
    return styles


def style_name(style: dict) -> str:
    """``"solid band"``, ``"dashed"``, ... for one of this module's styles."""
    for s, name in zip(_ALL_STYLES, _STYLE_NAMES, strict=True):
        if s is style:
            return name
    return "line"


def _tex(label: str) -> str:
    """Overlap label ``"zm"`` -> ``$\\sigma_{zm}$``."""
    return rf"$\sigma_{{{label}}}$"


def thinned(epochs) -> np.ndarray:
    """Indices of at most MAX_POINTS records, the first and the last included."""
    n = len(epochs)
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int))


def overlap_marker(k: int, count: int, n_points: int) -> dict:
    """Colour, marker and marker positions of overlap ``k`` of ``count`` in one panel, for a curve of
    ``n_points`` points: about MARKS_PER_CURVE markers, the first one shifted by k/count of the
    spacing, so coinciding overlaps show their markers at different epochs."""
    step = max(1, int(round(n_points / MARKS_PER_CURVE)))
    offset = min(max(n_points - 1, 0), (k * step) // max(count, 1))
    return dict(color=f"C{k % 10}", marker=MARKERS[k % len(MARKERS)], markevery=(offset, step))


def _marker_size(style: dict) -> dict:
    return dict(ms=6.5) if style.get("markerfacecolor") != "none" else dict(ms=7.5, mew=1.1)


# ---------------------------------------------------------------------------- panels
def plain_log_labels(ax, values, axis: str = "y") -> None:
    """On a log ``axis`` (``"x"`` or ``"y"``) whose ``values`` span less than two decades, label the
    ticks as plain numbers (2.4, not 2.4 x 10^0), with enough digits to tell them apart."""
    from matplotlib.ticker import FuncFormatter

    v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values]) if values else np.zeros(0)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() < 100 * v.min():
        spread = (v.max() - v.min()) / v.max()
        digits = int(np.clip(np.ceil(-np.log10(spread)) + 2, 3, 8)) if spread > 0 else 3
        plain = FuncFormatter(lambda x, _: f"{x:.{digits}g}")
        which = ax.yaxis if axis == "y" else ax.xaxis
        which.set_major_formatter(plain)
        which.set_minor_formatter(plain)


def draw_loss_panel(ax, curves, title: str = "loss") -> None:
    """loss(epoch) on a log scale, one black line per ``(history, style, label)``; the legend names
    each line (and so which line style is which)."""
    for history, style, label in curves:
        pick = thinned(history.epoch.values)
        loss = np.asarray(history.loss.values, dtype=float)[pick]
        ax.plot(history.epoch.values[pick], np.where(loss > 0, loss, np.nan), color="k", label=label, **style)
    ax.set_yscale("log")
    plain_log_labels(ax, [h.loss.values for h, _, _ in curves])
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(EPOCH_LABEL)
    ax.set_ylabel(LOSS_LABEL)
    ax.legend(fontsize="small", loc="upper right", title="line style", title_fontsize="small")


def coinciding_overlaps(history: xr.Dataset, names: Sequence[str], rtol: float = 1e-3) -> list[list[str]]:
    """Groups of overlaps whose curves coincide in a History: at every epoch within ``rtol`` times the
    range of all of them (so one hides the other in a plot); overlaps that stand alone are left out."""
    if len(names) < 2:
        return []
    values = np.stack([np.asarray(overlap_series(history, n).values, dtype=float) for n in names])
    if not np.all(np.isfinite(values)):
        return []
    tolerance = rtol * max(float(np.ptp(values)), float(np.max(np.abs(values))), 1e-12)
    groups, placed = [], set()
    for i in range(len(names)):
        if i in placed:
            continue
        group = [j for j in range(i + 1, len(names)) if j not in placed]
        group = [i] + [j for j in group if np.max(np.abs(values[j] - values[i])) <= tolerance]
        if len(group) > 1:
            placed.update(group)
            groups.append([names[j] for j in group])
    return groups


def draw_overlap_panel(ax, curves, which: str, title: str | None = None, style_legend: bool = True) -> list[str]:
    """The ``which`` (``"visible"``, ``"invisible"``, ``"all"``) overlaps of every ``(history, style,
    label)`` curve: one colour and marker per overlap (:func:`overlap_marker`), one line style per
    History. Two legends: the overlaps (outside, right) and, with ``style_legend``, which line style
    is which History. Overlaps whose curves coincide in the first History
    (:func:`coinciding_overlaps`) are named in the title. Overlap labels come from the first History;
    a later History that lacks an overlap has no line for it. Returns the overlap labels drawn."""
    names = overlap_labels(curves[0][0], which)
    for k, name in enumerate(names):
        for history, style, _ in curves:
            try:
                series = overlap_series(history, name)
            except ValueError:
                continue
            pick = thinned(series.epoch.values)
            mark = overlap_marker(k, len(names), len(pick))
            ax.plot(series.epoch.values[pick], series.values[pick], **mark, **_marker_size(style), **style)
    ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
    title = title if title is not None else f"{which} overlaps ({len(names)})"
    groups = coinciding_overlaps(curves[0][0], names)
    if groups:
        title += "\n" + "; ".join(" = ".join(_tex(n) for n in group) for group in groups) + " (curves coincide)"
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(EPOCH_LABEL)
    ax.set_ylabel(OVERLAP_LABEL)
    if not names:
        ax.text(0.5, 0.5, f"no {which} overlaps", transform=ax.transAxes, ha="center", va="center", color="0.5")
        return names
    if style_legend and len(curves) > 1:
        styles = [
            Line2D([], [], color="0.3", marker="o", ms=5, **{k: v for k, v in style.items() if k != "gid"})
            for _, style, _ in curves
        ]
        ax.add_artist(ax.legend(styles, [label for _, _, label in curves], fontsize="x-small", loc="best"))
    handles = [
        Line2D([], [], color=f"C{k % 10}", marker=MARKERS[k % len(MARKERS)], lw=1.5, ms=6) for k in range(len(names))
    ]
    ax.legend(  # outside, right of the axes (the layout makes room)
        handles,
        [_tex(n) for n in names],
        fontsize="small",
        ncol=2 if len(names) > 8 else 1,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        title="overlap",
        title_fontsize="small",
    )
    return names


def shade_phases(ax, history: xr.Dataset) -> None:
    """Shade every other phase of a curriculum History and name the phases above the axes (the title
    moves up to make room); nothing for a History without a phase table."""
    if "phase_end" not in history.variables or "phase_name" not in history.variables:
        return
    start = 0
    for k, (end, name) in enumerate(zip(phase_ends(history), phase_names(history), strict=True)):
        if k % 2:
            ax.axvspan(start, end, color="0.93", zorder=-1)
        if k:
            ax.axvline(start, color="0.75", lw=0.6, zorder=-1)
        ax.text(
            (start + end) / 2,
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


def _check_histories(histories) -> None:
    if not histories:
        raise ValueError("compare: give at least one History")
    for k, h in enumerate(histories):
        if not isinstance(h, xr.Dataset) or not {"loss", "overlaps", "visible"} <= set(h.variables):
            raise TypeError(
                f"histories[{k}] = {type(h).__name__}: must be a History (xarray.Dataset with loss, overlaps, visible)"
            )


def _three_panels(histories, labels, styles, figsize=(16.5, 4.8)) -> tuple[Figure, list]:
    """loss | visible overlaps | invisible overlaps."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = list(fig.subplots(1, 3))
    curves = list(zip(histories, styles, labels, strict=True))
    draw_loss_panel(axes[0], curves)
    for ax, which in zip(axes[1:], ("visible", "invisible"), strict=True):
        draw_overlap_panel(ax, curves, which, title=f"loss-{which} overlaps")
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, axes


def compare(*histories: xr.Dataset, labels: Sequence[str] | None = None, path=None) -> Figure:
    r"""Draw Histories side by side in three panels and return the Figure.

    1. loss(epoch) on a log scale, one line per History;
    2. the loss-visible overlaps sigma_ab(epoch) (``overlap_labels(h, "visible")``);
    3. the loss-invisible overlaps (``overlap_labels(h, "invisible")``).

    Each History is drawn in the line style of its kind (:func:`history_role`, module docstring): the
    network a wide translucent solid band, the overlap theory thin dashed on top of it, naive descent
    dotted, particles dash-dot; a second History of a kind (or one of no known kind) takes the first
    style not yet used. An overlap keeps one colour and one marker across Histories, so curves that
    coincide stay visible. Legends name the overlaps (sigma_zm, ...) and which line style is which
    History; every axis is labelled. Overlap labels come from the first History; a later History that
    lacks an overlap simply has no line for it.

    Args:
        *histories: one or more History Datasets (``loss(epoch)``, ``overlaps(epoch, row, col)``,
            ``visible(row, col)``), e.g. ``compare(sim, thy)``.
        labels: one name per History (default: from each History's attributes, e.g.
            ``"network N=500 (float32)"``, ``"overlap theory (exact)"``).
        path: if given, save the figure there; the format follows the extension (``.png``, ``.pdf``,
            ``.svg``, ...).

    Returns:
        The :class:`matplotlib.figure.Figure` (3 axes, 16.5 x 4.8 inches).
    """
    _check_histories(histories)
    if labels is None:
        labels = [history_label(h) for h in histories]
    labels = list(labels)
    if len(labels) != len(histories):
        raise ValueError(f"labels: {len(labels)} names for {len(histories)} histories; give one per History")
    if len(histories) > len(_ALL_STYLES):
        raise ValueError(
            f"compare: {len(histories)} histories; at most {len(_ALL_STYLES)} can be told apart by line style"
        )
    styles = history_styles(histories)
    fig, _ = _three_panels(histories, labels, styles)
    title = "  vs  ".join(f"{label} ({style_name(s)})" for label, s in zip(labels, styles, strict=True))
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


# ---------------------------------------------------------------------------- a run's figure
_ROLE_ORDER = {"network": 0, "theory": 1, "naive": 2, "particles": 3, "other": 4}


def plot_run(histories: dict[str, xr.Dataset], out, title: str = "") -> list[Path]:
    """Draw the figure of a run's Histories ({engine: History}, e.g. what ``run_experiment`` returns
    or :meth:`RunFolder.histories <overlapflow.run_folder.RunFolder.histories>` reads) and save it.

    Three panels: the loss of every engine (log scale), the loss-visible overlaps and the invisible
    ones, each engine in its line style (module docstring: network band, theory dashed, naive descent
    dotted, particles dash-dot; drawn in that order), an overlap in one colour and marker; the phases
    of a curriculum shaded (every other one) and named above each panel; ``title`` above.

    Args:
        histories: {engine: History}, at least one.
        out: a folder (``figure.png`` and ``figure.pdf`` in it) or a file name with an image
            extension (``.png``, ``.pdf``, ``.svg``, ...), that one file.
        title: the figure's title.

    Returns:
        The paths written.
    """
    if not histories:
        raise ValueError("histories: empty; plot_run draws at least one engine's History")
    ordered = sorted(histories.items(), key=lambda item: (_ROLE_ORDER[history_role(item[1])], item[0]))
    hs = [history for _, history in ordered]
    labels = [history_label(h) for h in hs]
    fig, axes = _three_panels(hs, labels, history_styles(hs))
    reference = next((h for h in hs if "phase_end" in h.variables), None)
    if reference is not None:
        for ax in axes:
            shade_phases(ax, reference)
    fig.suptitle(title, fontsize="medium")
    out = Path(out)
    paths = [out] if out.suffix and not out.is_dir() else [out / "figure.png", out / "figure.pdf"]
    for path in paths:
        save_figure(fig, path)
    return paths


# ---------------------------------------------------------------------------- tasks
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
    fig = Figure(figsize=(4.2 * cols, 2.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(tasks) :]:
        ax.remove()
    for ax, (title, task) in zip(axes, tasks.items(), strict=False):
        batch = task.sample(key, dt)
        t = dt * np.arange(batch.inputs.shape[1])
        x, y, mask = (np.asarray(a[0, :, 0]) for a in batch)
        scale = max(1.0, float(np.max(np.abs(x)) / (2 * max(np.max(np.abs(y)), 1e-12))))  # impulses of 1/dt
        ax.plot(t, x / scale, color="0.55", lw=1, label="input x" if scale == 1 else f"input x / {scale:.0f}")
        ax.plot(t, y, color="C3", lw=1.6, label="target y*")
        ax.fill_between(t, 0, 1, where=mask == 0, transform=ax.get_xaxis_transform(), color="0.9", label="masked")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(time_label(dt))
        ax.set_ylabel("input x, target y*")
        ax.legend(fontsize=7, loc="upper right")
    return save_figure(fig, path, dpi=120)
