"""Ctrl-C on the long commands: one line on stderr, saying what was kept and the exact command that
continues, and exit code 130; the command it names does continue (``run --resume``)."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import SMALL_RUN as SMALL
from conftest import command_app
from conftest import invoke_streams as invoke

from overlapflow.experiments import RunFolder, commands, runner, sweep_commands
from overlapflow.experiments.commands import register


def interrupt_after(segments):
    """A run_experiment that is stopped by Ctrl-C after ``segments`` checkpointed segments."""
    real = runner.run_experiment

    def stopped(config, out_dir=None, progress=False, resume=False, *, overwrite=False, **_):
        real(config, out_dir, resume=resume, overwrite=overwrite, stop_after_segments=segments)
        raise KeyboardInterrupt

    return stopped


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_interrupted_run_says_where_its_checkpoint_is_and_resume_finishes_it(app, tmp_path, monkeypatch):
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    out = tmp_path / "run folder"  # a space: the command must be quoted
    monkeypatch.setattr(runner, "run_experiment", interrupt_after(1))
    code, stdout, stderr = invoke(app, "run", config, "--out", out, "--quiet")
    assert code == 130 and stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert stderr == (
        f"interrupted: the checkpoint at epoch 10 of 30 is kept in {out}; "
        f"continue with: overlapflow run --resume '{out}'\n"
    )
    assert RunFolder(out).has_checkpoint()

    monkeypatch.undo()
    code, stdout, stderr = invoke(app, "run", "--resume", out, "--quiet")
    assert code == 0, stdout + stderr
    assert (out / "network.nc").is_file()
    assert "resumed from the checkpoint at epoch 10" in (out / "summary.txt").read_text()


def test_run_interrupted_before_it_started_names_the_command_that_starts_it(app, tmp_path, monkeypatch):
    config = tmp_path / "small.toml"
    config.write_text(SMALL)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_experiment", stopped)
    code, stdout, stderr = invoke(app, "run", config, "--out", tmp_path / "never", "--quiet")
    assert code == 130 and stdout == ""
    assert stderr == (
        "interrupted: before the run started; nothing was written; start it with: "
        f"overlapflow run {config} --out {tmp_path / 'never'}\n"
    )


def test_interrupted_sweep_counts_its_points_and_names_the_same_command(app, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from overlapflow.experiments import sweep as sweep_module

    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.toml").write_text(SMALL)
    (tmp_path / "seeds.toml").write_text('base = "small.toml"\noutput = "out"\n[grid]\nseed = [1, 2, 3]\n')

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_module, "run_sweep", stopped)
    both = command_app(lambda app: sweep_commands.register(register(app)))
    code, stdout, stderr = invoke(both, "sweep", "seeds.toml", "--workers", "2", "--quiet")
    assert code == 130 and stdout == ""
    assert stderr == (
        "interrupted: 0 of 3 points are done (kept in out; points stopped midway continue from their last "
        "checkpoint); continue with: overlapflow sweep seeds.toml --workers 2\n"
    )


def test_interrupted_figure_says_what_was_kept_and_the_command_that_continues(app, tmp_path, monkeypatch):
    from overlapflow.experiments import figures
    from overlapflow.experiments.config import load_config_text

    def stopped(fig, quick=False, out=None, progress=False):
        runner.run_experiment(load_config_text(SMALL), out, stop_after_segments=2)
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "reproduce_figure", stopped)
    out = tmp_path / "fig5"
    code, stdout, stderr = invoke(app, "reproduce", "fig5", "--quick", "--out", out, "--quiet")
    assert code == 130 and stdout == ""
    assert stderr == (
        f"interrupted: fig 5: the checkpoint at epoch 20 of 30 is kept in {out}; "
        f"continue with: overlapflow reproduce fig5 --quick --out {out}\n"
    )


def test_interrupted_reproduce_all_names_the_figures_done(app, tmp_path, monkeypatch):
    from overlapflow.experiments import figures

    calls = []

    def fake(fig, quick=False, out=None, progress=False):
        calls.append(fig)
        if len(calls) == 3:
            raise KeyboardInterrupt
        if len(calls) == 2:
            raise figures.FigureUnavailable(f"fake figure {fig}")  # failed: not among the figures done
        return figures.FigureResult(fig, out, [figures.KeyNumber("x", 1.0)], [], {})

    monkeypatch.setattr(figures, "reproduce_figure", fake)
    code, stdout, stderr = invoke(app, "reproduce", "all", "--quick", "--out", tmp_path, "--quiet")
    assert code == 130
    last = stderr.strip().splitlines()[-1]
    assert last == (
        f"interrupted: fig 3: nothing was written to {tmp_path / 'aba'} yet; fig 1c is done; "
        f"continue with: overlapflow reproduce all --quick --out {tmp_path}"
    )


# ---------------------------------------------------------------------------- the real signal
SLOW_ENOUGH = """
name = "signal"
N = 100
seed = 0
checkpoint_every = 200
output = "unused"

[[phases]]
name = "A"
epochs = 2000
lr = 5e-3
task = {kind = "exponential_filter", c = 0.2, t_max = 10.0}

[engines]
network = true
"""


# Runs its arguments with the default SIGINT disposition, whatever this process does with SIGINT (a
# process started with SIGINT ignored, as by a shell's `&` or a test runner, would ignore it too).
DEFAULT_SIGINT = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])",
]


def overlapflow_command() -> list[str]:
    script = shutil.which("overlapflow", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "overlapflow.cli"]


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_sigint_stops_a_run_with_one_line_and_resume_finishes_it(tmp_path):
    """SIGINT to ``overlapflow run`` after its first segment: one line on stderr, exit 130; then
    ``--resume`` finishes the run."""
    config = tmp_path / "signal.toml"
    config.write_text(SLOW_ENOUGH)
    out = tmp_path / "run"
    first_segment = RunFolder(out).segment("network", 0)
    process = subprocess.Popen(
        [*DEFAULT_SIGINT, *overlapflow_command(), "run", str(config), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not first_segment.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("interrupted: the checkpoint at epoch ") and lines[0].endswith(
        f"of 2000 is kept in {out}; continue with: overlapflow run --resume {out}"
    )

    resumed = subprocess.run(
        [*overlapflow_command(), "run", "--resume", str(out), "--quiet"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (out / "network.nc").is_file()
    assert commands.checkpoint_position(out) == (2000, 2000, True)


def test_a_ctrl_c_swallowed_by_a_callback_still_stops_the_run_at_its_next_segment(tmp_path):
    """Python drops a KeyboardInterrupt raised inside a weakref callback or ``__del__`` ("Exception
    ignored"); the recorded request stops the run after its next checkpoint segment all the same."""
    from overlapflow.experiments.config import load_config
    from overlapflow.experiments.interrupts import interrupts_recorded

    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal, whatever started us
    config_path = tmp_path / "small.toml"
    config_path.write_text(SMALL)
    out = tmp_path / "run"
    with interrupts_recorded():
        try:  # what a callback does with the KeyboardInterrupt raised inside it
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        with pytest.raises(KeyboardInterrupt):
            runner.run_experiment(load_config(config_path), out)
    assert commands.checkpoint_position(out) == (10, 30, False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # started with SIGINT ignored (nohup): left ignored
    with interrupts_recorded():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    signal.signal(signal.SIGINT, outer)


def test_a_ctrl_c_swallowed_by_a_weakref_callback_prints_nothing(capsys):
    """The "Exception ignored" report Python prints for a KeyboardInterrupt raised in a weakref
    callback stays off stderr inside ``interrupts_recorded()`` (the run's one line reports the stop);
    other unraisable exceptions are still reported."""
    import gc
    import weakref

    from overlapflow.experiments.interrupts import interrupts_recorded, raise_if_interrupted

    class Thing:
        pass

    def callback_raising(error):
        def callback(_):
            raise error

        return callback

    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    seen = []
    previous_hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: seen.append(unraisable.exc_type)
    try:
        with interrupts_recorded():
            thing = Thing()
            reference = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGINT))
            del thing
            gc.collect()
            assert reference() is None
            with pytest.raises(KeyboardInterrupt):
                raise_if_interrupted()
            other = Thing()
            other_reference = weakref.ref(other, callback_raising(ValueError("reported")))
            del other
            gc.collect()
            assert other_reference() is None
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, outer)
    assert seen == [ValueError]
