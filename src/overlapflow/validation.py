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

import concurrent.futures

import jax
import numpy as np
import xarray as xr

from .engines import NetworkEngine, ParticleEngine
from .model import LowRankRNN
from .optimizers import Optimizer
from .overlaps import sample_params
from .precision import float64
from .progress import progress_bar
from .tasks import AbstractTask
from .training import train, train_overlaps
from .worker_pool import worker_pool


def per_epoch_deviation(a: xr.Dataset, b: xr.Dataset) -> np.ndarray:
    """max over overlaps of |S_a - S_b| at every epoch, shape (epochs + 1,)."""
    return np.max(np.abs(a.overlaps.values - b.overlaps.values), axis=(1, 2))


def fit_power_law(x, y) -> tuple[float, float]:
    """Least-squares fit of log y = log C + p log x; returns (p, C)."""
    p, log_c = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(p), float(np.exp(log_c))


def _network_run(rnn, task, S0, N: int, size_index: int, seed: int, lr: float, epochs: int, key_data, dtype) -> tuple:
    """One finite network of the study: (loss (epochs + 1,), overlaps (epochs + 1, P, P)); its rows
    have Gram matrix exactly S0 and come from ``fold_in(fold_in(key, 1000 + size_index), seed)``.
    (Keys travel as their data: a worker process gets them pickled.)"""
    key = jax.random.wrap_key_data(key_data)
    key_N = jax.random.fold_in(jax.random.fold_in(key, 1000 + size_index), seed)
    theta = sample_params(rnn, S0, int(N), key_N).astype(dtype)
    history = train(NetworkEngine(), rnn, task, theta, lr, epochs, key=key).history
    return history.loss.values, history.overlaps.values


def _limit_run(rnn, task, S0, lr: float, epochs: int, engine: ParticleEngine, key_data) -> xr.Dataset:
    return train(engine, rnn, task, S0, lr, epochs, key=jax.random.wrap_key_data(key_data)).history


@float64
def validate_theory(
    rnn: LowRankRNN,
    task: AbstractTask,
    S0,
    lr: float,
    epochs: int,
    sizes=(250, 1000, 4000, 16000),
    seeds: int = 3,
    rule: str = "split",
    nodes: int = 6,
    n_particles: int = 2**14,
    key: jax.Array | None = None,
    progress: bool = False,
    right_nodes: int = 3,
    workers: int = 1,
    network_dtype: str = "float64",
) -> xr.Dataset:
    """Run networks at each N (``seeds`` each), the particle limit and the Gaussian closure.

    All runs share S_0 and the batches (``key``). The networks and the limit are independent runs:
    with ``workers`` > 1 they go to that many single-threaded worker processes
    (:mod:`~overlapflow.worker_pool`), largest first, with the numbers of one process to round-off.

    Args:
        rule, nodes, right_nodes, n_particles: the particle rule of the limit
            (:class:`~overlapflow.engines.ParticleEngine`; default: split, 6 x 3 nodes).
        workers: processes for the networks and the limit (1: all in this process).
        network_dtype: ``"float64"`` or ``"float32"`` for the networks (the limit and the closure are
            always float64). float32 is 1.6x faster at N = 16000; its round-off in S (about 1e-6 after
            200 epochs, tests/test_validate_cli.py) is far below the networks' distance from the limit
            (1e-3 and more at N <= 16000).

    Returns a Dataset with

    - ``network_deviation`` (N, seed): max_t |S_N - S_inf|, and its fitted exponent in
      ``attrs["exponent"]`` (with ``attrs["prefactor"]``);
    - ``closure_deviation`` (epoch): |S_closure - S_inf| per epoch; ``attrs["closure_max_deviation"]``;
    - ``network_epoch_deviation`` (N, epoch): per-epoch deviation, mean over seeds;
    - ``loss_particles``, ``loss_closure`` (epoch), ``loss_network`` (N, epoch; seed mean);
    - ``overlaps_particles``, ``overlaps_closure`` (epoch, row, col), ``overlaps_network`` (N, epoch, row, col; seed 0).
    """
    key = jax.random.key(0) if key is None else key
    S0 = np.asarray(getattr(S0, "matrix", S0), dtype=float)
    engine = ParticleEngine(Optimizer("sgd"), rule, nodes, n_particles, right_nodes=right_nodes)
    jobs = [(N, i, s) for i, N in sorted(enumerate(sizes), key=lambda item: -item[1]) for s in range(seeds)]
    if network_dtype not in ("float32", "float64"):
        raise ValueError(f"network_dtype = {network_dtype!r}: must be 'float32' or 'float64'")
    runs, limit = _run_all(rnn, task, S0, lr, epochs, engine, key, jobs, workers, progress, network_dtype)
    closure = train_overlaps(rnn, task, S0, lr, epochs, key=key)
    dev = np.zeros((len(sizes), seeds))
    epoch_dev = np.zeros((len(sizes), epochs + 1))
    loss_net = np.zeros((len(sizes), epochs + 1))
    overlaps_net = [None] * len(sizes)
    S_inf = limit.overlaps.values
    for (_, i, s), (loss, overlaps) in zip(jobs, runs, strict=True):
        deviation = np.max(np.abs(overlaps - S_inf), axis=(1, 2))
        dev[i, s] = deviation.max()
        epoch_dev[i] += deviation / seeds
        loss_net[i] += loss / seeds
        if s == 0:
            overlaps_net[i] = overlaps
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
            "workers": int(workers),
            "network_dtype": network_dtype,
            "lr": float(lr),
            "epochs": int(epochs),
            "task": task.describe(),
            **{f"rnn_{k}": (v if not isinstance(v, bool) else int(v)) for k, v in rnn.describe().items()},
        },
    )


def _run_all(rnn, task, S0, lr, epochs, engine, key, jobs, workers: int, progress: bool, dtype: str):
    """The networks of ``jobs`` ((N, size index, seed), largest first) and the limit: in this process,
    or in ``workers`` worker processes. Returns ([(loss, overlaps)] in the order of ``jobs``, limit).
    The progress counts rows (N for a network) times epochs."""
    key_data = jax.random.key_data(key)
    particles = 1000  # about the limit's cost in rows
    with progress_bar(
        progress, "validate-theory: networks and the limit", sum(N for N, _, _ in jobs) + particles
    ) as update:
        if workers <= 1:
            limit = _limit_run(rnn, task, S0, lr, epochs, engine, key_data)
            update(particles, float(limit.loss.values[-1]))
            runs = []
            for job in jobs:
                runs.append(_network_run(rnn, task, S0, *job, lr, epochs, key_data, dtype))
                update(job[0], float(runs[-1][0][-1]))
            return runs, limit
        with worker_pool(workers) as pool:
            futures = {pool.submit(_network_run, rnn, task, S0, *job, lr, epochs, key_data, dtype): job for job in jobs}
            limit_future = pool.submit(_limit_run, rnn, task, S0, lr, epochs, engine, key_data)
            for future in concurrent.futures.as_completed([*futures, limit_future]):
                if future is limit_future:
                    update(particles, float(future.result().loss.values[-1]))
                else:
                    update(futures[future][0], float(future.result()[0][-1]))
            return [f.result() for f in futures], limit_future.result()
