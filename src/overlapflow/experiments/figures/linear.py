"""The figures made from a shipped experiment config (figs 1c, 3, 5, 6, 7, 12): linear networks on
the filter tasks and the A-B-A protocol; each ``draw_fig*(histories, config, out)``."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ...history import max_overlap_deviation, overlap_labels, overlap_series, phase_ends, phase_names
from ...precision import float64
from ...run_folder import RunFolder
from ...tasks import WhiteNoiseFilter
from ..config import ExperimentConfig
from .drawing import (
    EPOCH_LABEL,
    NAIVE,
    NETWORK,
    THEORY,
    draw_loss,
    draw_overlaps,
    forward_outputs,
    shade_phases,
    thinned,
    time_label,
)
from .spec import KeyNumber


def _final(history: xr.Dataset, label: str) -> float:
    return float(overlap_series(history, label).values[-1])


def _impulse(config: ExperimentConfig):
    """The (deterministic) batch of the first phase's task."""
    rnn = config.build_network()
    task = config.build_phases(rnn)[0].task
    return rnn, task, task.sample(jax.random.key(0), rnn.dt)


def _filter_figure(histories, config, out, white_noise: bool):
    """Learned response(s), loss, visible and invisible overlaps: network vs theory."""
    net, thy = histories["network"], histories["overlaps"]
    rnn, task, batch = _impulse(config)
    states = RunFolder(out).final_states()["states"]
    theta, S = states["network"], states["overlaps"]
    t = rnn.dt * np.arange(batch.targets.shape[1])
    curves = [(net, NETWORK, f"network N={config.N}"), (thy, THEORY, "theory")]

    network_label = f"network N={config.N}"
    if white_noise:  # two response panels above loss | visible | invisible
        fig = Figure(figsize=(17, 9.0), layout="constrained")
        grid = fig.add_gridspec(2, 6)
        top = [fig.add_subplot(grid[0, :3]), fig.add_subplot(grid[0, 3:])]
        bottom = [fig.add_subplot(grid[1, 2 * k : 2 * k + 2]) for k in range(3)]
    else:  # impulse response, loss / visible, invisible
        fig = Figure(figsize=(15, 9.0), layout="constrained")
        grid = fig.subplots(2, 2)
        top, bottom = [grid[0, 0]], [grid[0, 1], grid[1, 0], grid[1, 1]]
    if white_noise:
        noise = WhiteNoiseFilter(c=task.c, a=task.a, noise_std=0.5, t_max=task.t_max).sample(
            jax.random.key(config.seed), rnn.dt
        )
        y_net, y_thy = forward_outputs(rnn, theta, S, noise.inputs)
        ax = top.pop(0)
        ax.plot(t, np.asarray(noise.inputs)[0, :, 0], color="0.75", lw=0.6, label="input x (std 0.5)")
        ax.plot(t, np.asarray(noise.targets)[0, :, 0], color="k", lw=1.0, label="target y* (filtered x)")
        ax.plot(t, y_net, color="C3", label=f"{network_label}, trained", **NETWORK)
        ax.plot(t, y_thy, color="C0", label="theory, trained", **THEORY)
        ax.set_title("white-noise input, after training", fontsize="medium")
        ax.set_xlabel(time_label(rnn.dt))
        ax.set_ylabel("input x, target y*, output y")
        ax.legend(fontsize="x-small", loc="upper right")
    y_net, y_thy = forward_outputs(rnn, theta, S, batch.inputs)
    ax = top.pop(0)
    ax.plot(t, np.asarray(batch.targets)[0, :, 0], color="k", lw=1.0, label="target y*")
    ax.plot(t, y_net, color="C3", label=network_label, **NETWORK)
    ax.plot(t, y_thy, color="C0", label="theory", **THEORY)
    ax.set_title("learned impulse response", fontsize="medium")
    ax.set_xlabel(time_label(rnn.dt))
    ax.set_ylabel("output y (response to the impulse)")
    ax.legend(fontsize="x-small", loc="upper right")
    draw_loss(bottom[0], curves)
    draw_overlaps(bottom[1], curves, "visible")
    draw_overlaps(bottom[2], curves, "invisible")
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


@float64
def draw_fig1c(histories, config, out):
    net, thy, naive = histories["network"], histories["overlaps"], histories["overlaps-visible-only"]
    fig = Figure(figsize=(7, 4.6), layout="constrained")
    ax = fig.subplots()
    draw_loss(
        ax,
        [
            (net, NETWORK, f"network N={config.N}"),
            (thy, THEORY, "overlap theory (exact)"),
            (naive, NAIVE, "naive descent on visible overlaps"),
        ],
    )
    fig.suptitle(f"Fig 1c: learning is not descent on the visible overlaps (N = {config.N})", fontsize="medium")

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


@float64
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


@float64
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
    draw_loss(axes[0], curves)
    draw_overlaps(axes[1], curves, "visible")
    draw_overlaps(axes[2], curves, "invisible")
    for ax in axes:
        shade_phases(ax, curves[0][0])
    return axes


def _memory_numbers(history, engine: str, sgd: bool = True) -> list[KeyNumber]:
    """The first three phases (A, B, A2): visible overlaps at the ends of A and A2, the invisible
    ones' return (:func:`~overlapflow.phenomena.memory.aba_memory_report`), sigma_uu at every phase end.
    ``sgd``: the paper's expectations (visible overlaps return, invisible ones keep a trace) apply."""
    from ...phenomena.memory import aba_memory_report, phase_end_states

    names, ends = phase_names(history), phase_ends(history)
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


@float64
def draw_fig3(histories, config, out):
    curves = _aba_curves(histories, config)
    fig = Figure(figsize=(18, 4.8), layout="constrained")
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
    from ...invariants import invariant_series

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


@float64
def draw_fig6(histories, config, out):
    curves = _aba_curves(histories, config)
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_trace, ax_eig = fig.subplots(1, 2)
    noisy = [j for j, p in enumerate(config.phases) if p.target_noise > 0]
    noisy_from = int(phase_ends(curves[0][0])[noisy[0] - 1]) if noisy and noisy[0] > 0 else None
    numbers = []
    for history, style, label in curves:
        inv = _invariants(config, history)
        pick = thinned(inv.epoch.values)
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
    ax_trace.set_ylabel(r"tr$((JS)^k)$ (dimensionless)")
    ax_eig.set_ylabel(r"eigenvalue of $J S$ (dimensionless)")
    for ax in (ax_trace, ax_eig):
        ax.set_xlabel(EPOCH_LABEL)
        ax.legend(fontsize="x-small", loc="upper right")
        shade_phases(ax, curves[0][0])
    fig.suptitle("Fig 6: conservation laws through the A-B-A protocol; target noise breaks them")
    return fig, numbers


@float64
def draw_fig7(histories, config, out):
    curves = _aba_curves(histories, config)
    fig = Figure(figsize=(22, 4.8), layout="constrained")
    axes = _protocol_panels(fig, curves, 4)
    inv = _invariants(config, histories["network"])
    pick = thinned(inv.epoch.values)
    for i, k in enumerate(inv.power.values):
        axes[3].plot(
            inv.epoch.values[pick],
            inv.drift.values[pick, i],
            color=f"C{i}",
            label=rf"tr$((JS)^{k})$ - initial, network N={config.N}",
            **NETWORK,
        )
    axes[3].set_title("drift of the SGD invariants under Adam", fontsize="medium", y=1.05)  # above the phases
    axes[3].set_xlabel(EPOCH_LABEL)
    axes[3].set_ylabel(r"tr$((JS)^k)$ - its initial value (dimensionless)")
    axes[3].legend(fontsize="x-small", loc="upper right")
    fig.suptitle(f"Fig 7: the A-B protocol with Adam (lr {config.phases[0].lr:g}), full network N = {config.N}")
    numbers = _memory_numbers(histories["network"], "network", sgd=False)
    numbers += _drift_numbers(config, histories["network"], "network", None, sgd=False)
    numbers.append(_final_loss(config, histories["network"]))
    return fig, numbers
