"""Configs and runs with populations: [[init.populations]] tables (round trip, one line per bad
input), every engine started from their mixture, the population records in the run folder's
Histories, resuming them bit for bit, and a run continued from a population run."""

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import overlapflow as of
from overlapflow import Mixture
from overlapflow.experiments import ConfigError, RunFolder, load_config, load_config_text, parse_config, run_experiment
from overlapflow.experiments.commands import shipped_configs

POPULATION_VARIABLES = ("population_means", "population_overlaps", "population_weights")

# A linear network (float64): every engine follows the mixture exactly, whatever N and lr.
LINEAR = """
name = "populations"
N = 60
seed = 3
dtype = "float64"
checkpoint_every = 4

[network]
rank = 1
phi = "linear"

[[phases]]
name = "A"
epochs = 6
lr = 5e-3
task = {kind = "exponential_filter", c = 0.2, t_max = 2.0}

[[phases]]
name = "B"
epochs = 5
lr = 5e-3
task = {kind = "exponential_filter", c = 0.4, t_max = 2.0}

[[init.populations]]
weight = 0.4
mean = {m = 0.5, v = -1}
overlaps = {zm = 0.1, uu = 2}

[[init.populations]]
weight = 0.6
mean = [0.0, 0.3, 0.0, 0.2]
covariance = [[0.5, 0, 0, 0], [0, 1, 0.2, 0], [0, 0.2, 1, 0], [0, 0, 0, 1]]

[engines]
network = true
overlaps = "exact"
particles = {rule = "gauss-hermite", nodes = 2}
"""

BASE = {
    "N": 20,
    "network": {"rank": 1, "phi": "erf"},
    "epochs": 2,
    "lr": 1e-2,
    "task": {"kind": "exponential_filter", "c": 0.2, "t_max": 2.0},
    "engines": {"network": True, "overlaps": "exact", "particles": {"nodes": 2}},
    "init": {
        "populations": [
            {"weight": 0.4, "mean": {"m": 0.5, "v": -1}, "overlaps": {"zm": 0.1, "uu": 2}},
            {"weight": 0.6, "mean": [0, 0.1, 0, 0.2], "covariance": np.eye(4).tolist()},
        ]
    },
}


def population(k):
    return lambda d: d["init"]["populations"][k]


# ---------------------------------------------------------------------------- configs
def test_populations_round_trip_and_build_their_mixture():
    config = parse_config(BASE)
    again = load_config_text(config.to_toml())
    assert again.resolved() == config.resolved()
    mixture = again.init.build_mixture(again.build_network())
    np.testing.assert_array_equal(mixture.weights, [0.4, 0.6])
    np.testing.assert_array_equal(mixture.means, [[0.5, 0, -1, 0], [0, 0.1, 0, 0.2]])
    covariance = np.eye(4)
    covariance[1, 1], covariance[3, 0], covariance[0, 3] = 2.0, 0.1, 0.1  # overlaps name the covariance
    np.testing.assert_array_equal(mixture.covariances, [covariance, np.eye(4)])


@pytest.mark.parametrize(
    "change, path, words",
    [
        (lambda d: population(0)(d).update(weight=0.5), "init.populations", "the weights sum to 1.1"),
        (lambda d: population(0)(d).update(weight=0), "init.populations.0.weight", "greater than 0"),
        (lambda d: population(0)(d).update(weight=-0.4), "init.populations.0.weight", "greater than 0"),
        (
            lambda d: population(1)(d).update(covariance=np.diag([1, 1, -0.3, 1]).tolist()),
            "init.populations.1.covariance",
            "not positive semi-definite (smallest eigenvalue -0.3)",
        ),
        (
            lambda d: population(1)(d).update(covariance=[[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
            "init.populations.1.covariance",
            "not symmetric",
        ),
        (
            lambda d: population(1)(d).update(covariance=np.eye(3).tolist()),
            "init.populations.1.covariance",
            "must be P x P = 4 x 4",
        ),
        (
            lambda d: population(0)(d).update(overlaps={"zm": 5.0}),
            "init.populations.0.overlaps",
            "not positive semi-definite",
        ),
        (lambda d: population(0)(d).update(overlaps={"qq": 1.0}), "init.populations.0.overlaps", "'qq'"),
        (lambda d: population(1)(d).update(mean=[1.0, 2.0]), "init.populations.1.mean", "must have P = 4"),
        (lambda d: population(0)(d).update(mean={"q": 1.0}), "init.populations.0.mean", "unknown vectors ['q']"),
        (lambda d: population(0)(d).update(mean="m"), "init.populations.0.mean", "a table or an array"),
        (lambda d: population(0)(d).pop("overlaps"), "init.populations.0", "give one of covariance"),
        (lambda d: population(1)(d).update(overlaps={}), "init.populations.1", "give one of covariance"),
        (lambda d: d["init"].update(overlaps={"zm": 0.1}), "init", "give init.populations alone"),
        (lambda d: d["init"].update(from_run="/nonexistent/run"), "init", "remove init.from_run"),
        (lambda d: d["init"].update(twin={"uu": 2.0}), "init", "remove init.twin"),
        (lambda d: d["engines"].update(overlaps=["exact", "flow"]), "engines.overlaps", "'exact' and 'euler' only"),
        (lambda d: d.update(optimizer="momentum"), "phases.0.optimizer.kind", "mixture closure"),
        (
            lambda d: d.update(N=4) or population(0)(d).update(weight=0.01) or population(1)(d).update(weight=0.99),
            "N",
            "each needs at least one",
        ),
        (lambda d: d["engines"]["particles"].update(nodes=40), "engines.particles.nodes", "2 populations"),
    ],
)
def test_each_bad_population_input_is_one_line_naming_its_field(change, path, words):
    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert [p for p, _, _ in caught.value.problems] == [path], str(caught.value)
    line = str(caught.value).splitlines()[1]
    assert line.startswith(f"  {path}: value ") and words in line, line


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(),
    st.text(max_size=3),
    st.lists(st.one_of(st.integers(-2, 2), st.floats(), st.lists(st.floats(), max_size=5)), max_size=5),
    st.dictionaries(st.sampled_from(["m", "u", "zm", "uu", "q", ""]), st.one_of(st.floats(), st.text(max_size=2))),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 1]), st.sampled_from(["weight", "mean", "covariance", "overlaps", "extra"]), junk)
def test_junk_in_a_population_gives_a_config_or_a_config_error(k, key, value):
    data = copy.deepcopy(BASE)
    if value is None:
        population(k)(data).pop(key, None)
    else:
        population(k)(data)[key] = value
    try:
        parse_config(data)
    except ConfigError as error:
        assert error.problems and all(p.startswith(("init", "N", "engines")) for p, _, _ in error.problems)


# ---------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    config = load_config_text(LINEAR)
    out = tmp_path_factory.mktemp("populations")
    return config, out, run_experiment(config, out)


def test_every_engine_follows_the_mixture_closure_of_a_linear_network(uninterrupted):
    config, out, histories = uninterrupted
    mixture = config.init.build_mixture(config.build_network())
    saved = of.experiments.load_results(out)
    closure = histories["overlaps"]
    assert closure.attrs["closure"] == "mixture"
    for name, history in histories.items():
        assert history.identical(saved[name]), name  # the run folder's History files
        assert history.population_means.dims == ("epoch", "population", "row")
        assert history.population_overlaps.shape == (12, 2, 4, 4)
        np.testing.assert_allclose(history.population_weights, [0.4, 0.6], atol=1e-15)
        np.testing.assert_allclose(history.population_means[0], mixture.means, atol=1e-12)
        np.testing.assert_allclose(history.population_overlaps[0], mixture.second_moments, atol=1e-12)
        # the network (N = 60, exact populations) and the particles move as the mixture closure
        for variable in POPULATION_VARIABLES[:2]:
            np.testing.assert_allclose(history[variable], closure[variable], rtol=0, atol=1e-12)
    assert np.ptp(closure.population_overlaps.values, axis=0).max() > 1e-3  # they did learn
    assert list(closure.phase.values[[0, 6, 7, 11]]) == [0, 0, 1, 1]


@pytest.mark.parametrize("segments", [1, 2])  # inside phase A (epoch 4), and at the phase boundary
def test_a_stopped_population_run_resumes_to_the_same_records_bit_for_bit(uninterrupted, tmp_path, segments):
    config, _, histories = uninterrupted
    partial = run_experiment(config, tmp_path, stop_after_segments=segments)
    assert partial["network"].population_overlaps.sizes["epoch"] == (5, 7)[segments - 1]
    resumed = run_experiment(config, tmp_path, resume=True)
    for name, history in histories.items():
        assert resumed[name].identical(history), name
        for variable in POPULATION_VARIABLES:
            np.testing.assert_array_equal(resumed[name][variable], history[variable])


def test_a_run_continues_from_the_populations_of_another(uninterrupted, tmp_path):
    _, done, histories = uninterrupted
    final = RunFolder(done).final_states()
    assert isinstance(final["states"]["overlaps"], Mixture)
    assert sorted(final["populations"]) == ["network", "particles"]
    assert np.bincount(final["populations"]["network"]).tolist() == [24, 36]
    follow = LINEAR.split("[[init.populations]]")[0] + f'[init]\nfrom_run = "{done}"\n'
    continued = run_experiment(load_config_text(follow.replace('"populations"', '"next"')), tmp_path / "next")
    for name, history in continued.items():
        for variable in POPULATION_VARIABLES[:2]:
            np.testing.assert_allclose(history[variable][0], histories[name][variable][-1], rtol=0, atol=1e-14)
    with pytest.raises(ConfigError, match=r"init.twin: value .*has populations; a twin is defined for one Gaussian"):
        load_config_text(follow + "twin = {uu = 2.0}\n")


def test_the_shipped_population_config_runs(tmp_path):
    config = load_config(shipped_configs()["populations"])
    assert len(config.init.populations) == 2 and config.engines.names() == ["network", "overlaps", "particles"]
    assert load_config_text(config.to_toml()).resolved() == config.resolved()
    small = config.scaled(N=40, epoch_scale=0.01)  # 2 epochs
    histories = run_experiment(small, tmp_path / "run")
    for history in histories.values():
        assert set(POPULATION_VARIABLES) <= set(history.data_vars)
        assert history.population_means.shape == (3, 2, 4)
    np.testing.assert_allclose(
        histories["network"].population_means[0], histories["overlaps"].population_means[0], atol=1e-6
    )
