r"""The ``run``, ``validate`` and ``reproduce`` commands; :func:`register` adds them to a typer app.

    overlapflow run CONFIG [--out DIR] [--overwrite] [--quiet]     run an experiment config
    overlapflow run --resume FOLDER [--quiet]                      continue an interrupted run
    overlapflow validate CONFIG                                    check a config or a sweep, run nothing
    overlapflow reproduce FIG [--quick] [--out DIR] [--quiet]      a figure of the paper
    overlapflow reproduce all [--quick] [--out DIR] [--quiet]      every figure (DIR/<folder> each)
    overlapflow reproduce --list                                   the figures, how each is made, run times
    overlapflow inspect MODEL [--task KIND|FILE] [--k K] [--plot PATH]   a low_rank_rnns network file

CONFIG is a TOML file or the name of a shipped config (``fig5``, ``aba``, ...: ``overlapflow/experiments/configs``).

Exit codes: 0 success; 1 the run diverged (NaN/Inf: the last good checkpoint and the partial
Histories are kept); 2 an invalid config, an occupied or foreign output folder, an unknown
figure, a model file that holds no network or a task that does not fit it (inspect), or a missing
extra (figures 4, 9, 10 and inspect's fits need scikit-learn: ``pip install 'overlapflow[decode]'``)
(``reproduce all``: the first failing figure's code, after trying every figure);
130 interrupted (Ctrl-C): one line on stderr says what was kept and the command that continues.
Progress: a bar on a terminal; otherwise a plain line on stderr every 30 s of a long run
(:mod:`overlapflow.progress`); nothing with ``--quiet``. The functions can be called from Python
too (they raise ``typer.Exit`` with the exit code).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .interrupts import interrupts_recorded

EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C


def output_console() -> Console:
    return Console(soft_wrap=True)


def print_error(message: str) -> None:
    """Print ``message`` as an error; brackets in it (``[[phases]]``, ``[grid]``) are kept as text."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(f"[red]error:[/red] {escape(message)}", markup=True)


def print_interrupted(message: str) -> None:
    """The one line an interrupted command prints (stderr, plain text: it may be parsed by a script)."""
    print(f"interrupted: {message}", file=sys.stderr, flush=True)


def show_progress(quiet: bool) -> bool:
    """Progress reports unless ``--quiet``: a bar on a terminal, plain lines otherwise (overlapflow.progress)."""
    return not quiet


def command_line(*parts) -> str:
    """``overlapflow PART ...`` with each part quoted for a POSIX shell where needed."""
    return " ".join(["overlapflow", *(shlex.quote(str(part)) for part in parts)])


# ---------------------------------------------------------------------------- configs by name
CONFIG_HELP = "a TOML file, or a shipped config by name (fig5, aba, ...)"


def shipped_configs() -> dict[str, Path]:
    """The configs shipped in ``overlapflow/experiments/configs``, by name (experiments and sweeps)."""
    from importlib import resources

    folder = resources.files("overlapflow.experiments").joinpath("configs")
    names = {p.name.removesuffix(".toml"): Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}
    return dict(sorted(names.items()))


def resolve_config(path: Path) -> Path:
    """``path`` if it is a file, else the shipped config of that name (``fig5``, ``fig5.toml``); the
    ConfigError of a missing file names the shipped configs."""
    from .config import ConfigError

    path = Path(path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = path.name.removesuffix(".toml")
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    if path.exists():
        raise ConfigError([("(file)", str(path), "is not a file")])
    raise ConfigError([("(file)", str(path), f"no such file, and not a shipped config ({', '.join(shipped)})")])


def is_sweep(data: dict) -> bool:
    """Whether a TOML table is a sweep file (it names a ``base`` config, or has a ``grid`` / ``points``
    and none of an experiment's own tables) rather than an experiment config."""
    experiment = {"phases", "network", "task", "engines", "init"}
    return "base" in data or (("grid" in data or "points" in data) and not experiment & set(data))


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


# ---------------------------------------------------------------------------- interruptions
def checkpoint_position(folder: Path) -> tuple[int, int, bool] | None:
    """(epoch reached, total epochs, complete) of the checkpoint in a run folder, or None."""
    from ..run_folder import RunFolder

    try:
        return RunFolder(folder).position()
    except Exception:  # noqa: BLE001 - an unreadable checkpoint: report none
        return None


def _run_interrupted(folder: Path | None, restart: list) -> str:
    """What an interrupted ``run`` kept, and the command that continues it (``restart``: ``run CONFIG
    [--out DIR]`` as given)."""
    from ..run_folder import RunFolder

    if folder is None:
        return f"before the run started; nothing was written; start it with: {command_line(*restart)}"
    position = checkpoint_position(folder)
    if position is None:
        if RunFolder(folder).config_json.is_file():  # stopped before its first checkpoint
            return (
                f"before the first checkpoint in {folder}; start afresh with: "
                f"{command_line(*restart[:2], '--out', folder, '--overwrite')}"
            )
        return f"before the run started; nothing was written; start it with: {command_line(*restart)}"
    epoch, total, complete = position
    kept = "the finished run" if complete else f"the checkpoint at epoch {epoch} of {total}"
    return f"{kept} is kept in {folder}; continue with: {command_line('run', '--resume', folder)}"


# ---------------------------------------------------------------------------- run
def run(
    config_path: Annotated[
        Path | None,
        typer.Argument(
            help=f"Experiment config: {CONFIG_HELP}. Optional with --resume (the run's stored config is used).",
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
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress report.")] = False,
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
    Stopped (Ctrl-C, or killed), a run continues from its last checkpoint with --resume FOLDER and ends
    exactly as an uninterrupted one.
    """
    from ..run_folder import RunFolder
    from .config import ConfigError, load_config, parse_config, read_toml
    from .runner import ExperimentDiverged, RunError, run_experiment

    console = output_console()
    folder = resume
    restart = ["run", *([config_path] if config_path is not None else []), *(["--out", out] if out else [])]
    try:
        if resume is not None:
            stored = RunFolder(resume).config_json
            if not stored.is_file():
                raise RunError(f"nothing to resume in {resume}: {stored} is missing")
            if out is not None and out.resolve() != resume.resolve():
                raise RunError(
                    f"--out {out} and --resume {resume} name different folders; a run resumes in its own folder"
                )
            config = (
                load_config(resolve_config(config_path))
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
            path = resolve_config(config_path)
            toml = read_toml(path)
            if is_sweep(toml.data):
                raise RunError(f"{config_path} is a sweep; run it with: {command_line('sweep', config_path)}")
            config = load_config(path, toml)
            if out is not None:  # the run's config.json and summary name the folder it is in
                config = config.model_copy(update={"output": str(out)})
            folder = Path(config.output)
        if not quiet:
            console.print(
                f"{'resuming' if resume else 'running'} {config.name}: {len(config.phases)} phase(s), "
                f"{config.total_epochs} epochs, engines {', '.join(config.engines.names())} -> {folder}"
            )
        with interrupts_recorded():
            histories = run_experiment(
                config, folder, progress=show_progress(quiet), resume=resume is not None, overwrite=overwrite
            )
    except KeyboardInterrupt:
        print_interrupted(_run_interrupted(folder, restart))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ConfigError as error:
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    except RunError as error:
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    except ExperimentDiverged as error:
        print_error(str(error))
        raise typer.Exit(EXIT_DIVERGED) from None
    from ..plot import plot_run

    run_folder = RunFolder(folder)
    figures = plot_run(histories, folder, title=run_folder.title(histories))
    console.print(_results_table(histories, folder))
    written = [run_folder.history_file(name) for name in histories] + [run_folder.summary, *figures]
    console.print(f"wrote {', '.join(map(str, written))}")
    return histories


def plot(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by overlapflow run (finished or stopped).")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="A folder, or an image file name (.png, .pdf, .svg); default: RUN_DIR/figure.png/.pdf."
        ),
    ] = None,
) -> None:
    """Draw a run's figure: the loss of each engine, its visible and invisible overlaps, the phases.

    Works on a finished run and on a stopped one (its checkpoint's records)."""
    from ..plot import plot_run
    from ..run_folder import RunError, RunFolder

    folder = RunFolder(run_dir)
    try:
        histories = folder.histories()
        paths = plot_run(histories, run_dir if out is None else out, title=folder.title(histories))
    except (FileNotFoundError, RunError) as error:
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    output_console().print(f"wrote {', '.join(map(str, paths))}")


# ---------------------------------------------------------------------------- validate
def validate(
    config_path: Annotated[
        Path,
        typer.Argument(help=f"Experiment config or sweep file to check: {CONFIG_HELP}.", show_default=False),
    ],
):
    """Check an experiment config or a sweep file completely without running it.

    An experiment config: types, ranges, tasks, engines, initial state. A sweep file (it has a `base`):
    the sweep's fields and every one of its points, as an experiment config.
    """
    from .config import ConfigError, load_config, read_toml
    from .runner import describe_config

    console = output_console()
    try:
        path = resolve_config(config_path)
        toml = read_toml(path)
        if is_sweep(toml.data):
            return _validate_sweep(path, config_path, console)
        config = load_config(path, toml)
    except ConfigError as error:
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    console.print(f"{config_path}: valid experiment '{config.name}'")
    for line in describe_config(config):
        console.print(f"  {line}", markup=False, highlight=False)
    return config


def _validate_sweep(path: Path, given: Path, console: Console):
    from .runner import describe_config
    from .sweep import read_sweep

    definition = read_sweep(path)
    dims = " x ".join(f"{key} ({len(values)})" for key, values in definition.dims.items())
    console.print(f"{given}: valid sweep '{definition.name}'", markup=False, highlight=False)
    lines = [
        f"{len(definition.points)} points over {dims}; output {definition.output}",
        *(f"{key}: {', '.join(map(repr, values))}" for key, values in definition.dims.items()),
        f"first point ({', '.join(f'{k}={v!r}' for k, v in definition.points[0].coords.items())}):",
        *(f"  {line}" for line in describe_config(definition.points[0].config)),
        f"run it with: {command_line('sweep', given)}",
    ]
    for line in lines:
        console.print(f"  {line}", markup=False, highlight=False)
    return definition


# ---------------------------------------------------------------------------- reproduce
def _figure_table() -> Table:
    from ..progress import format_duration
    from .figures.registry import FIGURES, RUN_TIME_NOTE

    table = Table(
        box=box.SIMPLE_HEAD,
        title="figures of arXiv 2605.04115 (folder: overlapflow-FOLDER)",
        caption=RUN_TIME_NOTE,
    )
    table.add_column("fig")
    table.add_column("status")
    table.add_column("made from")
    table.add_column("folder")
    table.add_column("--quick", justify="right")
    table.add_column("full", justify="right")
    table.add_column("what it shows")
    for spec in FIGURES.values():
        quick, full = (format_duration(s) if s else "" for s in (spec.seconds or (None, None)))
        table.add_row(spec.id, "available", spec.config or spec.run.__name__, spec.folder, quick, full, spec.title)
    return table


def _announce(fig: str, quick: bool, again: list, quiet: bool, short: bool = False) -> None:
    """The line a full-scale figure prints first (stderr): how long, and that it can be stopped
    (``short``: how long only, inside ``reproduce all``, which said the rest)."""
    from ..progress import format_duration
    from .figures.registry import FIGURES

    spec = FIGURES[fig]
    if quick or quiet or not spec.seconds:
        return
    text = f"fig {fig} at the paper's settings: about {format_duration(spec.seconds[1])} on a 2-core CPU (estimated"
    if short:
        text += ")"
    else:
        text += (
            "; less if its folder holds data from before). Stop it any time with Ctrl-C and continue with the "
            f"same command: {command_line(*again)}"
        )
    print(text, file=sys.stderr, flush=True)


def _figure_kept(fig: str, folder: Path, quick: bool) -> str:
    """What an interrupted figure leaves in its folder, in words."""
    position = checkpoint_position(folder)
    if position is not None and not position[2]:
        return f"the checkpoint at epoch {position[0]} of {position[1]} is kept in {folder}"
    from ..run_folder import RunFolder

    jobs = RunFolder(folder / "ab_to_c_jobs")
    if jobs.has_jobs():
        from .figures.registry import figure_setup

        try:
            setup = figure_setup(fig, quick)
            n_pairs = getattr(getattr(setup, "memory", setup), "n_pairs", None)
        except Exception:  # noqa: BLE001 - the count is a courtesy
            n_pairs = None
        done = len(jobs.done_jobs(".nc"))
        of_total = f" of {3 * n_pairs}" if n_pairs else ""
        return f"{done}{of_total} A/B -> C jobs done and the others' checkpoints are kept in {folder}"
    if folder.is_dir() and any(folder.iterdir()):
        return f"its finished runs, stored data and checkpoints are kept in {folder}"
    return f"nothing was written to {folder} yet"


def _reproduce_one(fig: str, quick: bool, out: Path | None, progress: bool, console: Console, where: dict):
    """Make one figure and print its key numbers; returns (FigureResult or None, exit code).
    ``where`` gets the figure and its folder (for the message of an interruption)."""
    from .._extras import MissingExtra
    from ..progress import progress_label
    from .config import ConfigError
    from .figures import FigureUnavailable, default_folder, figure_id, format_numbers, reproduce_figure
    from .runner import ExperimentDiverged, RunError

    try:
        fig = figure_id(fig)
        where.update(fig=fig, quick=quick, folder=Path(out) if out is not None else default_folder(fig, quick))
        with progress_label(f"fig{fig}"):
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


def _reproduce_all(quick: bool, out: Path | None, quiet: bool, console: Console, again: list, where: dict):
    """Every figure in the paper's order, each in its default folder (or OUT/<folder>); figures that
    share data share a folder and compute it once. A figure that fails does not stop the others; the
    exit code is the first failure's."""
    import time

    from ..progress import format_duration
    from .figures.registry import FIGURES, default_folder

    if not quick and not quiet:
        total = sum(spec.seconds[1] for spec in FIGURES.values() if spec.seconds)
        print(
            f"every figure at the paper's settings: up to about {format_duration(total)} on a 2-core CPU "
            "(estimated; figures that share a folder share their data). Stop it any time with Ctrl-C and "
            f"continue with the same command: {command_line(*again)}",
            file=sys.stderr,
            flush=True,
        )
    results, rows, code = [], [], 0
    where["done"] = []
    for spec in FIGURES.values():
        started = time.perf_counter()
        folder = default_folder(spec.id, quick) if out is None else out / spec.folder
        _announce(spec.id, quick, again, quiet, short=True)
        result, status = _reproduce_one(spec.id, quick, folder, show_progress(quiet), console, where)
        seconds = time.perf_counter() - started
        code = code or status
        rows.append((spec.id, "ok" if status == 0 else f"failed (exit {status})", f"{seconds:.1f}", str(folder)))
        if status == 0:
            where["done"].append(spec.id)
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


def _reproduce_interrupted(where: dict, again: list) -> str:
    if "fig" not in where:
        return f"before any figure started; nothing was written; start it with: {command_line(*again)}"
    kept = _figure_kept(where["fig"], where["folder"], where["quick"])
    done = where.get("done")
    finished = ""
    if done:
        finished = f"fig {done[0]} is done; " if len(done) == 1 else f"figs {', '.join(done)} are done; "
    return f"fig {where['fig']}: {kept}; {finished}continue with: {command_line(*again)}"


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
    list_: Annotated[
        bool, typer.Option("--list", help="List the figures, how each is made and how long it takes.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress report, no run-time notice.")] = False,
):
    """Reproduce a figure of the paper (or all of them) with the paper's settings.

    Writes figFIG.png and .pdf, the data (netCDF) and summary.txt + figFIG.json with the key numbers
    next to the paper's. Running again in the same folder continues an interrupted run, reuses
    finished runs and stored data, and redraws. Figures that share data share a folder. At the paper's
    settings a figure takes from seconds to about 40 minutes on a 2-core CPU (--list): it says so when it
    starts, and Ctrl-C stops it with the command that continues it.
    """
    console = output_console()
    if list_:
        console.print(_figure_table())
        return None
    if fig is None:
        print_error("give a figure (e.g. overlapflow reproduce 5), all, or --list")
        raise typer.Exit(EXIT_USAGE)
    again = ["reproduce", fig.strip(), *(["--quick"] if quick else []), *(["--out", out] if out is not None else [])]
    where: dict = {}
    try:
        if fig.strip().lower() == "all":
            with interrupts_recorded():
                return _reproduce_all(quick, out, quiet, console, again, where)
        from .figures import FigureUnavailable, figure_id

        try:
            _announce(figure_id(fig), quick, again, quiet)
        except FigureUnavailable:
            pass  # _reproduce_one reports it
        with interrupts_recorded():
            result, code = _reproduce_one(fig, quick, out, show_progress(quiet), console, where)
    except KeyboardInterrupt:
        print_interrupted(_reproduce_interrupted(where, again))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if code:
        raise typer.Exit(code)
    return result


# ---------------------------------------------------------------------------- inspect
def _inspection_task(text: str, rnn):
    """The task ``--task`` names: a registered kind with its default settings, or a TOML file whose
    ``[task]`` table (or whole table) is a task table; ConfigError (one line per problem) otherwise."""
    from pydantic import TypeAdapter, ValidationError

    from ..tasks import TASKS
    from .config import ConfigError, TaskConfig, read_toml
    from .config.messages import task_problem

    if text in TASKS:
        table, where = {"kind": text}, "--task"
    elif Path(text).is_file():
        data = read_toml(Path(text)).data
        table, where = data.get("task", data), f"--task {text}"
    else:
        raise ConfigError([("--task", text, f"neither a task kind ({', '.join(TASKS)}) nor a TOML file")])
    try:
        validated = TypeAdapter(TaskConfig).validate_python(table)
    except ValidationError as error:
        problems = [
            (f"{where}: {'.'.join(map(str, e['loc'])) or 'task'}", e.get("input"), e["msg"]) for e in error.errors()
        ]
        raise ConfigError(problems) from None
    try:
        return validated.build(rnn)
    except Exception as error:  # noqa: BLE001 - the task's own checks, as a config reports them
        path, value, allowed = task_problem(where, validated, error)
        raise ConfigError([(path, value, allowed)]) from None


def _inspection_tables(report) -> list[Table]:
    """The report as rich Tables: the network, its overlaps, its coordinates, its populations, the theories."""
    import numpy as np

    net = report.network
    rnn = net.rnn
    head = Table(box=box.SIMPLE_HEAD, title=f"{net.source} ({net.model}, torch {net.file_format} format)")
    for column in ("N", "rank", "n_in", "n_out", "alpha = dt/tau", "phi"):
        head.add_column(column, justify="right")
    head.add_row(str(report.N), str(rnn.rank), str(rnn.n_in), str(rnn.n_out), f"{rnn.alpha:g}", rnn.nonlinearity.name)
    tables = [head]
    for title, values in (
        ("visible overlaps (the loss reads these)", report.visible),
        ("invisible overlaps", report.invisible),
        ("function coordinates (gauge-invariant)", report.function),
        ("gauge coordinates", report.gauge),
    ):
        table = Table(box=box.SIMPLE_HEAD, title=title)
        table.add_column("label")
        table.add_column("value", justify="right")
        for label, value in values.items():
            table.add_row(label, f"{value:.4g}")
        tables.append(table)
    how = {"file": "given by the file", "fit": "fitted, K given", "bic": "fitted, K of lowest BIC"}
    pops = Table(box=box.SIMPLE_HEAD, title=f"populations: K = {report.K} ({how[report.populations]})")
    pops.add_column("population")
    pops.add_column("neurons", justify="right")
    pops.add_column("weight", justify="right")
    pops.add_column("|mean|", justify="right")
    for k, size in enumerate(report.sizes):
        mean = float(np.linalg.norm(np.asarray(report.mixture.means[k])))
        pops.add_row(str(k), str(size), f"{float(report.mixture.weights[k]):.3f}", f"{mean:.3g}")
    tables.append(pops)
    if report.bic is not None:
        bic = Table(box=box.SIMPLE_HEAD, title="BIC of the Gaussian-mixture fits (lowest selected)")
        bic.add_column("K")
        bic.add_column("BIC", justify="right")
        for K, value in enumerate(report.bic, start=1):
            bic.add_row(f"{K}{' *' if K == report.K else ''}", f"{value:.1f}")
        tables.append(bic)
    if report.theory is not None:
        gap = report.theory
        theory = Table(box=box.SIMPLE_HEAD, title=f"theories vs the network on a batch of {gap.task}")
        theory.add_column("")
        theory.add_column("RMS output difference", justify="right")
        if gap.accuracy:
            theory.add_column("accuracy", justify="right")
        rows = (("network (RMS output)", gap.rms_network), ("one Gaussian", gap.rms_gaussian))
        rows += ((f"mixture (K = {report.K})", gap.rms_mixture),)
        for (label, value), name in zip(rows, ("network", "gaussian", "mixture"), strict=True):
            theory.add_row(label, f"{value:.4g}", *([f"{gap.accuracy[name]:.4f}"] if gap.accuracy else []))
        tables.append(theory)
    return tables


def inspect(
    model: Annotated[Path, typer.Argument(help="A low_rank_rnns state_dict (.pt) of LowRankRNN or SupportLowRankRNN.")],
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="Compare the theories with the network on a batch of this task: a task kind (its default "
            "settings) or a TOML file with a [task] table.",
            show_default=False,
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "--k",
            min=1,
            help="Fit this many populations (default: the file's, else the K of lowest BIC).",
            show_default=False,
        ),
    ] = None,
    k_max: Annotated[int, typer.Option("--k-max", min=1, help="Most populations the BIC selection tries.")] = 5,
    alpha: Annotated[float, typer.Option("--alpha", help="Their dt/tau (not stored in the file).")] = 0.2,
    tau: Annotated[
        float, typer.Option("--tau", help="The time constant: dt = alpha tau (the task's time unit).")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the fits and of the task batch.")] = 0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the figure of the rows per population here (.png, .pdf, .svg).")
    ] = None,
):
    """Inspect a low_rank_rnns network: size, overlaps (visible, invisible), function and gauge coordinates,
    populations (given, or fitted at the K of lowest BIC), and the one-Gaussian and mixture theories
    against the network's own outputs on a task."""
    from .._extras import MissingExtra
    from ..inspection import inspect_network, rows_figure
    from ..interop import load_low_rank_rnns
    from .config import ConfigError
    from .config.messages import show

    console = output_console()
    try:
        network = load_low_rank_rnns(model, alpha=alpha, tau=tau)
        chosen = None if task is None else _inspection_task(task, network.rnn)
        report = inspect_network(network, chosen, K=k, K_max=k_max, seed=seed)
    except ConfigError as error:
        print_error("; ".join(f"{path}: value {show(value)}: {allowed}" for path, value, allowed in error.problems))
        raise typer.Exit(EXIT_USAGE) from None
    except (ValueError, MissingExtra) as error:  # TorchFileError, NetworkFileError, TaskSettingError: one line
        print_error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    for table in _inspection_tables(report):
        console.print(table)
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        rows_figure(report).savefig(plot, dpi=150)
        console.print(f"wrote {plot}")
    return report


def register(app: typer.Typer) -> typer.Typer:
    """Add the ``run``, ``validate``, ``plot``, ``reproduce`` and ``inspect`` commands to ``app``."""
    app.command("run")(run)
    app.command("plot")(plot)
    app.command("validate")(validate)
    app.command("reproduce")(reproduce)
    app.command("inspect")(inspect)
    return app
