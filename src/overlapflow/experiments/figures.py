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
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ..history import max_overlap_deviation, overlap_labels, overlap_series
from ..meanfield import meanfield_forward
from ..model import LowRankRNN
from ..network import network_forward
from ..overlaps import Overlaps, canonical_pairs, visible_mask
from ..tasks import ExponentialFilter, WhiteNoiseFilter
from .config import ExperimentConfig, load_config_text, parse_config
from .runner import CHECKPOINT, STATE_FILE, RunError, _write_history, read_final_state, run_experiment


class FigureUnavailable(LookupError):
    """The figure is unknown, or has no experiment config of its own."""


@dataclasses.dataclass(frozen=True)
class KeyNumber:
    """One number of a figure: this run's value, the paper's (value or statement) and a note."""

    name: str
    value: float
    paper: float | str | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "paper": self.paper, "note": self.note}


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A paper figure: where its data come from, how it is drawn, and what ``--quick`` changes.

    Exactly one source:

    - ``config``: a shipped experiment config (``configs/<config>``), run by ``run_experiment``;
      its setup is the :class:`ExperimentConfig`, and ``quick`` holds arguments of
      :meth:`ExperimentConfig.scaled`.
    - ``run``: ``run(settings, out, progress) -> {name: Dataset}``, a runner built on the phenomena
      APIs that leaves each Dataset in ``out/<name>.nc``; its setup is ``settings`` (a frozen
      dataclass whose defaults are the paper's values, or None), and ``quick`` holds the fields
      ``--quick`` replaces (:func:`dataclasses.replace`).

    ``draw(data, setup, out) -> (Figure, [KeyNumber])`` draws either. ``folder`` names the default
    output folder ``overlapflow-<folder>`` (and the subfolder of ``reproduce all --out DIR``);
    figures that share data share it (default ``fig<id>``).
    """

    id: str
    title: str
    config: str | None = None
    draw: Callable | None = None
    quick: dict = dataclasses.field(default_factory=dict)
    run: Callable[[Any, Path, bool], dict[str, xr.Dataset]] | None = None
    settings: Any = None
    folder: str = ""

    def __post_init__(self):
        if (self.config is None) == (self.run is None):
            raise ValueError(f"figure {self.id}: give exactly one of config and run")
        if self.draw is None:
            raise ValueError(f"figure {self.id}: no draw function")
        if not self.folder:
            object.__setattr__(self, "folder", f"fig{self.id}")

    @property
    def source(self) -> str:
        """``configs/<name>.toml``, or the runner's name."""
        return f"configs/{self.config}" if self.config else f"{self.run.__name__}()"


@dataclasses.dataclass
class FigureResult:
    fig: str
    out: Path
    numbers: list[KeyNumber]
    files: list[Path]
    data: dict[str, xr.Dataset]


# ---------------------------------------------------------------------------- drawing helpers
NETWORK = dict(lw=2.8, alpha=0.5, linestyle="-")
THEORY = dict(lw=1.3, alpha=1.0, linestyle="--")
NAIVE = dict(lw=1.3, alpha=1.0, linestyle=(0, (1, 1.5)))


MAX_POINTS = 800  # points per drawn curve (long runs are thinned for drawing only)


def _thin(epochs) -> np.ndarray:
    """Indices of at most MAX_POINTS records, the first and the last included."""
    n = len(epochs)
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int))


def _loss(ax, curves) -> None:
    for history, style, label in curves:
        pick = _thin(history.epoch.values)
        loss = np.asarray(history.loss.values, dtype=float)[pick]
        ax.plot(history.epoch.values[pick], np.where(loss > 0, loss, np.nan), color="k", label=label, **style)
    ax.set_yscale("log")
    ax.set_title("loss")
    ax.set_xlabel("epoch")
    ax.legend(fontsize="small", loc="upper right")


def _overlaps(ax, curves, which: str) -> None:
    names = overlap_labels(curves[0][0], which)
    for k, name in enumerate(names):
        for history, style, _ in curves:
            series = overlap_series(history, name)
            pick = _thin(series.epoch.values)
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


def _phase_ends(history: xr.Dataset) -> list[int]:
    return [int(e) for e in str(history.attrs["phase_ends"]).split(",")]


def _phase_names(history: xr.Dataset) -> list[str]:
    return [name.strip() for name in str(history.attrs["phases"]).split(",")]


def _shade_phases(ax, history: xr.Dataset) -> None:
    """Shade every other phase and name the phases above the axes (the title moves up to make room)."""
    start = 0
    for k, (end, name) in enumerate(zip(_phase_ends(history), _phase_names(history), strict=True)):
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


def _save(fig: Figure, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    return paths


def _final(history: xr.Dataset, label: str) -> float:
    return float(overlap_series(history, label).values[-1])


def _impulse(config: ExperimentConfig):
    """The (deterministic) batch of the first phase's task."""
    rnn = config.build_network()
    task = config.build_phases(rnn)[0].task
    return rnn, task, task.sample(jax.random.key(0), rnn.dt)


_network_forward = jax.jit(network_forward, static_argnums=0)
_meanfield_forward = jax.jit(meanfield_forward, static_argnums=0)


def _outputs(rnn, theta, S, inputs):
    """(network output, theory output) (T,) for inputs (1, T, n_in)."""
    y_net = _network_forward(rnn, jnp.asarray(theta), jnp.asarray(inputs, dtype=jnp.asarray(theta).dtype))
    y_thy = _meanfield_forward(rnn, jnp.asarray(S), jnp.asarray(inputs, dtype=jnp.float64))
    return np.asarray(y_net)[0, :, 0], np.asarray(y_thy)[0, :, 0]


def _filter_figure(histories, config, out, white_noise: bool):
    """Learned response(s), loss, visible and invisible overlaps: network vs theory."""
    net, thy = histories["network"], histories["overlaps"]
    rnn, task, batch = _impulse(config)
    states = read_final_state(out)["states"]
    theta, S = states["network"], states["overlaps"]
    t = rnn.dt * np.arange(batch.targets.shape[1])
    curves = [(net, NETWORK, f"network N={config.N}"), (thy, THEORY, "theory")]

    fig = Figure(figsize=(15, 8.4), layout="constrained")
    axes = fig.subplots(2, 3)
    panels = list(axes.ravel())
    if white_noise:
        noise = WhiteNoiseFilter(c=task.c, a=task.a, noise_std=0.5, t_max=task.t_max).sample(
            jax.random.key(config.seed), rnn.dt
        )
        y_net, y_thy = _outputs(rnn, theta, S, noise.inputs)
        ax = panels.pop(0)
        ax.plot(t, np.asarray(noise.inputs)[0, :, 0], color="0.75", lw=0.6, label="input x (std 0.5)")
        ax.plot(t, np.asarray(noise.targets)[0, :, 0], color="k", lw=2.4, alpha=0.5, label="target (filtered x)")
        ax.plot(t, y_net, color="C3", lw=1.2, linestyle="--", label="trained network")
        ax.set_title("white-noise input, after training", fontsize="medium")
        ax.set_xlabel("t")
        ax.legend(fontsize="x-small", loc="upper right")
    y_net, y_thy = _outputs(rnn, theta, S, batch.inputs)
    ax = panels.pop(0)
    ax.plot(t, np.asarray(batch.targets)[0, :, 0], color="k", lw=2.8, alpha=0.5, label="target")
    ax.plot(t, y_net, color="C3", lw=1.3, label="network")
    ax.plot(t, y_thy, color="C0", lw=1.3, linestyle="--", label="theory")
    ax.set_title("learned impulse response", fontsize="medium")
    ax.set_xlabel("t")
    ax.legend(fontsize="x-small", loc="upper right")
    _loss(panels.pop(0), curves)
    _overlaps(panels.pop(0), curves, "visible")
    _overlaps(panels.pop(0), curves, "invisible")
    for ax in panels:
        ax.axis("off")
    numbers = [
        KeyNumber("final loss, network", float(net.loss.values[-1]), 0.0),
        KeyNumber("final loss, theory", float(thy.loss.values[-1]), 0.0),
        KeyNumber(
            "max |S_network - S_theory| (all epochs, all overlaps)",
            max_overlap_deviation(net, thy),
            0.0,
            f"float32 network, N = {config.N}",
        ),
        KeyNumber("visible overlaps", len(overlap_labels(net, "visible"))),
        KeyNumber("invisible overlaps", len(overlap_labels(net, "invisible"))),
    ]
    return fig, numbers, (net, thy, task, rnn)


# ---------------------------------------------------------------------------- figures
def draw_fig1c(histories, config, out):
    net, thy, naive = histories["network"], histories["overlaps"], histories["overlaps-visible-only"]
    fig = Figure(figsize=(7, 4.6), layout="constrained")
    ax = fig.subplots()
    _loss(
        ax,
        [
            (net, NETWORK, f"network N={config.N}"),
            (thy, THEORY, "overlap theory (exact)"),
            (naive, NAIVE, "naive descent on visible overlaps"),
        ],
    )
    ax.set_title("Fig 1c: learning is not descent on the visible overlaps", fontsize="medium")

    loss_net, loss_thy, loss_naive = (np.asarray(h.loss.values) for h in (net, thy, naive))
    seen = loss_thy > 1e-8
    ratio = np.abs(np.log10(loss_naive / loss_thy))
    numbers = [
        KeyNumber("final loss, network", float(loss_net[-1]), 0.0),
        KeyNumber("final loss, overlap theory", float(loss_thy[-1]), 0.0),
        KeyNumber("final loss, naive descent", float(loss_naive[-1]), "differs"),
        KeyNumber(
            "max relative loss difference network vs theory (loss > 1e-8)",
            float(np.max(np.abs(loss_net[seen] / loss_thy[seen] - 1))),
            0.0,
        ),
        KeyNumber("max |log10(loss naive / loss theory)|", float(np.max(ratio)), "> 0 (naive differs)"),
    ]
    middle = len(loss_thy) // 2
    numbers += [
        KeyNumber(f"loss at epoch {middle}, overlap theory", float(loss_thy[middle])),
        KeyNumber(f"loss at epoch {middle}, naive descent", float(loss_naive[middle]), "differs"),
    ]
    return fig, numbers


def draw_fig5(histories, config, out):
    fig, numbers, (net, thy, task, rnn) = _filter_figure(histories, config, out, white_noise=True)
    fig.suptitle(
        f"Fig 5: rank-1 linear filter task (c* = {task.c:g}, a* = {task.a:g}), network N = {config.N} vs overlap theory"
    )
    a, c, dt = task.a, task.c, rnn.dt
    # the continuous-time solution (paper) and the exact one at step dt: y_0 = zm, y_1 = (1 - dt) zm + dt zu vm,
    # and the decay per step 1 - dt (1 - vu) = exp(-c dt)
    decay = np.exp(-c * dt)
    exact = {"zm": a, "zu*vm": a * (decay - (1 - dt)) / dt, "vu": 1 - (1 - decay) / dt}
    for h, label in ((net, "network"), (thy, "theory")):
        values = {"zm": _final(h, "zm"), "zu*vm": _final(h, "zu") * _final(h, "vm"), "vu": _final(h, "vu")}
        paper = {"zm": a, "zu*vm": a * (1 - c), "vu": 1 - c}
        for name in ("zm", "zu*vm", "vu"):
            numbers.append(
                KeyNumber(
                    f"final sigma_{name}, {label}",
                    values[name],
                    paper[name],
                    f"exact at dt = {dt:g}: {exact[name]:.5f}",
                )
            )
    return fig, numbers


def draw_fig12(histories, config, out):
    fig, numbers, (net, thy, task, rnn) = _filter_figure(histories, config, out, white_noise=False)
    fig.suptitle(
        f"Fig 12: rank-2 linear network, damped oscillator exp(-{task.c:g} t) cos({task.omega:g} t); "
        f"network N = {config.N} vs the "
        f"{len(overlap_labels(net, 'all'))}-D theory"
    )
    numbers[3] = dataclasses.replace(numbers[3], paper=9)
    numbers[4] = dataclasses.replace(numbers[4], paper=12)
    return fig, numbers


def _aba_curves(histories, config):
    curves = [(histories["network"], NETWORK, f"network N={config.N}")]
    if "overlaps" in histories:
        curves.append((histories["overlaps"], THEORY, "theory"))
    return curves


def _protocol_panels(fig, curves, ncols: int):
    axes = list(fig.subplots(1, ncols))
    _loss(axes[0], curves)
    _overlaps(axes[1], curves, "visible")
    _overlaps(axes[2], curves, "invisible")
    for ax in axes:
        _shade_phases(ax, curves[0][0])
    return axes


def _memory_numbers(history, engine: str, sgd: bool = True) -> list[KeyNumber]:
    """The first three phases (A, B, A2): visible overlaps at the ends of A and A2, the invisible
    ones' return (:func:`~overlapflow.phenomena.memory.aba_memory_report`), sigma_uu at every phase end.
    ``sgd``: the paper's expectations (visible overlaps return, invisible ones keep a trace) apply."""
    from ..phenomena.memory import aba_memory_report, phase_end_states

    names, ends = _phase_names(history), _phase_ends(history)
    states = phase_end_states(history)
    report = aba_memory_report(history, *names[:3])
    visible = history.visible.values
    returned = int(report.returned.sum())
    numbers = [
        KeyNumber(
            f"max |change| of visible overlaps, end of {names[0]} (epoch {ends[0]}) to end of {names[2]} "
            f"(epoch {ends[2]}), {engine}",
            float(np.max(np.abs(states[names[2]] - states[names[0]])[visible])),
            "~0 (same solution)" if sgd else None,
        ),
        KeyNumber(
            f"max |change| of invisible overlaps, same epochs, {engine}",
            float(np.max(np.abs(report.residual.values))),
            "> 0 (a trace of B)" if sgd else None,
        ),
        KeyNumber(
            f"invisible overlaps back within {report.attrs['rtol']:g} of their excursion in {names[1]}, {engine}",
            returned,
            None,
            f"of {report.sizes['overlap']}",
        ),
    ]
    uu = overlap_series(history, "uu").values
    for end, name in zip(ends, names, strict=True):
        numbers.append(KeyNumber(f"sigma_uu at the end of {name}, {engine}", float(uu[end])))
    return numbers


def _final_loss(config: ExperimentConfig, history) -> KeyNumber:
    """The final loss; with target noise std s, the noise alone contributes about T dt s^2."""
    last = config.phases[-1]
    rnn = config.build_network()
    task = config.build_phases(rnn)[-1].task
    note = ""
    if last.target_noise and hasattr(task, "t_max"):
        floor = round(task.t_max / rnn.dt) * rnn.dt * last.target_noise**2
        note = f"with target noise: the noise alone gives ~{floor:.3g}"
    return KeyNumber("final loss, network", float(history.loss.values[-1]), None if note else "~0", note)


def draw_fig3(histories, config, out):
    curves = _aba_curves(histories, config)
    fig = Figure(figsize=(16, 4.8), layout="constrained")
    _protocol_panels(fig, curves, 3)
    fig.suptitle(f"Fig 3: A-B-A memory: invisible overlaps keep a trace of B (start: twin network, N = {config.N})")
    numbers = []
    for history, _, label in curves:
        numbers += _memory_numbers(history, label.split()[0])
    numbers.append(_final_loss(config, histories["network"]))
    if "overlaps" in histories:
        numbers.append(
            KeyNumber(
                "max |S_network - S_theory|", max_overlap_deviation(histories["network"], histories["overlaps"]), 0.0
            )
        )
    return fig, numbers


def _invariants(config, history):
    from ..invariants import invariant_series

    return invariant_series(config.build_network(), history, powers=(1, 2))


def _drift_numbers(config, history, engine: str, noisy_from: int | None, sgd: bool = True) -> list[KeyNumber]:
    """Relative drift of tr(JS), tr((JS)^2) before the last (noisy) phase and within it."""
    inv = _invariants(config, history)
    trace = inv.trace.values  # (epoch, power)
    scale = np.abs(np.asarray([np.trace(np.linalg.matrix_power(history.overlaps.values[0], k)) for k in (1, 2)]))
    numbers = []
    cut = noisy_from if noisy_from is not None else trace.shape[0] - 1
    for i, k in enumerate((1, 2)):
        before = float(np.max(np.abs(trace[: cut + 1, i] - trace[0, i])) / scale[i])
        paper = "small: O(eta) (conserved by gradient flow)" if sgd else "not conserved (Adam)"
        numbers.append(KeyNumber(f"max relative drift of tr((JS)^{k}) up to epoch {cut}, {engine}", before, paper))
        if noisy_from is not None:
            within = float(np.max(np.abs(trace[cut:, i] - trace[cut, i])) / scale[i])
            numbers.append(
                KeyNumber(
                    f"max relative drift of tr((JS)^{k}) in the noisy phase, {engine}",
                    within,
                    "larger: noise breaks it",
                )
            )
    return numbers


def draw_fig6(histories, config, out):
    curves = _aba_curves(histories, config)
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_trace, ax_eig = fig.subplots(1, 2)
    noisy = [j for j, p in enumerate(config.phases) if p.target_noise > 0]
    noisy_from = int(_phase_ends(curves[0][0])[noisy[0] - 1]) if noisy and noisy[0] > 0 else None
    numbers = []
    for history, style, label in curves:
        inv = _invariants(config, history)
        pick = _thin(inv.epoch.values)
        for i, k in enumerate(inv.power.values):
            ax_trace.plot(
                inv.epoch.values[pick],
                inv.trace.values[pick, i],
                color=f"C{i}",
                label=rf"tr$((JS)^{k})$, {label}",
                **style,
            )
        for i in range(inv.sizes["index"]):
            ax_eig.plot(
                inv.epoch.values[pick],
                inv.eigenvalue.values[pick, i],
                color=f"C{i}",
                label=label if i == 0 else None,
                **style,
            )
        numbers += _drift_numbers(config, history, label.split()[0], noisy_from)
    ax_trace.set_title(r"conserved quantities tr$((JS)^k)$ of K = A A$^T$ - B B$^T$", fontsize="medium")
    ax_eig.set_title("eigenvalues of J S (the non-zero eigenvalues of K / N)", fontsize="medium")
    for ax in (ax_trace, ax_eig):
        ax.set_xlabel("epoch")
        ax.legend(fontsize="x-small", loc="upper right")
        _shade_phases(ax, curves[0][0])
    fig.suptitle("Fig 6: conservation laws through the A-B-A protocol; target noise breaks them")
    return fig, numbers


def draw_fig7(histories, config, out):
    curves = _aba_curves(histories, config)
    fig = Figure(figsize=(20, 4.8), layout="constrained")
    axes = _protocol_panels(fig, curves, 4)
    inv = _invariants(config, histories["network"])
    pick = _thin(inv.epoch.values)
    for i, k in enumerate(inv.power.values):
        axes[3].plot(
            inv.epoch.values[pick], inv.drift.values[pick, i], color=f"C{i}", label=rf"tr$((JS)^{k})$ - initial"
        )
    axes[3].set_title("drift of the SGD invariants under Adam", fontsize="medium")
    axes[3].set_xlabel("epoch")
    axes[3].legend(fontsize="x-small", loc="upper right")
    fig.suptitle(f"Fig 7: the A-B protocol with Adam (lr {config.phases[0].lr:g}), full network N = {config.N}")
    numbers = _memory_numbers(histories["network"], "network", sgd=False)
    numbers += _drift_numbers(config, histories["network"], "network", None, sgd=False)
    numbers.append(_final_loss(config, histories["network"]))
    return fig, numbers


# ---------------------------------------------------------------------------- data of the runner figures
def _shipped_config(name: str) -> ExperimentConfig:
    """A config shipped in ``overlapflow/experiments/configs``."""
    text = resources.files(__package__).joinpath("configs", name).read_text(encoding="utf-8")
    return load_config_text(text, source=f"overlapflow/experiments/configs/{name}")


def _run_config(config: ExperimentConfig, out: Path, progress: bool) -> dict[str, xr.Dataset]:
    """``run_experiment`` in ``out``: continues an interrupted run there, or reuses a finished one."""
    return run_experiment(config, out, progress=progress, resume=(out / CHECKPOINT / STATE_FILE).is_file())


def _write_data(out: Path, name: str, data: xr.Dataset) -> xr.Dataset:
    _write_history(out / f"{name}.nc", data)
    return data


def _stored(out: Path, name: str, settings: dict, compute: Callable[[], xr.Dataset]) -> xr.Dataset:
    """``out/<name>.nc`` if it was computed with ``settings``; else ``compute()``, written there.

    The settings are kept as JSON in the Dataset's attrs (``figure_settings``). A file computed with
    other settings is not overwritten: RunError."""
    path = out / f"{name}.nc"
    key = json.dumps(settings, sort_keys=True)
    if path.is_file():
        with xr.open_dataset(path) as stored:
            stored = stored.load()
        if stored.attrs.get("figure_settings") == key:
            return stored
        raise RunError(
            f"{path} holds {name} data computed with other settings ({stored.attrs.get('figure_settings')}, "
            f"not {key}); choose another output folder or remove the file"
        )
    return _write_data(out, name, compute().assign_attrs(figure_settings=key))


def _relative_difference(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


# ---------------------------------------------------------------------------- fig 2: twins
@dataclasses.dataclass(frozen=True)
class TwinSettings:
    """Fig 2 (degeneracy), with the paper's values: a random rank-1 linear network theta_1 (N = 500; float64
    here) and its twin theta_2, with the same visible overlaps but ||u||^2/N = ``uu`` = 2.048 and sigma_mu
    = ``mu`` = 0.8, sharing the readout vectors [V | Z] (so that the same noise injected into h, std
    ``noise_std`` = 0.5 per step, gives the same output; docs/notes.md). Both learn the filter task
    (c* = 0.2, lr 5e-3, 2000 epochs); their outputs are compared after ``compare_at`` = 300 epochs."""

    N: int = 500
    uu: float = 2.048
    mu: float = 0.8
    c: float = 0.2
    lr: float = 5e-3
    epochs: int = 2000
    compare_at: int = 300
    noise_std: float = 0.5
    seed: int = 0


def run_twins(settings: TwinSettings, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Fig 2's data, ``twins.nc``: :func:`~overlapflow.phenomena.learning_separation` of theta_1 and its
    twin (losses, overlaps, output distance per epoch), each one's theory loss (``theory_loss_a``,
    ``_b``), and the outputs on the impulse (``time``) before learning, under noise injected into h
    and after ``compare_at`` epochs (from the learned overlaps: exact for a linear network)."""
    return {"twins": _stored(out, "twins", dataclasses.asdict(settings), lambda: _twin_data(settings))}


def _twin_data(s: TwinSettings) -> xr.Dataset:
    from ..phenomena.twin import learning_separation, noise_response, twin_network
    from ..training import train_overlaps

    if not 0 <= s.compare_at <= s.epochs:
        raise ValueError(f"compare_at = {s.compare_at}: must be in [0, epochs = {s.epochs}]")
    rnn = LowRankRNN(rank=1)
    task = ExponentialFilter(c=s.c)
    key = jax.random.key(s.seed)
    theta_a = rnn.init(key, N=s.N, dtype=jnp.float64)
    theta_b = twin_network(rnn, theta_a, {"uu": s.uu, "mu": s.mu}, jax.random.fold_in(key, 1), keep="A")
    separation = learning_separation(rnn, task, theta_a, theta_b, s.lr, s.epochs)
    batch = task.sample(None, rnn.dt)
    inputs = jnp.asarray(batch.inputs, dtype=jnp.float64)
    data = {"target": ("time", np.asarray(batch.targets)[0, :, 0])}
    for member, theta in (("a", theta_a), ("b", theta_b)):
        learned = jnp.asarray(separation[f"overlaps_{member}"].values[s.compare_at])
        noisy = noise_response(rnn, theta, inputs, s.noise_std, jax.random.fold_in(key, 2))
        data[f"output_{member}"] = ("time", np.asarray(_network_forward(rnn, theta, inputs))[0, :, 0])
        data[f"noisy_output_{member}"] = ("time", np.asarray(noisy)[0, :, 0])
        data[f"learned_output_{member}"] = ("time", np.asarray(_meanfield_forward(rnn, learned, inputs))[0, :, 0])
        theory = train_overlaps(rnn, task, Overlaps.from_params(rnn, theta), s.lr, s.epochs)
        data[f"theory_loss_{member}"] = ("epoch", theory.loss.values)
    time = rnn.dt * np.arange(inputs.shape[1])
    return separation.assign(data).assign_coords(time=time).assign_attrs(compare_at=s.compare_at)


def draw_fig2(data, settings: TwinSettings, out):
    d = data["twins"]
    t, at = d.time.values, settings.compare_at
    members = (("a", r"$\theta_1$", "C0", NETWORK), ("b", r"$\theta_2$ (twin)", "C3", THEORY))
    fig = Figure(figsize=(13, 8.4), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    panels = (
        ("output", "before learning: identical outputs"),
        ("noisy_output", f"noise injected into h (std {settings.noise_std:g}, same draw): identical outputs"),
        ("learned_output", f"after {at} epochs of learning: different outputs"),
    )
    for ax, (var, title) in zip(axes, panels, strict=False):
        if var == "learned_output":
            ax.plot(t, d.target.values, color="k", lw=2.4, alpha=0.3, label="target")
        for member, label, color, style in members:
            ax.plot(t, d[f"{var}_{member}"].values, color=color, label=label, **style)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("t")
        ax.legend(fontsize="x-small", loc="upper right")
    ax = axes[3]
    for member, label, color, _ in members:
        ax.plot(d.epoch.values, d[f"loss_{member}"].values, color=color, label=f"network {label}", **NETWORK)
        ax.plot(d.epoch.values, d[f"theory_loss_{member}"].values, color=color, label=f"theory {label}", **THEORY)
    ax.axvline(at, color="0.6", lw=0.8, zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title("loss: the twins learn differently, each as its theory says", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper right")
    fig.suptitle(
        rf"Fig 2: twin networks (N = {settings.N}): same visible overlaps, $\|u\|^2/N$ = {settings.uu:g}, "
        rf"$\sigma_{{mu}}$ = {settings.mu:g}; filter c* = {settings.c:g}, lr {settings.lr:g}"
    )
    return fig, _twin_numbers(d, settings)


def _twin_numbers(d: xr.Dataset, s: TwinSettings) -> list[KeyNumber]:
    names = list(d.row.values)
    m, u = names.index("m"), names.index("u")
    S_a, S_b = d.overlaps_a.values[0], d.overlaps_b.values[0]
    visible = d.visible.values
    at = s.compare_at
    loss_gap = np.abs(d.loss_a.values - d.loss_b.values)
    numbers = [
        KeyNumber("twin: ||u||^2 / N", float(S_b[u, u]), s.uu, f"theta_1: {S_a[u, u]:.4f}"),
        KeyNumber("twin: sigma_mu", float(S_b[u, m]), s.mu, f"theta_1: {S_a[u, m]:.4f}"),
        KeyNumber("max |visible overlap difference| before learning", float(np.max(np.abs(S_a - S_b)[visible])), 0.0),
        KeyNumber("max |invisible overlap difference| before learning", float(np.max(np.abs(S_a - S_b)[~visible]))),
        KeyNumber(
            "max |y_1 - y_2| / max |y_1| before learning",
            _relative_difference(d.output_a, d.output_b),
            "0 (identical)",
            "round-off",
        ),
        KeyNumber(
            f"max |y_1 - y_2| / max |y_1| with noise in h (std {s.noise_std:g})",
            _relative_difference(d.noisy_output_a, d.noisy_output_b),
            "0 (identical)",
            "same noise draw; twins share [V | Z]",
        ),
        KeyNumber(
            f"RMS output distance after {at} epochs", float(d.output_distance.values[at]), "> 0 (different outputs)"
        ),
        KeyNumber("max |loss_1 - loss_2| over epochs", float(loss_gap.max()), "> 0 (different loss curves)"),
        KeyNumber(
            "max |loss network - loss theory|, theta_1",
            float(np.max(np.abs(d.loss_a.values - d.theory_loss_a.values))),
            "0 (matched by theory)",
            f"float64, N = {s.N}",
        ),
        KeyNumber(
            "max |loss network - loss theory|, twin",
            float(np.max(np.abs(d.loss_b.values - d.theory_loss_b.values))),
            "0 (matched by theory)",
        ),
        KeyNumber("final loss, theta_1", float(d.loss_a.values[-1])),
        KeyNumber("final loss, twin", float(d.loss_b.values[-1])),
    ]
    if s.epochs > at:
        numbers.append(
            KeyNumber(
                f"RMS output distance after {s.epochs} epochs, full networks",
                float(d.attrs["output_distance_final"]),
                "~0 (both learn the task)",
            )
        )
    return numbers


# ---------------------------------------------------------------------------- figs 4a-c and 8: the flip-flop
@dataclasses.dataclass(frozen=True)
class FlipFlopSettings:
    """Figs 4a-c and 8: an erf network learns the 1-bit flip-flop; full network vs the Gaussian-closure
    theory. The paper's settings are the shipped config ``flipflop.toml`` (N = 600, dt 0.025, t_max 20,
    batch 10, lr 5e-2, 2000 epochs); ``N`` .. ``epochs``, when set, override it (the ``--quick`` version).

    Fig 8 adds two full-network runs from the same initial network: gradient flow, approximated by
    gradient descent at lr / ``flow_factor`` for ``flow_factor`` times the epochs (the same learning
    time, smaller steps, more batches averaged), and Adam at ``adam_lr`` (paper.md gives no Adam rate
    for the flip-flop; fig 7 uses 1e-3 on the filter task; Adam's rate is not multiplied by N). At the
    paper's settings the three runs take about 10 minutes on a laptop CPU."""

    config: str = "flipflop.toml"
    N: int | None = None
    dt: float | None = None
    t_max: float | None = None
    lr: float | None = None
    epochs: int | None = None
    flow_factor: int = 4
    adam_lr: float = 3e-3


FLIPFLOP_RUNS = ("descent", "flow", "adam")


def _flipflop_config(s: FlipFlopSettings, run: str = "descent") -> ExperimentConfig:
    """The config of one flip-flop run: ``"descent"`` (the shipped config with the overrides; network
    and theory), ``"flow"`` (lr / flow_factor for flow_factor x the epochs) or ``"adam"``; the last two
    on the full network only."""
    if run not in FLIPFLOP_RUNS:
        raise ValueError(f"run = {run!r}: allowed {list(FLIPFLOP_RUNS)}")
    data = _shipped_config(s.config).resolved()
    (phase,) = data["phases"]
    overrides = ((s.N, data, "N"), (s.dt, data["network"], "dt"), (s.t_max, phase["task"], "t_max"))
    for value, table, key in (*overrides, (s.lr, phase, "lr"), (s.epochs, phase, "epochs")):
        if value is not None:
            table[key] = value
    if run == "flow":
        phase.update(lr=phase["lr"] / s.flow_factor, epochs=phase["epochs"] * s.flow_factor)
    elif run == "adam":
        phase.update(lr=s.adam_lr, optimizer={"kind": "adam"})
    if run != "descent":
        data.update(name=f"{data['name']}-{run}", engines={"network": True, "overlaps": False})
    return parse_config(data, source=f"configs/{s.config} ({run})")


def _run_folder(out: Path, run: str) -> Path:
    return out if run == "descent" else out / run


def _flipflop_runs(s: FlipFlopSettings, out: Path, progress: bool, runs) -> dict[str, xr.Dataset]:
    """The flip-flop runs, each a checkpointed experiment: gradient descent in ``out`` (``network``,
    ``overlaps``), the others in ``out/<run>`` (``flow/network``, ``adam/network``)."""
    data = {}
    for run in runs:
        prefix = "" if run == "descent" else f"{run}/"
        histories = _run_config(_flipflop_config(s, run), _run_folder(out, run), progress)
        data.update({prefix + name: history for name, history in histories.items()})
    return data


def _flipflop_thetas(s: FlipFlopSettings, out: Path) -> dict[str, np.ndarray]:
    """The initial network (the runner's, from the config's seed) and the final one of each run."""
    config = _flipflop_config(s)
    if config.init.model_dump(exclude_none=True):
        raise ValueError(f"{s.config}: an [init] table is not supported here (the initial network is rnn.init(seed))")
    rnn = config.build_network()
    thetas = {"initial": np.asarray(rnn.init(jax.random.key(config.seed), N=config.N, dtype=jnp.dtype(config.dtype)))}
    for run in FLIPFLOP_RUNS:
        thetas[run] = read_final_state(_run_folder(out, run))["states"]["network"]
    return thetas


def run_flipflop_study(settings: FlipFlopSettings, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Fig 8's data: the three flip-flop runs (gradient descent with the theory, gradient flow, Adam) and
    the Gaussianity of the initial and learned vectors (``gaussianity.nc``,
    :func:`~overlapflow.gaussianity.gaussianity_report` along ``run``)."""
    from ..gaussianity import gaussianity_report

    data = _flipflop_runs(settings, out, progress, FLIPFLOP_RUNS)
    rnn = _flipflop_config(settings).build_network()
    thetas = _flipflop_thetas(settings, out)
    reports = xr.concat([gaussianity_report(rnn, theta) for theta in thetas.values()], dim="run")
    data["gaussianity"] = _write_data(out, "gaussianity", reports.assign_coords(run=list(thetas)))
    return data


def _flipflop_trial(s: FlipFlopSettings, out: Path) -> dict[str, np.ndarray]:
    """A held-out trial (key 1) after gradient descent: t, input, target, mask, network and theory outputs."""
    config = _flipflop_config(s)
    rnn = config.build_network()
    task = config.build_phases(rnn)[0].task
    batch = task.sample(jax.random.key(1), rnn.dt)
    states = read_final_state(out)["states"]
    y_net, y_thy = _outputs(rnn, states["network"], states["overlaps"], batch.inputs[:1])
    first = {name: np.asarray(getattr(batch, name))[0, :, 0] for name in ("inputs", "targets", "mask")}
    return {"t": rnn.dt * np.arange(len(y_net)), "network": y_net, "theory": y_thy, **first}


def _draw_trial(ax, trial: dict) -> None:
    t = trial["t"]
    ax.fill_between(
        t, 0, 1, where=trial["mask"] == 0, color="0.93", step="mid", lw=0, transform=ax.get_xaxis_transform()
    )
    ax.plot(t, trial["inputs"], color="0.6", lw=0.8, label="input pulses")
    ax.plot(t, trial["targets"], color="k", lw=2.6, alpha=0.35, label="target (grey: masked)")
    ax.plot(t, trial["network"], color="C3", lw=1.3, label="network")
    ax.plot(t, trial["theory"], color="C0", lw=1.3, linestyle="--", label="theory")
    ax.set_title("a held-out trial after learning", fontsize="medium")
    ax.set_xlabel("t")
    ax.legend(fontsize="x-small", loc="lower right")


def _masked_rms(a, b, mask) -> float:
    return float(np.sqrt(np.sum(mask * (a - b) ** 2) / np.sum(mask)))


def _first_below(loss: np.ndarray, fraction: float) -> float:
    """The first epoch at which the loss is below ``fraction`` of its initial value (NaN: never)."""
    below = np.flatnonzero(loss < fraction * loss[0])
    return float(below[0]) if below.size else float("nan")


def _flipflop_numbers(data, s: FlipFlopSettings, trial: dict) -> list[KeyNumber]:
    net, thy = data["network"], data["overlaps"]
    loss_net, loss_thy = (np.asarray(h.loss.values, dtype=float) for h in (net, thy))
    N = _flipflop_config(s).N
    return [
        KeyNumber("final loss, network (gradient descent)", float(loss_net[-1]), "~0 (learns)", f"N = {N}"),
        KeyNumber("final loss, theory", float(loss_thy[-1]), "~0 (learns)"),
        KeyNumber("first epoch with loss < 10% of initial, network", _first_below(loss_net, 0.1)),
        KeyNumber("first epoch with loss < 10% of initial, theory", _first_below(loss_thy, 0.1), "~ the network's"),
        KeyNumber(
            "max |loss network - loss theory| over epochs",
            float(np.max(np.abs(loss_net - loss_thy))),
            "small (theory follows the network)",
            "finite N and Gaussian closure",
        ),
        KeyNumber("max |S_network - S_theory| (all epochs, all overlaps)", max_overlap_deviation(net, thy), "small"),
        KeyNumber(
            "RMS |y_network - y_theory| on a held-out trial (unmasked steps)",
            _masked_rms(trial["network"], trial["theory"], trial["mask"]),
            "small",
        ),
        KeyNumber(
            "RMS |y_network - target| on that trial (unmasked steps)",
            _masked_rms(trial["network"], trial["targets"], trial["mask"]),
            "~0",
        ),
    ]


def _flipflop_curves(data, s: FlipFlopSettings):
    N = _flipflop_config(s).N
    return [(data["network"], NETWORK, f"network N={N}"), (data["overlaps"], THEORY, "theory")]


def _qq_panel(ax, rnn: LowRankRNN, theta: np.ndarray, r: np.ndarray, title: str) -> None:
    from ..gaussianity import plotting_positions

    for k, name in enumerate(rnn.vector_names):
        x, q, _ = plotting_positions(theta[:, k])
        ax.plot(q, (x - x.mean()) / x.std(), ".", ms=2.5, color=f"C{k}", label=f"{name}: r = {r[k]:.4f}")
    lim = np.max(np.abs(ax.get_xlim()))
    ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.8)
    ax.set_xlabel("normal quantile")
    ax.set_ylabel("standardised entry")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left", markerscale=3)


def draw_fig8(data, settings: FlipFlopSettings, out):
    config = _flipflop_config(settings)
    rnn = config.build_network()
    gauss = data["gaussianity"]
    thetas = _flipflop_thetas(settings, out)
    trial = _flipflop_trial(settings, out)
    curves = _flipflop_curves(data, settings)
    fig = Figure(figsize=(21, 9.5), layout="constrained")
    axes = fig.subplots(2, 4)
    ax = axes[0, 0]
    k = settings.flow_factor
    runs = (
        (data["network"], 1, "C3", NETWORK, "gradient descent, network"),
        (data["overlaps"], 1, "C0", THEORY, "gradient descent, theory"),
        (data["flow/network"], k, "C2", NETWORK, f"gradient flow (lr / {k}), network"),
        (data["adam/network"], 1, "C4", NETWORK, f"Adam (lr {settings.adam_lr:g}), network"),
    )
    for history, factor, color, style, label in runs:
        pick = _thin(history.epoch.values)
        epochs = history.epoch.values[pick] / factor
        ax.plot(epochs, np.asarray(history.loss.values)[pick], color=color, label=label, **style)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (gradient flow: learning time in epochs of gradient descent)")
    ax.set_title("loss", fontsize="medium")
    ax.legend(fontsize="x-small", loc="lower left")
    _draw_trial(axes[0, 1], trial)
    _overlaps(axes[0, 2], curves, "visible")
    _overlaps(axes[0, 3], curves, "invisible")
    titles = {"descent": "gradient descent", "flow": "gradient flow", "adam": "Adam"}
    for ax, run in zip(axes[1, :3], FLIPFLOP_RUNS, strict=True):
        r = gauss.qq_r.sel(run=run).values
        _qq_panel(ax, rnn, thetas[run], r, f"Q-Q plots of the learned vectors: {titles[run]}")
    ax = axes[1, 3]
    width = 0.8 / gauss.sizes["run"]
    for j, run in enumerate(gauss.run.values):
        x = np.arange(gauss.sizes["vector"]) + (j - (gauss.sizes["run"] - 1) / 2) * width
        ax.bar(x, 1 - gauss.qq_r.sel(run=run).values, width, color=f"C{j}", label=titles.get(str(run), str(run)))
    ax.set_xticks(range(gauss.sizes["vector"]), list(gauss.vector.values))
    ax.set_yscale("log")
    ax.set_ylabel("1 - r (0: Gaussian)")
    ax.set_title("Q-Q correlation r per vector", fontsize="medium")
    ax.legend(fontsize="x-small")
    fig.suptitle(
        f"Fig 8: erf network learns the flip-flop (N = {config.N}, dt {rnn.dt:g}, lr {config.phases[0].lr:g}, "
        f"{config.phases[0].epochs} epochs): network vs theory; Gaussianity of the learned vectors"
    )
    numbers = _flipflop_numbers(data, settings, trial)
    for run, history in (("flow", data["flow/network"]), ("adam", data["adam/network"])):
        numbers.append(KeyNumber(f"final loss, {titles[run]}, network", float(history.loss.values[-1]), "~0"))
    paper = {"initial": "~1 (Gaussian draw)", "descent": "~1 (stays Gaussian)", "flow": "~1 (stays Gaussian)"}
    for run in gauss.run.values:
        for name, r in zip(gauss.vector.values, gauss.qq_r.sel(run=run).values, strict=True):
            note = "" if run != "adam" else "Adam is not rotation-equivariant"
            label = titles.get(str(run), str(run))
            numbers.append(KeyNumber(f"Q-Q r of {name}, {label}", float(r), paper.get(str(run)), note))
    return fig, numbers


# ---------------------------------------------------------------------------- figs 4d-f, 9, 10: A/B -> C
@dataclasses.dataclass(frozen=True)
class MemorySettings:
    """Figs 4d-f, 9 and 10: the A/B -> C protocol (:func:`~overlapflow.phenomena.memory.run_ab_to_c`) and
    the decoding of each pair's history (:func:`~overlapflow.phenomena.memory.decoding_table`), with
    the paper's values: 10 twin pairs on the reduced 10-D theory (engine ``"overlaps"``), 30000 epochs
    per phase at lr 0.01 (divided by 5 once the loss is below 0.015), batch 128; decoding with 8
    training and 2 test pairs, 50 resamplings, feature noise 0 and 0.3. At these settings the protocol
    runs for hours: 2 x 30000 epochs of the 20 members (vmapped), batch 128, T = 400, measured at about
    0.4 s per epoch on a busy 2-core CPU (about 6 hours), in one piece (no checkpoint)."""

    n_pairs: int = 10
    epochs: int = 30000
    lr: float = 0.01
    batch_size: int = 128
    engine: str = "overlaps"
    seed: int = 0
    n_train_pairs: int = 8
    resamples: int = 50
    noise_levels: tuple[float, ...] = (0.0, 0.3)

    def protocol(self) -> dict:
        """The settings of the protocol run (the decoding's aside): what ``ab_to_c.nc`` was computed with."""
        return {key: getattr(self, key) for key in ("n_pairs", "epochs", "lr", "batch_size", "engine", "seed")}


def run_memory(settings: MemorySettings, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Figs 9 and 10's data: the A/B -> C protocol (``ab_to_c.nc``, reused when computed with the same
    protocol settings) and the decoding accuracies (``decoding.nc``: stage, features, noise)."""
    from ..phenomena.memory import decoding_table, run_ab_to_c

    def protocol():
        return run_ab_to_c(
            n_pairs=settings.n_pairs,
            epochs=settings.epochs,
            lr=settings.lr,
            batch_size=settings.batch_size,
            engine=settings.engine,
            key=jax.random.key(settings.seed),
            progress=progress,
        )

    result = _stored(out, "ab_to_c", settings.protocol(), protocol)
    table = decoding_table(
        result,
        noise_levels=settings.noise_levels,
        n_train_pairs=settings.n_train_pairs,
        resamples=settings.resamples,
    )
    decoding = table.to_dataset().assign_attrs(n_train_pairs=settings.n_train_pairs, resamples=settings.resamples)
    return {"ab_to_c": result, "decoding": _write_data(out, "decoding", decoding)}


_KINDS = ("visible", "invisible")
_STAGE_LABELS = {"start": "start", "after_AB": "after A / B", "after_C": "after C"}


def _member_distance(result: xr.Dataset) -> xr.DataArray:
    """RMS over pairs and overlaps of sigma(member A) - sigma(member B): (stage, features)."""
    from ..phenomena.memory import STAGES, overlap_features

    values = [
        [float(np.sqrt(np.mean(np.diff(overlap_features(result, stage, which)[0], axis=1) ** 2))) for which in _KINDS]
        for stage in STAGES
    ]
    return xr.DataArray(values, dims=("stage", "features"), coords={"stage": list(STAGES), "features": list(_KINDS)})


def _draw_memory_loss(ax, result: xr.Dataset) -> None:
    epochs, E = result.epoch.values, int(result.attrs["epochs_per_phase"])
    for member, color in (("A", "C1"), ("B", "C2")):
        loss = result.loss.sel(member=member).values
        for curve in loss:
            ax.plot(epochs, curve, color=color, lw=0.5, alpha=0.35)
        task = "flip-flop" if member == "A" else "decision making"
        ax.plot(epochs, np.exp(np.mean(np.log(loss), axis=0)), color=color, lw=2, label=f"member {member}: {task}, C")
    ax.axvspan(E, epochs[-1], color="0.93", zorder=-1)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (shaded: task C)")
    ax.set_title(f"loss of the {result.sizes['pair']} pairs (thick: geometric mean)", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper right")


def _draw_member_distance(ax, distance: xr.DataArray) -> None:
    x = np.arange(distance.sizes["stage"])
    for k, which in enumerate(_KINDS):
        ax.plot(x, distance.sel(features=which).values, "o-", color=f"C{k}", label=f"{which} overlaps")
    ax.set_xticks(x, [_STAGE_LABELS[s] for s in distance.stage.values])
    ax.set_ylabel("RMS of sigma(A) - sigma(B)")
    ax.set_title("how far apart the two members are", fontsize="medium")
    ax.legend(fontsize="x-small")


def _draw_decoding(ax, decoding: xr.Dataset, noise: float) -> None:
    accuracy = decoding.accuracy.sel(noise=noise)
    x = np.arange(accuracy.sizes["stage"])
    for k, which in enumerate(_KINDS):
        ax.bar(x + (k - 0.5) * 0.38, accuracy.sel(features=which).values, 0.38, color=f"C{k}", label=which)
    ax.axhline(0.5, color="k", lw=0.8, linestyle="--", label="chance")
    ax.set_xticks(x, [_STAGE_LABELS[s] for s in accuracy.stage.values])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (A vs B)")
    ax.set_title(f"decoding the history, feature noise {noise:g}", fontsize="medium")
    ax.legend(fontsize="x-small", loc="lower left")


def _distance_numbers(result: xr.Dataset) -> list[KeyNumber]:
    distance = _member_distance(result)
    paper = {
        ("start", "visible"): "0 (same start)",
        ("start", "invisible"): "0 (same start)",
        ("after_AB", "visible"): "> 0",
        ("after_AB", "invisible"): "> 0",
        ("after_C", "visible"): "~0 (both solve C)",
        ("after_C", "invisible"): "> 0 (memory of A / B)",
    }
    numbers = [
        KeyNumber(
            f"RMS sigma(A) - sigma(B), {which} overlaps, {_STAGE_LABELS[stage]}",
            float(distance.sel(stage=stage, features=which)),
            paper[stage, which],
            _training_note(result, stage),
        )
        for stage in distance.stage.values
        for which in _KINDS
    ]
    after_c = distance.sel(stage="after_C")
    numbers.append(
        KeyNumber(
            "invisible / visible distance after C",
            float(after_c.sel(features="invisible") / after_c.sel(features="visible")),
            ">> 1",
            _training_note(result, "after_C"),
        )
    )
    final = result.loss.isel(epoch=-1)
    for member in ("A", "B"):
        numbers.append(
            KeyNumber(
                f"final loss on C, member {member} (median over pairs)",
                float(final.sel(member=member).median()),
                "~0 (learns C)",
                _training_note(result, "after_C"),
            )
        )
    return numbers


_EXPECTED_ACCURACY = {
    ("start", "visible"): 0.5,
    ("start", "invisible"): 0.5,
    ("after_AB", "visible"): "high",
    ("after_AB", "invisible"): "high",
    ("after_C", "visible"): "chance (0.5)",
    ("after_C", "invisible"): "above chance",
}


def _training_note(result: xr.Dataset, stage: str) -> str:
    """For the stage after C: how long C was trained, next to the paper's epochs."""
    epochs = int(result.attrs["epochs_per_phase"])
    paper = MemorySettings().epochs
    return "" if stage != "after_C" or epochs == paper else f"{epochs} epochs per phase (paper: {paper})"


def _decoding_numbers(data, noise_levels) -> list[KeyNumber]:
    decoding, accuracy = data["decoding"], data["decoding"].accuracy
    setup = f"{decoding.attrs['resamples']} resamplings, {decoding.attrs['n_train_pairs']} training pairs"
    return [
        KeyNumber(
            f"decoding accuracy, {which} overlaps, {_STAGE_LABELS[stage]}, noise {noise:g}",
            float(accuracy.sel(stage=stage, features=which, noise=noise)),
            _EXPECTED_ACCURACY[stage, which],
            "; ".join(filter(None, (setup, _training_note(data["ab_to_c"], stage)))),
        )
        for noise in noise_levels
        for stage in accuracy.stage.values
        for which in _KINDS
    ]


def draw_fig9(data, settings: MemorySettings, out):
    from ..phenomena.memory import STAGES, overlap_features

    result = data["ab_to_c"]
    fig = Figure(figsize=(20, 9), layout="constrained")
    axes = fig.subplots(2, 4)
    for row, which in enumerate(_KINDS):
        for col, stage in enumerate(STAGES):
            ax = axes[row, col + 1]
            features, labels = overlap_features(result, stage, which)
            for k, label in enumerate(labels):
                ax.plot(features[:, 0, k], features[:, 1, k], "o", ms=4, color=f"C{k}", label=rf"$\sigma_{{{label}}}$")
            lo, hi = np.min(features), np.max(features)
            ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, zorder=0)
            ax.set_xlabel("member A (flip-flop first)")
            ax.set_ylabel("member B (decision making first)")
            ax.set_title(f"{which} overlaps, {_STAGE_LABELS[stage]}", fontsize="medium")
            ax.legend(fontsize="xx-small", ncol=2, loc="upper left")
    _draw_memory_loss(axes[0, 0], result)
    _draw_member_distance(axes[1, 0], _member_distance(result))
    fig.suptitle(
        f"Fig 9: A/B -> C on {result.sizes['pair']} twin pairs ({settings.engine}, {settings.epochs} epochs per phase, "
        f"lr {settings.lr:g}, batch {settings.batch_size}): after C visible overlaps agree, invisible ones differ"
    )
    return fig, _distance_numbers(result)


def draw_fig10(data, settings: MemorySettings, out):
    decoding = data["decoding"]
    fig = Figure(figsize=(6 * len(settings.noise_levels), 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(settings.noise_levels)))
    for ax, noise in zip(axes, settings.noise_levels, strict=True):
        _draw_decoding(ax, decoding, noise)
    fig.suptitle(
        f"Fig 10: decoding the training history (A or B first) by logistic regression, "
        f"{settings.n_train_pairs} of {data['ab_to_c'].sizes['pair']} pairs to train, {settings.resamples} resamplings"
    )
    return fig, _decoding_numbers(data, settings.noise_levels)


# ---------------------------------------------------------------------------- fig 4: the overview
@dataclasses.dataclass(frozen=True)
class OverviewSettings:
    """Fig 4: panels a-c from the flip-flop (:class:`FlipFlopSettings`; gradient descent, network and
    theory), panels d-f from the A/B -> C protocol (:class:`MemorySettings`)."""

    flipflop: FlipFlopSettings = FlipFlopSettings()
    memory: MemorySettings = MemorySettings()


def run_overview(settings: OverviewSettings, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Fig 4's data: the flip-flop's gradient-descent run and :func:`run_memory`'s data."""
    return {
        **_flipflop_runs(settings.flipflop, out, progress, ("descent",)),
        **run_memory(settings.memory, out, progress),
    }


def draw_fig4(data, settings: OverviewSettings, out):
    flipflop, memory = settings.flipflop, settings.memory
    trial = _flipflop_trial(flipflop, out)
    fig = Figure(figsize=(17, 9.5), layout="constrained")
    axes = fig.subplots(2, 3)
    _draw_trial(axes[0, 0], trial)
    curves = _flipflop_curves(data, flipflop)
    _loss(axes[0, 1], curves)
    _overlaps(axes[0, 2], curves, "all")
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


# ---------------------------------------------------------------------------- fig 11: the Gram map
GRAM_NETWORKS = {"linear": LowRankRNN(rank=1), "erf": LowRankRNN(rank=1, phi="erf")}


def run_gram_map(settings: None, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Fig 11's data, ``gram_map.nc``: the structural pattern of :func:`~overlapflow.gram_map.gram_map`
    for rank-1 linear and erf networks, (network, overlap, gradient), gradients over every overlap
    (columns of invisible overlaps are False), with each entry's ``coefficient`` (a sum of overlaps)."""
    from ..gram_map import gram_map

    patterns, coefficients = [], []
    for rnn in GRAM_NETWORKS.values():
        g = gram_map(rnn)
        labels = list(g.overlap.values)
        pattern = np.zeros((len(labels), len(labels)), dtype=bool)
        coefficient = np.full(pattern.shape, "", dtype=object)
        columns = [labels.index(label) for label in g.gradient.values]
        pattern[:, columns] = g.values
        coefficient[:, columns] = g.coefficient.values
        patterns.append(pattern)
        coefficients.append(coefficient.astype(str))
    data = xr.Dataset(
        {
            "pattern": (("network", "overlap", "gradient"), np.stack(patterns)),
            "coefficient": (("network", "overlap", "gradient"), np.stack(coefficients)),
        },
        coords={"network": list(GRAM_NETWORKS), "overlap": labels, "gradient": labels},
        attrs={"convention": g.attrs["convention"]},
    )
    return {"gram_map": _write_data(out, "gram_map", data)}


def _gram_map_error(rnn: LowRankRNN) -> float:
    """max |-eta G d - dS/dt| at random overlaps S and a random visible Gamma (eta = 1): G (numeric, at S)
    is the gradient flow's map from the visible gradients d to the velocity of every overlap."""
    from ..flow import flow_velocity
    from ..gram_map import gradient_vector, gram_map

    key = jax.random.key(0)
    S = np.asarray(Overlaps.from_params(rnn, rnn.init(key, N=50, dtype=jnp.float64)).matrix)
    A = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), S.shape, dtype=jnp.float64))
    Gamma = (A + A.T) / 2 * visible_mask(rnn)
    velocity = np.asarray(flow_velocity(jnp.asarray(S), jnp.asarray(Gamma), 1.0))
    rows, cols = zip(*canonical_pairs(rnn.n_vectors), strict=True)
    predicted = -gram_map(rnn, S).values @ gradient_vector(rnn, Gamma)
    return float(np.max(np.abs(predicted - velocity[list(rows), list(cols)])))


def draw_fig11(data, settings: None, out):
    from ..gram_map import plot_gram_map

    d = data["gram_map"]
    fig = plot_gram_map(GRAM_NETWORKS["linear"], GRAM_NETWORKS["erf"])
    fig.suptitle("Fig 11: the Gram map, which visible gradients move which overlaps (rank 1)")
    numbers = [KeyNumber("pattern size (overlaps x gradients)", d.sizes["overlap"], "10 x 10", "each network")]
    paper_visible = {"linear": 4, "erf": 7}
    for name, rnn in GRAM_NETWORKS.items():
        pattern = d.pattern.sel(network=name).values  # rows and columns in canonical order
        mask = visible_mask(rnn)
        invisible = [k for k, (i, j) in enumerate(canonical_pairs(rnn.n_vectors)) if not mask[i, j]]
        numbers += [
            KeyNumber(f"visible gradients (columns), {name}", int(pattern.any(axis=0).sum()), paper_visible[name]),
            KeyNumber(f"non-zero entries, {name}", int(pattern.sum())),
            KeyNumber(
                f"invisible overlaps moved by learning (non-zero rows), {name}",
                int(pattern[invisible].any(axis=1).sum()),
                None,
                f"of {len(invisible)}",
            ),
            KeyNumber(
                f"max |-eta G d - dS/dt| at random S, Gamma, {name}",
                _gram_map_error(rnn),
                0.0,
                "G is the gradient flow's map",
            ),
        ]
    return fig, numbers


# ---------------------------------------------------------------------------- the figures
_QUICK_FILTER = dict(N=100, epoch_scale=0.5, checkpoint_every=1000)
_QUICK_ABA = dict(N=100, epoch_scale=0.3, checkpoint_every=300)
# --quick flip-flop: N 200, dt 0.05 and t_max 10 (T = 200 steps, not 800), lr 0.2 (4x) for 300 epochs
_QUICK_FLIPFLOP = dict(N=200, dt=0.05, t_max=10.0, lr=0.2, epochs=300, flow_factor=2)
# --quick A/B -> C: 150 epochs per phase (not 30000), batch 16; decoding with 20 resamplings
_QUICK_MEMORY = dict(epochs=150, batch_size=16, resamples=20)
FIGURES: dict[str, FigureSpec] = {
    spec.id: spec
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
        config = _shipped_config(spec.config)
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


def reproduce_figure(fig: str, quick: bool = False, out=None, progress: bool = False) -> FigureResult:
    """Make a figure in ``out`` (default :func:`default_folder`): run, continue or reuse its data, draw it
    and write its key numbers next to the paper's; returns them and the files written."""
    fig = figure_id(fig)
    spec = FIGURES[fig]
    setup = figure_setup(fig, quick)
    out = Path(out) if out is not None else default_folder(fig, quick)
    sections = _summary_sections(out)
    if spec.config is not None:
        data = _run_config(setup, out, progress)
    else:
        out.mkdir(parents=True, exist_ok=True)
        data = spec.run(setup, out, progress)
    figure, numbers = spec.draw(data, setup, out)
    files = _save(figure, out, f"fig{fig}")
    settings = None if spec.config is not None or setup is None else dataclasses.asdict(setup)
    record = {
        "figure": fig,
        "title": spec.title,
        "quick": quick,
        "config": spec.config,
        "source": spec.source,
        "settings": settings,
        "numbers": [n.as_dict() for n in numbers],
    }
    (out / f"fig{fig}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    header = f"key numbers of fig {fig}{' (--quick)' if quick else ''}: {spec.title}\n"
    if settings is not None:
        header += f"  settings ({spec.source}): {json.dumps(settings)}\n"
    sections[fig] = header + format_numbers(numbers) + "\n"
    _write_summary(out, sections)
    files += [out / f"fig{fig}.json", out / "summary.txt"] + [out / f"{name}.nc" for name in data]
    return FigureResult(fig, out, numbers, files, data)


_SECTION = re.compile(r"^key numbers of fig (\w+)", re.M)


def _split_summary(text: str) -> tuple[str, dict[str, str]]:
    """summary.txt as (the run's part, {figure: its section of key numbers})."""
    starts = [(m.start(), m.group(1)) for m in _SECTION.finditer(text)]
    ends = [start for start, _ in starts[1:]] + [len(text)]
    sections = {fig: text[start:end].strip("\n") + "\n" for (start, fig), end in zip(starts, ends, strict=False)}
    return text[: starts[0][0] if starts else len(text)], sections


def _summary_sections(out: Path) -> dict[str, str]:
    path = out / "summary.txt"
    return _split_summary(path.read_text(encoding="utf-8"))[1] if path.is_file() else {}


def _write_summary(out: Path, sections: dict[str, str]) -> None:
    """summary.txt: the run's summary (if a config run wrote one), then the key numbers of every figure
    made in this folder, in the paper's order (a figure made again replaces its own section)."""
    path = out / "summary.txt"
    base, current = _split_summary(path.read_text(encoding="utf-8")) if path.is_file() else ("", {})
    merged = {**current, **sections}
    ordered = [merged[fig] for fig in FIGURES if fig in merged]
    path.write_text(base.rstrip("\n") + ("\n\n" if base.strip() else "") + "\n".join(ordered), encoding="utf-8")


def _format_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) or float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value)}" if float(value).is_integer() else f"{value:.6g}"
    return f"{value:.6g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.3e}"


def format_numbers(numbers: list[KeyNumber]) -> str:
    """The key numbers as aligned text: name, this run, paper, note."""
    width = max(len(n.name) for n in numbers)
    lines = [f"  {'quantity':<{width}}  {'this run':>12}  {'paper':>12}  note"]
    for n in numbers:
        lines.append(
            f"  {n.name:<{width}}  {_format_value(n.value):>12}  {_format_value(n.paper):>12}  {n.note}".rstrip()
        )
    return "\n".join(lines)
