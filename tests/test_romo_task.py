"""The Romo task (Dubreuil et al. 2022, their romo.py): the authors' frequency pairs, step counts,
inputs, graded targets, mask, loss, accuracy, and its use from TOML configs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import as_np, config_problems

from overlapflow.experiments.config import load_config_text
from overlapflow.tasks import TASKS, Romo, task_kinds

DT = 0.02  # the authors' 20 ms
KEY = jax.random.key(0)
# at dt = 0.02: fixation 5 | stimulus 1 5 | delay 25..50 | stimulus 2 5 | decision 5
FIX, STIM, DELAY_MIN, DELAY_MAX, DEC = 5, 5, 25, 50, 5
T = FIX + STIM + DELAY_MAX + STIM + DEC
B = 4000

DEFAULT = Romo()
CLEAN = Romo(batch_size=B, noise_std=0.0)  # noiseless: frequencies and delays read off the inputs exactly
CATCH = Romo(batch_size=B, noise_std=0.0, catch_fraction=0.5)


def test_registered_and_exported():
    assert TASKS["romo"] is Romo and "romo" in task_kinds()
    assert (DEFAULT.n_in, DEFAULT.n_out, DEFAULT.loss_kind, DEFAULT.batch_size) == (1, 1, "masked_mse", 128)
    assert (DEFAULT.noise_std, DEFAULT.frequency_range) == (0.01, (10, 34))


def test_the_authors_frequency_pairs():
    pairs = DEFAULT.pairs()
    assert pairs.shape == (54, 2) and pairs.min() == 10 and pairs.max() == 34
    differences = pairs[:, 1] - pairs[:, 0]
    counts = {d: int(np.sum(differences == d)) for d in DEFAULT.differences}
    assert counts == {-24: 1, -16: 9, -8: 17, 8: 17, 16: 9, 24: 1}
    assert pairs[0].tolist() == [34, 10] and pairs[-1].tolist() == [10, 34]  # by difference, then f1
    assert pairs[1:18].tolist() == [[f1, f1 - 16] for f1 in range(26, 35)] + [[f1, f1 - 8] for f1 in range(18, 26)]
    assert len({tuple(p) for p in pairs}) == 54


def test_the_authors_step_counts_at_20_ms():
    periods = DEFAULT.periods(DT)
    assert [p.stop - p.start for p in periods.values()] == [FIX, STIM, DELAY_MAX, STIM, DEC]
    assert periods["decision"].stop == T == 70


def test_shapes_dtype_and_the_key():
    inputs, targets, mask = as_np(DEFAULT.sample(KEY, DT))
    assert inputs.shape == targets.shape == mask.shape == (128, T, 1)
    assert all(a.dtype == np.float64 and np.all(np.isfinite(a)) for a in (inputs, targets, mask))
    again = as_np(DEFAULT.sample(KEY, DT))
    assert all(np.array_equal(a, b) for a, b in zip((inputs, targets, mask), again, strict=True))
    other = as_np(DEFAULT.sample(jax.random.key(1), DT))
    assert not np.array_equal(inputs, other[0]) and not np.array_equal(targets, other[1])


def test_the_target_is_the_scaled_difference_trial_by_trial():
    inputs, targets, mask = (a[..., 0] for a in as_np(CLEAN.sample(KEY, DT)))
    f1 = inputs[:, FIX] * 24 + 22
    start2 = np.argmax(mask, axis=1) - STIM  # from the decision onset: f = 22 is a stimulus of 0
    f2 = inputs[np.arange(B), start2] * 24 + 22
    np.testing.assert_allclose(f1, np.round(f1), atol=1e-12)
    np.testing.assert_allclose(f2, np.round(f2), atol=1e-12)
    f1, f2 = np.round(f1), np.round(f2)
    pairs = {tuple(p) for p in DEFAULT.pairs()}
    assert {(a, b) for a, b in zip(f1, f2, strict=True)} == pairs  # every pair, nothing else
    for b in range(B):
        x, window = np.zeros(T), np.zeros(T)
        x[FIX : FIX + STIM] = (f1[b] - 22) / 24
        x[start2[b] : start2[b] + STIM] = (f2[b] - 22) / 24
        window[start2[b] + STIM : start2[b] + STIM + DEC] = 1
        np.testing.assert_allclose(inputs[b], x, atol=1e-15)
        np.testing.assert_allclose(targets[b], (f1[b] - f2[b]) / 24 * window, atol=1e-15)
        np.testing.assert_array_equal(mask[b], window)
    # a pair uniformly from the 54 (not a difference uniformly); the delay uniform on 25..50, both ends included
    assert abs(np.mean(np.abs(f1 - f2) == 24) - 2 / 54) < 0.01 and abs(np.mean(np.abs(f1 - f2) == 8) - 34 / 54) < 0.03
    delay = start2 - (FIX + STIM)
    assert set(delay) == set(range(DELAY_MIN, DELAY_MAX + 1))
    assert np.all(np.abs(np.bincount(delay)[DELAY_MIN:] / B - 1 / 26) < 0.012)
    batch = CLEAN.sample(KEY, DT)
    assert float(CLEAN.accuracy(batch.targets, batch)) == 1 and float(CLEAN.accuracy(-batch.targets, batch)) == 0
    # graded targets: the sign decides, not the size
    assert float(CLEAN.accuracy(0.01 * jnp.sign(batch.targets), batch)) == 1


def test_noise_statistics_and_the_loss():
    batch = Romo(batch_size=B).sample(KEY, DT)
    inputs = np.asarray(batch.inputs)
    clean = np.asarray(CLEAN.sample(KEY, DT).inputs)  # the same key: the same trials, without noise
    residual = inputs - clean
    assert abs(residual.std() / 0.01 - 1) < 0.01 and abs(residual.mean()) < 1e-4
    outputs = jax.random.normal(jax.random.key(3), batch.targets.shape)
    y, target, mask = np.asarray(outputs), np.asarray(batch.targets), np.asarray(batch.mask)
    theirs = np.mean(np.sum((mask * (target - y)) ** 2, axis=(1, 2)) / mask[..., 0].sum(axis=1))  # loss_mse
    assert float(Romo(batch_size=B).loss(outputs, batch, DT)) == pytest.approx(theirs, rel=1e-12)


def test_catch_trials_are_noise_only_unmasked_and_not_scored():
    batch = CATCH.sample(KEY, DT)
    inputs, targets, mask = as_np(batch)
    catch = mask.sum(axis=(1, 2)) == 0
    assert abs(catch.mean() - 0.5) < 0.03
    assert np.all(inputs[catch] == 0) and np.all(targets[catch] == 0)
    wrong = np.zeros(B, bool)
    wrong[np.flatnonzero(~catch)[: (~catch).sum() // 3]] = True
    outputs = jnp.where(jnp.asarray(wrong)[:, None, None], -batch.targets, batch.targets)
    assert float(CATCH.accuracy(outputs, batch)) == pytest.approx(1 - wrong.sum() / (~catch).sum(), abs=1e-15)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(differences=(-8, 0, 8)), r"^Romo\.differences = \(-8, 0, 8\): entries must be nonzero and at most 24"),
        (dict(differences=(30,)), r"^Romo\.differences = \(30,\): entries must be nonzero and at most 24 in size"),
        (dict(differences=(8.5,)), r"^Romo\.differences = \(8\.5,\): must be a tuple"),
        (dict(frequency_range=(34, 10)), r"^Romo\.frequency_range = \(34, 10\): the highest must exceed the lowest$"),
        (dict(frequency_range=(10,)), r"^Romo\.frequency_range = \(10,\): must be a tuple of length 2"),
        (dict(delay_min=1.5), r"^Romo\.delay_max = 1\.0: must be >= delay_min = 1\.5$"),
        (dict(decision=0.0), r"^Romo\.decision = 0\.0: must be a finite number > 0$"),
        (dict(catch_fraction=-0.1), r"^Romo\.catch_fraction = -0\.1: must be a finite number >= 0 <= 1$"),
    ],
)
def test_bad_settings_get_one_line_naming_the_field(change, match):
    with pytest.raises(ValueError, match=match) as caught:
        Romo(**change)
    assert "\n" not in str(caught.value)


def test_a_period_shorter_than_a_step_is_named():
    with pytest.raises(ValueError, match=r"^Romo\.stimulus1 = 0\.1: shorter than one step at dt = 0\.2"):
        DEFAULT.periods(0.2)


def test_a_toml_round_trip_and_a_problem_at_its_field():
    text = "epochs = 3\nlr = 1e-3\nnetwork = {dt = 0.02, tau = 0.1}\n[task]\nkind = 'romo'\n"
    config = load_config_text(text + "frequency_range = [10, 30]\ndifferences = [-4, 4]\nbatch_size = 4\n")
    rnn = config.build_network()
    task = config.phases[0].task.build(rnn)
    assert task == Romo(frequency_range=(10, 30), differences=(-4, 4), batch_size=4) and len(task.pairs()) == 34
    batch = task.sample(KEY, rnn.dt)
    assert batch.inputs.shape == (4, T, 1) and float(task.loss(batch.targets, batch, rnn.dt)) == 0
    assert load_config_text(config.to_toml()).resolved() == config.resolved()
    found = config_problems(text + "differences = [40]\n")
    assert len(found) == 1 and found[0].startswith("phases.0.task.differences: value [40]: entries must be"), found
