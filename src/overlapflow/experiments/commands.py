r"""The ``run``, ``validate`` and ``reproduce`` commands; :func:`register` adds them to a typer app.

    overlapflow run CONFIG [--out DIR] [--overwrite] [--quiet]     run an experiment config
    overlapflow run --resume FOLDER [--quiet]                      continue an interrupted run
    overlapflow validate CONFIG                                    check a config, run nothing
    overlapflow reproduce FIG [--quick] [--out DIR] [--quiet]      a figure of the paper
    overlapflow reproduce --list                                   the figures and their status

Exit codes: 0 success; 1 the run diverged (NaN/Inf: the last good checkpoint and the partial
Histories are kept); 2 an invalid config, an occupied or foreign output folder, or a figure that is
unknown or not yet available. Progress bars show unless ``--quiet`` or stdout is not a terminal.
The functions can be called from Python too (they raise ``typer.Exit`` with the exit code).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

EXIT_DIVERGED = 1
EXIT_USAGE = 2


def _console() -> Console:
    return Console(soft_wrap=True)


def _error(message: str) -> None:
    Console(stderr=True, soft_wrap=True, highlight=False).print(f"[red]error:[/red] {message}", markup=True)


def _progress(quiet: bool) -> bool:
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

    console = _console()
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
                _error(
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
            config, folder, progress=_progress(quiet), resume=resume is not None, overwrite=overwrite
        )
    except ConfigError as error:
        _error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    except RunError as error:
        _error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    except ExperimentDiverged as error:
        _error(str(error))
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
        _error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    console = _console()
    console.print(f"{config_path}: valid experiment '{config.name}'")
    for line in describe_config(config):
        console.print(f"  {line}", markup=False, highlight=False)
    return config


# ---------------------------------------------------------------------------- reproduce
def _figure_table() -> Table:
    from .figures import FIGURES

    table = Table(box=box.SIMPLE_HEAD, title="figures of arXiv 2605.04115")
    table.add_column("fig")
    table.add_column("status")
    table.add_column("what it shows")
    for spec in FIGURES.values():
        status = f"available ({spec.config})" if spec.available else "not yet available"
        table.add_row(spec.id, status, spec.title if spec.available else f"{spec.title} [{spec.unavailable}]")
    return table


def reproduce(
    fig: Annotated[
        str | None, typer.Argument(help="Figure: 1c, 3, 5, 6, 7, 12 (see --list).", show_default=False)
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller N and fewer epochs: well under a minute per figure.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output folder (default: overlapflow-figFIG, or overlapflow-figFIG-quick).",
            show_default=False,
        ),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the figures and whether each can be reproduced.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
):
    """Reproduce a figure of the paper from its shipped config.

    Writes figFIG.png and .pdf, the data (netCDF) and summary.txt with the key numbers next to the paper's.

    Running again in the same folder continues an interrupted run, or only redraws a finished one.
    """
    from .config import ConfigError
    from .figures import FigureUnavailable, format_numbers, reproduce_figure
    from .runner import ExperimentDiverged, RunError

    console = _console()
    if list_:
        console.print(_figure_table())
        return None
    if fig is None:
        _error("give a figure (e.g. overlapflow reproduce 5) or --list")
        raise typer.Exit(EXIT_USAGE)
    try:
        result = reproduce_figure(fig, quick=quick, out=out, progress=_progress(quiet))
    except FigureUnavailable as error:
        _error(f"{error}. See overlapflow reproduce --list.")
        raise typer.Exit(EXIT_USAGE) from None
    except (ConfigError, RunError) as error:
        _error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    except ExperimentDiverged as error:
        _error(str(error))
        raise typer.Exit(EXIT_DIVERGED) from None
    console.print(f"fig {result.fig}{' (--quick)' if quick else ''}: key numbers")
    console.print(format_numbers(result.numbers), markup=False, highlight=False)
    console.print(f"wrote {', '.join(str(p) for p in result.files)}")
    return result


def register(app: typer.Typer) -> typer.Typer:
    """Add the ``run``, ``validate`` and ``reproduce`` commands to ``app``."""
    app.command("run")(run)
    app.command("validate")(validate)
    app.command("reproduce")(reproduce)
    return app
