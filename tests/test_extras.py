"""Optional dependencies: a feature whose extra is not installed stops with one line naming the pip
command; the extras of pyproject.toml match what the code checks; the test environment has them all."""

import pathlib
import subprocess
import sys
import textwrap
import tomllib

import numpy as np
import pytest
from conftest import invoke

from overlapflow._extras import EXTRAS, MissingExtra, missing, require
from overlapflow.experiments import load_sweep, run_sweep
from overlapflow.phenomena.memory import decode_pairs

PYPROJECT = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"


def block(monkeypatch, *modules):
    """Make ``import module`` fail as if it were not installed (for this test only)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_sweep_command_without_the_sweep_extra_says_what_to_install(tmp_path, monkeypatch, sweep_app):
    block(monkeypatch, "dask", "distributed", "zarr")
    monkeypatch.chdir(tmp_path)
    result, output = invoke(sweep_app, "sweep_example")
    assert result.exit_code == 2, output
    assert output.strip() == (
        "error: the sweep command needs dask, distributed, zarr: pip install 'overlapflow[sweep]'"
    ), output
    assert not any(tmp_path.iterdir())  # nothing was started
    result, output = invoke(sweep_app, "sweep_example", "--status")  # reading the state needs no extra
    assert result.exit_code == 0 and "pending" in output, output


def test_decoding_figures_without_scikit_learn_stop_before_any_work(tmp_path, monkeypatch, app):
    block(monkeypatch, "sklearn")
    result, output = invoke(app, "reproduce", "9", "--quick", "--out", tmp_path / "f")
    assert result.exit_code == 2, output
    assert "fig 9: figures 4, 9 and 10 (decoding the training history) needs scikit-learn: " in output, output
    assert "pip install 'overlapflow[decode]'" in output
    assert not list((tmp_path / "f").glob("*.nc"))


def test_library_functions_name_the_extra(tmp_path, monkeypatch):
    block(monkeypatch, "dask", "distributed", "zarr", "sklearn")
    with pytest.raises(MissingExtra, match=r"^overlapflow.experiments.run_sweep needs dask, distributed, zarr: pip"):
        run_sweep(tmp_path / "sweep.toml")
    with pytest.raises(
        MissingExtra, match=r"load_sweep needs dask, distributed, zarr: pip install 'overlapflow\[sweep"
    ):
        load_sweep(tmp_path)
    with pytest.raises(ImportError, match=r"needs scikit-learn: pip install 'overlapflow\[decode\]'$"):
        decode_pairs(np.zeros((4, 2, 3)))


def test_pyproject_extras_match_the_checks_and_the_test_extra_pulls_them():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        listed = " ".join(extras[extra])
        assert all(pip_name in listed for pip_name, _ in packages), (extra, listed)
    assert "overlapflow[sweep,decode]" in extras["test"]
    assert any(r.startswith("overlapflow[") and "decode" in r for r in extras["docs"])  # the memory tutorial decodes
    assert missing("sweep") == [] and missing("decode") == []
    require("sweep", "this test")
    require("decode", "this test")


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_the_package_and_the_demo_need_no_extra(tmp_path):
    """The quickstart (``pip install -e . && overlapflow demo``): every module imports and the demo runs
    with none of the extras' packages importable."""
    code = f"""
        import importlib, pkgutil, sys
        for name in ("dask", "distributed", "zarr", "sklearn"):
            sys.modules[name] = None
        import overlapflow
        for module in pkgutil.walk_packages(overlapflow.__path__, "overlapflow."):
            importlib.import_module(module.name)
        from overlapflow.cli import app
        out = {str(tmp_path / "demo")!r}
        app(["demo", "--n", "40", "--epochs", "3", "--out", out, "--quiet"], standalone_mode=False)
        """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "demo" / "overlaps.nc").is_file()
