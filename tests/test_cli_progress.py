"""Progress when the output is not a terminal: plain lines on stderr, at most one every PLAIN_INTERVAL
seconds, with the figure's label; nothing with --quiet."""

import re

import pytest
from conftest import SMALL_RUN as SMALL
from typer.testing import CliRunner

from overlapflow import progress


def test_plain_lines_are_rate_limited_and_labelled(monkeypatch, capsys):
    clock = iter([0.0, 10.0, 31.0, 40.0, 65.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with progress.progress_label("fig9"), progress.progress_bar(True, "A · network", 100) as update:
        update(10, 0.5)  # t = 10: too soon
        update(20, 0.25)  # t = 31: a line
        update(20, 0.2)  # t = 40: too soon
        update(20, 0.1, description="B · network")  # t = 65: a line
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines == [
        "[fig9] A · network: 30% (30 of 100), loss 0.25, 31 s elapsed, about 72 s left",
        "[fig9] B · network: 70% (70 of 100), loss 0.1, 65 s elapsed, about 28 s left",
    ]


def test_a_finished_long_bar_says_so_and_a_short_one_says_nothing(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0.0)
    with progress.progress_bar(True, "sweep s", 2) as update:
        update(1, 0.5)
        update(1, 0.4)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("sweep s: 100% (2 of 2), loss 0.4, ") and "left" not in lines[-1]
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 30.0)
    with progress.progress_bar(True, "short", 2) as update:
        update(2, 0.1)
    assert capsys.readouterr().err == ""
    with progress.progress_bar(False, "off", 2) as update:
        update(2, 0.1)
    assert capsys.readouterr() == ("", "")


def test_an_interrupted_bar_prints_no_last_line(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0.0)
    with pytest.raises(KeyboardInterrupt), progress.progress_bar(True, "x", 4) as update:
        update(1, 0.5)
        raise KeyboardInterrupt
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_durations():
    durations = [progress.format_duration(s) for s in (5, 89, 210, 2100, 5400, 7200, 9000)]
    assert durations == ["5 s", "89 s", "3.5 min", "35 min", "1.5 h", "2 h", "2.5 h"]


def test_run_without_a_terminal_prints_plain_progress_lines_on_stderr(tmp_path, monkeypatch, app):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0.0)
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "run")], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines and all(re.match(r"A · (network|overlaps): \d+% \(\d+ of 60\), loss ", line) for line in lines), lines
    assert lines[-1].startswith("A · overlaps: 100% (60 of 60)")
    quiet = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "q"), "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
