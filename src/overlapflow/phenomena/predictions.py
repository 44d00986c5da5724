r"""The paper's testable predictions, each as an experiment one can run in simulation first.

1. :func:`behaviourally_identical_networks_diverge`: two networks that do the same thing (same
   activity, same output: identical visible overlaps) but differ in invisible structure learn a
   new task differently. Prediction for an experiment: animals (or circuits) with identical
   behaviour can still differ in how fast or how they learn a new task.
2. :func:`history_in_connectivity_not_behaviour`: after A/B -> C, training history is decodable
   from invisible overlaps but not from behaviour (outputs on probe trials).
3. :func:`invisible_drift_under_noise`: at a solution, noisy training (target noise) leaves
   behaviour and visible overlaps in place while invisible structure drifts: representational
   drift without behavioural change.

Each function returns plain numbers (and the runs) so a study can be designed around them.
"""

from __future__ import annotations

import jax
import numpy as np
import xarray as xr

from ..engines import OverlapEngine
from ..meanfield import meanfield_forward
from ..model import LowRankRNN
from ..precision import float64
from ..tasks import AbstractTask, NoisyTargets
from ..training import train
from .memory import decode_history, decode_pairs
from .twin import learning_separation, twin_network


@float64
def behaviourally_identical_networks_diverge(
    rnn: LowRankRNN,
    theta,
    invisible: dict,
    new_task: AbstractTask,
    lr: float,
    epochs: int,
    key: jax.Array | None = None,
) -> dict:
    """Build a twin of ``theta`` with the given invisible overlaps, train both on ``new_task``.

    Returns output distance before (round-off for twins) and after learning, the largest loss gap
    along the way, and the :func:`learning_separation` Dataset (``"runs"``).
    """
    key = jax.random.key(0) if key is None else key
    twin = twin_network(rnn, theta, invisible, jax.random.fold_in(key, 1), keep="A")
    runs = learning_separation(rnn, new_task, theta, twin, lr, epochs, key=key)
    return {
        "output_distance_before": float(runs.attrs["output_distance_initial"]),
        "output_distance_after": float(runs.attrs["output_distance_final"]),
        "max_loss_gap": float(np.max(np.abs(runs.loss_a.values - runs.loss_b.values))),
        "runs": runs,
    }


@float64
def behaviour_features(result: xr.Dataset, stage: str, probe_inputs, rnn: LowRankRNN | None = None) -> np.ndarray:
    """Behaviour of every network of a :func:`~overlapflow.phenomena.memory.run_ab_to_c` result:
    its outputs (reduced network) on fixed probe inputs (B, T, n_in), flattened: (pair, member, B T n_out)."""
    rnn = rnn or LowRankRNN(rank=1, phi="erf")
    S = result.overlaps.sel(stage=stage).values  # (pair, member, P, P)
    forward = jax.vmap(jax.vmap(lambda s: meanfield_forward(rnn, s, probe_inputs).ravel()))
    return np.asarray(forward(S))


@float64
def history_in_connectivity_not_behaviour(result: xr.Dataset, probe_inputs, resamples: int = 50, seed: int = 0) -> dict:
    """After A/B -> C: decoding accuracy of the history from invisible overlaps, visible overlaps,
    and behaviour (logistic regression on the outputs for ``probe_inputs``; the paper's 8/2 split)."""
    n_pairs = result.sizes["pair"]
    n_train = max(1, int(round(0.8 * n_pairs)))
    behaviour = decode_pairs(behaviour_features(result, "after_C", probe_inputs), n_train, resamples, seed=seed)[0]
    return {
        "invisible": decode_history(
            result, "after_C", "invisible", n_train_pairs=n_train, resamples=resamples, seed=seed
        )[0],
        "visible": decode_history(result, "after_C", "visible", n_train_pairs=n_train, resamples=resamples, seed=seed)[
            0
        ],
        "behaviour": behaviour,
    }


@float64
def invisible_drift_under_noise(
    rnn: LowRankRNN,
    task: AbstractTask,
    S_solution,
    noise_std: float,
    lr: float,
    epochs: int,
    key: jax.Array | None = None,
) -> dict:
    """Keep training a solved network with target noise of std ``noise_std``.

    Returns the largest drift of visible and of invisible overlaps from the solution, the same
    run without noise for reference, and the Histories.
    """
    noisy = train(OverlapEngine(), rnn, NoisyTargets(task, noise_std), S_solution, lr, epochs, key=key).history
    clean = train(OverlapEngine(), rnn, task, S_solution, lr, epochs, key=key).history
    drift = np.abs(noisy.overlaps.values - noisy.overlaps.values[0])
    visible = noisy.visible.values
    return {
        "visible_drift": float(drift[:, visible].max()),
        "invisible_drift": float(drift[:, ~visible].max()),
        "clean_drift": float(np.abs(clean.overlaps.values - clean.overlaps.values[0]).max()),
        "noisy": noisy,
        "clean": clean,
    }
