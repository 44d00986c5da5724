"""Fig 2 (degeneracy): twin networks, identical output, different learning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ...model import LowRankRNN
from ...overlaps import Overlaps
from ...precision import float64
from ...tasks import ExponentialFilter
from .data import stored
from .drawing import (
    EPOCH_LABEL,
    LOSS_LABEL,
    NETWORK,
    OUTPUT_LABEL,
    THEORY,
    jitted_meanfield_forward,
    jitted_network_forward,
    plain_log_labels,
    time_label,
)
from .spec import KeyNumber


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


@float64
def run_twins(settings: TwinSettings, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Fig 2's data, ``twins.nc``: :func:`~overlapflow.phenomena.learning_separation` of theta_1 and its
    twin (losses, overlaps, output distance per epoch), each one's theory loss (``theory_loss_a``,
    ``_b``), and the outputs on the impulse (``time``) before learning, under noise injected into h
    and after ``compare_at`` epochs (from the learned overlaps: exact for a linear network)."""
    return {"twins": stored(out, "twins", dataclasses.asdict(settings), lambda: _twin_data(settings))}


def _twin_data(s: TwinSettings) -> xr.Dataset:
    from ...engines import OverlapEngine
    from ...phenomena.twin import learning_separation, noise_response, twin_network
    from ...training import train

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
        data[f"output_{member}"] = ("time", np.asarray(jitted_network_forward(rnn, theta, inputs))[0, :, 0])
        data[f"noisy_output_{member}"] = ("time", np.asarray(noisy)[0, :, 0])
        data[f"learned_output_{member}"] = ("time", np.asarray(jitted_meanfield_forward(rnn, learned, inputs))[0, :, 0])
        theory = train(OverlapEngine(), rnn, task, Overlaps.from_params(rnn, theta), s.lr, s.epochs).history
        data[f"theory_loss_{member}"] = ("epoch", theory.loss.values)
    time = rnn.dt * np.arange(inputs.shape[1])
    return separation.assign(data).assign_coords(time=time).assign_attrs(compare_at=s.compare_at)


@float64
def draw_fig2(data, settings: TwinSettings, out):
    d = data["twins"]
    t, at = d.time.values, settings.compare_at
    # both members are full networks: theta_1 the band, its twin the thin dashed line on top (their
    # outputs coincide before learning); in the loss panel each member also has its theory
    members = (("a", r"$\theta_1$", "C0"), ("b", r"$\theta_2$ (twin)", "C3"))
    member_styles = {"a": NETWORK, "b": {**THEORY, "gid": "network"}}
    fig = Figure(figsize=(13, 8.4), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    panels = (
        ("output", "before learning: identical outputs"),
        ("noisy_output", f"noise injected into h (std {settings.noise_std:g}, same draw): identical outputs"),
        ("learned_output", f"after {at} epochs of learning: different outputs"),
    )
    for ax, (var, title) in zip(axes, panels, strict=False):
        if var == "learned_output":
            ax.plot(t, d.target.values, color="k", lw=1.0, label="target y*")
        for member, label, color in members:
            ax.plot(t, d[f"{var}_{member}"].values, color=color, label=f"network {label}", **member_styles[member])
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(time_label(float(t[1] - t[0]) if len(t) > 1 else None))
        ax.set_ylabel(OUTPUT_LABEL)
        ax.legend(fontsize="x-small", loc="upper right")
    ax = axes[3]
    for member, label, color in members:
        ax.plot(d.epoch.values, d[f"loss_{member}"].values, color=color, label=f"network {label}", **NETWORK)
        ax.plot(d.epoch.values, d[f"theory_loss_{member}"].values, color=color, label=f"theory {label}", **THEORY)
    ax.axvline(at, color="0.6", lw=0.8, zorder=0)
    ax.set_yscale("log")
    plain_log_labels(ax, [d[f"{kind}_{member}"].values for kind in ("loss", "theory_loss") for member in "ab"])
    ax.set_xlabel(EPOCH_LABEL)
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title("loss: the twins learn differently, each as its theory says", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper right", title="network: band; theory: dashed", title_fontsize="x-small")
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


def _relative_difference(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
