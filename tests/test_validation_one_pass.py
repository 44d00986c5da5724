"""Validation finds every problem in one pass (types and ranges, and every check of meaning whose
inputs passed their own), and checks meaning, not only type: decay rates c > 0, dt <= tau, the
first pulse inside the trial, a Gram matrix of initial overlaps, at least one engine, ..."""

import copy

import pytest
from conftest import config_problems, write_sweep

from overlapflow.experiments import ConfigError, load_config, load_config_text, parse_config, read_sweep
from overlapflow.experiments.config import dumps_toml
from overlapflow.experiments.sweep import _shipped
from overlapflow.tasks import DampedOscillator, ExponentialFilter, FlipFlop, Teacher, WhiteNoiseFilter

GOOD = {
    "N": 20,
    "checkpoint_every": 5,
    "network": {"rank": 1, "dt": 0.05, "tau": 1.0},
    "engines": {"network": True, "overlaps": "exact"},
    "phases": [
        {"epochs": 3, "lr": 5e-3, "task": {"kind": "exponential_filter", "c": 0.2, "t_max": 2.0}},
        {"epochs": 3, "lr": 5e-3, "task": {"kind": "flipflop", "batch_size": 2, "t_max": 5.0}},
    ],
}


def problems_of(data) -> list[tuple[str, object, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_the_base_config_is_valid():
    assert parse_config(GOOD).engines.names() == ["network", "overlaps"]


def test_six_independent_problems_of_different_kinds_are_reported_at_once():
    data = copy.deepcopy(GOOD)
    data["phases"][1]["epochs"] = "ten"  # a type
    data["checkpoint_every"] = 0  # a range
    data["nmae"] = "typo"  # an unknown key
    data["engines"] = {"network": False, "overlaps": False, "particles": False}  # meaning: no engine
    data["phases"][0]["task"]["c"] = -0.2  # meaning: a decay rate
    data["init"] = {"overlaps": {"zm": 5.0}}  # meaning: not a Gram matrix
    lines = config_problems(data)
    expected = [
        "phases.1.epochs: value 'ten': must be a valid integer",
        "checkpoint_every: value 0: must be greater than or equal to 1",
        "nmae: value 'typo': unknown key",
        "engines: value {'network': False, 'overlaps': None, 'particles': None}: select at least one engine",
        "phases.0.task.c: value -0.2: must be greater than 0",
        "init.overlaps: value {'zm': 5.0}: ",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, lines)
    assert len(lines) == len(expected), lines
    assert "positive semi-definite" in next(line for line in lines if line.startswith("init.overlaps"))


def test_a_check_of_meaning_runs_when_only_other_fields_are_wrong():
    """Each phase's task is built whatever the other phases hold; the engines are checked when a
    phase's lr is wrong; a field with a problem is only left out of the checks that read it."""
    data = copy.deepcopy(GOOD)
    data["phases"][0]["lr"] = -1.0
    data["phases"][0]["optimizer"] = "adam"  # adam with the overlap engine: needs a valid optimizer only
    data["phases"][1]["epochs"] = 0
    data["phases"][1]["task"]["first_pulse"] = 5.0  # not inside the trial
    data["engines"]["overlaps"] = ["exact", "exact"]
    paths = [path for path, _, _ in problems_of(data)]
    assert paths == [
        "phases.0.lr",
        "phases.1.epochs",
        "engines.overlaps",
        "phases.0.optimizer.kind",
        "phases.1.task.first_pulse",
    ]


def test_a_problem_leaves_out_only_the_checks_that_read_it():
    """A wrong network hides the checks that need the network (N >= P, the tasks, the initial
    overlaps), not the others; an unknown key in a task table keeps that task from being built."""
    data = copy.deepcopy(GOOD)
    data["network"]["tau"] = -1.0
    data["N"] = 2  # < P = 4, but P is unknown without a network
    data["init"] = {"overlaps": {"zm": 5.0}, "seed": 1, "from_run": "/nonexistent/run"}
    data["engines"] = {"network": False, "overlaps": False}
    assert [path for path, _, _ in problems_of(data)] == [
        "network.tau",
        "engines",
        "init",
        "init.seed",
        "init.from_run",
    ]
    data = copy.deepcopy(GOOD)
    data["phases"][0]["task"].update(t_max=0.01, zz=1)  # T = 0 steps, but the table is not understood
    assert [path for path, _, _ in problems_of(data)] == ["phases.0.task.zz"]


def test_the_single_phase_shorthand_is_checked_in_one_pass():
    problems = problems_of(
        {"epochs": 0, "task": {"kind": "white_noise_filter", "c": -1.0}, "network": {"dt": 2.0}, "N": 3}
    )
    assert [path for path, _, _ in problems] == ["task.c", "epochs", "lr", "network.dt", "N"]
    assert problems[2][2].startswith("required for a single phase")
    # with only lr missing, the task is still built (at the resolved path of the phase)
    problems = problems_of({"epochs": 3, "task": {"kind": "flipflop", "first_pulse": 30.0}})
    assert [path for path, _, _ in problems] == ["lr", "phases.0.task.first_pulse"]


def test_a_sweep_with_a_bad_grid_and_a_missing_base_reports_both(tmp_path):
    base = dumps_toml({**GOOD, "output": str(tmp_path / "run")})
    path = write_sweep(tmp_path, base, grid={"seed": [0, 0], "N": 16}, base="missing.toml")
    with pytest.raises(ConfigError) as caught:
        read_sweep(path)
    message = str(caught.value)
    for expected in (
        "grid.seed: value [0, 0]: must not repeat a value",
        "grid.N: value 16: must be a valid list",
        "base: value 'missing.toml': no such file",
    ):
        assert expected in message, message


def test_a_sweep_checks_its_valid_keys_and_its_base_in_the_same_pass(tmp_path):
    base = dumps_toml({**GOOD, "output": str(tmp_path / "run")})
    path = write_sweep(tmp_path, base, grid={"seed": [0, "a"], "N": [1, 16]}, points=[{"x": 1}, {"y": 2}], bogus=1)
    with pytest.raises(ConfigError) as caught:
        read_sweep(path)
    paths = [p for p, _, _ in caught.value.problems]
    assert paths == ["bogus", "grid.seed", "points.1", "grid.N"], caught.value
    (tmp_path / "bad.toml").write_text('epochs = 1\nlr = -1.0\ntask = {kind = "exponential_filter", c = 0.0}\n')
    path = tmp_path / "sweep.toml"
    path.write_text('base = "bad.toml"\n[grid]\nseed = [1, 1]\n')
    with pytest.raises(ConfigError) as caught:
        read_sweep(path)
    assert [p for p, _, _ in caught.value.problems] == [
        "grid.seed",
        "task.c (in base bad.toml)",
        "lr (in base bad.toml)",
    ], caught.value


# ---------------------------------------------------------------------------- meaning
DECAYING = [("exponential_filter", ExponentialFilter), ("white_noise_filter", WhiteNoiseFilter)]
DECAYING += [("damped_oscillator", DampedOscillator)]


@pytest.mark.parametrize("c", [-0.2, 0.0, -5])
@pytest.mark.parametrize("kind, task", DECAYING, ids=[kind for kind, _ in DECAYING])
def test_a_decay_rate_must_be_positive_in_toml_and_in_python(kind, task, c):
    with pytest.raises(ConfigError) as caught:
        load_config_text(f'[[phases]]\nepochs = 1\nlr = 1e-3\ntask = {{kind = "{kind}", c = {c}}}\n')
    assert [(p, v) for p, v, _ in caught.value.problems] == [("phases.0.task.c", c)]
    assert f"\n  phases.0.task.c: value {c!r}: must be greater than 0 (decay rate c* > 0" in str(caught.value)
    with pytest.raises(ValueError, match=rf"^{task.__name__}\.c = {c!r}: must be a finite number > 0$"):
        task(c=c)
    assert task(c=1e-6).c == 1e-6


@pytest.mark.parametrize(
    "change, path, words",
    [
        (lambda d: d["network"].update(dt=1.5), "network.dt", "must be <= tau = 1.0"),
        (lambda d: d["network"].update(dt=0.5, tau=0.25), "network.dt", "alpha = dt / tau = 2"),
        (lambda d: d["phases"][1]["task"].update(first_pulse=5.0), "phases.1.task.first_pulse", "must be < t_max"),
        (
            lambda d: d["phases"][1]["task"].update(t_max=5.02, first_pulse=5.0),  # step 100 of T = 100
            "phases.1.task.first_pulse",
            "starts at step 100",
        ),
        (lambda d: d["phases"][1]["task"].update(wait_range=[3.0, 2.0]), "phases.1.task.wait_range", "low <= high"),
        (lambda d: d["phases"][1]["task"].update(pulse_duration=0), "phases.1.task.pulse_duration", "greater than 0"),
        (lambda d: d["phases"][1]["task"].update(target_amp=float("inf")), "phases.1.task.target_amp", "finite"),
        (lambda d: d["phases"][0]["task"].update(a=float("nan")), "phases.0.task.a", "finite"),
        (
            lambda d: d["phases"][0].update(task={"kind": "damped_oscillator", "omega": -2.0}),
            "phases.0.task.omega",
            "greater than or equal to 0",
        ),
        (
            lambda d: d["phases"][0].update(task={"kind": "decision_making", "coherences": []}),
            "phases.0.task.coherences",
            "at least 1 item",
        ),
        (
            lambda d: d["phases"][0].update(task={"kind": "decision_making", "coherences": [1, float("inf")]}),
            "phases.0.task.coherences.1",
            "finite",
        ),
        (
            lambda d: d["phases"][0].update(task={"kind": "decision_making", "noise_std": -0.1}),
            "phases.0.task.noise_std",
            "greater than or equal to 0",
        ),
        (
            lambda d: d["phases"][0].update(task={"kind": "teacher", "t_max": 0.4}),
            "phases.0.task.t_max",
            "the first pulse of the default input task",
        ),
        (
            lambda d: d["phases"][0].update(task={"kind": "teacher", "overlaps": {"zm": 3.0, "mm": 1.0, "zz": 1.0}}),
            "phases.0.task.overlaps",
            "positive semi-definite",
        ),
        (lambda d: d["phases"][0].update(target_noise=-0.1), "phases.0.target_noise", "greater than or equal to 0"),
        (lambda d: d["phases"][0].update(lr=0), "phases.0.lr", "greater than 0"),
        (lambda d: d.update(checkpoint_every=0), "checkpoint_every", "greater than or equal to 1"),
        (lambda d: d.update(N=3), "N", "must be >= P = 4"),
        (lambda d: d["engines"].update(overlaps=["exact", "euler", "exact"]), "engines.overlaps", "repeats"),
        (lambda d: d["engines"].update(particles={"rule": "qmc", "n": 1001}), "engines.particles.n", "even"),
        (
            lambda d: d.update(network={"rank": 3}) or d["engines"].update(particles={"nodes": 8}),
            "engines.particles.nodes",
            "8^8 = 16777216 particles",
        ),
    ],
)
def test_meaning_is_checked(change, path, words):
    data = copy.deepcopy(GOOD)
    change(data)
    lines = [line for line in config_problems(data) if line.startswith(f"{path}: value")]
    assert lines and words in lines[0], config_problems(data)


def test_the_particle_count_uses_the_rank_of_the_initial_overlaps():
    data = copy.deepcopy(GOOD)
    data.update(network={"rank": 3}, engines={"network": False, "overlaps": False, "particles": {"nodes": 8}})
    with pytest.raises(ConfigError, match="8 directions"):
        parse_config(data)
    # overlaps of rank 2 (vectors m and one u, the others 0): 8^2 particles
    names = ["m", "u1", "u2", "u3", "v1", "v2", "v3", "z"]
    data["init"] = {"overlaps": {f"{n}{n}": 0.0 for n in names} | {"mm": 1.0, "u1u1": 1.0}}
    assert parse_config(data).engines.particles.nodes == 8


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: FlipFlop(first_pulse=20.0), r"FlipFlop\.first_pulse = 20\.0: must be < t_max = 20\.0"),
        (lambda: FlipFlop(t_max=0.52).steps(0.05), r"FlipFlop\.first_pulse = 0\.5: starts at step 10"),
        (lambda: Teacher.paper(t_max=0.5), r"Teacher\.t_max = 0\.5: must be > 0\.5"),
        (lambda: DampedOscillator(omega=-1.0), r"DampedOscillator\.omega = -1\.0: must be a finite number >= 0"),
    ],
)
def test_python_constructors_check_meaning(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_teacher_with_its_own_input_task_may_be_short():
    short = FlipFlop(batch_size=128, t_max=0.4, first_pulse=0.1)
    assert Teacher.paper(t_max=0.4, input_task=short).t_max == 0.4


@pytest.mark.parametrize("name", sorted(_shipped("experiment")))
def test_the_shipped_configs_pass_the_new_checks(name):
    assert load_config(_shipped("experiment")[name]).name
