"""The command line starts quickly: ``--help`` and ``--version`` load neither JAX nor xarray, matplotlib or
pydantic; flags show as flags in the help; the commands still run in float64.

Two levels: the command line's own modules (cli, experiments.commands, experiments.sweep_commands,
with ``overlapflow/__init__.py`` replaced by a bare package: what this code controls), and the
installed command as a user runs it (which also runs ``overlapflow/__init__.py``, whose public names
load on first use)."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from overlapflow.cli import app

HEAVY = ("jax", "xarray", "matplotlib", "pydantic", "numpy", "scipy")

# Import overlapflow.cli (BARE: under a bare parent package, without overlapflow/__init__.py), run the
# arguments, and print the heavy modules loaded.
BARE = """
import importlib.util, sys, types
spec = importlib.util.find_spec("overlapflow")
package = types.ModuleType("overlapflow")
package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
sys.modules["overlapflow"] = package
"""
RUN = """
import sys
from overlapflow.cli import app
try:
    app(sys.argv[1:], prog_name="overlapflow")
except SystemExit:
    pass
print("loaded:", *(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def loaded_by(*args, bare=True) -> list[str]:
    code = (BARE if bare else "") + RUN.format(heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("loaded:")]
    return line.split()[1:]


@pytest.mark.parametrize("args", [(), ("--help",), ("--version",)])
def test_the_command_line_modules_import_nothing_heavy(args):
    assert loaded_by(*args) == []


@pytest.mark.parametrize("command", ["run", "validate", "reproduce", "sweep", "demo", "validate-theory"])
def test_command_help_loads_no_jax(command):
    """typer itself imports pydantic to parse a subcommand's options; nothing else heavy is loaded."""
    assert set(loaded_by(command, "--help")) <= {"pydantic"}


def test_import_overlapflow_cli_loads_no_jax():
    assert loaded_by("--help", bare=False) == []


def test_overlapflow_help_starts_within_two_seconds():
    """The installed command, as a user runs it (a generous bound: 0.15 s measured on a quiet 2-core box)."""
    script = shutil.which("overlapflow", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "overlapflow.cli"]
    for args in (["--help"], ["--version"]):
        started = time.perf_counter()
        result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and time.perf_counter() - started < 2.0, result.stderr


@pytest.mark.parametrize("command", ["run", "validate", "reproduce", "sweep", "demo", "validate-theory"])
def test_flags_are_plain_flags_in_the_help(command):
    result = CliRunner().invoke(app, [command, "--help"], prog_name="overlapflow", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output
    assert "\\[" not in result.output  # no rich-markup escapes left in plain help
    if command in ("run", "reproduce", "sweep", "demo", "validate-theory"):
        assert re.search(r"^\s+--quiet\s+No progress", result.output, re.M), result.output


def test_commands_run_in_float64():
    code = (
        "import jax\nfrom overlapflow.cli import app\n"
        "try:\n    app(['validate', 'fig5'], prog_name='overlapflow')\nexcept SystemExit as e:\n    assert not e.code\n"
        "print(jax.config.jax_enable_x64)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "True", result.stdout + result.stderr
