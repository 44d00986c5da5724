r"""The ``run``, ``validate`` and ``reproduce`` commands; :func:`register` adds them to a typer app.

    overlapflow run CONFIG [--out DIR] [--overwrite] [--quiet]     run an experiment config
    overlapflow run --resume FOLDER [--quiet]                      continue an interrupted run
    overlapflow validate CONFIG                                    check a config, run nothing
    overlapflow reproduce FIG [--quick] [--out DIR] [--quiet]      a figure of the paper
    overlapflow reproduce all [--quick] [--out DIR] [--quiet]      every figure (DIR/<folder> each)
    overlapflow reproduce --list                                   the figures and how each is made

Exit codes: 0 success; 1 the run diverged (NaN/Inf: the last good checkpoint and the partial
Histories are kept); 2 an invalid config, an occupied or foreign output folder, an unknown
figure, or a missing extra (figures 4, 9, 10 decode with scikit-learn: ``pip install
'overlapflow[decode]'``) (``reproduce all``: the first failing figure's code, after trying every figure). Progress
bars show unless ``--quiet`` or stdout is not a terminal. The functions can be called from Python
too (they raise ``typer.Exit`` with the exit code).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

EXIT_DIVERGED = 1
EXIT_USAGE = 2


def output_console() -> Console:
    return Console(soft_wrap=True)


def print_error(message: str) -> None:
    """Print ``message`` as an error; brackets in it (``[[phases]]``, ``[grid]``) are kept as text."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(f"[red]error:[/red] {escape(message)}", markup=True)


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stdout.isatty()


def _results_table(histories, out: Path) -> Table:
    from ..history import max_overlap_deviation

    table = Table(box=box.SIMPLE_HEAD, title=f"results in {out}")
    table.add_column("engine")
    table.add_column("final loss", justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("max |S_network - S_engine|", justify="right")
    for name, history in histories.items():
        deviation = ""
        if (
            name != "network"
            and "network" in histories
            and history.sizes["epoch"] == histories["network"].sizes["epoch"]
        ):
            deviation = f"{max_overlap_deviation(histories['network'], history):.3e}"
        table.add_row(name, f"{float(history.loss.values[-1]):.4e}", str(history.sizes["epoch"] - 1), deviation)
    return table


# ---------------------------------------------------------------------------- run
def run(
    config_path: Annotated[
        Path | None,
        typer.Argument(
            help="Experiment config (TOML). Optional with --resume (the run's stored config is used).",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue the interrupted run in this output folder from its last checkpoint.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: the config's `output`).", show_default=False)
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Start afresh in an output folder that already holds a run (its run files are removed)."
        ),
    ] = False,
):
    """Run an experiment config: its phases on the selected engines, checkpointed every `checkpoint_every` epochs.

    Writes <engine>.nc (Histories), config.toml, config.json, summary.txt and checkpoint/ to the output folder.
    An interrupted run continues with --resume FOLDER and ends exactly as an uninterrupted one.
    """
    from .config import ConfigError, load_config, parse_config
    from .runner import ExperimentDiverged, RunError, run_experiment

    console = output_console()
    try:
        if resume is not None:
            stored = resume / "config.json"
            if not stored.is_file():
                raise RunError(f"nothing to resume in {resume}: {stored} is missing")
            if out is not None and out.resolve() != resume.resolve():
                raise RunError(
                    f"--out {out} and --resume {resume} name different folders; a run resumes in its own folder"
                )
            config = (
                load_config(config_path)
                if config_path is not None
                else parse_config(json.loads(stored.read_text()), source=str(stored))
            )
            folder = resume
        else:
            if config_path is None:
                print_error(
                    "give a config file (overlapflow run CONFIG) or a run to continue (overlapflow run --resume FOLDER)"
                )
                raise typer.Exit(EXIT_USAGE)
            config = load_config(config_path)
            folder = out if out is not None else Path(config.output)
        if not quiet:
            console.print(
                f"{'resuming' if resume else 'running'} {config.name}: {len(config.phases)} phase(s), "
                f"{config.total_epochs} epochs, engines {', '.join(config.engines.names())} -> {folder}"
            )
        histories = run_experiment(
            config, folder, progress=show_progress(quiet), resume=resume is not None, overwrite=overwrite
        )
    except ConfigError as error:
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    except RunError as error:
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    except ExperimentDiverged as error:
        print_error(str(error))
        raise typer.Exit(EXIT_DIVERGED) from None
    console.print(_results_table(histories, folder))
    console.print(f"wrote {', '.join(str(folder / f'{name}.nc') for name in histories)}, {folder / 'summary.txt'}")
    return histories


# ---------------------------------------------------------------------------- validate
def validate(
    config_path: Annotated[Path, typer.Argument(help="Experiment config (TOML) to check.", show_default=False)],
):
    """Check an experiment config completely (types, ranges, tasks, engines, initial state) without running it."""
    from .config import ConfigError, load_config
    from .runner import describe_config

    try:
        config = load_config(config_path)
    except ConfigError as error:
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    console = output_console()
    console.print(f"{config_path}: valid experiment '{config.name}'")
    for line in describe_config(config):
        console.print(f"  {line}", markup=False, highlight=False)
    return config


# ---------------------------------------------------------------------------- reproduce
def _figure_table() -> Table:
    from .figures.registry import FIGURES

    table = Table(box=box.SIMPLE_HEAD, title="figures of arXiv 2605.04115 (folder: overlapflow-FOLDER)")
    table.add_column("fig")
    table.add_column("status")
    table.add_column("made from")
    table.add_column("folder")
    table.add_column("what it shows")
    for spec in FIGURES.values():
        table.add_row(spec.id, "available", spec.config or spec.run.__name__, spec.folder, spec.title)
    return table


def _reproduce_one(fig: str, quick: bool, out: Path | None, progress: bool, console: Console):
    """Make one figure and print its key numbers; returns (FigureResult or None, exit code)."""
    from .._extras import MissingExtra
    from .config import ConfigError
    from .figures import FigureUnavailable, format_numbers, reproduce_figure
    from .runner import ExperimentDiverged, RunError

    try:
        result = reproduce_figure(fig, quick=quick, out=out, progress=progress)
    except FigureUnavailable as error:
        print_error(f"{error}. See overlapflow reproduce --list.")
        return None, EXIT_USAGE
    except MissingExtra as error:
        print_error(f"fig {fig}: {error}")
        return None, EXIT_USAGE
    except (ConfigError, RunError) as error:
        print_error(f"fig {fig}: {error}")
        return None, EXIT_USAGE
    except ExperimentDiverged as error:
        print_error(f"fig {fig}: {error}")
        return None, EXIT_DIVERGED
    console.print(f"fig {result.fig}{' (--quick)' if quick else ''}: key numbers")
    console.print(format_numbers(result.numbers), markup=False, highlight=False)
    console.print(f"wrote {', '.join(str(p) for p in result.files)}")
    return result, 0


def _reproduce_all(quick: bool, out: Path | None, progress: bool, console: Console):
    """Every figure in the paper's order, each in its default folder (or OUT/<folder>); figures that
    share data share a folder and compute it once. A figure that fails does not stop the others; the
    exit code is the first failure's."""
    import time

    from .figures.registry import FIGURES, default_folder

    results, rows, code = [], [], 0
    for spec in FIGURES.values():
        started = time.perf_counter()
        folder = default_folder(spec.id, quick) if out is None else out / spec.folder
        result, status = _reproduce_one(spec.id, quick, folder, progress, console)
        seconds = time.perf_counter() - started
        code = code or status
        rows.append((spec.id, "ok" if status == 0 else f"failed (exit {status})", f"{seconds:.1f}", str(folder)))
        if result is not None:
            results.append(result)
    table = Table(box=box.SIMPLE_HEAD, title=f"overlapflow reproduce all{' --quick' if quick else ''}")
    for column, justify in (("fig", "left"), ("status", "left"), ("seconds", "right"), ("folder", "left")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if code:
        raise typer.Exit(code)
    return results


def reproduce(
    fig: Annotated[
        str | None,
        typer.Argument(help="Figure: 1c, 2, 3, ..., 12 (see --list), or all.", show_default=False),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller N, fewer epochs: about a minute per figure, or less.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output folder (default: overlapflow-FOLDER, or overlapflow-FOLDER-quick, FOLDER as in --list). "
            "With all: one subfolder FOLDER per figure in it.",
            show_default=False,
        ),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the figures and how each is made.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
):
    """Reproduce a figure of the paper (or all of them) with the paper's settings.

    Writes figFIG.png and .pdf, the data (netCDF) and summary.txt + figFIG.json with the key numbers
    next to the paper's. Running again in the same folder continues an interrupted run, reuses
    finished runs and stored data, and redraws. Figures that share data share a folder.
    """
    console = output_console()
    if list_:
        console.print(_figure_table())
        return None
    if fig is None:
        print_error("give a figure (e.g. overlapflow reproduce 5), all, or --list")
        raise typer.Exit(EXIT_USAGE)
    if fig.strip().lower() == "all":
        return _reproduce_all(quick, out, show_progress(quiet), console)
    result, code = _reproduce_one(fig, quick, out, show_progress(quiet), console)
    if code:
        raise typer.Exit(code)
    return result


def register(app: typer.Typer) -> typer.Typer:
    """Add the ``run``, ``validate`` and ``reproduce`` commands to ``app``."""
    app.command("run")(run)
    app.command("validate")(validate)
    app.command("reproduce")(reproduce)
    return app
