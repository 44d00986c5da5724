r"""The ``sweep`` command; :func:`register` adds it to a typer app.

    overlapflow sweep SWEEP.toml [--workers K] [--quiet]        run the points that are not done
    overlapflow sweep SWEEP.toml --scheduler tcp://HOST:8786     ... on a running Dask scheduler
    overlapflow sweep SWEEP.toml --retry-failed                 ... and the failed points again
    overlapflow sweep SWEEP.toml --status                       done / failed / pending, the failures

Exit codes: 0 every point is done (``--status``: always 0); 1 some points failed (their errors
are in ``OUT/points/<id>/status.json``); 2 an invalid sweep file or base config, options that do
not go together, or the ``sweep`` extra missing (dask, distributed, zarr: the error line gives the
pip command; ``--status`` works without it); 130 interrupted (Ctrl-C): the cluster is closed and one
line on stderr says how many points are done and the command that continues (the same one: points
that are done are not run again, a point stopped midway continues from its last checkpoint). Progress:
a bar on a terminal, plain lines on stderr every 30 s otherwise; nothing with ``--quiet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .commands import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    command_line,
    output_console,
    print_error,
    print_interrupted,
    show_progress,
)

EXIT_FAILED = EXIT_DIVERGED


def status_table(status) -> Table:
    """A rich Table of a :class:`~overlapflow.experiments.sweep.SweepStatus`: the count per state."""
    table = Table(box=box.SIMPLE_HEAD, title=f"sweep points in {status.output}")
    table.add_column("state")
    table.add_column("points", justify="right")
    for state, count in status.counts.items():
        table.add_row(state, str(count))
    table.add_row("total", str(len(status.points)), style="bold")
    return table


def failures_table(status) -> Table:
    """A rich Table of the failed points: id, coordinates, the first line of the error."""
    where = escape(str(status.output / "points" / "<id>" / "status.json"))
    table = Table(box=box.SIMPLE_HEAD, title=f"failed points (tracebacks: {where})")
    table.add_column("id", no_wrap=True)
    table.add_column("point")
    table.add_column("error")
    for point in status.with_state("failed"):
        coords = ", ".join(f"{key}={value!r}" for key, value in point.coords.items())
        table.add_row(point.id, escape(coords), escape(point.error.strip().splitlines()[0]) if point.error else "")
    return table


def _print_status(console, status) -> None:
    console.print(status_table(status))
    if status.counts["failed"]:
        console.print(failures_table(status))


def sweep(
    sweep_path: Annotated[
        Path, typer.Argument(help="Sweep file (TOML), or a shipped sweep by name (sweep_example).", show_default=False)
    ],
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Address of a running Dask scheduler (tcp://HOST:8786). Default: a local cluster.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes of the local cluster (default: one per core).",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Report done / failed / pending points and the failures; run nothing.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress report.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run the failed points again too.")] = False,
):
    """Run a parameter sweep: every point of a grid / list of overrides of a base experiment config, on Dask.

    Each finished point is written at once to OUTPUT/sweep.zarr (dims: the swept keys, engine, epoch, row, col)
    and OUTPUT/points/<id>/. Running again runs only the points that are not done (after Ctrl-C too: a point
    stopped midway continues from its last checkpoint); a failed point is recorded (OUTPUT/points/<id>/status.json)
    and the others go on.
    """
    from .._extras import MissingExtra, require
    from .config import ConfigError
    from .sweep import read_sweep, run_sweep, sweep_status

    console = output_console()
    if scheduler is not None and workers is not None:
        print_error("--workers sets the local cluster's size; with --scheduler the scheduler's workers run the points")
        raise typer.Exit(EXIT_USAGE)
    if not status:
        try:
            require("sweep", "the sweep command")
        except MissingExtra as error:
            print_error(str(error))
            raise typer.Exit(EXIT_USAGE) from None
    try:
        definition = read_sweep(sweep_path)
    except ConfigError as error:
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    before = sweep_status(definition)
    if status:
        _print_status(console, before)
        return before
    counts = before.counts
    todo = counts["pending"] + (counts["failed"] if retry_failed else 0)
    if not quiet:
        where = (
            f"the scheduler at {scheduler}"
            if scheduler
            else f"a local cluster of {workers} worker(s)"
            if workers
            else "a local cluster (one worker per core)"
        )
        dims = " x ".join(f"{key} ({len(values)})" for key, values in definition.dims.items())
        console.print(
            f"sweep {definition.name}: {len(definition.points)} points over {dims}; {counts['done']} done, "
            f"{counts['failed']} failed; running {todo} on {where} -> {definition.output}"
        )
    again = [
        "sweep",
        sweep_path,
        *(["--scheduler", scheduler] if scheduler else []),
        *(["--workers", workers] if workers else []),
        *(["--retry-failed"] if retry_failed else []),
    ]
    try:
        run_sweep(
            definition, scheduler=scheduler, workers=workers, progress=show_progress(quiet), retry_failed=retry_failed
        )
    except KeyboardInterrupt:
        print_interrupted(_interrupted(definition, again))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as error:  # e.g. the scheduler cannot be reached (distributed raises OSError / TimeoutError)
        print_error(f"{type(error).__name__}: {error}")
        raise typer.Exit(EXIT_USAGE) from None
    after = sweep_status(definition)
    _print_status(console, after)
    console.print(f"results: {definition.output / 'sweep.zarr'} (overlapflow.experiments.load_sweep)")
    if after.counts["failed"]:
        raise typer.Exit(EXIT_FAILED)
    return after


def _interrupted(definition, again: list) -> str:
    """What an interrupted sweep kept, and the command that continues it."""
    from .sweep import sweep_status

    try:
        counts = sweep_status(definition).counts
    except Exception:  # noqa: BLE001 - the count is a courtesy
        return f"finished points are kept in {definition.output}; continue with: {command_line(*again)}"
    failed = f", {counts['failed']} failed" if counts["failed"] else ""
    return (
        f"{counts['done']} of {len(definition.points)} points are done{failed} (kept in {definition.output}; "
        f"points stopped midway continue from their last checkpoint); continue with: {command_line(*again)}"
    )


def register(app: typer.Typer) -> typer.Typer:
    """Add the ``sweep`` command to ``app``."""
    app.command("sweep")(sweep)
    return app
