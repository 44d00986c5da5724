r"""The paper's figures (arXiv 2605.04115), each from a shipped config with the paper's settings.

``overlapflow reproduce FIG [--quick] [--out DIR]`` runs the figure's config
(``overlapflow/experiments/configs/*.toml``) with :func:`~overlapflow.experiments.run_experiment`,
then draws the figure (``figFIG.png`` and ``.pdf``) and writes its key numbers next to the paper's
(``summary.txt`` and ``figFIG.json``); the run's Histories (``<engine>.nc``) and checkpoint stay in
the folder. Running again in the same folder continues (or, if finished, just redraws) the run.

``--quick`` shrinks N and the epochs (settings in :data:`FIGURES`) so that each figure takes well
under a minute on a laptop CPU; its key numbers come close to the paper's but are not the paper's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ..history import max_overlap_deviation, overlap_labels, overlap_series
from ..meanfield import meanfield_forward
from ..network import network_forward
from ..tasks import WhiteNoiseFilter
from .config import ExperimentConfig, load_config_text
from .runner import CHECKPOINT, STATE_FILE, read_final_state, run_experiment


class FigureUnavailable(LookupError):
    """The figure is listed but cannot be reproduced yet (or is unknown)."""


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
    """A paper figure: its config, its drawing, its ``--quick`` settings (arguments of
    :meth:`ExperimentConfig.scaled`), or why it is not available yet."""

    id: str
    title: str
    config: str | None = None
    draw: Callable | None = None
    quick: dict = dataclasses.field(default_factory=dict)
    unavailable: str = ""

    @property
    def available(self) -> bool:
        return self.draw is not None


@dataclasses.dataclass
class FigureResult:
    fig: str
    out: Path
    numbers: list[KeyNumber]
    files: list[Path]
    histories: dict[str, xr.Dataset]


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


_QUICK_FILTER = dict(N=100, epoch_scale=0.5, checkpoint_every=1000)
_QUICK_ABA = dict(N=100, epoch_scale=0.3, checkpoint_every=300)
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
            unavailable="the twin-network experiment (overlapflow.phenomena.twin) has no figure runner yet",
        ),
        FigureSpec("3", "A-B-A memory: invisible overlaps keep a trace of B", "aba.toml", draw_fig3, _QUICK_ABA),
        FigureSpec(
            "4",
            "nonlinear flip-flop and A/B -> C memory (panels a-f)",
            unavailable="needs the nonlinear flip-flop and A/B -> C runners (figs 8-10)",
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
            "flip-flop: Gaussianity of the learned vectors; gradient flow vs descent vs Adam",
            unavailable="the nonlinear flip-flop figure is not written yet",
        ),
        FigureSpec(
            "9",
            "A/B -> C: visible overlaps agree, invisible differ (10 twin pairs)",
            unavailable="the A/B -> C twin-pair experiment is not written yet",
        ),
        FigureSpec(
            "10",
            "A/B -> C: decoding the training history from invisible overlaps",
            unavailable="the A/B -> C decoding experiment is not written yet",
        ),
        FigureSpec(
            "11",
            "structure of the overlap Gram map, linear vs nonlinear",
            unavailable="the Gram-map figure is not written yet",
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


def figure_config(fig: str, quick: bool = False) -> ExperimentConfig:
    """The shipped config of a figure (``--quick``: its smaller version)."""
    spec = FIGURES[figure_id(fig)]
    if not spec.available:
        raise FigureUnavailable(f"figure {spec.id} ({spec.title}) is not yet available: {spec.unavailable}")
    text = resources.files(__package__).joinpath("configs", spec.config).read_text(encoding="utf-8")
    config = load_config_text(text, source=f"overlapflow/experiments/configs/{spec.config}")
    return config.scaled(**spec.quick, suffix="-quick") if quick else config


def reproduce_figure(fig: str, quick: bool = False, out=None, progress: bool = False) -> FigureResult:
    """Run (or continue) a figure's config in ``out`` and draw it; returns its key numbers and files."""
    fig = figure_id(fig)
    spec = FIGURES[fig]
    config = figure_config(fig, quick)
    out = Path(out if out is not None else f"overlapflow-fig{fig}" + ("-quick" if quick else ""))
    resume = (out / CHECKPOINT / STATE_FILE).is_file()
    histories = run_experiment(config, out, progress=progress, resume=resume)
    figure, numbers = spec.draw(histories, config, out)
    files = _save(figure, out, f"fig{fig}")
    record = {
        "figure": fig,
        "title": spec.title,
        "quick": quick,
        "config": spec.config,
        "numbers": [n.as_dict() for n in numbers],
    }
    (out / f"fig{fig}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    with open(out / "summary.txt", "a", encoding="utf-8") as f:
        f.write(f"\nkey numbers of fig {fig}{' (--quick)' if quick else ''}: {spec.title}\n")
        f.write(format_numbers(numbers) + "\n")
    files += [out / f"fig{fig}.json", out / "summary.txt"] + [out / f"{name}.nc" for name in histories]
    return FigureResult(fig, out, numbers, files, histories)


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
