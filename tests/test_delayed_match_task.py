"""Delayed match-to-sample (Dubreuil et al. 2022, their dms.py): the authors' step counts, inputs,
targets, mask, loss, accuracy, and its use from TOML configs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import as_np, config_problems

from overlapflow.experiments.config import load_config_text
from overlapflow.tasks import TASKS, DelayedMatch, task_kinds

DT = 0.02  # the authors' 20 ms
KEY = jax.random.key(0)
# at dt = 0.02: fixation 5 | stimulus 1 25 | delay 25..149 (150 at most) | stimulus 2 25 | decision 50
FIX, STIM, DELAY_MIN, DELAY_MAX, DEC = 5, 25, 25, 150, 50
T = FIX + STIM + DELAY_MAX + STIM + DEC
B = 2000

DEFAULT = DelayedMatch()
# noiseless: every trial's stimuli and delay are read off its inputs exactly
CLEAN = DelayedMatch(batch_size=B, noise_std=0.0)
CATCH = DelayedMatch(batch_size=B, noise_std=0.0, catch_fraction=0.5)


def read_trials(inputs, stimulus1=slice(FIX, FIX + STIM)):
    """From noiseless inputs (B, T, 2): each trial's stimuli (B, 2) (0 = A, 1 = B) and stimulus 2 onset (B,)."""
    first = np.argmax(inputs[:, stimulus1.start, :], axis=1)
    on = inputs.sum(-1) > 0.5  # (B, T)
    on[:, : stimulus1.stop] = False
    start2 = np.argmax(on, axis=1)
    second = np.argmax(inputs[np.arange(len(inputs)), start2, :], axis=1)
    return np.stack([first, second], axis=1), start2


def test_registered_and_exported():
    assert TASKS["delayed_match"] is DelayedMatch and "delayed_match" in task_kinds()
    assert (DEFAULT.n_in, DEFAULT.n_out, DEFAULT.loss_kind, DEFAULT.batch_size) == (2, 1, "masked_mse", 128)
    assert (DEFAULT.delay_min, DEFAULT.delay_max, DEFAULT.noise_std) == (0.5, 3.0, 0.03)


def test_the_authors_step_counts_at_20_ms():
    periods = DEFAULT.periods(DT)
    assert [p.stop - p.start for p in periods.values()] == [FIX, STIM, DELAY_MAX, STIM, DEC]
    assert periods["decision"].stop == T == 255
    # durations that are whole multiples of dt keep every step despite float ratios (0.3 / 0.1 < 3)
    assert 0.3 / 0.1 < 3
    whole = DelayedMatch(fixation=0.3, stimulus1=0.3, delay_min=0.3, delay_max=0.3, stimulus2=0.3, decision=0.3)
    assert [p.stop - p.start for p in whole.periods(0.1).values()] == [3, 3, 3, 3, 3]
    inputs, _, mask = as_np(DelayedMatch(delay_min=0.3, delay_max=0.3, batch_size=4, noise_std=0.0).sample(KEY, 0.1))
    assert np.all(read_trials(inputs, slice(1, 6))[1] == 1 + 5 + 3)  # fixation 1 + stimulus 5 + delay 3 steps (not 2)


def test_shapes_dtype_and_the_key():
    inputs, targets, mask = as_np(DEFAULT.sample(KEY, DT))
    assert inputs.shape == (128, T, 2) and targets.shape == mask.shape == (128, T, 1)
    assert all(a.dtype == np.float64 and np.all(np.isfinite(a)) for a in (inputs, targets, mask))
    again = as_np(DEFAULT.sample(KEY, DT))
    assert all(np.array_equal(a, b) for a, b in zip((inputs, targets, mask), again, strict=True))
    other = as_np(DEFAULT.sample(jax.random.key(1), DT))
    assert not np.array_equal(inputs, other[0]) and not np.array_equal(targets, other[1])


def test_the_target_is_match_or_not_trial_by_trial():
    inputs, targets, mask = as_np(CLEAN.sample(KEY, DT))
    stimuli, start2 = read_trials(inputs)
    delay = start2 - (FIX + STIM)
    for b in range(B):
        x = np.zeros((T, 2))
        x[FIX : FIX + STIM, stimuli[b, 0]] = 1
        x[start2[b] : start2[b] + STIM, stimuli[b, 1]] = 1
        window = np.zeros(T)
        window[start2[b] + STIM : start2[b] + STIM + DEC] = 1
        match = 1.0 if stimuli[b, 0] == stimuli[b, 1] else -1.0
        np.testing.assert_array_equal(inputs[b], x)
        np.testing.assert_array_equal(targets[b, :, 0], match * window)
        np.testing.assert_array_equal(mask[b, :, 0], window)
    # the four types A-A, A-B, B-A, B-B with equal odds; the delay floor(U[0.5, 3) / 0.02): 25..149
    types = np.bincount(2 * stimuli[:, 0] + stimuli[:, 1], minlength=4) / B
    assert np.all(np.abs(types - 0.25) < 0.03)
    assert delay.min() == DELAY_MIN and delay.max() == DELAY_MAX - 1
    assert abs(delay.mean() - (DELAY_MIN + DELAY_MAX - 1) / 2) < 2.5  # uniform: mean 87, sd of the mean 0.8
    assert len(np.unique(delay)) > 115  # of the 125 values
    batch = CLEAN.sample(KEY, DT)
    assert float(CLEAN.accuracy(batch.targets, batch)) == 1 and float(CLEAN.accuracy(-batch.targets, batch)) == 0


def test_noise_is_added_on_both_channels_at_every_step():
    noisy = DelayedMatch(batch_size=B)
    inputs = np.asarray(noisy.sample(KEY, DT).inputs)
    clean = np.round(inputs)  # the noise (std 0.03) never reaches 0.5
    residual = inputs - clean
    assert abs(residual.std() / 0.03 - 1) < 0.01 and abs(residual.mean()) < 3e-4
    assert set(np.unique(clean)) == {0.0, 1.0}
    correlation = np.corrcoef(residual[..., 0].ravel(), residual[..., 1].ravel())[0, 1]
    assert abs(correlation) < 0.01


def test_the_loss_is_the_authors_per_trial_average():
    batch = DEFAULT.sample(KEY, DT)
    outputs = jax.random.normal(jax.random.key(3), batch.targets.shape)
    y, target, mask = np.asarray(outputs), *as_np(batch)[1:]
    theirs = np.mean(np.sum((mask * (target - y)) ** 2, axis=(1, 2)) / mask[..., 0].sum(axis=1))  # loss_mse
    assert float(DEFAULT.loss(outputs, batch, DT)) == pytest.approx(theirs, rel=1e-12)


def test_catch_trials_are_noise_only_unmasked_and_not_scored():
    batch = CATCH.sample(KEY, DT)
    inputs, targets, mask = as_np(batch)
    catch = mask.sum(axis=(1, 2)) == 0
    assert abs(catch.mean() - 0.5) < 0.03
    assert np.all(inputs[catch] == 0) and np.all(targets[catch] == 0)
    assert np.all(mask[~catch].sum(axis=(1, 2)) == DEC)
    # catch trials count neither way; wrong on the first half of the real trials
    wrong = np.zeros(B, bool)
    wrong[np.flatnonzero(~catch)[: (~catch).sum() // 2]] = True
    outputs = (
        jnp.where(jnp.asarray(wrong)[:, None, None], -batch.targets, batch.targets)
        + 5 * jnp.asarray(catch)[:, None, None]
    )
    assert float(CATCH.accuracy(outputs, batch)) == pytest.approx(1 - wrong.sum() / (~catch).sum(), abs=1e-15)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(delay_max=0.4), r"^DelayedMatch\.delay_max = 0\.4: must be >= delay_min = 0\.5$"),
        (dict(stimulus1=0.0), r"^DelayedMatch\.stimulus1 = 0\.0: must be a finite number > 0$"),
        (dict(noise_std=-0.1), r"^DelayedMatch\.noise_std = -0\.1: must be a finite number >= 0$"),
        (dict(catch_fraction=1.5), r"^DelayedMatch\.catch_fraction = 1\.5: must be a finite number >= 0 <= 1$"),
        (dict(batch_size=0), r"^DelayedMatch\.batch_size = 0: must be an integer >= 1$"),
        (dict(loss_kind="l1"), r"^DelayedMatch\.loss_kind = 'l1': unknown loss"),
    ],
)
def test_bad_settings_get_one_line_naming_the_field(change, match):
    with pytest.raises(ValueError, match=match) as caught:
        DelayedMatch(**change)
    assert "\n" not in str(caught.value)


def test_a_period_shorter_than_a_step_is_named():
    with pytest.raises(ValueError, match=r"^DelayedMatch\.stimulus2 = 0\.01: shorter than one step at dt = 0\.02"):
        DelayedMatch(stimulus2=0.01).periods(DT)
    with pytest.raises(ValueError, match=r"dt = -1: must be a positive Python number"):
        DEFAULT.sample(KEY, -1)


def test_a_toml_round_trip_and_a_problem_at_its_field():
    text = "epochs = 3\nlr = 1e-3\nnetwork = {n_in = 2, dt = 0.02, tau = 0.1}\n[task]\nkind = 'delayed_match'\n"
    config = load_config_text(text + "delay_max = 1.0\nbatch_size = 4\n")
    rnn = config.build_network()
    task = config.phases[0].task.build(rnn)
    assert task == DelayedMatch(delay_max=1.0, batch_size=4)
    batch = task.sample(KEY, rnn.dt)
    assert batch.inputs.shape == (4, FIX + STIM + 50 + STIM + DEC, 2)
    assert float(task.loss(batch.targets, batch, rnn.dt)) == 0
    assert load_config_text(config.to_toml()).resolved() == config.resolved()
    found = config_problems(text + "delay_max = 0.1\n")
    assert len(found) == 1 and found[0].startswith("phases.0.task.delay_max: value 0.1: must be >= delay_min"), found
