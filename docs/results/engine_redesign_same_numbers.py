"""The same runs before and after the engine redesign (docs/results/engine_redesign_same_numbers.json):
saves every overlap trajectory to the .npz named on the command line."""

import sys

import jax
import jax.numpy as jnp
import numpy as np

import overlapflow as of
from overlapflow.phenomena.curriculum import aba_curriculum, run_curriculum

jax.config.update("jax_enable_x64", True)  # the code before the redesign enabled it on import; both alike

out = {}
rnn = of.LowRankRNN(rank=1, phi="erf", readout="before")
task = of.tasks.FlipFlop(batch_size=8, t_max=10.0)
theta = rnn.init(jax.random.key(0), N=300)
S0 = of.Overlaps.from_params(rnn, theta).matrix
out["closure"] = of.train_overlaps(rnn, task, S0, 0.05, 40, key=jax.random.key(1)).overlaps.values
out["euler"] = of.train_overlaps(rnn, task, S0, 0.05, 40, method="euler", key=jax.random.key(1)).overlaps.values
out["momentum"] = of.train_overlaps(
    rnn, task, S0, 0.02, 40, optimizer="momentum", key=jax.random.key(1)
).overlaps.values
out["flow"] = of.train_overlaps(rnn, task, S0, 0.05, 40, method="flow", key=jax.random.key(1)).overlaps.values
out["network32"] = of.train_network(rnn, task, theta, 0.05, 40, key=jax.random.key(1)).overlaps.values
out["adam32"] = of.train_network(rnn, task, theta, 1e-3, 40, optimizer="adam", key=jax.random.key(1)).overlaps.values
out["particles"] = of.train_particles(
    rnn, task, S0, 0.05, 20, rule="gauss-hermite", nodes=3, key=jax.random.key(1)
).overlaps.values
lin = of.LowRankRNN(rank=2)
lt = of.tasks.ExponentialFilter(c=0.2)
th = lin.init(jax.random.key(2), N=200, dtype=jnp.float64)
out["linear_net64"] = of.train_network(lin, lt, th, 5e-3, 100).overlaps.values
drop = of.Optimizer("sgd", lr_drop_below=0.5, lr_drop_factor=5.0)
Ss = np.stack([S0, np.asarray(of.Overlaps.from_params(rnn, rnn.init(jax.random.key(9), N=300)).matrix)])
out["batch_drop"] = of.train_overlaps_batch(
    rnn, task, Ss, 0.05, 40, optimizer=drop, key=jax.random.key(1)
).overlaps.values
r = run_curriculum(lin, aba_curriculum(scale=0.02), theta0=th, engines=("network", "overlaps"))
out["aba_net"] = r["network"].overlaps.values
out["aba_thy"] = r["overlaps"].overlaps.values
np.savez(sys.argv[1], **out)
