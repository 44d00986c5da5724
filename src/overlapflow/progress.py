"""The progress bar every long run shows (rich): epoch count, loss, elapsed and remaining time."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def progress_bar(enabled: bool, description: str, total: int, completed: int = 0):
    """Yield ``update(advance, loss, description=None)``; a no-op when ``enabled`` is False."""
    if not enabled:
        yield lambda advance, loss, description=None: None
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
