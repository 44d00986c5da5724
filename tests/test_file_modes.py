"""Files a run writes can be read by whoever the user's umask lets read them (not the private 0600
of a temporary file): shared cluster file systems need it."""

import os
import stat

import pytest

from overlapflow.experiments import load_config_text, run_experiment
from overlapflow.run_folder import write_text

TINY = """
name = "modes"
N = 20
checkpoint_every = 5
[network]
rank = 1
[[phases]]
epochs = 10
lr = 1e-3
[phases.task]
kind = "exponential_filter"
c = 0.2
t_max = 2.0
[engines]
network = true
overlaps = "exact"
"""


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_run_files_honour_the_umask(tmp_path, umask):
    run_experiment(load_config_text(TINY), tmp_path / "run")
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"network.nc", "overlaps.nc", "config.toml", "config.json", "summary.txt"}
    assert any(p.parent.name == "network" for p in files) and any(p.name == "state.pkl" for p in files)
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes == {name: 0o666 & ~umask for name in modes}


def test_atomic_writes_replace_with_the_umask_mode(tmp_path, umask):
    path = tmp_path / "note.txt"
    write_text(path, "first")
    write_text(path, "second")
    assert path.read_text() == "second" and stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["note.txt"]  # no temporary file left behind
