"""The figures made by runners on the phenomena APIs (figs 2, 4, 8, 9, 10, 11) and ``reproduce all``:
each ``--quick`` figure writes its figure, data and key numbers, and a key number lies within a stated
tolerance of what the paper says (values measured at the --quick settings are quoted in each test)."""

import json
import re

import numpy as np
import pytest
import xarray as xr
from conftest import invoke

import overlapflow as of
from overlapflow.experiments import figures
from overlapflow.experiments.runner import RunError


def make(app, fig, out, data):
    """``reproduce FIG --quick --out OUT``: the files exist, and the key numbers by name."""
    result, output = invoke(app, "reproduce", fig, "--quick", "--out", out, "--quiet")
    assert result.exit_code == 0, output + repr(result.exception)
    for name in (f"fig{fig}.png", f"fig{fig}.pdf", f"fig{fig}.json", "summary.txt", *(f"{d}.nc" for d in data)):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = (out / "summary.txt").read_text()
    assert summary.count(f"key numbers of fig {fig} ") == 1 and f"fig {fig} (--quick): key numbers" in output
    record = json.loads((out / f"fig{fig}.json").read_text())
    assert record["quick"] and record["figure"] == fig
    return {n["name"]: n["value"] for n in record["numbers"]}


# ---------------------------------------------------------------------------- fast
def test_fig11_is_the_gram_map_and_a_second_run_redraws(app, tmp_path):
    """Fig 11's stored pattern is gram_map's (10 x 10 over all overlaps, 4 / 7 visible columns), and
    -eta G d is the gradient flow's velocity (measured 2e-16, 9e-16; tolerance 1e-12)."""
    for _ in range(2):  # the second run replaces its own section of summary.txt
        numbers = make(app, "11", tmp_path, ["gram_map"])
    stored = xr.open_dataset(tmp_path / "gram_map.nc").load()
    assert stored.sizes == {"network": 2, "overlap": 10, "gradient": 10}
    for name, rnn in figures.GRAM_NETWORKS.items():
        g = of.gram_map.gram_map(rnn)
        pattern = stored.pattern.sel(network=name)
        assert list(pattern.overlap.values) == list(g.overlap.values)
        np.testing.assert_array_equal(pattern.sel(gradient=list(g.gradient.values)).values, g.values)
        invisible = [label for label in pattern.gradient.values if label not in g.gradient.values]
        assert not pattern.sel(gradient=invisible).values.any()
        assert numbers[f"max |-eta G d - dS/dt| at random S, Gamma, {name}"] < 1e-12
    assert numbers["visible gradients (columns), linear"] == 4 and numbers["visible gradients (columns), erf"] == 7


def test_reproduce_all_makes_every_figure_and_goes_on_after_a_failure(app, tmp_path, monkeypatch):
    """``reproduce all`` goes through FIGURES in order, each in OUT/<folder>; a failing figure is
    reported and does not stop the next one; the exit code is the failure's."""

    def broken(settings, out, progress):
        raise RunError("stored data for other settings")

    specs = {
        "0": figures.FigureSpec("0", "a figure whose data cannot be made", draw=figures.draw_fig11, run=broken),
        "11": figures.FIGURES["11"],
    }
    monkeypatch.setattr(figures.registry, "FIGURES", specs)
    result, output = invoke(app, "reproduce", "all", "--quick", "--out", tmp_path, "--quiet")
    assert result.exit_code == 2, output
    assert "fig 0: stored data for other settings" in output
    assert re.search(r"^\s*0\s+failed \(exit 2\)", output, re.M) and re.search(r"^\s*11\s+ok", output, re.M)
    assert (tmp_path / "fig11" / "fig11.png").is_file() and not (tmp_path / "fig0" / "fig0.png").exists()


def test_stored_data_of_other_settings_is_kept_and_refused(app, tmp_path):
    """A folder whose A/B -> C data were computed with other settings: exit 2 before any work; the
    file is not overwritten."""
    path = tmp_path / "ab_to_c.nc"
    xr.Dataset({"x": ("a", [1.0])}, attrs={"figure_settings": json.dumps({"epochs": 30000})}).to_netcdf(path)
    before = path.read_bytes()
    result, output = invoke(app, "reproduce", "9", "--quick", "--out", tmp_path, "--quiet")
    assert result.exit_code == 2 and "computed with other settings" in output and "Traceback" not in output
    assert path.read_bytes() == before


def test_summary_keeps_the_run_and_one_section_per_figure(tmp_path):
    (tmp_path / "summary.txt").write_text("experiment: aba\nfinal loss: 0.1\n")
    figures.write_summary(tmp_path, {"6": "key numbers of fig 6: first\n  a  1\n"})
    figures.write_summary(tmp_path, {"3": "key numbers of fig 3: three\n  b  2\n"})
    figures.write_summary(tmp_path, {"6": "key numbers of fig 6: again\n  a  3\n"})
    text = (tmp_path / "summary.txt").read_text()
    assert text.startswith("experiment: aba\nfinal loss: 0.1\n\nkey numbers of fig 3")
    assert text.count("key numbers of fig 6") == 1 and "again" in text and "first" not in text
    assert text.index("fig 3") < text.index("fig 6")


def test_runner_settings_and_their_quick_versions():
    """Runner figures keep the paper's values as defaults; --quick replaces only what it names."""
    assert figures.figure_setup("2") == figures.TwinSettings() and figures.TwinSettings().uu == 2.048
    assert figures.figure_setup("9").epochs == 30000 and figures.figure_setup("9", quick=True).epochs < 1000
    quick = figures.figure_setup("4", quick=True)
    assert quick.flipflop == figures.figure_setup("8", quick=True)  # figs 4 and 8 share the flip-flop runs
    assert quick.memory == figures.figure_setup("10", quick=True)  # figs 4, 9, 10 share the A/B -> C data
    paper = figures.flipflop_config(figures.FlipFlopSettings())
    assert (paper.N, paper.network.phi, paper.network.dt, paper.phases[0].lr, paper.phases[0].epochs) == (
        600,
        "erf",
        0.025,
        0.05,
        2000,
    )
    flow = figures.flipflop_config(figures.FlipFlopSettings(), "flow")
    assert flow.phases[0].lr * 4 == paper.phases[0].lr and flow.phases[0].epochs == 4 * 2000
    adam = figures.flipflop_config(figures.FlipFlopSettings(), "adam")
    assert adam.phases[0].optimizer.kind == "adam" and adam.engines.names() == ["network"]


# ---------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_fig2_quick_twins(app, tmp_path):
    """Twins: the requested invisible overlaps, visible ones equal (measured 3e-17; tolerance 1e-12),
    identical outputs with and without injected noise (6e-16, 4e-16 relative; tolerance 1e-10),
    different outputs after 300 epochs (RMS 0.185), each loss curve the theory's (1e-14; tolerance 1e-9)."""
    numbers = make(app, "2", tmp_path, ["twins"])
    assert numbers["twin: ||u||^2 / N"] == pytest.approx(2.048, abs=1e-12)
    assert numbers["twin: sigma_mu"] == pytest.approx(0.8, abs=1e-12)
    assert numbers["max |visible overlap difference| before learning"] < 1e-12
    assert numbers["max |invisible overlap difference| before learning"] > 0.5
    assert numbers["max |y_1 - y_2| / max |y_1| before learning"] < 1e-10
    assert numbers["max |y_1 - y_2| / max |y_1| with noise in h (std 0.5)"] < 1e-10
    assert numbers["RMS output distance after 300 epochs"] > 0.05
    assert numbers["max |loss_1 - loss_2| over epochs"] > 0.1
    for member in ("theta_1", "twin"):
        assert numbers[f"max |loss network - loss theory|, {member}"] < 1e-9


@pytest.fixture(scope="module")
def nonlinear(tmp_path_factory):
    """One folder for figs 4, 8, 9 and 10, as ``reproduce all`` uses: the flip-flop runs and the A/B -> C
    data are made by whichever test comes first and reused by the others."""
    return tmp_path_factory.mktemp("nonlinear")


@pytest.mark.slow
def test_fig8_quick_flipflop_network_theory_and_gaussianity(app, nonlinear):
    """Flip-flop at N = 200 (--quick): network and theory learn together (loss below 10% of its start at
    epoch 166 and 167; max loss gap 0.040, bound 0.1; max overlap gap 0.137, bound 0.3); the learned
    vectors stay close to Gaussian under gradient descent and flow (Q-Q r >= 0.9969; bound 0.99)."""
    numbers = make(app, "8", nonlinear, ["network", "overlaps", "flow/network", "adam/network", "gaussianity"])
    assert numbers["final loss, network (gradient descent)"] < 1e-2 and numbers["final loss, theory"] < 1e-2
    epochs = [numbers[f"first epoch with loss < 10% of initial, {engine}"] for engine in ("network", "theory")]
    assert abs(epochs[0] - epochs[1]) <= 10
    assert numbers["max |loss network - loss theory| over epochs"] < 0.1
    assert numbers["max |S_network - S_theory| (all epochs, all overlaps)"] < 0.3
    for run in ("gradient flow", "Adam"):
        assert numbers[f"final loss, {run}, network"] < 1e-2
    for run in ("initial", "gradient descent", "gradient flow"):
        for vector in "muvz":
            assert numbers[f"Q-Q r of {vector}, {run}"] > 0.99


@pytest.mark.slow
def test_figs9_and_10_quick_ab_to_c(app, nonlinear):
    """A/B -> C (--quick): the members of a pair start identical (distance 0, decoding exactly 1/2 with
    and without feature noise: both members of a test pair get the same prediction), and after A/B
    the visible overlaps tell the history (the authors' cross-validation, noise in raw units: measured
    0.9 without noise and 0.8875 with noise 0.3; bound 0.8). Fig 10 reuses fig 9's data."""
    numbers = make(app, "9", nonlinear, ["ab_to_c", "decoding"])
    for which in ("visible", "invisible", "function", "gauge"):
        assert numbers[f"RMS f(A) - f(B), {which} features, start"] == 0
        assert numbers[f"RMS f(A) - f(B), {which} features, after A / B"] > 0.1
    stamp = (nonlinear / "ab_to_c.nc").stat().st_mtime_ns
    numbers = make(app, "10", nonlinear, ["ab_to_c", "decoding"])
    assert (nonlinear / "ab_to_c.nc").stat().st_mtime_ns == stamp
    for noise in ("0", "0.3"):
        for which in ("visible", "invisible", "function", "gauge"):
            assert numbers[f"decoding accuracy, {which} features, start, noise {noise}"] == 0.5
        assert numbers[f"decoding accuracy, visible features, after A / B, noise {noise}"] >= 0.8


@pytest.mark.slow
def test_fig4_quick_overview(app, nonlinear):
    """Fig 4 = the flip-flop's network vs theory (a-c) and A/B -> C (d-f), from the same runs as figs 8-10."""
    numbers = make(app, "4", nonlinear, ["network", "overlaps", "ab_to_c", "decoding"])
    assert numbers["max |loss network - loss theory| over epochs"] < 0.1
    assert numbers["RMS |y_network - y_theory| on a held-out trial (unmasked steps)"] < 0.05
    assert numbers["decoding accuracy, visible features, start, noise 0"] == 0.5
    assert numbers["decoding accuracy, visible features, after A / B, noise 0"] >= 0.9
