"""Progress reports of long runs: a rich progress bar on a terminal, plain lines otherwise.

:func:`progress_bar` is what the training loop, the phase loop and the sweeps show:

- on a terminal (or in Jupyter): rich's bar, with the count, the loss, the elapsed and the remaining time;
- otherwise (output to a file or a pipe, a batch job): one plain line on stderr at most every
  :data:`PLAIN_INTERVAL` seconds, e.g. ``[fig5] A · network: 40% (1600 of 4000), loss 0.0123,
  2.0 min elapsed, about 3.0 min left`` (nothing for a run shorter than that).

:func:`progress_label` puts a label (``[fig5]``) before the plain lines of everything inside it, and
:func:`progress_line` writes one such line, for reports that count something else than a bar does
(the A/B -> C jobs). Nothing here imports rich unless a bar is shown on a terminal.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time

#: seconds between two plain progress lines (when the output is not a terminal)
PLAIN_INTERVAL = 30.0

_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("overlapflow_progress_label", default="")


@contextlib.contextmanager
def progress_label(label: str):
    """Within the block, plain progress lines start with ``[label]``."""
    token = _LABEL.set(label)
    try:
        yield
    finally:
        _LABEL.reset(token)


def progress_line(text: str) -> None:
    """Write ``[label] text`` (the label of :func:`progress_label`, if any) as one line on stderr."""
    label = _LABEL.get()
    print(f"[{label}] {text}" if label else text, file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """``45 s``, ``3.5 min``, ``35 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    value, unit = (seconds / 60, "min") if seconds < 90 * 60 else (seconds / 3600, "h")
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _interactive() -> bool:
    """Whether a rich bar can be drawn: stdout is a terminal, or this is Jupyter."""
    from rich.console import Console

    console = Console()
    return console.is_terminal or console.is_jupyter


@contextlib.contextmanager
def progress_bar(enabled: bool, description: str, total: int, completed: int = 0):
    """Yield ``update(advance, loss, description=None)``; a no-op when ``enabled`` is False.

    A rich bar on a terminal; otherwise plain lines on stderr, at most one every
    :data:`PLAIN_INTERVAL` seconds (and the last one when the bar completes)."""
    if not enabled:
        yield lambda advance, loss, description=None: None
        return
    if not _interactive():
        with _plain_lines(description, total, completed) as update:
            yield update
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task_id = bar.add_task(description, total=total, completed=completed, loss="-")

        def update(advance, loss, description=None):
            fields = {"description": description} if description is not None else {}
            bar.update(task_id, advance=advance, loss=f"{loss:.4g}", **fields)

        yield update


@contextlib.contextmanager
def _plain_lines(description: str, total: int, completed: int):
    """The non-terminal bar: a line when PLAIN_INTERVAL seconds have passed since the last one."""
    started = time.monotonic()
    state = {"done": completed, "description": description, "loss": None, "last": started, "printed": None}

    def line(now: float) -> str:
        done, elapsed = state["done"], now - started
        percent = 100 * done / total if total else 100.0
        text = f"{state['description']}: {percent:.0f}% ({done} of {total})"
        if state["loss"] is not None:
            text += f", loss {state['loss']:.4g}"
        text += f", {format_duration(elapsed)} elapsed"
        if completed < done < total:
            text += f", about {format_duration(elapsed / (done - completed) * (total - done))} left"
        return text

    def update(advance, loss, description=None):
        state["done"] += advance
        state["loss"] = loss
        if description is not None:
            state["description"] = description
        now = time.monotonic()
        if now - state["last"] >= PLAIN_INTERVAL:
            state["last"], state["printed"] = now, state["done"]
            progress_line(line(now))

    yield update
    if state["printed"] is not None and state["printed"] < state["done"] >= total:  # a long run says it finished
        progress_line(line(time.monotonic()))
