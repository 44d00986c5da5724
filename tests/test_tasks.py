"""The tasks of overlapflow.tasks: shapes, statistics, exact targets, masks, jit, validation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import as_np

import overlapflow
from overlapflow import LowRankRNN, Overlaps, meanfield_forward
from overlapflow.tasks import (
    PAPER_TEACHER_OVERLAPS,
    AbstractTask,
    DampedOscillator,
    DecisionMaking,
    FlipFlop,
    Teacher,
    WhiteNoiseFilter,
)

DT = 0.05
KEY = jax.random.key(0)
# one compiled program rather than op-by-op dispatch (rnn is a hashable static argument)
meanfield_jit = jax.jit(meanfield_forward, static_argnums=0)


# Shared instances: each (task, dt) compiles once (sample is jitted per task and dt), so the tests
# below reuse these rather than building near-identical tasks.
WHITE_NOISE = WhiteNoiseFilter(c=0.7, a=-2.0, batch_size=200)
OSCILLATOR = DampedOscillator(c=0.3, omega=2.0, a=1.5)
FLIPFLOP_3BITS = FlipFlop(n_bits=3, batch_size=400, t_max=40.0)
FLIPFLOP_ABC = FlipFlop(batch_size=32, wait_range=(1.0, 2.0), input_amp=2.0, target_amp=1.0)
DECISION = DecisionMaking(batch_size=600, noise_std=0.05)
DECISION_SIGN = DecisionMaking(batch_size=600, noise_std=0.05, target="sign")
TEACHER = Teacher.paper(batch_size=16)

TASKS = [
    (WHITE_NOISE, DT),
    (OSCILLATOR, DT),
    (FLIPFLOP_3BITS, DT),
    (FLIPFLOP_ABC, 0.025),
    (DECISION, DT),
    (DECISION_SIGN, DT),
    (TEACHER, DT),
]


# ---------------------------------------------------------------------------- common interface
@pytest.mark.parametrize("task, dt", TASKS, ids=lambda t: type(t).__name__ if isinstance(t, AbstractTask) else "")
def test_interface(task, dt):
    batch = task.sample(KEY, dt)
    inputs, targets, mask = as_np(batch)
    B, T = inputs.shape[:2]
    assert T == round(task.t_max / dt)
    assert inputs.shape == (B, T, task.n_in)
    assert targets.shape == mask.shape == (B, T, task.n_out)
    for a in (inputs, targets, mask):
        assert a.dtype == np.float64 and np.all(np.isfinite(a))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert np.isfinite(float(task.loss(jnp.zeros_like(batch.targets), batch, dt)))
    # hashable and equal to a copy (usable as a static jit argument)
    assert hash(task) == hash(dataclasses.replace(task)) and task == dataclasses.replace(task)
    # reproducible from a key; another key gives another batch unless deterministic
    again = as_np(task.sample(KEY, dt))
    for a, b in zip((inputs, targets, mask), again, strict=False):
        np.testing.assert_array_equal(a, b)
    # usable under jit with a traced key (XLA may fuse differently: equal to rounding)
    jitted = as_np(jax.jit(lambda k: task.sample(k, dt))(KEY))
    for a, b in zip((inputs, targets, mask), jitted, strict=False):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    other = as_np(task.sample(jax.random.key(1), dt))
    if task.deterministic:
        for a, b in zip((inputs, targets, mask), other, strict=False):
            np.testing.assert_array_equal(a, b)
    else:
        assert not np.array_equal(inputs, other[0])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: WhiteNoiseFilter(noise_std=-1.0), r"WhiteNoiseFilter\.noise_std = -1\.0"),
        (lambda: WhiteNoiseFilter(batch_size=0), r"WhiteNoiseFilter\.batch_size = 0"),
        (lambda: WhiteNoiseFilter(c="0.2"), r"WhiteNoiseFilter\.c = '0\.2'"),
        (lambda: DampedOscillator(t_max=0.0), r"DampedOscillator\.t_max = 0\.0"),
        (lambda: DampedOscillator(loss_kind="l1"), r"DampedOscillator\.loss_kind = 'l1'.*allowed"),
        (lambda: FlipFlop(n_bits=0), r"FlipFlop\.n_bits = 0"),
        (lambda: FlipFlop(wait_range=(5.0, 4.0)), r"FlipFlop\.wait_range = \(5\.0, 4\.0\).*low <= high"),
        (lambda: FlipFlop(wait_range=(0.2, 1.0), spacing="onset"), r"FlipFlop\.wait_range.*pulse_duration"),
        (lambda: FlipFlop(spacing="offset"), r"FlipFlop\.spacing = 'offset': unknown; allowed: \['after_delay'"),
        (lambda: FlipFlop(pulse_duration=0.0), r"FlipFlop\.pulse_duration = 0\.0"),
        (lambda: DecisionMaking(target="binary"), r"DecisionMaking\.target = 'binary'.*continuous"),
        (lambda: DecisionMaking(coherences=()), r"DecisionMaking\.coherences = \(\)"),
        (lambda: DecisionMaking(stimulus=0.0), r"DecisionMaking\.stimulus = 0\.0"),
        (lambda: Teacher({"zx": 1.0}), r"Teacher\.overlaps.*'zx'"),
        (lambda: Teacher({"zm": "a"}), r"Teacher\.overlaps\['zm'\] = 'a'"),
        (lambda: Teacher({**PAPER_TEACHER_OVERLAPS, "zz": 0.1}), r"Teacher\.overlaps.*positive semi-definite"),
        (lambda: Teacher.paper(noise_std=-0.1), r"Teacher\.noise_std = -0\.1"),
        (lambda: Teacher.paper(input_task=FlipFlop(batch_size=3)), r"Teacher\.input_task\.batch_size = 3"),
        (lambda: Teacher.paper(input_task=FlipFlop(n_bits=2, batch_size=128)), r"Teacher\.input_task: n_in = 2"),
    ],
)
def test_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_list_fields_become_tuples():
    assert FlipFlop(wait_range=[1.0, 2.0]).wait_range == (1.0, 2.0)
    assert DecisionMaking(coherences=[-1, 1]).coherences == (-1, 1)
    hash(FlipFlop(wait_range=[1.0, 2.0]))


# ---------------------------------------------------------------------------- white-noise filter
def test_white_noise_statistics():
    task = WHITE_NOISE
    inputs, targets, mask = as_np(task.sample(KEY, DT))
    assert abs(inputs.std() / task.noise_std - 1) < 0.05
    assert abs(inputs.mean()) < 0.05 * task.noise_std
    assert np.all(mask == 1)
    # stationary target variance: a^2 s^2 dt^2 / (1 - exp(-2 c dt))
    q = np.exp(-task.c * DT)
    late = targets[:, 200:]
    assert abs(late.var() / (task.a**2 * task.noise_std**2 * DT**2 / (1 - q**2)) - 1) < 0.15


def test_white_noise_target_is_convolution():
    task = WHITE_NOISE
    inputs, targets, _ = as_np(task.sample(KEY, DT))
    T = inputs.shape[1]
    kernel = task.a * DT * np.exp(-task.c * DT * np.arange(T))
    for b in range(8):
        expected = np.convolve(inputs[b, :, 0], kernel)[:T]
        np.testing.assert_allclose(targets[b, :, 0], expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- damped oscillator
def test_damped_oscillator_formula():
    task = OSCILLATOR
    inputs, targets, mask = as_np(task.sample(KEY, DT))
    t = DT * np.arange(400)
    np.testing.assert_allclose(targets[0, :, 0], 1.5 * np.exp(-0.3 * t) * np.cos(2.0 * t), rtol=0, atol=1e-14)
    assert inputs[0, 0, 0] == 1 / DT and np.all(inputs[0, 1:] == 0)
    assert np.all(mask == 1) and task.deterministic and task.loss_kind == "sum_sq_dt"


# ---------------------------------------------------------------------------- flip-flop
def reconstruct_flipflop(inputs, task, dt):
    """From the inputs alone: onsets per (trial, bit), and the expected target and mask."""
    steps = task.steps(dt)
    P, M = steps["pulse"], steps["mask_after"]
    B, T, n = inputs.shape
    targets, mask = np.zeros_like(inputs), np.zeros_like(inputs)
    onsets = {}
    for b in range(B):
        for i in range(n):
            x = inputs[b, :, i]
            on = np.flatnonzero((x != 0) & (np.concatenate([[0.0], x[:-1]]) == 0))
            onsets[b, i] = on
            m = np.ones(T)
            if len(on):
                m[: on[0]] = 0
            else:
                m[:] = 0
            for j, k in enumerate(on):
                end = on[j + 1] if j + 1 < len(on) else T
                targets[b, k:end, i] = task.target_amp * np.sign(x[k])
                m[max(k - 1, 0) : k + P + M] = 0
                # each pulse lasts exactly P steps at amplitude input_amp
                assert np.all(np.abs(x[k : min(k + P, T)]) == abs(task.input_amp))
                assert np.all(np.sign(x[k : min(k + P, T)]) == np.sign(x[k]))
                if k + P < T:
                    assert x[k + P] == 0
            mask[b, :, i] = m
    return onsets, targets, mask


def authors_flipflop(T, dt, waits, signs, input_amp, target_amp, stimulus_duration=0.5, delay_duration=2.0):
    """The authors' generator (``flip_flop`` in code/nonlinear.ipynb, cell 1) for one trial, line
    by line, with its random waits (in time units) and signs given instead of drawn."""
    stim_d, ded = int(stimulus_duration / dt), int(delay_duration / dt)
    x, y, m = np.zeros(T), np.zeros(T), np.zeros(T)
    last_delay_end, had_pulse, i = 0, False, 0
    while True:
        wait = int(0.5 / dt) if not had_pulse else int(waits[i - 1] / dt)
        pulse_start = last_delay_end + wait
        if pulse_start >= T:
            break
        if had_pulse and last_delay_end < pulse_start:
            m[last_delay_end:pulse_start] = 1.0
        pulse_end = min(pulse_start + stim_d, T)
        delay_end = min(pulse_end + ded, T)
        x[pulse_start:pulse_end] = signs[i]
        y[pulse_start:] = signs[i]
        m[max(0, pulse_start - 1) : delay_end] = 0.0
        had_pulse, last_delay_end, i = True, delay_end, i + 1
    if had_pulse and last_delay_end < T:
        m[last_delay_end:T] = 1.0
    return x * input_amp, y * target_amp, m


@pytest.mark.parametrize(
    "task, dt",
    [
        (FLIPFLOP_3BITS, DT),
        (FLIPFLOP_ABC, 0.025),
        (FlipFlop(batch_size=16, first_pulse=0.0, wait_range=(0.6, 0.6), mask_after=0.0, spacing="onset"), 0.1),
        (FlipFlop(batch_size=16, wait_range=(1.0, 2.0), spacing="onset", mask_after=0.5), 0.05),
    ],
    ids=["paper-3bits", "A/B->C", "edge-onset", "onset"],
)
def test_flipflop_matches_reconstruction(task, dt):
    inputs, targets, mask = as_np(task.sample(KEY, dt))
    onsets, exp_targets, exp_mask = reconstruct_flipflop(inputs, task, dt)
    np.testing.assert_array_equal(targets, exp_targets)
    np.testing.assert_array_equal(mask, exp_mask)
    steps = task.steps(dt)
    first, lo, hi = steps["first"], steps["wait_min"], steps["wait_max"]
    after_delay = task.spacing == "after_delay"
    for on in onsets.values():
        assert on[0] == first
        gaps = np.diff(on) - (steps["pulse"] + steps["mask_after"] if after_delay else 0)
        assert np.all((gaps >= lo) & (gaps <= hi))  # waits in wait_range, counted as `spacing` says
    # 0 before the first pulse, target held at +-target_amp after it
    assert np.all(targets[:, :first] == 0) and np.all(mask[:, :first] == 0)
    assert np.all(np.abs(targets[:, first:]) == task.target_amp)
    # enough onsets are drawn: the last one drawn always falls after the trial
    assert max(len(on) for on in onsets.values()) < steps["n_onsets"]


@pytest.mark.parametrize("dt", [0.05, 0.025])
def test_flipflop_is_the_authors_generator(dt):
    """Every trial equals the authors' generator run with the same waits and signs: onsets,
    truncations, the 2 s masked delay, the mask before the first pulse and at the trial's end."""
    task = FlipFlop(batch_size=64, wait_range=(1.0, 2.0), input_amp=2.0, target_amp=1.0)
    inputs, targets, mask = as_np(task.sample(KEY, dt))
    onsets, _, _ = reconstruct_flipflop(inputs, task, dt)
    steps = task.steps(dt)
    assert (steps["pulse"], steps["mask_after"], steps["first"]) == (int(0.5 / dt), int(2.0 / dt), int(0.5 / dt))
    for b in range(task.batch_size):
        on = onsets[b, 0]
        # waits in time units whose truncation gives the observed steps (their int(wait / dt))
        waits = (np.diff(on) - steps["pulse"] - steps["mask_after"] + 0.5) * dt
        waits = np.append(waits, inputs.shape[1] * dt)  # the next onset falls after the trial
        signs = np.sign(inputs[b, on, 0])
        x, y, m = authors_flipflop(inputs.shape[1], dt, waits, signs, task.input_amp, task.target_amp)
        np.testing.assert_array_equal(inputs[b, :, 0], x)
        np.testing.assert_array_equal(targets[b, :, 0], y)
        np.testing.assert_array_equal(mask[b, :, 0], m)


def test_flipflop_statistics_and_independent_bits():
    task = FLIPFLOP_3BITS
    inputs, targets, mask = as_np(task.sample(KEY, DT))
    onsets, _, _ = reconstruct_flipflop(inputs, task, DT)
    all_signs = np.concatenate([np.sign(inputs[b, on, i]) for (b, i), on in onsets.items()])
    assert abs(all_signs.mean()) < 0.1  # +-1 with equal odds
    # waits U(4, 10) counted from the end of the 0.5 s pulse and its 2 s masked delay
    gaps = np.concatenate([np.diff(on) for on in onsets.values()]) * DT - 2.5
    assert abs(gaps.mean() - 7.0) < 0.3 and gaps.min() >= 4.0 - 1e-9 and gaps.max() <= 10.0 + 1e-9
    # bits are independent: targets uncorrelated, second onsets rarely equal
    late = targets[:, -1, :]
    corr = np.corrcoef(late.T)
    assert np.all(np.abs(corr[np.triu_indices(3, 1)]) < 0.2)
    second = np.array([[onsets[b, i][1] for i in range(3)] for b in range(400)])
    assert np.mean(second[:, 0] == second[:, 1]) < 0.05
    assert 0.3 < mask.mean() < 0.9


# ---------------------------------------------------------------------------- decision making
@pytest.mark.parametrize("task", [DECISION, DECISION_SIGN], ids=["continuous", "sign"])
def test_decision_making(task):
    target = task.target
    inputs, targets, mask = as_np(task.sample(KEY, DT))
    fix, stim, delay, resp = 20, 180, 20, 180
    T = fix + stim + delay + resp
    assert inputs.shape == (600, T, 1) and task.t_max == 20.0
    response = np.zeros(T)
    response[T - resp :] = 1
    np.testing.assert_array_equal(mask, np.broadcast_to(response[None, :, None], mask.shape))
    # coherence of each trial from its stimulus mean: unambiguous (spacing >> noise / sqrt(180))
    stim_mean = inputs[:, fix : fix + stim, 0].mean(axis=1)
    cohs = np.array(task.coherences, dtype=float)
    coh = cohs[np.argmin(np.abs(stim_mean[:, None] - cohs[None] * 0.032), axis=1)]
    assert np.all(np.abs(stim_mean - coh * 0.032) < 5 * 0.05 / np.sqrt(stim))
    assert set(coh) == set(cohs)  # every coherence is drawn
    counts = np.array([np.sum(coh == c) for c in cohs])
    assert counts.min() > 60  # ~100 each
    expected = coh / 16 if target == "continuous" else np.sign(coh)
    np.testing.assert_array_equal(targets[:, T - resp :, 0], np.broadcast_to(expected[:, None], (600, resp)))
    assert np.all(targets[:, : T - resp] == 0)
    # noise std outside the stimulus, and of the stimulus residual
    outside = np.concatenate([inputs[:, :fix, 0], inputs[:, fix + stim :, 0]], axis=1)
    assert abs(outside.std() / 0.05 - 1) < 0.05
    residual = inputs[:, fix : fix + stim, 0] - 0.032 * coh[:, None]
    assert abs(residual.std() / 0.05 - 1) < 0.05 and abs(residual.mean()) < 0.005


# ---------------------------------------------------------------------------- teacher
def test_teacher_paper_overlaps():
    task = Teacher.paper(batch_size=8)
    S = task.overlap_matrix
    for label, value in PAPER_TEACHER_OVERLAPS.items():
        assert float(S[label]) == value
    assert float(S["mu"]) == float(S["um"]) == 1.6
    assert Teacher(dict(task.overlaps), batch_size=8) == task  # normalised overlaps round-trip
    assert task.n_in == task.n_out == 1 and task.loss_kind == "mse"
    assert task.input_task == FlipFlop(batch_size=8, t_max=20.0, input_amp=1.0)


def test_teacher_targets_are_meanfield_outputs():
    task = TEACHER
    inputs, targets, mask = as_np(task.sample(KEY, DT))
    rnn = LowRankRNN(rank=1, phi="erf")
    # the raw paper overlaps with arbitrary zz, vv, zv: those never change the output
    names = rnn.vector_names
    S = np.diag([1.8, 2.2, 7.0, 4.0])
    for label, value in {**PAPER_TEACHER_OVERLAPS, "zv": 0.3}.items():
        i, j = names.index(label[0]), names.index(label[1])
        S[i, j] = S[j, i] = value
    expected = np.asarray(meanfield_jit(rnn, jnp.asarray(S), jnp.asarray(inputs)))
    np.testing.assert_allclose(targets, expected, rtol=0, atol=1e-12)
    assert np.all(mask == 1)
    # inputs = 1.5 noise + 2 x flip-flop pulses (from the second half of the split key)
    pulses = np.asarray(task.input_task.sample(jax.random.split(KEY)[1], DT).inputs)
    noise = inputs - 2.0 * pulses
    assert np.any(pulses != 0)
    assert abs(noise.std() / 1.5 - 1) < 0.05


def test_teacher_from_overlaps_object_and_dt():
    rnn = LowRankRNN(rank=2, n_in=1, n_out=2, phi="erf", dt=0.1)
    S = Overlaps.from_params(rnn, rnn.init(jax.random.key(3), N=300, dtype=jnp.float64))
    task = Teacher(S, rnn=rnn, batch_size=4, t_max=5.0, noise_std=0.5)
    assert task.n_out == 2
    np.testing.assert_allclose(np.asarray(task.overlap_matrix.matrix), np.asarray(S.matrix), atol=1e-15)
    dt = 0.025  # the teacher runs at the sampling step, not at rnn.dt
    inputs, targets, _ = as_np(task.sample(KEY, dt))
    assert targets.shape == (4, 200, 2)
    expected = meanfield_jit(dataclasses.replace(rnn, dt=dt), S.matrix, jnp.asarray(inputs))
    np.testing.assert_allclose(targets, np.asarray(expected), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"Teacher\.overlaps: overlaps of vectors"):
        Teacher(S, batch_size=4)


# ---------------------------------------------------------------------------- training
def test_train_overlaps_on_flipflop():
    rnn = LowRankRNN(rank=1, phi="erf")
    S0 = Overlaps.from_params(rnn, rnn.init(jax.random.key(0), N=200))
    history = overlapflow.train(
        overlapflow.OverlapEngine(), rnn, FlipFlop(batch_size=4, t_max=5.0), S0, 0.05, 5
    ).history
    loss = np.asarray(history["loss"])
    assert loss.shape == (6,) and np.all(np.isfinite(loss))
