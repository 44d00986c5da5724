"""The figure of a finite-N validation study (:func:`overlapflow.validation.validate_theory`).

Drawn with :class:`matplotlib.figure.Figure` directly (no pyplot), like :mod:`overlapflow.plot`.
"""

from __future__ import annotations

import textwrap

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from .history import overlap_labels, overlap_series
from .plot import overlap_marker, save_figure

CLOSURE_COLOUR = "tab:red"
LIMIT_COLOUR = "black"
_REQUIRED = {
    "network_deviation",
    "network_epoch_deviation",
    "closure_deviation",
    "loss_particles",
    "loss_closure",
    "loss_network",
    "overlaps_particles",
    "overlaps_closure",
    "overlaps_network",
    "visible",
}


def size_colours(n: int) -> list:
    """n sequential colours (light to dark) for network sizes, small N first."""
    cmap = colormaps["viridis_r"]
    return [cmap(x) for x in np.linspace(0.15, 0.9, n)] if n > 1 else [cmap(0.6)]


def _positive(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


def _as_history(result: xr.Dataset, overlaps: xr.DataArray) -> xr.Dataset:
    return xr.Dataset({"overlaps": overlaps, "visible": result.visible.astype(bool)})


def _moving_overlaps(result: xr.Dataset, count: int) -> list[str]:
    """The ``count`` visible overlaps that move most in the particle limit (canonical order)."""
    limit = _as_history(result, result.overlaps_particles)
    names = overlap_labels(limit, "visible") or overlap_labels(limit, "all")
    change = [float(np.ptp(overlap_series(limit, name).values)) for name in names]
    keep = sorted(np.argsort(change)[::-1][:count])
    return [names[i] for i in keep]


def plot_validation(result: xr.Dataset, path=None, n_overlaps: int = 3) -> Figure:
    r"""Four panels summarising a :func:`~overlapflow.validation.validate_theory` result.

    (a) loss vs epoch: each finite N (mean over seeds; solid, light to dark with N), the particle
        (N -> infinity) limit (black) and the Gaussian closure (red dashed);
    (b) the ``n_overlaps`` visible overlaps that move most, vs epoch: particle limit (wide band),
        closure (dashed), the largest and the smallest network (seed 0; solid, dotted); one colour and
        marker per overlap;
    (c) max_t |S_N - S_inf| vs N on log-log axes: seeds (points), their mean (line), the fitted
        power law C N^p (``attrs["exponent"]``, ``attrs["prefactor"]``) and the closure's
        max_t |S_closure - S_inf| (red horizontal line);
    (d) max over overlaps of |S - S_inf| vs epoch >= 1 (log-log): the closure (with a t^2 guide)
        and each N (seed mean).

    Args:
        result: the Dataset returned by ``validate_theory`` (or read back from its netCDF file).
        path: if given, save there; the format follows the extension (``.png``, ``.pdf``, ...).
        n_overlaps: how many visible overlaps panel (b) shows.

    Returns:
        The :class:`matplotlib.figure.Figure` (2 x 2 axes).
    """
    if not isinstance(result, xr.Dataset) or not _REQUIRED <= set(result.variables):
        missing = sorted(_REQUIRED - set(getattr(result, "variables", ())))
        raise TypeError(f"result: must be the Dataset of validate_theory (missing {missing})")
    sizes = [int(n) for n in result.N.values]
    colours = size_colours(len(sizes))
    epoch = result.epoch.values
    attrs = result.attrs

    fig = Figure(figsize=(13, 9.5), layout="constrained")
    (ax_loss, ax_ovl), (ax_n, ax_t) = fig.subplots(2, 2)

    # (a) loss.
    for i, (N, colour) in enumerate(zip(sizes, colours, strict=True)):
        ax_loss.plot(
            epoch,
            _positive(result.loss_network.values[i]),
            color=colour,
            lw=1.4,
            label=f"network N = {N}",
            gid="network",
        )
    ax_loss.plot(
        epoch,
        _positive(result.loss_particles.values),
        color=LIMIT_COLOUR,
        lw=1.6,
        label=r"$N\to\infty$ limit (particles)",
        gid="particles",
    )
    ax_loss.plot(
        epoch,
        _positive(result.loss_closure.values),
        color=CLOSURE_COLOUR,
        lw=1.6,
        ls="--",
        label="theory: Gaussian closure",
        gid="theory",
    )
    losses = np.concatenate(
        [np.ravel(result.loss_network.values), result.loss_particles.values, result.loss_closure.values]
    )
    losses = losses[np.isfinite(losses) & (losses > 0)]
    if losses.size and losses.max() > 10 * losses.min():  # log only when the loss falls by a decade or more
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("(a) loss (networks: mean over seeds)", loc="left")
    ax_loss.legend(fontsize="small", loc="upper right")

    # (b) a few visible overlaps.
    names = _moving_overlaps(result, n_overlaps)
    sources = [
        (r"$N\to\infty$ limit (particles)", result.overlaps_particles, dict(ls="-", lw=5, alpha=0.3, gid="particles")),
        ("theory: Gaussian closure", result.overlaps_closure, dict(ls="--", lw=1.4, gid="theory")),
        (f"network N = {sizes[-1]} (seed 0)", result.overlaps_network.isel(N=-1), dict(ls="-", lw=1.0, gid="network")),
    ]
    if len(sizes) > 1:
        sources.append(
            (f"network N = {sizes[0]} (seed 0)", result.overlaps_network.isel(N=0), dict(ls=":", lw=1.4, gid="network"))
        )
    for k, name in enumerate(names):  # one colour and marker per overlap (overlapflow.plot's convention)
        mark = overlap_marker(k, len(names), len(epoch))
        for _, overlaps, style in sources:
            series = overlap_series(_as_history(result, overlaps), name)
            fill = {} if style is sources[0][2] else {"markerfacecolor": "none"}
            ax_ovl.plot(epoch, series.values, ms=6, **mark, **fill, **style)
    colour_handles = [
        Line2D([], [], lw=2, **{k: v for k, v in overlap_marker(i, len(names), 1).items() if k != "markevery"})
        for i in range(len(names))
    ]
    style_handles = [
        Line2D([], [], color="0.3", **{k: v for k, v in style.items() if k != "gid"}) for _, _, style in sources
    ]
    ax_ovl.add_artist(ax_ovl.legend(style_handles, [label for label, _, _ in sources], fontsize="small", loc="best"))
    ax_ovl.legend(  # outside, right of the panel
        colour_handles,
        [rf"$\sigma_{{{n}}}$" for n in names],
        fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        title="overlap",
        title_fontsize="small",
    )
    ax_ovl.set_xlabel("epoch")
    ax_ovl.set_ylabel(r"overlap value $\sigma_{ab}$ (dimensionless)")
    ax_ovl.set_title("(b) visible overlaps that move most", loc="left")

    # (c) deviation from the limit vs N.
    dev = np.asarray(result.network_deviation.values, dtype=float)  # (N, seed)
    seeds = dev.shape[1]
    for s in range(seeds):
        ax_n.scatter(
            sizes, _positive(dev[:, s]), s=18, color="0.55", zorder=3, label="networks (each seed)" if s == 0 else None
        )
    mean = np.nanmean(dev, axis=1)  # sizes may have fewer seeds (NaN)
    counts = [int(np.isfinite(row).sum()) for row in dev]
    ax_n.plot(
        sizes,
        _positive(mean),
        "o-",
        color="tab:blue",
        lw=1.8,
        ms=6,
        zorder=4,
        label=f"networks, mean over {seeds if len(set(counts)) == 1 else '/'.join(map(str, counts))} "
        f"seed{'s' * (seeds > 1)}",
    )
    p, c = float(attrs.get("exponent", np.nan)), float(attrs.get("prefactor", np.nan))
    grid = np.geomspace(min(sizes) / 1.5, max(sizes) * 1.5, 50)
    if np.isfinite(p) and np.isfinite(c):
        ax_n.plot(grid, c * grid**p, color="tab:blue", ls="--", lw=1.0, label=rf"fit ${c:.2g}\,N^{{{p:.2f}}}$")
        ax_n.plot(grid, mean[0] * (grid / sizes[0]) ** -0.5, color="0.6", ls=":", lw=1.0, label=r"$\propto N^{-1/2}$")
    closure_max = float(attrs.get("closure_max_deviation", np.nanmax(result.closure_deviation.values)))
    ax_n.axhline(
        closure_max, color=CLOSURE_COLOUR, ls="--", lw=1.4, label=f"theory: Gaussian closure ({closure_max:.2g})"
    )
    ax_n.set_xscale("log")
    ax_n.set_yscale("log")
    ax_n.set_xticks(sizes, [str(N) for N in sizes])
    ax_n.xaxis.set_minor_formatter(NullFormatter())
    ax_n.set_xlabel("N (neurons)")
    ax_n.set_ylabel(r"$\max_t\, |S_N - S_\infty|$ (dimensionless)")
    ax_n.set_title(r"(c) distance from the $N\to\infty$ limit vs N", loc="left")
    ax_n.legend(fontsize="small", loc="lower left")

    # (d) deviation from the limit vs epoch, from epoch 1 (all runs start at S_0: epoch 0 is round-off).
    later = epoch >= 1
    t = epoch[later].astype(float)
    for i, (N, colour) in enumerate(zip(sizes, colours, strict=True)):
        ax_t.plot(
            t,
            _positive(result.network_epoch_deviation.values[i][later]),
            color=colour,
            lw=1.3,
            label=f"network N = {N}",
            gid="network",
        )
    closure = np.asarray(result.closure_deviation.values, dtype=float)[later]
    ax_t.plot(
        t, _positive(closure), color=CLOSURE_COLOUR, lw=1.8, ls="--", label="theory: Gaussian closure", gid="theory"
    )
    if t.size > 1 and closure[-1] > 0:
        ax_t.plot(t, closure[-1] * (t / t[-1]) ** 2, color="0.6", ls=":", lw=1.0, label=r"$\propto t^2$")
    ax_t.set_xscale("log")
    ax_t.set_yscale("log")
    ax_t.set_xlabel("epoch")
    ax_t.set_ylabel(r"$\max\, |S - S_\infty|$ over overlaps (dimensionless)")
    ax_t.set_title(r"(d) distance from the $N\to\infty$ limit vs epoch", loc="left")
    ax_t.legend(fontsize="small", loc="lower right", ncol=2)
    ax_t.set_xlim(t[0] if t.size else None, None)

    for ax in (ax_loss, ax_ovl, ax_n, ax_t):
        ax.grid(alpha=0.3)
    task = textwrap.fill(str(attrs.get("task", "task")), 150)
    phi = attrs.get("rnn_phi", "?")
    rank = attrs.get("rnn_rank", "?")
    fig.suptitle(
        f"finite networks vs the N -> infinity limit (particles: {attrs.get('particles', '?')}) "
        "vs the Gaussian closure\n"
        f"rank {rank} {phi}, dt = {attrs.get('rnn_dt', '?')}, eta = {attrs.get('lr', '?')}, {len(sizes)} sizes x "
        f"{result.sizes['seed']} seeds\n{task}",
        fontsize="medium",
    )

    return save_figure(fig, path)
