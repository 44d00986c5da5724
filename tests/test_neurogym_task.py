"""The neurogym bridge: a bank of trials from neurogym's trial interface (new_trial, ob, gt), batches
picked by the key, class labels as read-outs with fixation masked, for every engine. The default suite
uses a fake environment; the tests marked ``neurogym`` use the real package (skipped without it)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import overlapflow as of
from overlapflow._extras import MissingExtra
from overlapflow.tasks import NeuroGym

KEY = jax.random.key(0)


class FakeEnv:
    """neurogym's trial interface: ``new_trial()`` fills ``ob`` (T, 3) and ``gt`` (T,); ``seed``.

    A trial: fixation 2..4 steps (ob[:, 0] = 1), stimulus 3 steps (evidence on the channel of the
    choice), decision 2 steps with label 1 + choice; ``n_choices`` choices, so labels 0..n_choices."""

    dt = 100

    def __init__(self, n_choices=2, n_obs=3):
        self.action_space = SimpleNamespace(n=n_choices + 1)
        self.n_choices, self.n_obs = n_choices, n_obs
        self.rng = np.random.RandomState()

    def seed(self, seed=None):
        self.rng = np.random.RandomState(seed)

    def new_trial(self):
        n_fix, choice = self.rng.randint(2, 5), self.rng.randint(self.n_choices)
        T = n_fix + 5
        self.ob = self.rng.normal(0, 0.1, (T, self.n_obs)).astype(np.float32)
        self.ob[:n_fix, 0] += 1
        self.ob[n_fix : n_fix + 3, 1 + choice % (self.n_obs - 1)] += 1
        self.gt = np.zeros(T, dtype=int)
        self.gt[n_fix + 3 :] = 1 + choice
        return {"ground_truth": choice}


def stream(env, seed, n_rows, seq_len):
    """The rows drawn by hand: trials back to back after seed(seed), each row cut at seq_len."""
    env.seed(seed)
    rows = []
    for _ in range(n_rows):
        obs, labels = [], []
        while sum(map(len, labels)) < seq_len:
            env.new_trial()
            obs.append(env.ob)
            labels.append(env.gt)
        rows.append((np.concatenate(obs)[:seq_len], np.concatenate(labels)[:seq_len]))
    return np.stack([r[0] for r in rows]).astype(float), np.stack([r[1] for r in rows])


TWO = NeuroGym(FakeEnv(), batch_size=8, seq_len=30, bank_size=64, seed=3)


def test_the_bank_is_the_trial_stream_with_signed_targets_and_fixation_masked():
    assert (TWO.n_in, TWO.n_out, TWO.readout, TWO.env, TWO.env_dt) == (3, 1, "signed", "FakeEnv", 100)
    obs, labels = stream(FakeEnv(), 3, 64, 30)
    np.testing.assert_array_equal(TWO.inputs, obs)  # float32 observations, exactly
    expected = np.select([labels == 1, labels == 2], [1.0, -1.0], 0.0)  # label 1 -> +1, 2 -> -1, fixation 0
    np.testing.assert_array_equal(TWO.targets[..., 0], expected)
    np.testing.assert_array_equal(TWO.mask[..., 0], (labels != 0).astype(float))
    assert 0.2 < TWO.mask.mean() < 0.4  # 2 decision steps in 7..9
    assert np.all(np.diff(labels, axis=1)[labels[:, 1:] == 0] <= 0)  # a decision is followed by fixation only
    again = NeuroGym(FakeEnv(), batch_size=8, seq_len=30, bank_size=64, seed=3)
    assert np.array_equal(again.inputs, TWO.inputs) and np.array_equal(again.targets, TWO.targets)
    assert not np.array_equal(NeuroGym(FakeEnv(), 8, 30, bank_size=64, seed=4).inputs, TWO.inputs)


def test_a_batch_is_distinct_bank_rows_picked_by_the_key():
    batch = TWO.sample(KEY, 0.1)
    assert batch.inputs.shape == (8, 30, 3) and batch.targets.shape == batch.mask.shape == (8, 30, 1)
    assert batch.inputs.dtype == jnp.float64  # the JAX default (the suite runs in float64)
    rows = np.asarray(jax.random.choice(KEY, 64, (8,), replace=False))
    assert len(set(rows.tolist())) == 8
    for got, bank in zip(batch, (TWO.inputs, TWO.targets, TWO.mask), strict=True):
        np.testing.assert_array_equal(np.asarray(got), bank[rows])
    assert np.array_equal(TWO.sample(KEY, 0.1).inputs, batch.inputs)
    used = {int(r) for k in range(60) for r in jax.random.choice(jax.random.fold_in(KEY, k), 64, (8,), replace=False)}
    assert used == set(range(64))
    inside = jax.jit(lambda key: TWO.sample(key, 0.1).targets)(KEY)  # inside a compiled program too
    np.testing.assert_array_equal(np.asarray(inside), np.asarray(batch.targets))


def test_one_hot_targets_for_more_choices_and_a_fixation_weight():
    task = NeuroGym(FakeEnv(n_choices=3, n_obs=4), batch_size=4, seq_len=20, bank_size=16, fixation_weight=0.05)
    assert (task.readout, task.n_in, task.n_out) == ("one_hot", 4, 3)
    _, labels = stream(FakeEnv(n_choices=3, n_obs=4), 0, 16, 20)
    np.testing.assert_array_equal(task.targets, np.eye(4)[labels][..., 1:])  # e_g, fixation 0
    np.testing.assert_array_equal(task.mask, np.broadcast_to(np.where(labels != 0, 1.0, 0.05)[..., None], (16, 20, 3)))
    forced = NeuroGym(FakeEnv(), batch_size=4, seq_len=20, bank_size=16, readout="one_hot")
    assert forced.n_out == 2 and set(np.unique(forced.targets.sum(-1))) == {0.0, 1.0}


def test_accuracy_reads_each_choice_step_as_the_nearest_class():
    batch = TWO.sample(KEY, 0.1)
    targets, choice = batch.targets, np.asarray(batch.mask[..., 0]) == 1
    assert float(TWO.accuracy(targets, batch)) == 1 and float(TWO.accuracy(-targets, batch)) == 0
    assert float(TWO.accuracy(jnp.zeros_like(targets), batch)) == 0  # read as fixation everywhere
    assert float(TWO.accuracy(0.6 * targets + 0.3 * (1 - batch.mask), batch)) == 1  # fixation steps do not count
    wrong = np.zeros(choice.shape, bool)
    wrong[np.nonzero(choice)[0][:7], np.nonzero(choice)[1][:7]] = True
    outputs = jnp.where(jnp.asarray(wrong)[..., None], 0.4 * targets, targets)  # nearer 0 than the target
    assert float(TWO.accuracy(outputs, batch)) == pytest.approx(1 - 7 / choice.sum(), abs=1e-15)
    three = NeuroGym(FakeEnv(n_choices=3, n_obs=4), batch_size=4, seq_len=20, bank_size=16)
    batch = three.sample(KEY, 0.1)
    assert float(three.accuracy(batch.targets, batch)) == 1
    assert float(three.accuracy(jnp.roll(batch.targets, 1, axis=-1), batch)) == 0


def test_every_engine_sees_the_same_trials():
    """A linear network: the overlap engine is exact at any N, so with the same key (the same batches
    each epoch) its losses equal the network's to round-off; another key gives other batches."""
    task = NeuroGym(FakeEnv(), batch_size=8, seq_len=30, bank_size=64)
    rnn = of.LowRankRNN(rank=1, n_in=3, n_out=1, phi="linear", dt=0.2)
    theta = rnn.init(jax.random.key(1), N=200, dtype=jnp.float64)
    key = jax.random.key(5)
    net = of.train(of.engines.NetworkEngine(), rnn, task, theta, lr=0.05, epochs=20, key=key)
    thy = of.train(of.engines.OverlapEngine(), rnn, task, of.Overlaps.from_params(rnn, theta), 0.05, 20, key=key)
    loss_net, loss_thy = np.asarray(net.history["loss"]), np.asarray(thy.history["loss"])
    np.testing.assert_allclose(loss_net, loss_thy, rtol=1e-9)
    assert loss_net[-1] < 0.8 * loss_net[0]
    other = of.train(of.engines.NetworkEngine(), rnn, task, theta, lr=0.05, epochs=20, key=jax.random.key(6))
    assert not np.allclose(np.asarray(other.history["loss"])[1:], loss_net[1:])


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(batch_size=0), r"^NeuroGym\.batch_size = 0: must be an integer >= 1$"),
        (dict(seq_len=2.5), r"^NeuroGym\.seq_len = 2\.5: must be an integer >= 1$"),
        (dict(bank_size=4), r"^NeuroGym\.bank_size = 4: must be >= batch_size = 8$"),
        (
            dict(readout="softmax"),
            r"^NeuroGym\.readout = 'softmax': unknown; allowed: \['auto', 'signed', 'one_hot'\]$",
        ),
        (dict(fixation_weight=-1.0), r"^NeuroGym\.fixation_weight = -1\.0: must be a finite number >= 0$"),
        (dict(loss="l1"), r"^NeuroGym\.loss_kind = 'l1': unknown loss"),
        (dict(dt=20), r"^NeuroGym\.env_kwargs = \{'dt': 20\}: only with an environment name$"),
        (dict(env=FakeEnv(n_choices=3), readout="signed"), r"^NeuroGym\.readout = 'signed': needs two choices; Fake"),
    ],
)
def test_bad_settings_get_one_line_naming_the_field(change, match):
    settings = dict(env=FakeEnv(), batch_size=8, seq_len=10, bank_size=16) | change
    with pytest.raises(ValueError, match=match) as caught:
        NeuroGym(**settings)
    assert "\n" not in str(caught.value)


def test_environments_outside_the_trial_interface_are_named():
    continuous = FakeEnv()
    continuous.action_space = SimpleNamespace(shape=(2,))  # a Box: no class labels
    with pytest.raises(ValueError, match=r"^NeuroGym\.env = 'FakeEnv': action space .*needs a discrete one of 2"):
        NeuroGym(continuous, 2, 10, bank_size=2)
    stacked = FakeEnv()
    stacked.new_trial = lambda: setattr(stacked, "gt", np.zeros((5, 2))) or setattr(stacked, "ob", np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"^NeuroGym\.env = 'FakeEnv': a trial gave ob \(5, 3\) and gt \(5, 2\)"):
        NeuroGym(stacked, 2, 10, bank_size=2)


def test_without_neurogym_an_environment_name_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "neurogym", None)  # as if it were not installed
    with pytest.raises(
        MissingExtra, match=r"^NeuroGym\('GoNogo-v0'\) needs neurogym: pip install neurogym==2\.2\.0"
    ) as e:
        NeuroGym("GoNogo-v0")
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------- the real package
@pytest.mark.neurogym
@pytest.mark.filterwarnings("ignore:.*to get variables from other wrappers is deprecated")  # Dataset's own reads
def test_the_bank_is_neurogyms_dataset_stream():
    """Row r of the bank is the r-th batch of ``neurogym.Dataset`` with one environment seeded alike
    (a cache of one row, so that each batch starts at a trial onset)."""
    ngym = pytest.importorskip("neurogym")
    task = NeuroGym("PerceptualDecisionMaking-v0", batch_size=2, seq_len=50, bank_size=3, seed=7)
    assert (task.n_in, task.n_out, task.readout, task.env_dt) == (3, 1, "signed", 100)
    dataset = ngym.Dataset("PerceptualDecisionMaking-v0", batch_size=1, seq_len=50, cache_len=1)
    dataset.seed(7)
    for row in range(3):
        inputs, labels = dataset()  # (T, 1, 3) float32, (T, 1) int
        np.testing.assert_array_equal(task.inputs[row], inputs[:, 0])
        np.testing.assert_array_equal(
            task.targets[row, :, 0], np.select([labels[:, 0] == 1, labels[:, 0] == 2], [1, -1])
        )
        np.testing.assert_array_equal(task.mask[row, :, 0], labels[:, 0] != 0)


@pytest.mark.neurogym
def test_a_perceptual_decision_batch_trains_a_network():
    pytest.importorskip("neurogym")
    task = NeuroGym("PerceptualDecisionMaking-v0", batch_size=16, seq_len=100, bank_size=256)
    rnn = of.LowRankRNN(rank=1, n_in=3, n_out=1, phi="tanh", dt=1.0)  # one step per 100 ms, tau 100 ms
    theta = rnn.init(jax.random.key(0), N=256)
    result = of.train(of.engines.NetworkEngine(), rnn, task, theta, lr=0.05, epochs=30)
    loss = np.asarray(result.history["loss"])
    assert loss.shape == (31,) and np.all(np.isfinite(loss)) and loss[-1] < loss[0]
    batch = task.sample(KEY, rnn.dt)
    outputs = of.network_forward(rnn, result.final, batch.inputs)
    assert batch.inputs.shape == (16, 100, 3) and 0 <= float(task.accuracy(outputs, batch)) <= 1
