"""Figs 4a-c and 8: an erf network learns the flip-flop; full network vs theory, gradient flow and
Adam, Gaussianity of the learned vectors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ...history import max_overlap_deviation
from ...model import LowRankRNN
from ...precision import float64
from ...run_folder import RunFolder
from ..config import ExperimentConfig, parse_config
from .data import run_config, shipped_config, write_data
from .drawing import (
    EPOCH_LABEL,
    LOSS_LABEL,
    NETWORK,
    THEORY,
    draw_overlaps,
    forward_outputs,
    plain_log_labels,
    thinned,
    time_label,
)
from .spec import KeyNumber


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


def flipflop_config(s: FlipFlopSettings, run: str = "descent") -> ExperimentConfig:
    """The config of one flip-flop run: ``"descent"`` (the shipped config with the overrides; network
    and theory), ``"flow"`` (lr / flow_factor for flow_factor x the epochs) or ``"adam"``; the last two
    on the full network only."""
    if run not in FLIPFLOP_RUNS:
        raise ValueError(f"run = {run!r}: allowed {list(FLIPFLOP_RUNS)}")
    data = shipped_config(s.config).resolved()
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
        histories = run_config(flipflop_config(s, run), _run_folder(out, run), progress)
        data.update({prefix + name: history for name, history in histories.items()})
    return data


def _flipflop_thetas(s: FlipFlopSettings, out: Path) -> dict[str, np.ndarray]:
    """The initial network (the runner's, from the config's seed) and the final one of each run."""
    config = flipflop_config(s)
    if config.init.model_dump(exclude_none=True):
        raise ValueError(f"{s.config}: an [init] table is not supported here (the initial network is rnn.init(seed))")
    rnn = config.build_network()
    thetas = {"initial": np.asarray(rnn.init(jax.random.key(config.seed), N=config.N, dtype=jnp.dtype(config.dtype)))}
    for run in FLIPFLOP_RUNS:
        thetas[run] = RunFolder(_run_folder(out, run)).final_states()["states"]["network"]
    return thetas


@float64
def run_flipflop_study(settings: FlipFlopSettings, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Fig 8's data: the three flip-flop runs (gradient descent with the theory, gradient flow, Adam) and
    the Gaussianity of the initial and learned vectors (``gaussianity.nc``,
    :func:`~overlapflow.gaussianity.gaussianity_report` along ``run``)."""
    from ...gaussianity import gaussianity_report

    data = _flipflop_runs(settings, out, progress, FLIPFLOP_RUNS)
    rnn = flipflop_config(settings).build_network()
    thetas = _flipflop_thetas(settings, out)
    reports = xr.concat([gaussianity_report(rnn, theta) for theta in thetas.values()], dim="run")
    data["gaussianity"] = write_data(out, "gaussianity", reports.assign_coords(run=list(thetas)))
    return data


def _flipflop_trial(s: FlipFlopSettings, out: Path) -> dict[str, np.ndarray]:
    """A held-out trial (key 1) after gradient descent: t, input, target, mask, network and theory outputs."""
    config = flipflop_config(s)
    rnn = config.build_network()
    task = config.build_phases(rnn)[0].task
    batch = task.sample(jax.random.key(1), rnn.dt)
    states = RunFolder(out).final_states()["states"]
    y_net, y_thy = forward_outputs(rnn, states["network"], states["overlaps"], batch.inputs[:1])
    first = {name: np.asarray(getattr(batch, name))[0, :, 0] for name in ("inputs", "targets", "mask")}
    return {"t": rnn.dt * np.arange(len(y_net)), "network": y_net, "theory": y_thy, **first}


def _draw_trial(ax, trial: dict, network_label: str = "network") -> None:
    t = trial["t"]
    ax.fill_between(
        t, 0, 1, where=trial["mask"] == 0, color="0.93", step="mid", lw=0, transform=ax.get_xaxis_transform()
    )
    ax.plot(t, trial["inputs"], color="0.6", lw=0.8, label="input pulses x")
    ax.plot(t, trial["targets"], color="k", lw=1.0, label="target y* (grey background: masked)")
    ax.plot(t, trial["network"], color="C3", label=network_label, **NETWORK)
    ax.plot(t, trial["theory"], color="C0", label="theory", **THEORY)
    ax.set_title("a held-out trial after learning", fontsize="medium")
    ax.set_xlabel(time_label(float(t[1] - t[0]) if len(t) > 1 else None))
    ax.set_ylabel("input x, target y*, output y")
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
    N = flipflop_config(s).N
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
    N = flipflop_config(s).N
    return [(data["network"], NETWORK, f"network N={N}"), (data["overlaps"], THEORY, "theory")]


def _qq_panel(ax, rnn: LowRankRNN, theta: np.ndarray, r: np.ndarray, title: str) -> None:
    from ...gaussianity import plotting_positions

    for k, name in enumerate(rnn.vector_names):
        x, q, _ = plotting_positions(theta[:, k])
        ax.plot(q, (x - x.mean()) / x.std(), ".", ms=2.5, color=f"C{k}", label=f"{name}: r = {r[k]:.4f}")
    lim = np.max(np.abs(ax.get_xlim()))
    ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.8)
    ax.set_xlabel("normal quantile")
    ax.set_ylabel("standardised entry")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left", markerscale=3)


@float64
def draw_fig8(data, settings: FlipFlopSettings, out):
    config = flipflop_config(settings)
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
        pick = thinned(history.epoch.values)
        epochs = history.epoch.values[pick] / factor
        ax.plot(epochs, np.asarray(history.loss.values)[pick], color=color, label=label, **style)
    ax.set_yscale("log")
    plain_log_labels(ax, [history.loss.values for history, *_ in runs])
    ax.set_xlabel(f"{EPOCH_LABEL} (gradient flow: learning time in epochs of gradient descent)")
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title("loss", fontsize="medium")
    ax.legend(fontsize="x-small", loc="lower left", title="line style: network band, theory dashed")
    _draw_trial(axes[0, 1], trial, f"network N={config.N}")
    draw_overlaps(axes[0, 2], curves, "visible")
    draw_overlaps(axes[0, 3], curves, "invisible")
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
    plain_log_labels(ax, [1 - gauss.qq_r.values])
    ax.set_xlabel("learned vector")
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
