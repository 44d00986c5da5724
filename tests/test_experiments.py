"""Experiments as configs: validation (every problem reported by path, nothing but ConfigError),
the checkpointed runner (resume = uninterrupted, bit for bit; divergence keeps what was good),
the commands, and the paper's figures from their shipped configs (--quick)."""

import copy
import json
import math
import pickle
import re
import shutil

import numpy as np
import pytest
from conftest import SMALL_RUN, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import overlapflow as of
from overlapflow.experiments import (
    ConfigError,
    ExperimentDiverged,
    RunError,
    RunFolder,
    load_config,
    load_config_text,
    parse_config,
    run_experiment,
)
from overlapflow.experiments.config import TASK_KINDS
from overlapflow.experiments.figures import FIGURES, FigureUnavailable, figure_config, figure_id
from overlapflow.history import phase_ends, phase_names
from overlapflow.particles import Particles, fold

# ---------------------------------------------------------------------------- a valid config with every task kind
GOOD = {
    "name": "every-task",
    "N": 50,
    "seed": 1,
    "dtype": "float64",
    "checkpoint_every": 5,
    "network": {"rank": 1, "n_in": 1, "n_out": 1, "phi": "erf", "dt": 0.05, "tau": 1.0},
    "init": {"seed": 2, "overlaps": {"zm": 0.1, "uu": 1.5}},
    "engines": {"network": True, "overlaps": "exact", "particles": {"rule": "gauss-hermite", "nodes": 3}},
    "phases": [
        {
            "name": "filter",
            "epochs": 3,
            "lr": 5e-3,
            "task": {"kind": "exponential_filter", "c": 0.2, "a": 1.0, "t_max": 2.0},
        },
        {
            "epochs": 2,
            "lr": 1e-3,
            "target_noise": 0.1,
            "task": {"kind": "white_noise_filter", "noise_std": 0.5, "batch_size": 2, "t_max": 2.0},
        },
        {
            "epochs": 2,
            "lr": 1e-3,
            "optimizer": {"kind": "momentum", "momentum": 0.5},
            "task": {"kind": "damped_oscillator", "omega": 2.0, "t_max": 2.0},
        },
        {
            "epochs": 2,
            "lr": 1e-3,
            "optimizer": "nesterov",
            "task": {"kind": "flipflop", "batch_size": 2, "t_max": 5.0, "wait_range": [1.0, 2.0]},
        },
        {
            "epochs": 2,
            "lr": 1e-3,
            "optimizer": {"kind": "sgd", "weight_decay": 1e-4},
            "task": {"kind": "decision_making", "batch_size": 4, "coherences": [-8, 8]},
        },
        {
            "epochs": 2,
            "lr": 1e-3,
            "task": {"kind": "teacher", "batch_size": 2, "t_max": 2.0, "overlaps": {"zm": 0.5, "vu": 1.2}},
        },
    ],
}

# (path, kind) of leaves of GOOD and what makes each invalid
LEAVES = (
    [
        (("N",), "count"),
        (("seed",), "seed"),
        (("dtype",), "choice"),
        (("checkpoint_every",), "count"),
        (("name",), "label"),
        (("network", "rank"), "count"),
        (("network", "n_in"), "int"),
        (("network", "phi"), "choice"),
        (("network", "dt"), "positive"),
        (("network", "tau"), "positive"),
        (("init", "seed"), "seed"),
        (("init", "overlaps"), "table"),
        (("engines", "network"), "bool"),
        (("engines", "particles", "nodes"), "count"),
        (("engines", "particles", "rule"), "choice"),
    ]
    + [
        leaf
        for j in range(len(GOOD["phases"]))
        for leaf in (
            ((("phases", j, "epochs"), "count")),
            ((("phases", j, "lr"), "positive")),
            ((("phases", j, "task"), "table")),
        )
    ]
    + [
        (("phases", 0, "task", "t_max"), "positive"),
        (("phases", 0, "task", "c"), "number"),
        (("phases", 1, "target_noise"), "nonnegative"),
        (("phases", 1, "task", "noise_std"), "nonnegative"),
        (("phases", 1, "task", "batch_size"), "count"),
        (("phases", 2, "optimizer", "momentum"), "unit"),
        (("phases", 3, "task", "wait_range"), "pair"),
        (("phases", 3, "task", "n_bits"), "count"),
        (("phases", 4, "optimizer", "weight_decay"), "nonnegative"),
        (("phases", 4, "task", "coherences"), "numbers"),
        (("phases", 4, "task", "target"), "choice"),
        (("phases", 5, "task", "overlaps"), "table"),
    ]
)
TABLES = (
    [(), ("network",), ("init",), ("engines",), ("engines", "particles")]
    + [t for j in range(len(GOOD["phases"])) for t in (("phases", j), ("phases", j, "task"))]
    + [("phases", 2, "optimizer"), ("phases", 4, "optimizer")]
)
REQUIRED = [("phases", 0, "task", "c")] + [
    p
    for j in range(len(GOOD["phases"]))
    for p in (("phases", j, "epochs"), ("phases", j, "lr"), ("phases", j, "task"), ("phases", j, "task", "kind"))
]

CHOICES = {"linear", "erf", "tanh", "relu", "float32", "float64", "gauss-hermite", "qmc", "continuous", "sign"}
junk_text = st.text(min_size=1, max_size=8).filter(lambda s: s.strip() != "" and s not in CHOICES)
not_number = st.one_of(
    junk_text, st.booleans(), st.lists(st.integers(), max_size=2), st.dictionaries(junk_text, st.integers(), max_size=2)
)
BAD_VALUES = {
    "count": st.one_of(not_number, st.integers(max_value=0), st.floats(allow_nan=True)),
    "int": st.one_of(not_number, st.integers(max_value=-1), st.floats(allow_nan=True)),
    "seed": st.one_of(not_number, st.integers(max_value=-1), st.integers(min_value=2**63), st.floats()),
    "positive": st.one_of(
        not_number, st.floats(max_value=0.0), st.integers(max_value=0), st.just(math.inf), st.just(math.nan)
    ),
    "nonnegative": st.one_of(not_number, st.floats(max_value=-1e-9), st.integers(max_value=-1), st.just(math.nan)),
    "number": st.one_of(not_number, st.just(math.nan), st.just(-math.inf)),
    "unit": st.one_of(not_number, st.floats(min_value=1.0), st.floats(max_value=-1e-9)),
    "choice": st.one_of(junk_text, st.integers(), st.booleans()),
    "label": st.one_of(st.just(""), st.integers(), st.booleans(), st.lists(junk_text, max_size=2)),
    "bool": st.one_of(junk_text, st.integers(), st.floats()),
    "table": st.one_of(junk_text, st.integers(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2)),
    "pair": st.one_of(
        junk_text,
        st.booleans(),
        st.lists(st.floats(allow_nan=False), max_size=1),
        st.lists(st.floats(allow_nan=False), min_size=3, max_size=4),
    ),
    "numbers": st.one_of(junk_text, st.integers(), st.just([]), st.lists(junk_text, min_size=1, max_size=2)),
}


def _get(data, path):
    for key in path:
        data = data[key]
    return data


def _dotted(path):
    return ".".join(str(k) for k in path)


@st.composite
def bad_configs(draw):
    """(a config with one problem, the path the error must name)."""
    data = copy.deepcopy(GOOD)
    kind = draw(st.sampled_from(["value", "unknown key", "task kind", "missing"]))
    if kind == "value":
        path, leaf = draw(st.sampled_from(LEAVES))
        _get(data, path[:-1])[path[-1]] = draw(BAD_VALUES[leaf])
        return data, _dotted(path)
    if kind == "unknown key":
        table = draw(st.sampled_from(TABLES))
        key = "zz" + draw(st.text(alphabet="abcdefghij_-0123456789", max_size=6))
        _get(data, table)[key] = draw(st.one_of(st.integers(), junk_text, st.floats(allow_nan=False)))
        return data, _dotted(table + (key,))
    if kind == "task kind":
        j = draw(st.integers(0, len(GOOD["phases"]) - 1))
        data["phases"][j]["task"]["kind"] = draw(
            st.one_of(junk_text.filter(lambda s: s not in TASK_KINDS), st.integers())
        )
        return data, f"phases.{j}.task.kind"
    path = draw(st.sampled_from(REQUIRED))
    del _get(data, path[:-1])[path[-1]]
    return data, _dotted(path)


def test_the_good_config_is_valid():
    config = parse_config(GOOD)
    assert config.engines.names() == ["network", "overlaps", "particles"]
    assert [p.name for p in config.build_phases()] == ["filter", "phase 1", "phase 2", "phase 3", "phase 4", "phase 5"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_configs())
def test_bad_configs_raise_config_error_naming_the_field(case):
    data, path = case
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    message = str(caught.value)
    # the field itself, or an entry of it (e.g. coherences.0)
    assert re.search(rf"\n  {re.escape(path)}(\.\w+)?: value ", message), (path, message)
    assert "Traceback" not in message and "pydantic" not in message.lower()
    assert any(p == path or p.startswith(path + ".") for p, _, _ in caught.value.problems)


json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_junk_gives_a_config_or_a_config_error(data):
    """Junk anywhere (wrong types, NaN, huge numbers, nesting): a valid config or ConfigError, nothing else."""
    config = copy.deepcopy(GOOD)
    for _ in range(data.draw(st.integers(1, 3))):
        target = config
        for key in data.draw(st.sampled_from(TABLES)):  # the table may itself have been replaced
            try:
                target = target[key]
            except (KeyError, IndexError, TypeError):
                target = None
        if isinstance(target, dict):
            key = data.draw(st.one_of(st.sampled_from(sorted(target) or ["x"]), st.text(max_size=6)))
            target[key] = data.draw(json_like)
    try:
        parse_config(config)
    except ConfigError as error:
        assert error.problems and all(isinstance(p, str) for p, _, _ in error.problems)


@pytest.mark.parametrize(
    "change, path, words",
    [
        (
            lambda d: d["phases"][3]["task"].update(wait_range=[0.2, 0.3], spacing="onset"),
            "phases.3.task.wait_range",
            "pulse_duration",
        ),
        (lambda d: d["phases"][3]["task"].update(spacing="offset"), "phases.3.task.spacing", "after_delay"),
        (lambda d: d["phases"][0]["task"].update(t_max=0.01), "phases.0.task.t_max", "T = 0"),
        (lambda d: d["phases"][3]["task"].update(n_bits=2), "phases.3.task", "n_in = 2"),
        (lambda d: d["phases"][0].update(optimizer="adam"), "phases.0.optimizer.kind", "full network only"),
        (lambda d: d["engines"].update(overlaps="euler"), "phases.2.optimizer.kind", "method 'exact'"),
        (lambda d: d["init"].update(overlaps={"zm": 5.0}), "init.overlaps", "positive semi-definite"),
        (lambda d: d["init"].update(overlaps={"qq": 1.0}), "init.overlaps", "labels are pairs"),
        (lambda d: d["init"].update(twin={"zm": 0.3}), "init.twin", "visible"),
        (
            lambda d: d["init"].update(from_run="/nonexistent/run", overlaps=None) or d["init"].pop("overlaps"),
            "init.from_run",
            "no overlapflow run",
        ),
        (lambda d: d.update(N=3), "N", "P = 4"),
        (lambda d: d.update(engines={"network": False, "overlaps": False}), "engines", "at least one engine"),
        (lambda d: d.update(epochs=10), "epochs", "not both"),
        (lambda d: d.pop("phases"), "phases", "required"),
        (lambda d: d["engines"].update(overlaps=["exact", "visible-only"]), "engines.overlaps", "single phase"),
        (lambda d: d["phases"][5]["task"].update(overlaps={"zm": 1.0, "xx": 2.0}), "phases.5.task.overlaps", "xx"),
    ],
)
def test_semantic_problems_are_reported_at_their_path(change, path, words):
    data = copy.deepcopy(GOOD)
    change(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    lines = [line for line in str(caught.value).splitlines() if line.startswith(f"  {path}: value")]
    assert lines and words in lines[0], str(caught.value)


def test_unknown_keys_list_what_is_allowed_and_toml_errors_are_config_errors(tmp_path):
    with pytest.raises(
        ConfigError, match=r"network\.rnak: value 2: unknown key; allowed keys here: rank, n_in, n_out, phi, dt, tau"
    ):
        load_config_text('task = {kind = "exponential_filter", c = 0.2}\nepochs = 1\nlr = 1e-3\n[network]\nrnak = 2\n')
    path = tmp_path / "broken.toml"
    path.write_text("N = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.toml")


def test_configs_round_trip_and_the_shorthand_is_one_phase(tmp_path):
    config = parse_config(GOOD)
    again = load_config_text(config.to_toml())
    assert again.resolved() == config.resolved()
    assert parse_config(json.loads(config.to_json())).resolved() == config.resolved()
    short = load_config_text(
        'epochs = 7\nlr = 0.01\noptimizer = "momentum"\ntarget_noise = 0.1\n'
        '[task]\nkind = "exponential_filter"\nc = 0.3\n'
    )
    long = load_config_text(
        '[[phases]]\nepochs = 7\nlr = 0.01\noptimizer = {kind = "momentum"}\ntarget_noise = 0.1\n'
        'task = {kind = "exponential_filter", c = 0.3}\n'
    )
    assert short.resolved() == long.resolved() and len(short.phases) == 1
    for spec in FIGURES.values():
        if spec.config is not None:
            shipped = figure_config(spec.id)
            assert load_config_text(shipped.to_toml()).resolved() == shipped.resolved()
            assert figure_config(spec.id, quick=True).N < shipped.N


# ---------------------------------------------------------------------------- the runner
SMALL = """
name = "small"
N = 100
seed = 7
checkpoint_every = 10

[[phases]]
name = "A"
epochs = 25
lr = 5e-3
optimizer = {kind = "momentum", momentum = 0.5}
task = {kind = "exponential_filter", c = 0.2}

[[phases]]
name = "B"
epochs = 15
lr = 5e-3
optimizer = {kind = "momentum", momentum = 0.5}
task = {kind = "exponential_filter", c = 0.2}

[engines]
network = true
overlaps = "exact"
particles = {rule = "gauss-hermite", nodes = 2}
"""

DIVERGING = """
name = "diverging"
N = 100
seed = 7
checkpoint_every = 10
engines = {network = false, overlaps = "exact"}

[[phases]]
name = "A"
epochs = 10
lr = 5e-3
optimizer = {kind = "momentum", momentum = 0.5}
task = {kind = "exponential_filter", c = 0.2}

[[phases]]
name = "B"
epochs = 30
lr = 0.5
optimizer = {kind = "momentum", momentum = 0.5}
task = {kind = "exponential_filter", c = 0.2}
"""


def assert_identical(a: dict, b: dict):
    assert list(a) == list(b)
    for name in a:
        assert a[name].identical(b[name]), name  # values bit for bit, coordinates, attrs


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    config = load_config_text(SMALL)
    out = tmp_path_factory.mktemp("uninterrupted")
    return config, out, run_experiment(config, out)


def test_a_run_writes_its_files_and_matches_the_engines(uninterrupted):
    config, out, histories = uninterrupted
    for name in ("network.nc", "overlaps.nc", "config.toml", "config.json", "summary.txt", "checkpoint/state.pkl"):
        assert (out / name).is_file(), name
    assert load_config(out / "config.toml").resolved() == config.resolved()
    net, thy, cloud = histories["network"], histories["overlaps"], histories["particles"]
    assert cloud.attrs["engine"] == "particles" and cloud.attrs["n_particles"] == 16
    assert of.max_overlap_deviation(cloud, thy) < 1e-10  # linear: particles carry the exact overlap dynamics
    assert net.sizes["epoch"] == 41 and list(net.phase.values[[0, 25, 26, 40]]) == [0, 0, 1, 1]
    assert phase_names(net) == ["A", "B"] and phase_ends(net) == [25, 40] and net.attrs["status"] == "complete"
    assert net.attrs["overlapflow_version"] == of.__version__ and "jax_version" in net.attrs
    assert of.max_overlap_deviation(net, thy) < 1e-5  # float32 network vs float64 theory, exact for linear
    assert of.load_history(out / "network.nc").identical(net)
    summary = (out / "summary.txt").read_text()
    assert f"overlapflow {of.__version__}" in summary and "JAX" in summary and "max |S_network - S_overlaps|" in summary


def test_same_config_and_seed_give_identical_histories(uninterrupted, tmp_path):
    config, _, histories = uninterrupted
    assert_identical(run_experiment(config, tmp_path / "again"), histories)


@pytest.mark.parametrize("segments", [2, 3])  # inside phase A (epoch 20), and at the phase boundary
def test_resume_equals_the_uninterrupted_run_bit_for_bit(uninterrupted, tmp_path, segments):
    config, _, histories = uninterrupted
    partial = run_experiment(config, tmp_path, stop_after_segments=segments)
    assert partial["network"].sizes["epoch"] == min(10 * segments, 25) + 1
    with open(tmp_path / "checkpoint" / "state.pkl", "rb") as f:
        saved = pickle.load(f)
    assert (saved["phase"], saved["epoch"]) == ((0, 20) if segments == 2 else (1, 0))
    assert_identical(run_experiment(config, tmp_path, resume=True), histories)
    assert_identical(of.experiments.load_results(tmp_path), histories)


def test_resume_after_dying_between_two_checkpoint_files(uninterrupted, tmp_path):
    """Segments newer than state.pkl (killed between writing them and state.pkl) are not read."""
    config, done, histories = uninterrupted
    run_experiment(config, tmp_path, stop_after_segments=2)
    shutil.rmtree(tmp_path / "checkpoint" / "network")
    shutil.copytree(done / "checkpoint" / "network", tmp_path / "checkpoint" / "network")  # 4 segments, state says 2
    assert_identical(run_experiment(config, tmp_path, resume=True), histories)


def test_a_run_starts_from_the_final_state_of_another(uninterrupted, tmp_path):
    config, done, histories = uninterrupted
    follow = load_config_text(SMALL.replace('name = "small"', 'name = "next"') + f'\n[init]\nfrom_run = "{done}"\n')
    continued = run_experiment(follow, tmp_path / "next")
    for name, history in continued.items():
        # the same state (the theory re-symmetrises S on entry: round-off)
        np.testing.assert_allclose(
            history.overlaps.values[0], histories[name].overlaps.values[-1], rtol=1e-12, atol=1e-15
        )
    run_experiment(config, tmp_path / "cut", stop_after_segments=1)
    with pytest.raises(ConfigError, match="init.from_run: value .*not finished"):
        load_config_text(SMALL + f'\n[init]\nfrom_run = "{tmp_path / "cut"}"\n')


def test_runs_refuse_to_overwrite_or_resume_the_wrong_thing(uninterrupted, tmp_path):
    config, done, _ = uninterrupted
    with pytest.raises(RunError, match="already holds a run"):
        run_experiment(config, done)
    with pytest.raises(RunError, match="nothing to resume"):
        run_experiment(config, tmp_path / "empty", resume=True)
    other = config.replace(seed=8)
    with pytest.raises(RunError, match="different config.*seed"):
        run_experiment(other, done, resume=True)


def test_divergence_keeps_the_checkpoint_and_the_partial_history(uninterrupted, tmp_path, app):
    config = load_config_text(DIVERGING)
    with pytest.raises(ExperimentDiverged) as caught:
        run_experiment(config, tmp_path / "run")
    error = caught.value
    message = str(error)
    assert isinstance(error, of.DivergenceError)
    assert (
        "overlaps diverged in phase 'B'" in message
        and "NaN/Inf" in message
        and "lower lr" in message
        and "0.5" in message
    )
    assert f"at epoch {error.epoch} " in message and 10 < error.epoch < 40
    partial = of.load_history(tmp_path / "run" / "overlaps.partial.nc")
    assert partial.sizes["epoch"] == error.epoch and np.all(np.isfinite(partial.overlaps.values))
    assert partial.attrs["status"] == "diverged"
    with open(tmp_path / "run" / "checkpoint" / "state.pkl", "rb") as f:
        saved = pickle.load(f)
    assert (saved["phase"], saved["epoch"]) == (1, 0) and not saved["complete"]  # the last good checkpoint
    assert not (tmp_path / "run" / "overlaps.nc").exists()

    (tmp_path / "diverging.toml").write_text(DIVERGING)
    result, output = invoke(app, "run", tmp_path / "diverging.toml", "--out", tmp_path / "cli", "--quiet")
    assert result.exit_code == 1, output
    assert "diverged in phase 'B'" in output and "lower lr" in output


# ---------------------------------------------------------------------------- the commands
def test_run_validate_and_resume_from_the_command_line(uninterrupted, tmp_path, app):
    config, _, histories = uninterrupted
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    result, output = invoke(app, "validate", path)
    assert result.exit_code == 0 and "valid experiment 'small'" in output
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace("epochs = 25", "epochs = -25").replace("N = 100", "N = 100\nbogus = 1"))
    result, output = invoke(app, "validate", bad)
    assert result.exit_code == 2 and "phases.0.epochs: value -25" in output and "bogus: value 1: unknown key" in output

    run_experiment(config, tmp_path / "run", stop_after_segments=1)
    result, output = invoke(app, "run", "--resume", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, output
    assert "final loss" in output and "network" in output
    assert_identical(of.experiments.load_results(tmp_path / "run"), histories)
    result, output = invoke(app, "run", path, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 2 and "already holds a run" in output
    result, output = invoke(app, "run", bad, "--quiet")
    assert result.exit_code == 2 and "phases.0.epochs" in output


def test_reproduce_lists_every_figure_as_available_and_refuses_unknown_ones(app):
    result, output = invoke(app, "reproduce", "--list")
    assert result.exit_code == 0
    for fig in ("1c", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"):
        assert re.search(rf"^\s*{fig}\s+available", output, re.M), fig
    assert "not yet available" not in output
    result, output = invoke(app, "reproduce", "42")
    assert result.exit_code == 2 and "unknown figure" in output and "Traceback" not in output
    assert figure_id("Figure 1") == "1c" and figure_id("fig4b") == "4" and figure_id("12") == "12"
    with pytest.raises(FigureUnavailable, match="not from one experiment config"):
        figure_config("9")


# ---------------------------------------------------------------------------- figures (--quick)
def reproduce_quick(app, fig, out):
    result, output = invoke(app, "reproduce", fig, "--quick", "--out", out, "--quiet")
    assert result.exit_code == 0, output + repr(result.exception)
    for name in (f"fig{fig}.png", f"fig{fig}.pdf", f"fig{fig}.json", "summary.txt", "network.nc"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert "key numbers" in output and f"key numbers of fig {fig}" in (out / "summary.txt").read_text()
    numbers = json.loads((out / f"fig{fig}.json").read_text())["numbers"]
    return {n["name"]: n["value"] for n in numbers}


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_reproduce_fig5_quick(app, tmp_path):
    """Paper: sigma_zm = a* = 1, sigma_zu sigma_vm = a*(1 - c*) = 0.8, sigma_vu = 1 - c* = 0.8 (tolerance 0.02)."""
    numbers = reproduce_quick(app, "5", tmp_path)
    for engine in ("network", "theory"):
        assert abs(numbers[f"final sigma_zm, {engine}"] - 1.0) < 0.02
        assert abs(numbers[f"final sigma_vu, {engine}"] - 0.8) < 0.02
        assert abs(numbers[f"final sigma_zu*vm, {engine}"] - 0.8) < 0.02
    assert numbers["max |S_network - S_theory| (all epochs, all overlaps)"] < 1e-4
    assert numbers["visible overlaps"] == 4 and numbers["invisible overlaps"] == 6


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_reproduce_fig1c_quick(app, tmp_path):
    """The network follows the theory; naive descent on the visible overlaps does not (by > 10x in loss)."""
    numbers = reproduce_quick(app, "1c", tmp_path)
    assert numbers["max relative loss difference network vs theory (loss > 1e-8)"] < 1e-2
    assert numbers["max |log10(loss naive / loss theory)|"] > 1


@pytest.mark.slow
def test_reproduce_fig12_quick(app, tmp_path):
    """Rank 2: 9 visible / 12 invisible overlaps; the final loss (5000 epochs at N = 100) below 1e-4."""
    numbers = reproduce_quick(app, "12", tmp_path)
    assert numbers["visible overlaps"] == 9 and numbers["invisible overlaps"] == 12
    assert numbers["final loss, network"] < 1e-4 and numbers["final loss, theory"] < 1e-4
    assert numbers["max |S_network - S_theory| (all epochs, all overlaps)"] < 1e-4


@pytest.mark.slow
def test_reproduce_figs3_and_6_quick(app, tmp_path):
    """A-B-A: visible overlaps return (< 1e-3), invisible ones keep a trace (> 10x more); target
    noise makes the conserved quantities drift more than the noiseless phases did. Fig 6 reuses
    fig 3's finished run in the same folder."""
    numbers = reproduce_quick(app, "3", tmp_path)
    for engine in ("network", "theory"):
        visible = next(v for k, v in numbers.items() if k.startswith("max |change| of visible") and k.endswith(engine))
        invisible = numbers[f"max |change| of invisible overlaps, same epochs, {engine}"]
        assert visible < 1e-3 and invisible > 10 * visible
    numbers = reproduce_quick(app, "6", tmp_path)
    for k in (1, 2):
        before = next(
            v
            for n, v in numbers.items()
            if n.startswith(f"max relative drift of tr((JS)^{k}) up to") and n.endswith("theory")
        )
        assert numbers[f"max relative drift of tr((JS)^{k}) in the noisy phase, theory"] > 3 * before


@pytest.mark.slow
def test_reproduce_fig7_quick(app, tmp_path):
    """Adam: the loss falls (< 1e-2 at the end) while tr(JS), conserved by gradient flow, drifts by > 1%."""
    numbers = reproduce_quick(app, "7", tmp_path)
    assert numbers["final loss, network"] < 1e-2
    assert numbers["max relative drift of tr((JS)^2) up to epoch 5000, network"] > 1e-2


def test_a_particle_run_hands_on_its_whole_cloud_though_it_ran_the_mirrored_half(tmp_path):
    """erf particles run as their mirrored half; the run's final state (init.from_run) is the whole,
    symmetric cloud, and a run started from it continues the same law."""
    text = """
name = "cloud"
N = 50
seed = 2
checkpoint_every = 5
[network]
rank = 1
n_in = 1
n_out = 1
phi = "erf"
[[phases]]
name = "A"
epochs = 5
lr = 5e-2
task = {kind = "exponential_filter", c = 0.2, t_max = 2.0}
[engines]
network = false
particles = {rule = "split", nodes = 3, right_nodes = 2}
"""
    first = run_experiment(load_config_text(text), tmp_path / "first")["particles"]
    assert first.attrs["mirrored"] == 1 and first.attrs["n_particles"] == 36
    cloud = RunFolder(tmp_path / "first").final_states()["states"]["particles"]
    theta, weights = cloud.theta, cloud.weights
    assert theta.shape == (36, 4) and fold(Particles(theta, weights)) is not None
    np.testing.assert_allclose(theta.T @ (theta * weights[:, None]), first.overlaps.values[-1], atol=1e-14)
    follow = load_config_text(text.replace('"cloud"', '"next"') + f'[init]\nfrom_run = "{tmp_path / "first"}"\n')
    second = run_experiment(follow, tmp_path / "next")["particles"]
    assert second.attrs["n_particles"] == 36
    np.testing.assert_allclose(second.overlaps.values[0], first.overlaps.values[-1], atol=1e-14)


def test_overwrite_clears_a_run_of_an_older_checkpoint_format(tmp_path):
    """A folder whose checkpoint another overlapflow wrote: resume refuses it in one line naming
    --overwrite, and --overwrite then starts afresh, its engines' Histories removed."""
    folder = RunFolder(tmp_path)
    folder.checkpoint.mkdir(parents=True)
    folder.state_file.write_bytes(pickle.dumps({"format": 2, "engines": {"network": {}, "overlaps-euler": {}}}))
    folder.config_json.write_text("{}")
    for name in ("network.nc", "overlaps-euler.nc", "decoding.nc"):
        (tmp_path / name).write_bytes(b"old")
    config = load_config_text(SMALL_RUN)
    with pytest.raises(RunError, match="checkpoint format 2; this overlapflow reads format 3 .*--overwrite"):
        run_experiment(config, tmp_path, resume=True)
    histories = run_experiment(config, tmp_path, overwrite=True)
    assert not (tmp_path / "overlaps-euler.nc").exists() and (tmp_path / "decoding.nc").read_bytes() == b"old"
    assert (tmp_path / "network.nc").is_file() and set(histories) <= {"network", "overlaps", "particles"}
