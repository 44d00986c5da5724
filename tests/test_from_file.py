"""``init.from_file``: every engine of a config starts from a ``low_rank_rnns`` network file (with its
own populations, fitted ones, or one Gaussian); its checks, one line each; ContextDecision's
``swap_contexts``."""

from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import config_problems, two_population_rows

import overlapflow as of
from overlapflow.experiments import load_config_text
from overlapflow.experiments.runner import run_experiment
from overlapflow.interop import save_low_rank_rnns

RNN = of.LowRankRNN(rank=1, n_in=4, n_out=1, phi="tanh", dt=0.02, tau=0.1)
N = 200
DATA = Path(__file__).resolve().parent / "data" / "low_rank_rnns"


def two_populations():
    return two_population_rows(RNN, N)


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("from_file") / "net.pt"
    save_low_rank_rnns(path, RNN, two_populations()[0])
    return path


def config_text(path, out="run", N=N, init="", engines='overlaps = "exact"', network=None, epochs=2):
    network = network or 'rank = 1\nn_in = 4\nn_out = 1\nphi = "tanh"\ndt = 0.02\ntau = 0.1'
    return f"""
name = "from file"
N = {N}
output = "{out}"
checkpoint_every = {epochs}
epochs = {epochs}
lr = 0.01
task = {{kind = "context_decision", context_cue = 0.5, swap_contexts = true, batch_size = 4}}

[network]
{network}

[init]
from_file = "{path}"
{init}

[engines]
network = true
{engines}
"""


def support_config(out, init=""):
    """A config continuing the test file of a SupportLowRankRNN (N = 20, rank 1, n_in 2, n_out 1;
    populations of 12, 7 and 1 neurons) on the delayed match-to-sample task."""
    network = 'rank = 1\nn_in = 2\nn_out = 1\nphi = "tanh"\ndt = 0.02\ntau = 0.1'
    text = config_text(DATA / "support_zip.pt", out, N=20, network=network, init=init)
    return text.replace(
        'task = {kind = "context_decision", context_cue = 0.5, swap_contexts = true, batch_size = 4}',
        'task = {kind = "delayed_match", batch_size = 4}',
    )


@pytest.mark.slow
def test_every_engine_starts_from_the_file(net_file, tmp_path):
    """One Gaussian (no populations): the network from the file's theta, the overlap engine and the
    particles from its S."""
    engines = 'overlaps = "exact"\nparticles = {rule = "gauss-hermite", nodes = 2}'
    config = load_config_text(config_text(net_file, tmp_path / "run", engines=engines))
    histories = run_experiment(config, tmp_path / "run")
    theta32 = two_populations()[0].astype(np.float32).astype(np.float64)
    S = theta32.T @ theta32 / N
    first = {name: h.overlaps.values[0] for name, h in histories.items()}
    np.testing.assert_allclose(first["network"], S, rtol=0, atol=2e-5 * np.abs(S).max())  # float32 round-off
    np.testing.assert_allclose(first["overlaps"], S, rtol=0, atol=1e-12)  # S of the file's values, float64
    np.testing.assert_allclose(first["particles"], S, rtol=0, atol=1e-10)  # the cloud's second moment
    assert "population_overlaps" not in histories["network"]
    for history in histories.values():
        assert np.all(np.isfinite(history.loss.values)) and history.sizes["epoch"] == 3


def test_fitted_populations_start_every_engine(net_file, tmp_path):
    config = load_config_text(config_text(net_file, tmp_path / "run", init='populations = "fit"'))
    histories = run_experiment(config, tmp_path / "run")
    theta, labels = two_populations()
    fit, fit_labels = of.Mixture.fit(RNN, theta.astype(np.float32).astype(np.float64), 2, 0)
    assert max(np.mean(fit_labels == labels), np.mean(fit_labels != labels)) == 1.0
    for name in ("network", "overlaps"):
        pops = histories[name].population_overlaps.values
        assert pops.shape == (3, 2, 7, 7)
        np.testing.assert_allclose(pops[0], np.asarray(fit.second_moments), atol=2e-4)  # float32 network
    np.testing.assert_allclose(histories["overlaps"].population_weights.values, [0.5, 0.5])


def test_number_of_populations_and_the_files_own(net_file, tmp_path):
    """populations = K fits K; a SupportLowRankRNN file starts from its own populations (one engine each)."""
    from overlapflow.experiments.runner import _initial_states

    config = load_config_text(config_text(net_file, tmp_path / "a", init="populations = 3"))
    start = _initial_states(config, config.build_network(), ["network", "overlaps"])
    assert start.law.n_components == 3 and np.bincount(start.labels).size == 3
    np.testing.assert_allclose(start.law.overlaps, two_populations()[0].T @ two_populations()[0] / N, atol=1e-5)

    support = DATA / "support_zip.pt"
    text = support_config(tmp_path / "b")
    config = load_config_text(text)
    start = _initial_states(config, config.build_network(), ["network", "overlaps"])
    imported = of.interop.load_low_rank_rnns(support)
    np.testing.assert_array_equal(start.labels, imported.labels)
    np.testing.assert_allclose(start.law.means, imported.mixture().means)
    np.testing.assert_allclose(np.asarray(start.theta), imported.theta.astype(np.float32))


def test_populations_tables_still_read():
    text = config_text("x.pt").replace(
        'from_file = "x.pt"', "[[init.populations]]\nweight = 1.0\nmean = {u = 1}\noverlaps = {}"
    )
    config = load_config_text(text.replace('overlaps = "exact"', 'overlaps = "exact"\n'))
    assert config.init.population_tables[0].weight == 1.0 and config.init.build_mixture(RNN).n_components == 1
    assert config.resolved()["init"]["populations"][0]["mean"] == {"u": 1.0}


def _in_init(line):
    return lambda text, path: text.replace("[engines]", f"{line}\n[engines]")


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda text, path: text.replace(str(path), "/nonexistent/net.pt"),
            "init.from_file: value '/nonexistent/net.pt': no such file",
        ),
        (
            lambda text, path: text.replace("rank = 1", "rank = 2"),
            "its network differs from [network] in rank = 2 (the file's: 1)",
        ),
        (lambda text, path: text.replace('phi = "tanh"', 'phi = "erf"'), "phi = 'erf' (the file's: 'tanh')"),
        (lambda text, path: text.replace(f"N = {N}", "N = 500"), "N: value 500: must equal the file's N = 200"),
        (_in_init('populations = "fitt"'), "init.populations: value 'fitt': must be 'fit'"),
        (_in_init("populations = 200"), "init.populations: value 200: must be 'fit'"),
        (_in_init('from_run = "r"'), "give init.from_file without init.from_run"),
        (
            lambda text, path: _in_init('populations = "fit"')(text, path).replace('"exact"', '"flow"'),
            "engines.overlaps: value ['flow']: with populations",
        ),
        (
            lambda text, path: text.replace(f'from_file = "{path}"', 'populations = "fit"'),
            "init.populations: value 'fit': 'fit' or a number K fits populations to the network of init.from_file",
        ),
    ],
)
def test_from_file_problems_one_line_each(net_file, change, expected):
    assert load_config_text(config_text(net_file)).init.from_file == str(net_file)  # valid before the change
    problems = config_problems(change(config_text(net_file), net_file))
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_populations_of_the_file_must_be_fewer_than_its_neurons(tmp_path):
    assert config_problems(support_config(tmp_path, init="populations = 30")) == [
        "init.populations: value 30: must be < N = 20 (the file's neurons)"
    ]


def test_swap_contexts():
    """With swap_contexts the cue of context k selects stimulus 3 - k; the inputs are the same."""
    key = jax.random.key(0)
    plain = of.tasks.ContextDecision(batch_size=64, noise_std=0.0).sample(key, 0.02)
    swapped = of.tasks.ContextDecision(batch_size=64, noise_std=0.0, swap_contexts=True).sample(key, 0.02)
    np.testing.assert_array_equal(plain.inputs, swapped.inputs)
    np.testing.assert_array_equal(plain.mask, swapped.mask)
    x = np.asarray(plain.inputs[:, 30])  # a step of the stimulus period (5 + 17 <= 30 < 62): 0.1 c_j, cue
    coherence, cue = x[:, :2], x[:, 2:].argmax(axis=1)  # (B, 2), (B,) the cued context 0 or 1
    rows = np.arange(64)
    np.testing.assert_array_equal(plain.targets[:, -1, 0], np.sign(coherence[rows, cue]))
    np.testing.assert_array_equal(swapped.targets[:, -1, 0], np.sign(coherence[rows, 1 - cue]))
    assert np.any(np.sign(coherence[:, 0]) != np.sign(coherence[:, 1]))  # the two assignments differ on this batch
