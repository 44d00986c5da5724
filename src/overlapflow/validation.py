r"""How far each theory is from finite networks: the finite-N study of a nonlinear network.

Three descriptions of the same learning run, all from the same initial overlaps S_0 and batches:

- finite networks at several N (rows drawn with Gram matrix exactly S_0, several seeds);
- the infinite-N limit computed by particles (:mod:`overlapflow.particles`);
- the Gaussian closure (``train_overlaps``, :mod:`overlapflow.meanfield`).

Measured quantities (``max`` over overlaps, per epoch or over the whole run):

    dev_network(N)   = max_t |S_N(t) - S_inf(t)|        (mean over seeds)  ~ C N^p,  p ~ -1/2
    dev_closure(t)   = max |S_closure(t) - S_inf(t)|                       (grows ~ t^2)
"""

from __future__ import annotations

import jax
import numpy as np
import xarray as xr

from .history import max_overlap_deviation
from .model import LowRankRNN
from .overlaps import sample_params
from .precision import float64
from .tasks import AbstractTask
from .training import train_network, train_overlaps, train_particles


def per_epoch_deviation(a: xr.Dataset, b: xr.Dataset) -> np.ndarray:
    """max over overlaps of |S_a - S_b| at every epoch, shape (epochs + 1,)."""
    return np.max(np.abs(a.overlaps.values - b.overlaps.values), axis=(1, 2))


def fit_power_law(x, y) -> tuple[float, float]:
    """Least-squares fit of log y = log C + p log x; returns (p, C)."""
    p, log_c = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(p), float(np.exp(log_c))


@float64
def validate_theory(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0,
    lr: float,
    epochs: int,
    sizes=(250, 1000, 4000, 16000),
    seeds: int = 3,
    rule: str = "gauss-hermite",
    nodes: int = 10,
    n_particles: int = 2**14,
    key: jax.Array | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Run networks at each N (``seeds`` each), the particle limit and the Gaussian closure.

    All runs share S_0 and the batches (``key``). Returns a Dataset with

    - ``network_deviation`` (N, seed): max_t |S_N - S_inf|, and its fitted exponent in
      ``attrs["exponent"]`` (with ``attrs["prefactor"]``);
    - ``closure_deviation`` (epoch): |S_closure - S_inf| per epoch; ``attrs["closure_max_deviation"]``;
    - ``network_epoch_deviation`` (N, epoch): per-epoch deviation, mean over seeds;
    - ``loss_particles``, ``loss_closure`` (epoch), ``loss_network`` (N, epoch; seed mean);
    - ``overlaps_particles``, ``overlaps_closure`` (epoch, row, col), ``overlaps_network`` (N, epoch, row, col; seed 0).
    """
    key = jax.random.key(0) if key is None else key
    S0 = np.asarray(getattr(S0, "matrix", S0), dtype=float)
    limit = train_particles(
        rnn, task, S0, lr, epochs, rule=rule, nodes=nodes, n=n_particles, key=key, progress=progress
    )
    closure = train_overlaps(rnn, task, S0, lr, epochs, key=key, progress=progress)
    dev = np.zeros((len(sizes), seeds))
    epoch_dev = np.zeros((len(sizes), epochs + 1))
    loss_net = np.zeros((len(sizes), epochs + 1))
    overlaps_net = []
    for i, N in enumerate(sizes):
        for s in range(seeds):
            theta = sample_params(rnn, S0, int(N), jax.random.fold_in(jax.random.fold_in(key, 1000 + i), s))
            history = train_network(rnn, task, theta, lr, epochs, key=key, progress=progress)
            dev[i, s] = max_overlap_deviation(history, limit)
            epoch_dev[i] += per_epoch_deviation(history, limit) / seeds
            loss_net[i] += history.loss.values / seeds
            if s == 0:
                overlaps_net.append(history.overlaps.values)
    closure_dev = per_epoch_deviation(closure, limit)
    exponent, prefactor = fit_power_law(sizes, dev.mean(axis=1)) if len(sizes) > 1 else (float("nan"), float("nan"))
    names = list(limit.row.values)
    return xr.Dataset(
        {
            "network_deviation": (("N", "seed"), dev),
            "network_epoch_deviation": (("N", "epoch"), epoch_dev),
            "closure_deviation": ("epoch", closure_dev),
            "loss_particles": ("epoch", limit.loss.values),
            "loss_closure": ("epoch", closure.loss.values),
            "loss_network": (("N", "epoch"), loss_net),
            "overlaps_particles": (("epoch", "row", "col"), limit.overlaps.values),
            "overlaps_closure": (("epoch", "row", "col"), closure.overlaps.values),
            "overlaps_network": (("N", "epoch", "row", "col"), np.stack(overlaps_net)),
            "visible": (("row", "col"), limit.visible.values),
        },
        coords={"N": list(sizes), "seed": np.arange(seeds), "epoch": np.arange(epochs + 1), "row": names, "col": names},
        attrs={
            "exponent": exponent,
            "prefactor": prefactor,
            "closure_max_deviation": float(closure_dev.max()),
            "particles": f"{rule}, {limit.attrs['n_particles']} particles",
            "lr": float(lr),
            "epochs": int(epochs),
            "task": task.describe(),
            **{f"rnn_{k}": (v if not isinstance(v, bool) else int(v)) for k, v in rnn.describe().items()},
        },
    )
