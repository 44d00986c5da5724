"""The ``overlapflow`` command line (typer).

overlapflow demo [--out DIR] [--n N] [--epochs E] [--lr ETA] [--c C] [--seed S] [--quiet]
overlapflow validate-theory [--task flipflop|pulses] [--start random|fig8] [--sizes N1,N2,..]
                            [--seeds K|K1,K2,..] [--epochs E] [--lr ETA] [--nodes Q] [--out DIR]
                            [--overwrite] [--quick] [--quiet] [--seed S]
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
        sim = of.train(of.NetworkEngine(), rnn, task, theta, lr=lr, epochs=epochs, progress=not quiet).history
        thy = of.train(of.OverlapEngine(), rnn, task, S0, lr=lr, epochs=epochs, progress=not quiet).history
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


class ValidationStart(str, Enum):
    random = "random"
    fig8 = "fig8"


# Settings of `validate-theory`: the full study, and `--quick` (under a minute on a laptop CPU).
# Options given explicitly on the command line override either.
VALIDATION_FULL = dict(sizes="250,1000,4000,16000", seeds=3, epochs=200, nodes=6, right_nodes=3, t_max=20.0, batch=10)
VALIDATION_QUICK = dict(sizes="250,1000", seeds=2, epochs=40, nodes=4, right_nodes=2, t_max=5.0, batch=4)


def _preset_help(text: str, name: str) -> str:
    return f"{text} [default: {VALIDATION_FULL[name]}; --quick: {VALIDATION_QUICK[name]}]"  # plain help: no markup


def _parse_integers(text: str, hint: str, example: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: must be comma-separated integers, e.g. {example}", param_hint=hint
        ) from None


def _parse_sizes(text: str, minimum: int, seeds: str = "1") -> tuple[list[int], list[int]]:
    """(sizes, seeds per size), sorted by size, from ``--sizes`` and ``--seeds`` (one count, or one per size)."""
    sizes = _parse_integers(text, "--sizes", "250,1000,4000")
    if not sizes or min(sizes) < minimum or len(set(sizes)) < len(sizes):
        raise typer.BadParameter(
            f"{text!r}: give at least one size, each >= {minimum}, none twice", param_hint="--sizes"
        )
    counts = _parse_integers(seeds, "--seeds", "3,3,3,1,1")
    counts = counts * len(sizes) if len(counts) == 1 else counts
    if len(counts) != len(sizes) or min(counts) < 1:
        raise typer.BadParameter(
            f"{seeds!r}: must be one integer >= 1, or one per size of --sizes ({len(sizes)})", param_hint="--seeds"
        )
    pairs = sorted(zip(sizes, counts, strict=True))
    return [N for N, _ in pairs], [k for _, k in pairs]


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
    """The rich Tables of a validate_theory result (distance per epoch; over the early and the
    learned epochs, to the limit and to the closure), and the lines printed under them."""
    import numpy as np
    from rich import box
    from rich.table import Table

    dev = np.asarray(result.network_deviation.values, dtype=float)
    sizes = [int(n) for n in result.N.values]
    counts = [int(k) for k in result.seeds.values]
    epochs = int(result.epoch.values[-1])
    picks = _report_epochs(epochs) if epochs > 0 else [0]
    a = result.attrs
    table = Table(
        title=f"max over overlaps of |S - S_inf|; S_inf: N -> infinity limit (particles: {a['particles']})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="max_t: over the run (mean, std over seeds); epoch k: at epoch k (seed mean)",
    )
    table.add_column("", no_wrap=True)
    table.add_column("seeds", justify="right", no_wrap=True)
    table.add_column("max_t mean", justify="right", no_wrap=True)
    table.add_column("std", justify="right", no_wrap=True)
    for k in picks:
        table.add_column(f"epoch {k}", justify="right", no_wrap=True)
    for i, N in enumerate(sizes):
        std = float(np.nanstd(dev[i], ddof=1)) if counts[i] > 1 else float("nan")
        per_epoch = result.network_epoch_deviation.values[i]
        values = [_sci(float(per_epoch[k])) for k in picks]
        table.add_row(f"N={N}", str(counts[i]), _sci(float(np.nanmean(dev[i]))), _sci(std), *values)
    closure = np.asarray(result.closure_deviation.values, dtype=float)
    values = [_sci(float(closure[k])) for k in picks]
    table.add_row("closure", "", _sci(float(closure.max())), "", *values, style="red")

    learned, early = int(a["learned_from"]), int(a["early_epochs"])
    spans = Table(
        title=f"max over epochs 0-{early} (early) and {learned}-{epochs} (learned: the limit's loss below "
        f"{a['learned_factor']:g}x its final value), mean over seeds",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="S: max over overlaps, f: over function coordinates (gauge-free); lim: to the limit, clo: to "
        "the closure; early S-lim over the early epochs, the others over the learned ones",
    )
    spans.add_column("", no_wrap=True)
    columns = {
        "early S-lim": "early_distance_to_limit",
        "S-lim": "learned_distance_to_limit",
        "S-clo": "learned_distance_to_closure",
        "f-lim": "function_learned_distance_to_limit",
        "f-clo": "function_learned_distance_to_closure",
    }
    for label in columns:
        spans.add_column(label, justify="right", no_wrap=True)
    for i, N in enumerate(sizes):
        spans.add_row(f"N={N}", *(_sci(float(np.nanmean(result[name].values[i]))) for name in columns.values()))
    closure_row = [_sci(float(x)) for x in (closure[: early + 1].max(), a["closure_to_limit"])]
    spans.add_row("closure", *closure_row, "", _sci(float(a["closure_to_limit_function"])), "", style="red")

    p, c = float(a["exponent"]), float(a["prefactor"])
    lines = [f"fitted exponent: {p:.3f}  (max_t mean ~ {c:.3g} N^{p:.3f}; N^-1/2 expected)"]
    lines.append(
        f"fitted exponents of the distance to the limit: {a['exponent_early']:.3f} over epochs 0-{early}, "
        f"{a['exponent_learned']:.3f} over the learned epochs "
        f"({a['exponent_learned_function']:.3f} in function coordinates)"
    )
    closure_max = float(a["closure_max_deviation"])
    lines.append(f"closure max deviation: {closure_max:.3e} (over the learned epochs: {a['closure_to_limit']:.3e})")
    p, c, target = float(a["exponent_learned"]), float(a["prefactor_learned"]), float(a["closure_to_limit"])
    if math.isfinite(p) and p < 0 and c > 0 and target > 0:
        crossover = (target / c) ** (1 / p)
        lines.append(
            f"networks come closer to the limit than the closure after learning above N ~ {crossover:.3g} "
            "(from the fit)"
        )
    lines.append(
        f"the limit's own error (against {a['finer_particles']}): {a['limit_error_max']:.2e} over the run, "
        f"{a['limit_error_learned']:.2e} over the learned epochs"
    )
    if "float32_round_off" in a:
        round_off = result.float32_round_off.values
        spans = {"early": round_off[: early + 1], "learned": round_off[learned:]}
        smallest = {name: np.nanmin(np.nanmean(result[f"{name}_distance_to_limit"].values, axis=1)) for name in spans}
        ratios = [
            f"{values.max():.2e} over the {name} epochs, {smallest[name] / values.max():.3g}x below the smallest "
            f"{name} distance to the limit (seed mean)"
            for name, values in spans.items()
        ]
        lines.append(
            f"float32 round-off (N={a['float32_round_off_N']}, seed 0, against float64): {round_off.max():.2e} over "
            f"the run; {'; '.join(ratios)}"
        )
    if wall is not None:
        lines.append(
            f"wall time: {wall:.1f} s ({a['jobs_run']} jobs run now; load average {a['load_average_mean']:.2f} "
            f"mean, {a['load_average_max']:.2f} max)"
        )
    return (table, spans), lines


VALIDATE_THEORY_HELP = (
    "Finite erf networks at several N vs the N -> infinity limit (particles) vs the Gaussian closure.\n\n"
    "A rank-1 erf network learns the task from overlaps S_0 (--start random: those of a random 200-neuron "
    "network; fig8: those of the fig 8 run). Networks of each size N start with Gram matrix exactly S_0 (one "
    "or more seeds); the N -> infinity limit is computed by particles (a Gauss-Hermite grid), the Gaussian "
    "closure by the overlap engine; all see the same batches. Prints, per N, the distance max |S_N - S_inf| "
    "over the run, the first epochs and the learned epochs (those where the limit's loss is below 10x its "
    "final value), the distance to the closure, both also in function coordinates, their fitted power laws "
    "in N (about N^-1/2 expected) and the closure's distance from the limit. Each run is a job kept in "
    "OUT/jobs: run the same command again to continue a stopped study, or with more sizes or seeds. Writes "
    "validation.nc, validation.png/.pdf and summary.txt."
)


@app.command("validate-theory", help=VALIDATE_THEORY_HELP)
def validate_theory_command(
    task_name: ValidationTask = typer.Option(
        ValidationTask.flipflop,
        "--task",
        help="flipflop: the paper's 1-bit flip-flop (dt 0.025, batch 10, t_max 20; --quick: batch 4, t_max 5); "
        "pulses: one fixed trial with two pulses (dt 0.05, 100 steps).",
    ),
    start: ValidationStart = typer.Option(
        ValidationStart.random,
        "--start",
        help="random: S_0 of a random 200-neuron network (--seed), output read after the step; fig8 (flipflop "
        "only): the fig 8 run (flipflop.toml): S_0 of its N = 600 network, output read before the step, and "
        "with --seed 0 its batches.",
    ),
    sizes: str | None = typer.Option(None, "--sizes", help=_preset_help("Comma-separated network sizes N.", "sizes")),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        help=_preset_help("Networks (seeds) per N: one count, or one per size of --sizes (e.g. 3,3,3,1,1).", "seeds"),
    ),
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
        help="The networks' dtype (the limit and the closure are float64): float32 is 1.6x faster; seed 0 of the "
        "smallest N then also runs in float64, and the report gives the round-off.",
    ),
    out: Path = typer.Option(
        Path("overlapflow-validation"),
        "--out",
        help="Folder for validation.nc, validation.png/.pdf, summary.txt, and the jobs (settings.json, jobs/).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Delete the jobs of a study with other settings in --out (else refused)."
    ),
    checkpoint_every: int = typer.Option(
        250, "--checkpoint-every", min=1, help="Epochs between two checkpoints of a job."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A small run (under a minute): the --quick settings of the options above."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress report."),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the initial overlaps S_0 (--start random), the batches and the networks."
    ),
):
    """Finite networks vs the N -> infinity limit vs the Gaussian closure (help: VALIDATE_THEORY_HELP)."""
    preset = VALIDATION_QUICK if quick else VALIDATION_FULL
    sizes = sizes if sizes is not None else preset["sizes"]
    seeds = seeds if seeds is not None else str(preset["seeds"])
    epochs = epochs if epochs is not None else preset["epochs"]
    nodes = nodes if nodes is not None else preset["nodes"]
    right_nodes = right_nodes if right_nodes is not None else preset["right_nodes"]
    workers = workers or os.cpu_count() or 1
    if not lr > 0 or lr == float("inf"):
        raise typer.BadParameter(f"{lr!r}: must be a positive finite number", param_hint="--lr")
    if start == ValidationStart.fig8 and task_name != ValidationTask.flipflop:
        raise typer.BadParameter(
            f"{start.value!r}: only with --task flipflop (not {task_name.value})", param_hint="--start"
        )
    from rich.console import Console

    import overlapflow as of
    from overlapflow.files import RunError
    from overlapflow.validation import validate_theory
    from overlapflow.validation_plot import plot_validation

    console = Console()
    started = time.perf_counter()
    rnn, S0, key = _validation_start(start, task_name, seed)
    if task_name == ValidationTask.flipflop:
        task = of.tasks.FlipFlop(batch_size=preset["batch"], t_max=preset["t_max"])
    else:
        task = pulses_task(rnn.dt)
    size_list, seed_list = _parse_sizes(sizes, rnn.n_vectors, seeds)
    seeds_text = ",".join(map(str, seed_list)) if len(set(seed_list)) > 1 else str(seed_list[0])
    command = (
        f"overlapflow validate-theory --task {task_name.value} --start {start.value} "
        f"--sizes {','.join(map(str, size_list))} --seeds {seeds_text} --epochs {epochs} --lr {lr:g} "
        f"--nodes {nodes} --right-nodes {right_nodes} --workers {workers} --dtype {network_dtype.value} "
        f"--seed {seed} --out {out}" + " --quick" * quick
    )
    if not quiet:
        console.print(
            f"validate-theory: {task.describe()}; rank-1 erf, dt={rnn.dt:g}, readout {rnn.readout}, eta={lr:g}, "
            f"{epochs} epochs; start {start.value}; N = {', '.join(map(str, size_list))} x {seeds_text} seeds; "
            f"particles: split rule, {nodes} x {right_nodes} nodes per direction; networks in {network_dtype.value}; "
            f"{workers} worker process(es); jobs in {out / 'jobs'}",
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
            seed_list,
            nodes=nodes,
            right_nodes=right_nodes,
            key=key,
            progress=not quiet,
            workers=workers,
            network_dtype=network_dtype.value,
            out=out,
            overwrite=overwrite,
            checkpoint_every=checkpoint_every,
        )
    except RunError as error:
        raise typer.BadParameter(str(error), param_hint="--out") from None
    except of.DivergenceError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    result.attrs.update(seed=seed, task_name=task_name.value, start=start.value, command=command)
    wall = time.perf_counter() - started

    tables, lines = validation_table(result, wall)
    for table in tables:
        console.print(table)
    for line in lines:
        console.print(line, soft_wrap=True)

    result.to_netcdf(out / "validation.nc")
    fig = plot_validation(result, path=out / "validation.png")
    fig.savefig(out / "validation.pdf")
    with open(out / "summary.txt", "w") as f:
        file_console = Console(file=f, width=160, no_color=True, force_terminal=False)
        file_console.print(command, soft_wrap=True)
        file_console.print(f"task: {task.describe()}; rank-1 erf, dt={rnn.dt:g}, readout {rnn.readout}", soft_wrap=True)
        for table in tables:
            file_console.print(table)
        for line in lines:
            file_console.print(line, soft_wrap=True)
    files = [out / name for name in ("validation.nc", "validation.png", "validation.pdf", "summary.txt")]
    console.print(f"wrote {', '.join(map(str, files))}", soft_wrap=True)


def _validation_start(start: ValidationStart, task_name: ValidationTask, seed: int):
    """(rnn, S0 (P, P), batches' key) of validate-theory: a random 200-neuron network's overlaps
    (batches from fold_in(key(seed), 1)), or the fig 8 run's network, S0 and batches (key(seed))."""
    import jax
    import jax.numpy as jnp

    import overlapflow as of

    key = jax.random.key(seed)
    if start == ValidationStart.fig8:
        from overlapflow.experiments.commands import shipped_configs
        from overlapflow.experiments.config import load_config

        config = load_config(shipped_configs()["flipflop"])
        rnn = config.build_network()
        theta = rnn.init(jax.random.key(config.seed), N=config.N, dtype=config.dtype)
        return rnn, of.Overlaps.from_params(rnn, theta).matrix, key
    rnn = of.LowRankRNN(rank=1, phi="erf", dt=0.025 if task_name == ValidationTask.flipflop else 0.05)
    S0 = of.Overlaps.from_params(rnn, rnn.init(key, N=200, dtype=jnp.float64)).matrix
    return rnn, S0, jax.random.fold_in(key, 1)


register_experiment_commands(app)  # run, validate, plot, reproduce
register_sweep_command(app)  # sweep
for _command in app.registered_commands:
    _command.callback = _in_float64(_command.callback)

if __name__ == "__main__":  # pragma: no cover
    app()
