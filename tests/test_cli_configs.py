"""Shipped configs by name in every command (run, validate, sweep), and ``validate`` of a sweep file
(recognised by its content)."""

import pytest
from conftest import SMALL_RUN as SMALL
from conftest import invoke_streams as invoke
from typer.testing import CliRunner

from overlapflow.experiments import runner
from overlapflow.experiments.commands import is_sweep, resolve_config, shipped_configs
from overlapflow.experiments.config import ConfigError


def test_names_resolve_to_shipped_configs_and_files_come_first(tmp_path, monkeypatch):
    shipped = shipped_configs()
    assert {"fig5", "aba", "flipflop", "sweep_example"} <= set(shipped)
    assert resolve_config("fig5") == shipped["fig5"] == resolve_config("fig5.toml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fig5").write_text(SMALL)  # a file of that name is the user's
    assert resolve_config("fig5").resolve() == (tmp_path / "fig5").resolve()
    with pytest.raises(ConfigError, match="no such file, and not a shipped config .*fig5"):
        resolve_config("nonesuch")
    with pytest.raises(ConfigError, match="no such file"):
        resolve_config("some/folder/fig12")  # only bare names are shipped ones


def test_validate_by_name_experiment_and_sweep(app):
    code, stdout, _ = invoke(app, "validate", "fig5")
    assert code == 0 and "fig5: valid experiment 'fig5'" in stdout and "N = 500" in stdout
    code, stdout, _ = invoke(app, "validate", "sweep_example")
    assert code == 0, stdout
    assert "sweep_example: valid sweep 'fig5-seeds'" in stdout
    assert "6 points over N (2) x seed (3); output sweep-fig5-seeds" in stdout
    assert "run it with: overlapflow sweep sweep_example" in stdout


def test_validate_recognises_a_sweep_file_by_its_content(app, tmp_path):
    (tmp_path / "small.toml").write_text(SMALL)
    sweep = tmp_path / "my sweep.toml"  # not named sweep*, and a space in the name
    sweep.write_text('base = "small.toml"\n[grid]\nseed = [1, 2]\n"phases.0.lr" = [1e-3, 2e-3]\n')
    code, stdout, stderr = invoke(app, "validate", sweep)
    assert code == 0, stdout + stderr
    assert "valid sweep 'my sweep'" in stdout and "4 points over seed (2) x phases.0.lr (2)" in stdout
    assert f"run it with: overlapflow sweep '{sweep}'" in stdout

    bad = tmp_path / "bad.toml"
    bad.write_text('base = "small.toml"\n[grid]\nN = [1, 100]\n')
    code, stdout, stderr = invoke(app, "validate", bad)
    assert code == 2 and "invalid sweep" in stderr and "grid.N" in stderr and "Traceback" not in stderr


def test_is_sweep_reads_the_content():
    assert is_sweep({"base": "fig5", "grid": {"N": [1]}})
    assert is_sweep({"grid": {"N": [1]}})  # an incomplete sweep is still a sweep (its error says base is missing)
    assert not is_sweep({"name": "x", "phases": [], "grid": 1})  # an experiment with a stray key
    assert not is_sweep({"name": "x", "N": 10})


def test_run_by_name_uses_the_shipped_config_and_the_out_folder(app, tmp_path, monkeypatch):
    seen = {}

    def fake(config, out_dir=None, progress=False, resume=False, *, overwrite=False, **_):
        seen.update(name=config.name, output=config.output, out=out_dir)
        raise runner.RunError("stop here")

    monkeypatch.setattr(runner, "run_experiment", fake)
    code, _, stderr = invoke(app, "run", "fig5", "--out", tmp_path / "f5", "--quiet")
    assert code == 2 and "stop here" in stderr
    assert seen == {"name": "fig5", "output": str(tmp_path / "f5"), "out": tmp_path / "f5"}


def test_run_refuses_a_sweep_and_names_the_command(app, tmp_path):
    code, stdout, stderr = invoke(app, "run", "sweep_example", "--quiet")
    assert code == 2 and "sweep_example is a sweep; run it with: overlapflow sweep sweep_example" in stderr
    code, stdout, stderr = invoke(app, "run", tmp_path / "missing.toml", "--quiet")
    assert code == 2 and "not a shipped config (aba, fig12, fig1c, fig5, fig7, flipflop" in stderr


def test_run_and_validate_help_say_that_names_work(app):
    for command in ("run", "validate"):
        result = CliRunner().invoke(app, [command, "--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
        assert "shipped config by name" in result.output
