"""Figures render and hold what they claim: every panel labels both axes, nothing is drawn on an empty
slot, legends say which line style is the network and which the theory, and coinciding curves stay
visible. ``assert_readable`` is the check every figure test uses (tests/test_figures_axes.py too)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.legend import Legend

import overlapflow as of
from overlapflow.experiments import RunFolder, load_config_text, run_experiment
from overlapflow.plot import coinciding_overlaps, compare, history_styles, plot_run

KINDS = {"network": "network", "theory": "theory", "naive": "naive", "particles": "particles"}


def legend_texts(ax) -> str:
    """Every legend entry and legend title of ``ax`` and of its figure, lower case, in one string."""
    legends = [a for a in ax.get_children() if isinstance(a, Legend)] + list(ax.figure.legends)
    texts = [t.get_text() for legend in legends for t in legend.get_texts()]
    texts += [legend.get_title().get_text() for legend in legends]
    return " ".join(texts).lower()


def has_content(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.patches or ax.images or ax.containers)


def assert_readable(fig, image_panels_need_only_a_title: bool = True) -> list:
    """Every axes of ``fig`` is shown, has something drawn, and labels both axes (an image panel
    without axis labels must at least have a title); where lines of two kinds (their ``gid``:
    network, theory, naive, particles) share a panel, the legends there (or the figure's) name both.
    Returns the axes."""
    for k, ax in enumerate(fig.axes):
        name = f"axes {k} ({ax.get_title()!r})"
        assert ax.get_visible() and ax.axison, f"{name}: an empty or hidden slot"
        assert has_content(ax), f"{name}: nothing drawn"
        labelled = ax.get_xlabel().strip() and ax.get_ylabel().strip()
        if ax.images and image_panels_need_only_a_title and not labelled:
            assert ax.get_title().strip(), f"{name}: an image panel without axis labels needs a title"
        else:
            assert ax.get_xlabel().strip(), f"{name}: no x label"
            assert ax.get_ylabel().strip(), f"{name}: no y label"
        kinds = {line.get_gid() for line in ax.lines} & set(KINDS)
        if len(kinds) > 1:
            texts = legend_texts(ax)
            for kind in kinds:
                assert KINDS[kind] in texts, f"{name}: {kind} lines drawn, but no legend names them: {texts!r}"
    return fig.axes


def test_task_gallery_draws_one_trial_per_task(tmp_path):
    tasks = {"filter": of.tasks.ExponentialFilter(c=0.2), "flip-flop": of.tasks.FlipFlop(batch_size=2)}
    fig = of.plot.task_gallery(tasks, path=tmp_path / "tasks.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["filter", "flip-flop"]
    target = of.tasks.ExponentialFilter(c=0.2).sample(jax.random.key(0), 0.05).targets[0, :, 0]
    np.testing.assert_allclose(visible[0].lines[1].get_ydata(), np.asarray(target))
    assert (tmp_path / "tasks.png").stat().st_size > 10_000
    assert len(fig.axes) == 2  # the unused slot of the 1 x 3 grid is removed, not hidden
    assert_readable(fig)
    assert "time" in fig.axes[0].get_xlabel() and "dt" in fig.axes[0].get_xlabel()


# ---------------------------------------------------------------------------- the demo's figure
@pytest.fixture(scope="module")
def demo_histories():
    """What ``overlapflow demo --n 60 --epochs 50`` trains: the network (float32) and the exact theory."""
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2)
    theta = rnn.init(jax.random.key(0), N=60)
    sim = of.train(of.NetworkEngine(), rnn, task, theta, 5e-3, 50).history
    thy = of.train(of.OverlapEngine(), rnn, task, of.Overlaps.from_params(rnn, theta), 5e-3, 50).history
    return sim, thy


def test_compare_labels_every_axis_and_names_network_and_theory(demo_histories, tmp_path):
    sim, thy = demo_histories
    fig = compare(sim, thy, path=tmp_path / "compare.png")
    ax_loss, ax_vis, ax_inv = assert_readable(fig)
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert ax_loss.get_xlabel() == "epoch" and ax_loss.get_ylabel() == "loss" and ax_loss.get_yscale() == "log"
    for ax in (ax_vis, ax_inv):
        assert ax.get_xlabel() == "epoch" and "overlap value" in ax.get_ylabel() and "dimensionless" in ax.get_ylabel()
        texts = legend_texts(ax)
        assert "network n=60" in texts and "overlap theory (exact)" in texts
    # the styles: network a wide translucent solid band, theory thin dashed on top
    network = [line for line in ax_vis.lines if line.get_gid() == "network"]
    theory = [line for line in ax_vis.lines if line.get_gid() == "theory"]
    assert len(network) == len(theory) == 4
    for net, thy_line in zip(network, theory, strict=True):
        assert net.get_linestyle() == "-" and thy_line.get_linestyle() == "--"
        assert net.get_linewidth() > 2 * thy_line.get_linewidth() and net.get_alpha() < 1
        assert thy_line.get_zorder() > net.get_zorder()
        assert net.get_color() == thy_line.get_color() and net.get_marker() == thy_line.get_marker()
        assert thy_line.get_markerfacecolor() == "none" != net.get_markerfacecolor()
    assert "solid band" in fig.get_suptitle() and "dashed" in fig.get_suptitle()


def test_compare_tells_coinciding_overlaps_apart(demo_histories):
    """sigma_zz lies under sigma_mm (both ~1): every overlap has its own colour and marker, and the
    markers of two overlaps sit at different epochs, so both stay visible."""
    sim, thy = demo_histories
    _, ax_vis, ax_inv = compare(sim, thy).axes
    for ax in (ax_vis, ax_inv):
        network = [line for line in ax.lines if line.get_gid() == "network"]
        looks = {(line.get_color(), line.get_marker()) for line in network}
        assert len(looks) == len(network) and all(marker not in ("None", "", None) for _, marker in looks)
        starts = [line.get_markevery()[0] for line in network]
        assert len(set(starts)) == len(starts)
    labels = of.overlap_labels(sim, "invisible")
    zz, mm = (ax_inv.lines[2 * labels.index(name)] for name in ("zz", "mm"))
    assert zz.get_marker() != mm.get_marker() and zz.get_color() != mm.get_color()
    assert zz.get_markevery() != mm.get_markevery()


def test_coinciding_overlaps_are_named():
    rnn = of.LowRankRNN(rank=1)
    P = rnn.n_vectors
    S = np.tile(np.eye(P), (5, 1, 1))
    for i in range(P):
        for j in range(i):
            S[:, i, j] = S[:, j, i] = np.linspace(0, 0.1 * (P * i + j + 1), 5)  # distinct off the diagonal
    h = of.history.make_history(rnn, np.ones(5), S, {"engine": "overlaps", "method": "exact"})
    labels = of.overlap_labels(h, "invisible")
    groups = coinciding_overlaps(h, labels)
    diagonal = [label for label in labels if label[0] == label[1]]
    assert [sorted(g) for g in groups] == [sorted(diagonal)]  # all the norms are 1 here
    fig = compare(h)
    assert "coincide" in fig.axes[2].get_title() and "coincide" not in fig.axes[1].get_title()


def test_styles_follow_the_kind_of_history(demo_histories):
    sim, thy = demo_histories
    naive = thy.assign_attrs(method="visible-only")
    euler = thy.assign_attrs(method="euler")
    styles = history_styles([thy, sim, naive, euler])
    assert [s["gid"] for s in styles] == ["theory", "network", "naive", "other"]
    assert styles[0]["linestyle"] == "--" and styles[1]["linestyle"] == "-"
    assert len({str(s["linestyle"]) for s in styles}) == 4  # four dash patterns
    with pytest.raises(ValueError, match="told apart"):
        compare(*([sim] * 7))


# ---------------------------------------------------------------------------- plot_run
TINY = """
name = "tiny"
description = "two phases of the filter task"
N = 20
seed = 1
checkpoint_every = 4

[[phases]]
name = "A"
epochs = 6
lr = 5e-3
task = {kind = "exponential_filter", c = 0.2, t_max = 2.0}

[[phases]]
name = "B"
epochs = 4
lr = 5e-3
task = {kind = "exponential_filter", c = 0.4, t_max = 2.0}

[engines]
network = true
overlaps = ["exact", "euler"]
particles = {rule = "gauss-hermite", nodes = 2}
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-run")
    run_experiment(load_config_text(TINY), out)
    return out


def draw(run_dir, out=None) -> list:
    """What ``overlapflow plot RUN_DIR [--out OUT]`` does: the folder's Histories, drawn with its title."""
    folder = RunFolder(run_dir)
    histories = folder.histories()
    return plot_run(histories, run_dir if out is None else out, title=folder.title(histories))


def test_plot_run_draws_a_finished_run(run_folder):
    paths = draw(run_folder)
    assert paths == [run_folder / "figure.png", run_folder / "figure.pdf"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert (run_folder / "figure.pdf").read_bytes()[:4] == b"%PDF"
    histories = RunFolder(run_folder).histories()
    assert list(histories) == ["network", "overlaps", "overlaps-euler", "particles"]
    assert all(h.attrs["status"] == "complete" for h in histories.values())
    with pytest.raises(ValueError, match="histories: empty"):
        plot_run({}, run_folder)


def test_plot_run_figure_has_engines_phases_and_title(run_folder, monkeypatch):
    """The figure itself: loss per engine, visible and invisible overlaps, phases named, the title."""
    figures = []
    monkeypatch.setattr(of.plot, "save_figure", lambda fig, path, dpi=150: figures.append(fig) or fig)
    draw(run_folder, run_folder / "again")
    fig = figures[0]
    ax_loss, ax_vis, ax_inv = assert_readable(fig)
    assert "experiment tiny" in fig.get_suptitle() and "two phases" in fig.get_suptitle()
    lines = [line for line in ax_loss.lines if line.get_gid()]  # not the phase boundary
    assert [line.get_label() for line in lines] == [
        "network N=20 (float32)",
        "overlap theory (exact)",
        "overlap theory (euler)",
        "particles (16, N -> infinity)",
    ]
    assert [line.get_gid() for line in lines] == ["network", "theory", "other", "particles"]
    assert ax_vis.get_title().startswith("loss-visible") and ax_inv.get_title().startswith("loss-invisible")
    for ax in (ax_loss, ax_vis, ax_inv):
        names = [t.get_text() for t in ax.texts]
        assert names[:2] == ["A", "B"]  # the phases, named above the panel
        assert any(patch.get_x() == 6 for patch in ax.patches)  # phase B shaded from epoch 6
        assert "particles" in legend_texts(ax) and "network" in legend_texts(ax)


def _suptitle_of(run_dir) -> str:
    figures = []
    original = of.plot.save_figure
    of.plot.save_figure = lambda fig, path, dpi=150: figures.append(fig) or fig
    try:
        draw(run_dir)
    finally:
        of.plot.save_figure = original
    return figures[0].get_suptitle()


def test_plot_run_writes_where_asked(run_folder, tmp_path):
    assert draw(run_folder, tmp_path / "figs") == [tmp_path / "figs/figure.png", tmp_path / "figs/figure.pdf"]
    assert draw(run_folder, tmp_path / "run.svg") == [tmp_path / "run.svg"]
    assert (tmp_path / "run.svg").read_text().lstrip().startswith("<?xml")


def test_plot_run_draws_unfinished_runs(run_folder, tmp_path):
    """An interrupted run (checkpoint segments only) and a diverged one (``<engine>.partial.nc``)."""
    config = load_config_text(TINY)
    out = tmp_path / "stopped"
    stopped = run_experiment(config, out, stop_after_segments=2)  # phase A: segments of 4 and 2 epochs
    assert not (out / "network.nc").exists()
    histories = RunFolder(out).histories()
    assert list(histories) == ["network", "overlaps", "overlaps-euler", "particles"]
    for name, history in histories.items():  # the records the run had when it stopped
        np.testing.assert_array_equal(history.loss.values, stopped[name].loss.values)
        np.testing.assert_array_equal(history.overlaps.values, stopped[name].overlaps.values)
        np.testing.assert_array_equal(history.visible.values, stopped[name].visible.values)
    assert histories["network"].sizes["epoch"] == 7 and histories["network"].attrs["status"] == "partial"
    assert "[partial: epoch 6 of 10]" in _suptitle_of(out)
    assert of.history.phase_names(histories["network"]) == ["A", "B"]
    paths = draw(out)
    assert all(p.is_file() for p in paths)

    # a diverged run: its engine's partial History (here 9 records) is longer than the checkpoint's 7
    longer = RunFolder(run_folder).histories()["overlaps"].isel(epoch=slice(0, 9)).assign_attrs(status="diverged")
    RunFolder(out).write_history("overlaps", longer, partial=True)
    histories = RunFolder(out).histories()
    assert histories["overlaps"].sizes["epoch"] == 9 and histories["overlaps"].attrs["status"] == "diverged"
    assert histories["network"].sizes["epoch"] == 7
    assert "[diverged/partial: epoch network 6, overlaps 8, overlaps-euler 6, particles 6 of 10]" in _suptitle_of(out)
    with pytest.raises(FileNotFoundError, match="no overlapflow run in"):
        RunFolder(tmp_path).histories()


def test_a_folder_without_a_run_has_no_histories(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RunFolder(tmp_path / "nowhere").histories()
    (tmp_path / "decoding.nc").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no overlapflow run in"):
        RunFolder(tmp_path).histories()


# ---------------------------------------------------------------------------- the validation figure
@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_plot_validation_is_readable():
    from overlapflow.validation import validate_theory
    from overlapflow.validation_plot import plot_validation

    rnn = of.LowRankRNN(rank=1, phi="erf")
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(1), N=200, dtype=jnp.float64))
    task = of.tasks.ExponentialFilter(c=0.2, t_max=2.0)
    result = validate_theory(rnn, task, S0, lr=0.05, epochs=4, sizes=(50, 100), seeds=1, nodes=3)
    fig = plot_validation(result)
    axes = assert_readable(fig)
    assert len(axes) == 4
    for ax in (axes[0], axes[1], axes[3]):
        assert {"network", "theory"} <= {line.get_gid() for line in ax.lines}
