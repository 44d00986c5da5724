"""overlapflow.inspection and ``overlapflow inspect``: the report's numbers against direct computation,
the BIC's choice of K, the rows figure, and the command's output and exit codes."""

import jax
import numpy as np
import pytest
from conftest import invoke_streams, two_population_rows
from sklearn.mixture import GaussianMixture

import overlapflow as of
from overlapflow.inspection import fit_populations, inspect_network, row_pairs, rows_figure, theory_gap
from overlapflow.interop import ImportedNetwork, save_low_rank_rnns
from overlapflow.torchfile import write_state_dict

RNN = of.LowRankRNN(rank=1, n_in=4, n_out=1, phi="tanh", dt=0.02, tau=0.1)  # alpha 0.2, the lab's
N = 1000


def two_populations():
    return two_population_rows(RNN, N)


@pytest.fixture(scope="module")
def two_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inspect") / "two.pt"
    save_low_rank_rnns(path, RNN, two_populations()[0])
    return path


@pytest.fixture(scope="module")
def two_report(two_file):
    return inspect_network(two_file, alpha=0.2, tau=0.1)


def test_report_numbers_are_the_networks(two_report):
    report = two_report
    theta = report.network.theta  # the file's float32 values in float64
    np.testing.assert_allclose(theta, two_populations()[0], atol=1e-6)
    assert (report.N, report.network.rnn.rank, report.network.rnn.n_in, report.network.rnn.n_out) == (N, 1, 4, 1)
    assert report.network.rnn.alpha == pytest.approx(0.2)
    S = theta.T @ theta / N
    names = RNN.vector_names
    for label, value in {**report.visible, **report.invisible}.items():
        i, j = of.overlaps.parse_pair(names, label)
        assert value == pytest.approx(S[i, j], rel=1e-12, abs=1e-15)
    assert list(report.visible) == of.visible_names(RNN) and list(report.invisible) == of.invisible_names(RNN)
    assert set(report.invisible) == {"zv", "zz", "vv"}  # tanh: everything but S[A, A] is visible
    values, labels = of.gauge.function_coordinates(RNN, S)
    assert list(report.function) == labels
    np.testing.assert_allclose(list(report.function.values()), np.asarray(values), rtol=1e-10)
    assert report.function["vu"] == pytest.approx(S[5, 4])
    assert report.gauge == {"uu": pytest.approx(S[4, 4])}  # the scale of u against v


def test_bic_picks_two_populations_and_finds_them(two_report):
    report = two_report
    assert report.populations == "bic" and report.K == 2 and len(report.bic) == 5
    assert int(np.argmin(report.bic)) == 1
    truth = two_populations()[1]
    agreement = np.mean(report.labels == truth)
    assert max(agreement, 1 - agreement) == 1.0  # every neuron in its population (up to their order)
    theta = report.network.theta
    one = GaussianMixture(1, covariance_type="full", random_state=0, n_init=3).fit(theta).bic(theta)
    assert report.bic[0] == pytest.approx(one, rel=1e-12)
    # the mixture is the empirical law of the labelled rows: its overlaps are the network's
    np.testing.assert_allclose(report.mixture.overlaps, theta.T @ theta / N, atol=1e-12)
    assert sorted(report.sizes) == [500, 500]


def test_bic_picks_one_gaussian():
    theta = np.random.default_rng(1).standard_normal((N, RNN.n_vectors))
    fit = fit_populations(RNN, theta)
    assert fit.K == 1 and int(np.argmin(fit.bic)) == 0 and fit.mixture.n_components == 1
    assert np.all(fit.labels == 0)


def test_populations_given_by_the_file_or_by_k():
    theta, labels = two_populations()
    net = ImportedNetwork(RNN, theta, labels, "SupportLowRankRNN", 0.05, "two.pt", "zip")
    report = inspect_network(net)
    assert report.populations == "file" and report.bic is None and report.K == 2
    np.testing.assert_array_equal(report.labels, labels)
    np.testing.assert_allclose(report.mixture.means, of.Mixture.from_params(RNN, theta, labels).means)
    fitted = inspect_network(net, K=3)
    assert fitted.populations == "fit" and fitted.K == 3 and fitted.bic is None
    with pytest.raises(ValueError, match=r"K = 0: must be an integer in \[1, N\)"):
        inspect_network(net, K=0)


def test_theory_gap_against_direct_computation(two_report):
    task = of.tasks.ContextDecision(context_cue=0.5, batch_size=8)
    net, S = two_report.network, two_report.overlaps
    gap = theory_gap(net.rnn, net.theta, S, two_report.mixture, task, seed=3)
    with of.precision.float64_scope():
        batch = task.sample(jax.random.key(3), net.rnn.dt)
        y = np.asarray(of.network_forward(net.rnn, jax.numpy.asarray(net.theta), batch.inputs))
        y_gauss = np.asarray(of.meanfield_forward(net.rnn, S.matrix, batch.inputs))
        y_mix = np.asarray(of.meanfield_forward(net.rnn, two_report.mixture, batch.inputs))
    assert gap.rms_network == pytest.approx(np.sqrt(np.mean(y**2)), rel=1e-12)
    assert gap.rms_gaussian == pytest.approx(np.sqrt(np.mean((y_gauss - y) ** 2)), rel=1e-12)
    assert gap.rms_mixture == pytest.approx(np.sqrt(np.mean((y_mix - y) ** 2)), rel=1e-12)
    assert set(gap.accuracy) == {"network", "gaussian", "mixture"}
    assert gap.accuracy["network"] == pytest.approx(float(task.accuracy(y, batch)))
    with pytest.raises(ValueError, match="n_in = 1, n_out = 1; the network has n_in = 4"):
        theory_gap(net.rnn, net.theta, S, two_report.mixture, of.tasks.FlipFlop(), 0)


def test_rows_figure(two_report, tmp_path):
    pairs = row_pairs(RNN)
    names = RNN.vector_names
    assert [(names[i], names[j]) for i, j in pairs] == [("u", "v"), ("m1", "v"), ("m2", "v"), ("m3", "v"),
                                                        ("m4", "v"), ("u", "z")]  # fmt: skip
    fig = rows_figure(two_report, max_points=300)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 6
    assert [len(c.get_offsets()) for c in shown[0].collections] and sum(
        len(c.get_offsets()) for c in shown[0].collections
    ) == 300
    fig.savefig(tmp_path / "rows.png")
    assert (tmp_path / "rows.png").stat().st_size > 0


# ------------------------------------------------------------------ the command
def test_inspect_command(app, two_file, tmp_path):
    task = tmp_path / "task.toml"
    task.write_text('[task]\nkind = "context_decision"\ncontext_cue = 0.5\nbatch_size = 16\n')
    plot = tmp_path / "rows.png"
    code, out, err = invoke_streams(app, "inspect", two_file, "--tau", "0.1", "--task", task, "--plot", plot)
    assert code == 0, err
    for text in ("LowRankRNN", "visible overlaps", "invisible overlaps", "function coordinates", "gauge coordinates"):
        assert text in out
    assert "populations: K = 2 (fitted, K of lowest BIC)" in out
    assert "  2 *" in out  # the selected K in the BIC table
    assert "one Gaussian" in out and "mixture (K = 2)" in out and "accuracy" in out
    assert plot.stat().st_size > 0 and f"wrote {plot}" in out


@pytest.mark.parametrize(
    "make, args, expected",
    [
        (None, (), "nope.pt: no such file"),
        (lambda p: p.write_text("text"), (), "nope.pt: not a torch file: neither a zip archive nor"),
        (lambda p: write_state_dict(p, {"m": np.ones((5, 1), np.float32)}), (), "without the keys"),
        ("two", ("--task", "no_such_task"), "--task: value 'no_such_task': neither a task kind"),
        ("two", ("--task", "context_decision"), "decision = 0.02: shorter than one step at dt = 0.2"),
        ("two", ("--task", "TASK"), "--task TASK: context_cue: value -1"),
    ],
)
def test_inspect_bad_input_is_one_line_exit_2(app, two_file, tmp_path, make, args, expected):
    path = tmp_path / "nope.pt"
    if make == "two":
        path = two_file
    elif make is not None:
        make(path)
    table = tmp_path / "task.toml"
    table.write_text('kind = "context_decision"\ncontext_cue = -1\n')
    args = [str(table) if a == "TASK" else a for a in args]
    code, out, err = invoke_streams(app, "inspect", path, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected.replace("TASK", str(table)) in err.replace("\n", "")
