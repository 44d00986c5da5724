"""The same runs before and after "the house, second step" (docs/results/house_same_numbers.json):
saves every trajectory to the .npz named on the command line. Runs on both APIs: the engines through
the named entry points (deprecated aliases after the change, the implementation before), and the
layers built on them: the experiment runner with a checkpoint and a resume, the A/B -> C runner with
the lr drop, and a validate-theory study."""

import sys
import tempfile
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import overlapflow as of
from overlapflow.experiments import load_config_text, run_experiment
from overlapflow.experiments.ab_to_c import ABtoCSettings, run_ab_to_c_parallel
from overlapflow.phenomena.curriculum import aba_curriculum, run_curriculum
from overlapflow.validation import validate_theory

warnings.simplefilter("ignore", DeprecationWarning)
jax.config.update("jax_enable_x64", True)
out = {}
rnn = of.LowRankRNN(rank=1, phi="erf", readout="before")
task = of.tasks.FlipFlop(batch_size=8, t_max=10.0)
theta = rnn.init(jax.random.key(0), N=300)
S0 = of.Overlaps.from_params(rnn, theta).matrix
key = jax.random.key(1)
out["closure"] = of.train_overlaps(rnn, task, S0, 0.05, 40, key=key).overlaps.values
out["euler"] = of.train_overlaps(rnn, task, S0, 0.05, 40, method="euler", key=key).overlaps.values
out["momentum"] = of.train_overlaps(rnn, task, S0, 0.02, 40, optimizer="momentum", key=key).overlaps.values
out["flow"] = of.train_overlaps(rnn, task, S0, 0.05, 40, method="flow", key=key).overlaps.values
out["network32"] = of.train_network(rnn, task, theta, 0.05, 40, key=key).overlaps.values
out["adam32"] = of.train_network(rnn, task, theta, 1e-3, 40, optimizer="adam", key=key).overlaps.values
out["particles"] = of.train_particles(rnn, task, S0, 0.05, 20, rule="gauss-hermite", nodes=3, key=key).overlaps.values
lin = of.LowRankRNN(rank=2)
th = lin.init(jax.random.key(2), N=200, dtype=jnp.float64)
out["linear_net64"] = of.train_network(lin, of.tasks.ExponentialFilter(c=0.2), th, 5e-3, 100).overlaps.values
drop = of.Optimizer("sgd", lr_drop_below=0.5, lr_drop_factor=5.0)
Ss = np.stack([S0, np.asarray(of.Overlaps.from_params(rnn, rnn.init(jax.random.key(9), N=300)).matrix)])
out["batch_drop"] = of.train_overlaps_batch(rnn, task, Ss, 0.05, 40, optimizer=drop, key=key).overlaps.values
r = run_curriculum(lin, aba_curriculum(scale=0.02), theta0=th, engines=("network", "overlaps"))
out["aba_net"], out["aba_thy"] = r["network"].overlaps.values, r["overlaps"].overlaps.values

folder = Path(tempfile.mkdtemp())
config = load_config_text(
    """
name = "same"
N = 64
dtype = "float64"
checkpoint_every = 7
[network]
rank = 1
phi = "erf"
[[phases]]
name = "A"
epochs = 20
lr = 0.05
task = {kind = "flipflop", batch_size = 8, t_max = 6.0}
optimizer = {kind = "momentum", momentum = 0.5}
[[phases]]
name = "B"
epochs = 10
lr = 0.02
task = {kind = "flipflop", batch_size = 8, t_max = 6.0, input_amp = 2.0}
[engines]
network = true
overlaps = ["exact"]
particles = {rule = "gauss-hermite", nodes = 3}
"""
)
run_experiment(config, folder / "run", stop_after_segments=3)
resumed = run_experiment(config, folder / "run", resume=True)
for name, history in resumed.items():
    out[f"runner_{name}_loss"], out[f"runner_{name}"] = history.loss.values, history.overlaps.values
settings = ABtoCSettings(n_pairs=2, epochs=60, c_epochs=40, segment=25, record_every=5, batch_size=16)
memory = run_ab_to_c_parallel(settings, folder / "abc", workers=0)
for name in ("loss", "trajectory"):
    out[f"ab_to_c_{name}"] = memory[name].values
study = validate_theory(rnn, task, S0, 0.05, 12, sizes=(40, 80), seeds=2, nodes=3, right_nodes=2, key=key)
out["validate_distance"] = study.distance_to_limit.values
out["validate_limit"] = study.overlaps_particles.values
np.savez(sys.argv[1], **out)
