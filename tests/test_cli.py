"""The command line: `overlapflow demo` trains both ways, prints the comparison and writes its files."""

import re

from typer.testing import CliRunner

import overlapflow as of
from overlapflow.cli import app

runner = CliRunner()
# A wide, colourless console whatever the caller's terminal, so the table is parseable.
ENV = {"COLUMNS": "160", "NO_COLOR": "1", "FORCE_COLOR": None}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def test_demo_writes_files_and_agrees(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--n", "60", "--epochs", "50", "--out", str(out), "--quiet"], env=ENV)
    assert result.exit_code == 0, result.output + repr(result.exception)
    output = ANSI.sub("", result.output)

    for name in ("compare.png", "compare.pdf", "network.nc", "overlaps.nc"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name

    network, overlaps = of.load_history(out / "network.nc"), of.load_history(out / "overlaps.nc")
    assert network.sizes["epoch"] == 51 and overlaps.sizes["epoch"] == 51
    assert network.attrs["engine"] == "network" and overlaps.attrs["method"] == "exact"

    # float32 network vs float64 overlap theory: exact up to float32 rounding.
    match = re.search(r"max overlap deviation\W*([-+0-9.eE]+)", output)
    assert match, output
    deviation = float(match.group(1))
    assert 0 <= deviation < 1e-3
    assert abs(deviation - of.max_overlap_deviation(network, overlaps)) <= 1e-3 * deviation + 1e-12
    assert str(out / "compare.png") in output


def test_version_and_help():
    result = runner.invoke(app, ["--version"], env=ENV)
    assert result.exit_code == 0 and of.__version__ in result.output
    result = runner.invoke(app, ["demo", "--help"], env=ENV)
    assert result.exit_code == 0 and "--epochs" in ANSI.sub("", result.output)


def test_demo_rejects_bad_learning_rate(tmp_path):
    result = runner.invoke(app, ["demo", "--lr", "-1", "--out", str(tmp_path), "--quiet"], env=ENV)
    assert result.exit_code == 2


def test_cli_errors_print_brackets_as_text(tmp_path):
    """Config errors name TOML tables ([[phases]]); rich markup must not swallow them."""
    config = tmp_path / "no_phases.toml"
    config.write_text('name = "x"\nN = 10\n[network]\nrank = 1\n')
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "an array of [[phases]] tables" in result.output
