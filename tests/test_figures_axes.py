"""Every paper figure is readable: each panel labels both axes (an image panel at least has a title),
no grid slot is left empty, and where the network and the theory share a panel the legend names both.

The figures are drawn by their own draw functions (as ``overlapflow reproduce FIG --quick`` does) on
data smaller still than ``--quick`` (N 20 to 40, 10 to 50 epochs), so that drawing, not learning, is
tested. The nonlinear figures (4, 8, 9, 10) and the longer linear ones (7, 12) are marked slow."""

import dataclasses

import pytest
from test_plot import assert_readable

from overlapflow.experiments import figures
from overlapflow.experiments.figures import registry
from overlapflow.experiments.figures.data import run_config

FLIPFLOP = figures.FlipFlopSettings(N=30, dt=0.1, t_max=5.0, lr=0.2, epochs=12, flow_factor=2)
MEMORY = figures.MemorySettings(n_pairs=4, epochs=10, batch_size=4, resamples=2, workers=0, n_train_pairs=3)
TINY = {
    "1c": dict(N=20, epoch_scale=0.005, checkpoint_every=1000),
    "2": dict(N=40, epochs=20, compare_at=10),
    "3": dict(N=20, epoch_scale=0.005, checkpoint_every=1000),
    "4": dict(flipflop=FLIPFLOP, memory=MEMORY),
    "5": dict(N=20, epoch_scale=0.005, checkpoint_every=1000),
    "6": dict(N=20, epoch_scale=0.005, checkpoint_every=1000),
    "7": dict(N=20, epoch_scale=0.002, checkpoint_every=1000),
    "8": dataclasses.asdict(FLIPFLOP),
    "9": dataclasses.asdict(MEMORY),
    "10": dataclasses.asdict(MEMORY),
    "11": {},
    "12": dict(N=20, epoch_scale=0.001, checkpoint_every=1000),
}
# figures with a panel where the network and the theory are both drawn
NETWORK_AND_THEORY = {"1c", "2", "3", "4", "5", "6", "8", "12"}


def tiny_setup(fig: str):
    spec = registry.FIGURES[fig]
    if spec.config is not None:
        return registry.figure_setup(fig).scaled(**TINY[fig], suffix="-tiny")
    return None if spec.settings is None else dataclasses.replace(spec.settings, **TINY[fig])


@pytest.fixture(scope="module")
def draw(tmp_path_factory):
    """draw(fig) -> (Figure, key numbers), each figure's data made once in the module's folder
    (figures that share data share a subfolder, as ``reproduce all`` does)."""
    base = tmp_path_factory.mktemp("figures")
    drawn = {}

    def make(fig: str):
        if fig not in drawn:
            spec, setup = registry.FIGURES[fig], tiny_setup(fig)
            out = base / spec.folder
            out.mkdir(parents=True, exist_ok=True)
            data = run_config(setup, out, False) if spec.config is not None else spec.run(setup, out, False)
            drawn[fig] = spec.draw(data, setup, out)
        return drawn[fig]

    return make


def test_every_figure_has_a_tiny_setting():
    assert set(TINY) == set(registry.FIGURES)


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores (tests/test_plot.py
# keeps the same checks on the demo and on plot_run in the default suite)
@pytest.mark.parametrize("fig", list(registry.FIGURES))
def test_figure_is_readable(draw, fig):
    figure, numbers = draw(fig)
    axes = assert_readable(figure)
    assert axes and numbers
    assert figure.get_suptitle().startswith(f"Fig {fig}:")
    both = [ax for ax in axes if {"network", "theory"} <= {line.get_gid() for line in ax.lines}]
    assert bool(both) == (fig in NETWORK_AND_THEORY), [ax.get_title() for ax in both]


def test_fig5_lays_out_its_five_panels_exactly(draw):
    """Two responses above loss | visible | invisible: no empty slot; the white-noise panel shows
    the theory next to the network."""
    figure, _ = draw("5")
    axes = figure.axes
    assert len(axes) == 5
    assert [ax.get_title() for ax in axes[:3]] == [
        "white-noise input, after training",
        "learned impulse response",
        "loss",
    ]
    assert "time" in axes[0].get_xlabel() and "(s)" in axes[0].get_xlabel()
    assert {"network", "theory"} <= {line.get_gid() for line in axes[0].lines}
    assert axes[2].get_ylabel() == "loss" and all("overlap value" in ax.get_ylabel() for ax in axes[3:])


def test_fig3_names_its_phases_on_every_panel(draw):
    figure, _ = draw("3")
    for ax in figure.axes:
        assert [t.get_text() for t in ax.texts] == ["A", "B1", "A2", "B2", "A+noise"]
