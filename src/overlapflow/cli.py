"""The ``overlapflow`` command line (typer).

overlapflow demo [--out DIR] [--n N] [--epochs E] [--lr ETA] [--c C] [--seed S] [--quiet]
overlapflow validate-theory [--task flipflop|pulses] [--sizes N1,N2,..] [--seeds K] [--epochs E]
                            [--lr ETA] [--nodes Q] [--out DIR] [--quick] [--quiet] [--seed S]
overlapflow run | validate | reproduce | sweep ...   (overlapflow.experiments.commands, .sweep_commands)
overlapflow --version

Starting is quick: this module and the command modules import typer and rich only; JAX, xarray,
matplotlib and pydantic are imported by the command that runs, so ``--help`` and ``--version`` do
not load them (``tests/test_cli_startup.py``). The help is plain text (no rich panels): the same in a
terminal and in the docs, and flags show as flags (``--quiet``), not as ``--quiet <bool>``.
"""

from __future__ import annotations

import functools
import math
import os
import time
from enum import Enum
from pathlib import Path

import typer

from ._version import __version__
from .compilation_cache import DISABLE_VARIABLE as DISABLE_CACHE_VARIABLE
from .experiments.commands import register as register_experiment_commands
from .experiments.sweep_commands import register as register_sweep_command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Learning dynamics of low-rank RNNs in overlap space.",
)


def _version(value: bool):
    if value:
        typer.echo(f"overlapflow {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    no_cache: bool = typer.Option(
        False,
        "--no-cache",
        help="Do not keep compiled programs between runs (JAX's persistent compilation cache, in "
        "~/.cache/overlapflow/jax; OVERLAPFLOW_CACHE_DIR moves it, OVERLAPFLOW_NO_CACHE=1 turns it off).",
    ),
):
    """overlapflow: train low-rank RNNs in full and in overlap space, and compare.

    Run `overlapflow demo` for the rank-1 linear filter task of Ger & Barak (arXiv 2605.04115).
    """
    if no_cache:
        os.environ[DISABLE_CACHE_VARIABLE] = "1"


def _in_float64(command):
    """``command`` with float64 enabled for the whole process when it starts: the command line is its
    own process (overlapflow.precision), as the library's entry points have inside their scope. Full
    networks stay float32 unless asked. JAX's persistent compilation cache is turned on there too
    (unless ``--no-cache``). Not in the group's callback: that one also runs for
    ``overlapflow COMMAND --help``, which must not import JAX."""

    @functools.wraps(command)
    def run_command(*args, **kwargs):
        from . import compilation_cache
        from .precision import enable_globally

        enable_globally()
        compilation_cache.enable()  # repeated runs start computing at once (overlapflow.compilation_cache)
        return command(*args, **kwargs)

    return run_command


DEMO_HELP = (
    "Train the rank-1 linear exponential-filter task both ways and compare.\n\n"
    "The full network (N neurons, float32, SGD with rate eta*N) and its overlaps (exact step, float64) "
    "start from the same connectivity. The overlap theory is exact for a linear network, so the two "
    "agree up to float32 rounding."
)


@app.command(help=DEMO_HELP)
def demo(
    out: Path = typer.Option(
        Path("overlapflow-demo"), "--out", help="Folder for compare.png/.pdf, network.nc, overlaps.nc."
    ),
    n: int = typer.Option(500, "--n", min=4, help="Neurons N of the full network."),
    epochs: int = typer.Option(2000, "--epochs", min=0, help="Training epochs (SGD steps)."),
    lr: float = typer.Option(5e-3, "--lr", help="Overlap-scale learning rate eta (the network uses eta*N)."),
    c: float = typer.Option(0.2, "--c", help="Decay rate c* of the target filter a* exp(-c* t)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the network's random initial connectivity."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress report."),
):
    """Train the rank-1 linear exponential-filter task both ways and compare (help: DEMO_HELP)."""
    for value, hint in ((lr, "--lr"), (c, "--c")):
        if not value > 0 or value == float("inf"):
            raise typer.BadParameter(f"{value!r}: must be a positive finite number", param_hint=hint)
    import jax
    from rich.console import Console
    from rich.table import Table

    import overlapflow as of
    from overlapflow.plot import compare

    console = Console()
    started = time.perf_counter()
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=c)
    try:
        theta = rnn.init(jax.random.key(seed), N=n)  # float32, as the paper
        S0 = of.Overlaps.from_params(rnn, theta)
        sim = of.train_network(rnn, task, theta, lr=lr, epochs=epochs, progress=not quiet)
        thy = of.train_overlaps(rnn, task, S0, lr=lr, epochs=epochs, method="exact", progress=not quiet)
    except of.DivergenceError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None

    deviation = of.max_overlap_deviation(sim, thy)

    def final(h, label):
        return float(of.overlap_series(h, label)[-1])

    def solution(h):
        return final(h, "zm"), final(h, "zu") * final(h, "vm"), final(h, "vu")

    a = task.a
    table = Table(title=f"rank-1 linear filter, c*={c:g}, N={n}, eta={lr:g}, {epochs} epochs")
    table.add_column("")
    table.add_column(f"network {theta.dtype}", justify="right")
    table.add_column("overlaps exact", justify="right")
    table.add_column("paper", justify="right")
    table.add_row("final loss", f"{float(sim.loss[-1]):.3e}", f"{float(thy.loss[-1]):.3e}", "0")
    names = ("sigma_zm", "sigma_zu*sigma_vm", "sigma_vu")
    paper = (a, a * (1 - c), 1 - c)
    for name, x, y, p in zip(names, solution(sim), solution(thy), paper, strict=False):
        table.add_row(name, f"{x:.4f}", f"{y:.4f}", f"{p:.4f}")
    table.add_row("max overlap deviation", f"{deviation:.3e}", "", "")
    console.print(table)
    console.print("max overlap deviation: max over epochs and overlaps of |S_network - S_overlaps|")
    console.print("paper: a*, a*(1 - c*), 1 - c*, the continuous-time (dt -> 0) solution")
    device = jax.devices()[0]
    console.print(f"device: {device.device_kind} ({jax.default_backend()}; JAX {jax.__version__})")

    out.mkdir(parents=True, exist_ok=True)
    fig = compare(sim, thy, path=out / "compare.png")
    fig.savefig(out / "compare.pdf")
    sim.to_netcdf(out / "network.nc")
    thy.to_netcdf(out / "overlaps.nc")
    console.print(
        f"wrote {out / 'compare.png'}, {out / 'compare.pdf'}, {out / 'network.nc'}, {out / 'overlaps.nc'} "
        f"({time.perf_counter() - started:.1f} s)",
        soft_wrap=True,
    )


class NetworkDtype(str, Enum):
    float32 = "float32"
    float64 = "float64"


class ValidationTask(str, Enum):
    flipflop = "flipflop"
    pulses = "pulses"


# Settings of `validate-theory`: the full study, and `--quick` (under a minute on a laptop CPU).
# Options given explicitly on the command line override either.
VALIDATION_FULL = dict(sizes="250,1000,4000,16000", seeds=3, epochs=200, nodes=6, right_nodes=3, t_max=20.0, batch=10)
VALIDATION_QUICK = dict(sizes="250,1000", seeds=2, epochs=40, nodes=4, right_nodes=2, t_max=5.0, batch=4)


def _preset_help(text: str, name: str) -> str:
    return f"{text} [default: {VALIDATION_FULL[name]}; --quick: {VALIDATION_QUICK[name]}]"  # plain help: no markup


def _parse_sizes(text: str, minimum: int) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        message = f"{text!r}: must be comma-separated integers, e.g. 250,1000,4000"
        raise typer.BadParameter(message, param_hint="--sizes") from None
    if not sizes or sizes[0] < minimum:
        raise typer.BadParameter(f"{text!r}: give at least one size, each >= {minimum}", param_hint="--sizes")
    return sizes


def pulses_task(dt: float, t_max: float = 5.0):
    """A fixed batch of one trial: a +1 pulse on [0.25, 0.75), a -1 pulse on [2.5, 3); target 0.5 x the
    sign of the integrated input (0.5 from the first pulse until the second has cancelled it, 0
    before and after); mean squared error. At dt = 0.05: 100 steps, ``pulse_task`` of the tests."""
    import numpy as np

    import overlapflow as of

    T = round(t_max / dt)
    x = np.zeros((T, 1))
    x[round(0.25 / dt) : round(0.75 / dt), 0] = 1.0
    x[round(2.5 / dt) : round(3.0 / dt), 0] = -1.0
    return of.tasks.FixedBatch(x, 0.5 * np.sign(np.cumsum(x[:, 0]))[:, None], loss="mse")


def _report_epochs(epochs: int) -> list[int]:
    """Epochs 1, 10%, 50% and 100% of the run (distinct, >= 1)."""
    return sorted({min(epochs, max(1, round(f * epochs))) for f in (0.0, 0.1, 0.5, 1.0)} | {min(1, epochs)})


def _sci(x: float) -> str:
    return f"{x:.2e}" if math.isfinite(x) else "-"


def validation_table(result, wall: float | None = None) -> tuple:
    """The rich Table of a validate_theory result, and the lines printed under it."""
    import numpy as np
    from rich import box
    from rich.table import Table

    dev = np.asarray(result.network_deviation.values, dtype=float)
    sizes = [int(n) for n in result.N.values]
    seeds = dev.shape[1]
    epochs = int(result.epoch.values[-1])
    picks = _report_epochs(epochs) if epochs > 0 else [0]
    a = result.attrs
    table = Table(
        title=f"max over overlaps of |S - S_inf|; S_inf: N -> infinity limit ({a['particles']})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="max_t: over the run (mean, std over seeds); epoch k: at epoch k (seed mean)",
    )
    table.add_column("", no_wrap=True)
    table.add_column("max_t mean", justify="right", no_wrap=True)
    table.add_column(f"std ({seeds})", justify="right", no_wrap=True)
    for k in picks:
        table.add_column(f"epoch {k}", justify="right", no_wrap=True)
    for i, N in enumerate(sizes):
        std = float(dev[i].std(ddof=1)) if seeds > 1 else float("nan")
        per_epoch = result.network_epoch_deviation.values[i]
        values = [_sci(float(per_epoch[k])) for k in picks]
        table.add_row(f"N={N}", _sci(float(dev[i].mean())), _sci(std), *values)
    closure = np.asarray(result.closure_deviation.values, dtype=float)
    values = [_sci(float(closure[k])) for k in picks]
    table.add_row("closure", _sci(float(closure.max())), "", *values, style="red")

    p, c = float(a["exponent"]), float(a["prefactor"])
    lines = [f"fitted exponent: {p:.3f}  (max_t mean ~ {c:.3g} N^{p:.3f}; N^-1/2 expected)"]
    closure_max = float(a["closure_max_deviation"])
    lines.append(f"closure max deviation: {closure_max:.3e}")
    if math.isfinite(p) and p < 0 and c > 0 and closure_max > 0:
        crossover = (closure_max / c) ** (1 / p)
        lines.append(f"networks come closer to the limit than the closure above N ~ {crossover:.3g} (from the fit)")
    if wall is not None:
        lines.append(f"wall time: {wall:.1f} s")
    return table, lines


VALIDATE_THEORY_HELP = (
    "Finite erf networks at several N vs the N -> infinity limit (particles) vs the Gaussian closure.\n\n"
    "A rank-1 erf network learns the task from overlaps S_0 (those of a random 200-neuron network). "
    "Networks of each size N start with Gram matrix exactly S_0 (several seeds); the N -> infinity limit is "
    "computed by particles (a Gauss-Hermite grid), the Gaussian closure by train_overlaps; all see the same "
    "batches. Prints, per N, the distance max_t |S_N - S_inf| (mean and std over seeds), its fitted power law "
    "in N (about N^-1/2 expected) and the closure's distance, which grows with training and does not shrink "
    "with N. Writes validation.nc, validation.png/.pdf and summary.txt."
)


@app.command("validate-theory", help=VALIDATE_THEORY_HELP)
def validate_theory_command(
    task_name: ValidationTask = typer.Option(
        ValidationTask.flipflop,
        "--task",
        help="flipflop: the paper's 1-bit flip-flop (dt 0.025, batch 10, t_max 20; --quick: batch 4, t_max 5); "
        "pulses: one fixed trial with two pulses (dt 0.05, 100 steps).",
    ),
    sizes: str | None = typer.Option(None, "--sizes", help=_preset_help("Comma-separated network sizes N.", "sizes")),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help=_preset_help("Networks (seeds) per N.", "seeds")),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help=_preset_help("SGD epochs.", "epochs")),
    lr: float = typer.Option(0.05, "--lr", help="Overlap-scale learning rate eta (networks use eta*N)."),
    nodes: int | None = typer.Option(
        None,
        "--nodes",
        min=1,
        help=_preset_help("Particle limit (split rule): Gauss-Hermite nodes per direction inside phi.", "nodes"),
    ),
    right_nodes: int | None = typer.Option(
        None,
        "--right-nodes",
        min=1,
        help=_preset_help("Particle limit (split rule): nodes per direction outside phi.", "right_nodes"),
    ),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Worker processes for the networks and the limit (0: one per core)."
    ),
    network_dtype: NetworkDtype = typer.Option(
        NetworkDtype.float32,
        "--dtype",
        help="The networks' dtype (the limit and the closure are float64): float32 is 1.6x faster, and its "
        "round-off (about 1e-6 in S) is far below the networks' distance from the limit.",
    ),
    out: Path = typer.Option(
        Path("overlapflow-validation"), "--out", help="Folder for validation.nc, validation.png/.pdf and summary.txt."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A small run (under a minute): the --quick settings of the options above."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress report."),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the initial overlaps S_0 (a random N=200 network), the batches and the networks."
    ),
):
    """Finite networks vs the N -> infinity limit vs the Gaussian closure (help: VALIDATE_THEORY_HELP)."""
    preset = VALIDATION_QUICK if quick else VALIDATION_FULL
    sizes = sizes if sizes is not None else preset["sizes"]
    seeds = seeds if seeds is not None else preset["seeds"]
    epochs = epochs if epochs is not None else preset["epochs"]
    nodes = nodes if nodes is not None else preset["nodes"]
    right_nodes = right_nodes if right_nodes is not None else preset["right_nodes"]
    workers = workers or os.cpu_count() or 1
    if not lr > 0 or lr == float("inf"):
        raise typer.BadParameter(f"{lr!r}: must be a positive finite number", param_hint="--lr")
    import jax
    import jax.numpy as jnp
    from rich.console import Console

    import overlapflow as of
    from overlapflow.validation import validate_theory
    from overlapflow.validation_plot import plot_validation

    console = Console()
    started = time.perf_counter()
    if task_name == ValidationTask.flipflop:
        rnn = of.LowRankRNN(rank=1, phi="erf", dt=0.025)
        task = of.tasks.FlipFlop(batch_size=preset["batch"], t_max=preset["t_max"])
    else:
        rnn = of.LowRankRNN(rank=1, phi="erf", dt=0.05)
        task = pulses_task(rnn.dt)
    size_list = _parse_sizes(sizes, rnn.n_vectors)
    key = jax.random.key(seed)
    S0 = of.Overlaps.from_params(rnn, rnn.init(key, N=200, dtype=jnp.float64))
    if not quiet:
        console.print(
            f"validate-theory: {task.describe()}; rank-1 erf, dt={rnn.dt:g}, eta={lr:g}, {epochs} epochs; "
            f"N = {', '.join(map(str, size_list))} x {seeds} seeds; "
            f"particles: split rule, {nodes} x {right_nodes} nodes per direction; networks in {network_dtype.value}; "
            f"{workers} worker process(es)",
            soft_wrap=True,
        )
    try:
        result = validate_theory(
            rnn,
            task,
            S0,
            lr,
            epochs,
            size_list,
            seeds,
            nodes=nodes,
            right_nodes=right_nodes,
            key=jax.random.fold_in(key, 1),
            progress=not quiet,
            workers=workers,
            network_dtype=network_dtype.value,
        )
    except of.DivergenceError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    result.attrs["seed"] = seed
    result.attrs["task_name"] = task_name.value
    wall = time.perf_counter() - started

    table, lines = validation_table(result, wall)
    console.print(table)
    for line in lines:
        console.print(line, soft_wrap=True)

    out.mkdir(parents=True, exist_ok=True)
    result.to_netcdf(out / "validation.nc")
    fig = plot_validation(result, path=out / "validation.png")
    fig.savefig(out / "validation.pdf")
    with open(out / "summary.txt", "w") as f:
        file_console = Console(file=f, width=160, no_color=True, force_terminal=False)
        file_console.print(
            f"overlapflow validate-theory --task {task_name.value} --sizes {','.join(map(str, size_list))} "
            f"--seeds {seeds} --epochs {epochs} --lr {lr:g} --nodes {nodes} --right-nodes {right_nodes} "
            f"--workers {workers} --dtype {network_dtype.value} --seed {seed}" + " --quick" * quick,
            soft_wrap=True,
        )
        file_console.print(f"task: {task.describe()}; rank-1 erf, dt={rnn.dt:g}", soft_wrap=True)
        file_console.print(table)
        for line in lines:
            file_console.print(line, soft_wrap=True)
    files = [out / name for name in ("validation.nc", "validation.png", "validation.pdf", "summary.txt")]
    console.print(f"wrote {', '.join(map(str, files))}", soft_wrap=True)


register_experiment_commands(app)  # run, validate, plot, reproduce
register_sweep_command(app)  # sweep
for _command in app.registered_commands:
    _command.callback = _in_float64(_command.callback)

if __name__ == "__main__":  # pragma: no cover
    app()
