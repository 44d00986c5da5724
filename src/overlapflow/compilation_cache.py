"""JAX's persistent compilation cache for the processes overlapflow owns.

A second ``overlapflow demo`` (or run, reproduce, sweep point) would otherwise compile every
program again: seconds before the first epoch. The command line therefore points JAX's persistent
compilation cache at a user-level folder, and reads compiled programs back from there.

- Folder: ``$OVERLAPFLOW_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/overlapflow/jax``, else
  ``~/.cache/overlapflow/jax``. It is safe to delete at any time. JAX keys the programs by the
  program, the JAX and XLA versions and the device, so a stale entry is never used.
- Off: ``OVERLAPFLOW_NO_CACHE=1`` in the environment, or ``overlapflow --no-cache ...``.
- From Python, nothing changes unless you call :func:`enable` (a library does not set a global JAX
  option on import). Then only programs that took at least ``min_compile_seconds`` to compile are
  stored.
"""

from __future__ import annotations

import os
from pathlib import Path

DISABLE_VARIABLE = "OVERLAPFLOW_NO_CACHE"
DIRECTORY_VARIABLE = "OVERLAPFLOW_CACHE_DIR"


def default_directory() -> Path:
    """The cache folder used when :func:`enable` is given none (module docstring)."""
    if os.environ.get(DIRECTORY_VARIABLE):
        return Path(os.environ[DIRECTORY_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "overlapflow" / "jax"


def disabled_by_environment() -> bool:
    return os.environ.get(DISABLE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def enable(directory: str | Path | None = None, min_compile_seconds: float = 0.2) -> Path | None:
    """Turn JAX's persistent compilation cache on in ``directory`` (default: :func:`default_directory`).

    Returns the folder, or None when ``OVERLAPFLOW_NO_CACHE`` turns it off or the folder cannot be
    created (the run then compiles as usual)."""
    if disabled_by_environment():
        return None
    path = Path(directory).expanduser() if directory is not None else default_directory()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax  # here, not at the top: the command line reads this module's names before JAX is needed

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
