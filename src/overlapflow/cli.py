"""The ``overlapflow`` command line (typer).

    overlapflow demo [--out DIR] [--n N] [--epochs E] [--lr ETA] [--c C] [--seed S] [--quiet]
    overlapflow --version
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from . import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Learning dynamics of low-rank RNNs in overlap space.")


def _version(value: bool):
    if value:
        typer.echo(f"overlapflow {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """overlapflow: train low-rank RNNs in full and in overlap space, and compare.

    Run `overlapflow demo` for the rank-1 linear filter task of Ger & Barak (arXiv 2605.04115).
    """


@app.command()
def demo(
    out: Path = typer.Option(Path("overlapflow-demo"), "--out", help="Folder for compare.png/.pdf, network.nc, overlaps.nc."),
    n: int = typer.Option(500, "--n", min=4, help="Neurons N of the full network."),
    epochs: int = typer.Option(2000, "--epochs", min=0, help="Training epochs (SGD steps)."),
    lr: float = typer.Option(5e-3, "--lr", help="Overlap-scale learning rate eta (the network uses eta*N)."),
    c: float = typer.Option(0.2, "--c", help="Decay rate c* of the target filter a* exp(-c* t)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the network's random initial connectivity."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
):
    """Train the rank-1 linear exponential-filter task both ways and compare.

    The full network (N neurons, float32, SGD with rate eta*N) and its overlaps (exact step, float64) start from the same connectivity. The overlap theory is exact for a linear network, so the two agree up to float32 rounding.
    """
    for value, hint in ((lr, "--lr"), (c, "--c")):
        if not value > 0 or value == float("inf"):
            raise typer.BadParameter(f"{value!r}: must be a positive finite number", param_hint=hint)
    import jax

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
    for name, x, y, p in zip(names, solution(sim), solution(thy), paper):
        table.add_row(name, f"{x:.4f}", f"{y:.4f}", f"{p:.4f}")
    table.add_row("max overlap deviation", f"{deviation:.3e}", "", "")
    console.print(table)
    console.print("max overlap deviation: max over epochs and overlaps of |S_network - S_overlaps|")
    console.print("paper: a*, a*(1 - c*), 1 - c*, the continuous-time (dt -> 0) solution")

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


if __name__ == "__main__":  # pragma: no cover
    app()
