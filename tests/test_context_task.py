"""The context-dependent decision task (Dubreuil et al. 2022): the authors' step counts, inputs,
targets, mask, accuracy, and its use from TOML configs."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import as_np, config_problems

from overlapflow.experiments.config import load_config_text
from overlapflow.tasks import TASKS, ContextDecision, task_kinds

DT = 0.02  # the authors' 20 ms
KEY = jax.random.key(0)
# at dt = 0.02: fixation 5 | context only 17 | stimulus 40 | delay 5 | decision 1 steps
FIX, CTX_ONLY, STIM, DELAY, DEC = 5, 17, 40, 5, 1
T = FIX + CTX_ONLY + STIM + DELAY + DEC
STIM_START, DEC_START = FIX + CTX_ONLY, T - DEC

# Shared instances: each (task, dt) compiles once.
DEFAULT = ContextDecision()
# quiet sensory noise: each channel's coherence is read off its stimulus mean without error
QUIET = ContextDecision(batch_size=1000, noise_std=0.01)
# far-apart coherences: the noise is the residual of the known stimulus mean
NOISY = ContextDecision(batch_size=1000, coherences=(-4, 4))
CATCH = ContextDecision(batch_size=1000, noise_std=0.01, catch_fraction=0.5)


def coherences_of(inputs, task):
    """Each trial's two coherences (B, 2), the nearest to its sensory channels' stimulus means."""
    means = inputs[:, STIM_START : DEC_START - DELAY, :2].mean(axis=1) / task.coherence_gain
    values = np.array(task.coherences, dtype=float)
    return values[np.argmin(np.abs(means[..., None] - values), axis=-1)]


def test_registered_and_exported():
    assert TASKS["context_decision"] is ContextDecision and "context_decision" in task_kinds()
    assert (DEFAULT.n_in, DEFAULT.n_out, DEFAULT.loss_kind, DEFAULT.batch_size) == (4, 1, "masked_mse", 128)


def test_the_authors_step_counts_at_20_ms():
    periods = DEFAULT.periods(DT)
    assert [p.stop - p.start for p in periods.values()] == [FIX, CTX_ONLY, STIM, DELAY, DEC]
    assert list(periods) == ["fixation", "context_only", "stimulus", "delay", "decision"]
    assert periods["stimulus"] == slice(STIM_START, STIM_START + STIM) and periods["decision"] == slice(DEC_START, T)
    assert round(0.35 / DT) == 18  # rounding would give one step more than the authors' truncation
    # durations that are whole multiples of dt keep every step despite float ratios (0.3 / 0.1 < 3)
    whole = ContextDecision(fixation=0.3, delay=0.7, decision=0.1).periods(0.1)
    assert [p.stop - p.start for p in whole.values()] == [3, 3, 8, 7, 1]


def test_shapes_and_dtype():
    inputs, targets, mask = as_np(DEFAULT.sample(KEY, DT))
    assert inputs.shape == (128, T, 4) and targets.shape == mask.shape == (128, T, 1)
    assert all(a.dtype == np.float64 and np.all(np.isfinite(a)) for a in (inputs, targets, mask))
    again = as_np(DEFAULT.sample(KEY, DT))
    assert all(np.array_equal(a, b) for a, b in zip((inputs, targets, mask), again, strict=True))
    assert not np.array_equal(inputs, np.asarray(DEFAULT.sample(jax.random.key(1), DT).inputs))
    assert np.isfinite(float(DEFAULT.loss(jnp.zeros((128, T, 1)), DEFAULT.sample(KEY, DT), DT)))


def test_the_target_is_the_sign_of_the_cued_coherence_in_the_decision_window():
    inputs, targets, mask = as_np(QUIET.sample(KEY, DT))
    coh = coherences_of(inputs, QUIET)
    np.testing.assert_allclose(inputs[:, STIM_START : DEC_START - DELAY, :2].mean(axis=1), 0.1 * coh, atol=0.01)
    cued = np.argmax(inputs[:, FIX, 2:], axis=1)  # (B,) 0: context 1 cues sensory 1
    expected = np.sign(coh[np.arange(1000), cued])
    np.testing.assert_array_equal(targets[:, DEC_START:, 0], expected[:, None])
    assert np.all(targets[:, :DEC_START] == 0)
    # each channel draws every coherence, independently of the other and of the context
    assert set(coh[:, 0]) == set(coh[:, 1]) == set(QUIET.coherences)
    assert abs(np.mean(coh[:, 0] == coh[:, 1]) - 1 / 6) < 0.05
    assert abs(np.mean(expected) - 0) < 0.1
    # the network that outputs the target is always right; its opposite never
    batch = QUIET.sample(KEY, DT)
    assert float(QUIET.accuracy(batch.targets, batch)) == 1 and float(QUIET.accuracy(-batch.targets, batch)) == 0


def test_mask_only_in_the_decision_window():
    for task, dt, n_dec in [(DEFAULT, DT, 1), (ContextDecision(decision=0.1, batch_size=2), DT, 5)]:
        _, _, mask = as_np(task.sample(KEY, dt))
        window = np.zeros(mask.shape[1])
        window[-n_dec:] = 1
        np.testing.assert_array_equal(mask, np.broadcast_to(window[None, :, None], mask.shape))


def test_context_channels_are_on_exactly_over_their_window():
    inputs = as_np(QUIET.sample(KEY, DT))[0]
    contexts = inputs[..., 2:]
    window = np.zeros(T)
    window[FIX:DEC_START] = 1  # from the end of fixation to the start of the decision window
    cued = np.argmax(contexts[:, FIX], axis=1)
    expected = QUIET.context_cue * np.eye(2)[cued][:, None, :] * window[None, :, None]
    np.testing.assert_array_equal(contexts, expected)  # noiseless, one channel, at the cue's value
    assert abs(np.mean(cued) - 0.5) < 0.05  # equal odds
    strong = ContextDecision(context_cue=0.5, batch_size=2).sample(KEY, DT).inputs  # the authors' figure networks
    assert np.all(strong[:, FIX:DEC_START, 2:].sum(-1) == 0.5)


def test_noise_statistics():
    inputs = as_np(NOISY.sample(KEY, DT))[0]
    coh = coherences_of(inputs, NOISY)
    stimulus = np.zeros(T)
    stimulus[STIM_START : DEC_START - DELAY] = 1
    residual = inputs[..., :2] - 0.1 * coh[:, None, :] * stimulus[None, :, None]  # (B, T, 2)
    assert abs(residual.std() / 0.1 - 1) < 0.02 and abs(residual.mean()) < 0.002
    for part in (residual[:, stimulus == 1], residual[:, stimulus == 0]):  # the same noise throughout
        assert abs(part.std() / 0.1 - 1) < 0.03
    correlation = np.corrcoef(residual[..., 0].ravel(), residual[..., 1].ravel())[0, 1]
    assert abs(correlation) < 0.02  # independent channels


def test_catch_trials_and_accuracy_skips_them():
    batch = CATCH.sample(KEY, DT)
    inputs, targets, mask = as_np(batch)
    catch = targets[:, -1, 0] == 0
    assert abs(catch.mean() - 0.5) < 0.05
    assert np.all(inputs[catch][..., 2:] == 0) and np.all(np.abs(inputs[catch][..., :2]) < 0.06)
    assert np.all(mask[catch] == mask[~catch][0])
    outputs = jnp.where(jnp.asarray(catch)[:, None, None], -batch.targets - 1, batch.targets)
    assert float(CATCH.accuracy(outputs, batch)) == 1
    # wrong on the first half of the real trials
    wrong = np.zeros(1000, bool)
    wrong[np.flatnonzero(~catch)[: (~catch).sum() // 2]] = True
    outputs = jnp.where(jnp.asarray(wrong)[:, None, None], -batch.targets, batch.targets)
    assert float(CATCH.accuracy(outputs, batch)) == pytest.approx(1 - wrong.sum() / (~catch).sum(), abs=1e-15)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(context_cue=0.0), r"^ContextDecision\.context_cue = 0\.0: must be a finite number > 0$"),
        (dict(noise_std=-0.1), r"^ContextDecision\.noise_std = -0\.1: must be a finite number >= 0$"),
        (dict(coherences=()), r"^ContextDecision\.coherences = \(\): must be a tuple of length >= 1"),
        (dict(coherences=(-1, 0, 1)), r"^ContextDecision\.coherences = \(-1, 0, 1\): entries must be nonzero"),
        (dict(catch_fraction=1.5), r"^ContextDecision\.catch_fraction = 1\.5: must be a finite number >= 0 <= 1$"),
        (dict(stimulus=0.0), r"^ContextDecision\.stimulus = 0\.0: must be a finite number > 0$"),
        (dict(batch_size=0), r"^ContextDecision\.batch_size = 0: must be an integer >= 1$"),
        (dict(loss_kind="l1"), r"^ContextDecision\.loss_kind = 'l1': unknown loss"),
    ],
)
def test_bad_settings_get_one_line_naming_the_field(change, match):
    with pytest.raises(ValueError, match=match) as caught:
        ContextDecision(**change)
    assert "\n" not in str(caught.value)


def test_a_period_shorter_than_a_step_is_named():
    with pytest.raises(ValueError, match=r"^ContextDecision\.decision = 0\.02: shorter than one step at dt = 0\.05"):
        DEFAULT.periods(0.05)
    with pytest.raises(ValueError, match=r"dt = 0: must be a positive Python number"):
        DEFAULT.sample(KEY, 0)


# ---------------------------------------------------------------------------- from TOML
def config_text(network: str = "{n_in = 4, dt = 0.02, tau = 0.1}", **settings: str) -> str:
    """A one-phase config of the task; settings as TOML values."""
    table = {"kind": '"context_decision"', **settings}
    return f"epochs = 3\nlr = 1e-3\nnetwork = {network}\n[task]\n" + "\n".join(f"{k} = {v}" for k, v in table.items())


def test_a_toml_round_trip():
    config = load_config_text(config_text(context_cue="0.5", coherences="[-2, 2]", batch_size="4"))
    table = config.phases[0].task
    assert table.model_dump()["context_cue"] == 0.5 and table.model_dump()["stimulus"] == 0.8
    rnn = config.build_network()
    task = table.build(rnn)
    assert task == ContextDecision(context_cue=0.5, coherences=(-2, 2), batch_size=4)
    batch = task.sample(KEY, rnn.dt)
    assert batch.inputs.shape == (4, T, 4) and float(task.loss(batch.targets, batch, rnn.dt)) == 0
    assert load_config_text(config.to_toml()).resolved() == config.resolved()
    assert pickle.loads(pickle.dumps(config)).resolved() == config.resolved()


@pytest.mark.parametrize(
    "network, key, value, problem",
    [
        (None, "context_cue", "-1", "task.context_cue: value -1: must be greater than 0 (value of the cued context"),
        (None, "coherences", "[1, 0]", "phases.0.task.coherences: value [1.0, 0.0]: entries must be nonzero"),
        (None, "contxt_cue", "1", "task.contxt_cue: value 1: unknown key; allowed keys here: kind, coherences"),
        ("{n_in = 4, dt = 0.05}", "decision", "0.02", "phases.0.task.decision: value 0.02: shorter than one step"),
    ],
)
def test_config_problems_are_one_line_at_their_field(network, key, value, problem):
    text = config_text(network, **{key: value}) if network else config_text(**{key: value})
    found = config_problems(text)
    assert len(found) == 1 and found[0].startswith(problem), found
