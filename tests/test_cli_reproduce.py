"""``reproduce``: the run time of every figure (--list), the notice a full-scale figure gives first, a
quick figure's files naming its own folder, and optimiser descriptions that name only what applies."""

import json
import re

from conftest import invoke_streams as invoke

import overlapflow as of
from overlapflow.experiments import figures
from overlapflow.experiments.figures.registry import RUN_TIME_NOTE


def test_every_figure_has_its_run_times_and_list_shows_them(app):
    for spec in figures.FIGURES.values():
        quick, full = spec.seconds
        assert 0 < quick <= full < 3 * 3600 and quick < 120, spec.id
    # the A/B -> C figures take the measured half hour and more; the linear ones a minute or two
    assert figures.FIGURES["9"].seconds[1] >= 1800 and figures.FIGURES["5"].seconds[1] < 300
    code, stdout, _ = invoke(app, "reproduce", "--list")
    assert code == 0
    for fig in ("1c", "9", "12"):
        assert re.search(rf"^\s*{fig}\s+available\s+\S+\s+\S+\s+\d+ s\s+[\d.]+ (s|min|h)\s", stdout, re.M), fig
    assert " ".join(RUN_TIME_NOTE.split()[:6]) in " ".join(stdout.split())


def fake_figure(fig, quick=False, out=None, progress=False):
    return figures.FigureResult(fig, out, [figures.KeyNumber("x", 1.0)], [], {})


def test_a_full_scale_figure_says_how_long_and_how_to_stop_first(app, tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "reproduce_figure", fake_figure)
    code, stdout, stderr = invoke(app, "reproduce", "9", "--out", tmp_path)
    assert code == 0
    (line,) = stderr.splitlines()
    assert line.startswith("fig 9 at the paper's settings: about ") and " min on a 2-core CPU (estimated" in line
    assert line.endswith(
        f"Stop it any time with Ctrl-C and continue with the same command: overlapflow reproduce 9 --out {tmp_path}"
    )
    for quiet in (["--quick"], ["--quiet"]):
        code, stdout, stderr = invoke(app, "reproduce", "9", "--out", tmp_path, *quiet)
        assert code == 0 and stderr == ""


def test_reproduce_all_at_full_scale_gives_the_total_then_each_figure(app, tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "reproduce_figure", fake_figure)
    code, stdout, stderr = invoke(app, "reproduce", "all", "--out", tmp_path)
    assert code == 0
    lines = stderr.splitlines()
    assert lines[0].startswith("every figure at the paper's settings: up to about ") and lines[0].endswith(
        f"overlapflow reproduce all --out {tmp_path}"
    )
    assert [line.split(" at ")[0] for line in lines[1:]] == [f"fig {fig}" for fig in figures.FIGURES]


def test_a_quick_figure_names_its_own_folder(app, tmp_path):
    out = tmp_path / "five"
    code, stdout, stderr = invoke(app, "reproduce", "5", "--quick", "--out", out, "--quiet")
    assert code == 0, stdout + stderr
    summary = (out / "summary.txt").read_text()
    assert f"output {out}" in summary and "overlapflow-fig5" not in summary
    assert json.loads((out / "config.json").read_text())["output"] == str(out)
    network = of.load_history(out / "network.nc")
    assert list(network.phase_optimizer.values) == ["Optimizer(kind='sgd')"]


def test_optimizer_descriptions_name_what_applies_and_repr_keeps_everything():
    assert of.Optimizer("sgd").describe() == "Optimizer(kind='sgd')"
    assert of.Optimizer("momentum", momentum=0.5).describe() == "Optimizer(kind='momentum', momentum=0.5)"
    assert of.Optimizer("nesterov").describe() == "Optimizer(kind='nesterov', momentum=0.9)"
    assert of.Optimizer("adam").describe() == "Optimizer(kind='adam', b1=0.9, b2=0.999, eps=1e-08)"
    assert (
        of.Optimizer("sgd", weight_decay=1e-3, lr_drop_below=0.015).describe()
        == "Optimizer(kind='sgd', weight_decay=0.001, lr_drop_below=0.015, lr_drop_factor=5.0)"
    )
    assert "momentum=0.9" in repr(of.Optimizer("sgd")) and "b2=0.999" in repr(of.Optimizer("sgd"))
