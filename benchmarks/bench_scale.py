"""Scale-out benchmark of overlapflow: throughput of each engine, cost vs N, vmap batches, sweeps.

    python benchmarks/bench_scale.py [--quick] [--json out.json] [--plain]

Measures, in one process (compare the ratios; absolute times move with the machine's load):

1. Overlap-theory epochs per second (compiled run) for a linear rank-1 network (filter task), an
   erf rank-1 network (the paper's flip-flop: dt 0.025, batch 10, T = 800) and a linear rank-2
   network (damped oscillator).
2. Full-network epochs per second vs N = 500 ... 16000 (filter task, float32) and the log-log
   fitted exponent of the per-epoch cost in N.
3. vmap throughput: K runs in one compiled call (``train_batch`` with an ``OverlapEngine`` or a ``NetworkEngine``)
   against a Python loop of K compiled single runs; runs per second and the speed-up.
4. Sweep overhead per point: a sweep of tiny points on a local Dask cluster against running the
   same points one after the other in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_core import _load, _timed, machine_info, show_tables, time_first_and_compiled

import overlapflow as of

LR = 5e-3


def overlap_throughput(quick: bool, log) -> dict:
    """Compiled epochs per second of the overlap engine (exact step) for three architectures."""
    flipflop = of.tasks.FlipFlop(batch_size=10)
    cases = {
        "linear rank 1 (filter)": (of.LowRankRNN(rank=1), of.tasks.ExponentialFilter(c=0.2), 2000, 5e-3),
        "erf rank 1 (flip-flop)": (of.LowRankRNN(rank=1, phi="erf", dt=0.025), flipflop, 20 if quick else 100, 5e-2),
        "linear rank 2 (oscillator)": (of.LowRankRNN(rank=2), of.tasks.DampedOscillator(c=0.3, omega=2.0), 2000, 5e-3),
    }
    out = {}
    for name, (rnn, task, epochs, lr) in cases.items():
        log(f"overlaps: {name}, {epochs} epochs")
        S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(0), 500, dtype=jnp.float64))
        run = lambda rnn=rnn, task=task, S0=S0, lr=lr, epochs=epochs: (
            of.train(of.OverlapEngine(), rnn, task, S0, lr, epochs).history
        )
        r = time_first_and_compiled(run, 2 if quick else 3)
        out[name] = r | {"epochs": epochs, "epochs_per_s": epochs / r["compiled_s"]}
    return out


def network_scaling(quick: bool, log) -> dict:
    """Compiled epochs per second of the network engine (float32, filter task) vs N, and the fitted exponent."""
    rnn, task = of.LowRankRNN(rank=1), of.tasks.ExponentialFilter(c=0.2)
    Ns = (500, 1000, 2000, 4000) if quick else (500, 1000, 2000, 4000, 8000, 16000)
    epochs = 100 if quick else 400
    out = {}
    for N in Ns:
        log(f"network: N={N}, {epochs} epochs")
        theta = rnn.init(jax.random.key(0), N)
        r = time_first_and_compiled(
            lambda th=theta: of.train(of.NetworkEngine(), rnn, task, th, LR, epochs).history, 1 if quick else 2
        )
        out[str(N)] = r | {
            "epochs": epochs,
            "epochs_per_s": epochs / r["compiled_s"],
            "per_epoch_s": r["compiled_s"] / epochs,
        }
    slope = np.polyfit(np.log([float(N) for N in Ns]), np.log([out[str(N)]["per_epoch_s"] for N in Ns]), 1)[0]
    return {"by_N": out, "exponent": float(slope)}


def _loop_vs_batch(single, batch, K: int, repeats: int) -> dict:
    """Compiled time of K single runs in a Python loop and of one batched call, and the speed-up."""
    loop = time_first_and_compiled(lambda: [single(k) for k in range(K)], repeats)
    batched = time_first_and_compiled(batch, repeats)
    return {
        "K": K,
        "loop_s": loop["compiled_s"],
        "batch_s": batched["compiled_s"],
        "loop_runs_per_s": K / loop["compiled_s"],
        "batch_runs_per_s": K / batched["compiled_s"],
        "speedup": loop["compiled_s"] / batched["compiled_s"],
        "batch_first_s": batched["first_s"],
    }


def vmap_throughput(quick: bool, log) -> dict:
    """K runs as one vmapped call vs a loop: overlap runs (linear, erf) and networks (N = 500)."""
    K = 8 if quick else 16
    repeats = 1 if quick else 2
    out = {}

    rnn, task = of.LowRankRNN(rank=1), of.tasks.ExponentialFilter(c=0.2)
    S0s = np.stack(
        [
            np.asarray(of.Overlaps.from_params(rnn, rnn.init(jax.random.key(k), 500, dtype=jnp.float64)).matrix)
            for k in range(K)
        ]
    )
    log(f"vmap: {K} linear overlap runs")
    out["overlaps linear rank 1, 2000 epochs"] = _loop_vs_batch(
        lambda k: of.train(of.OverlapEngine(), rnn, task, S0s[k], LR, 2000).history,
        lambda: of.train_batch(of.OverlapEngine(), rnn, task, S0s, LR, 2000).history,
        K,
        repeats,
    )

    erf = of.LowRankRNN(rank=1, phi="erf", dt=0.025)
    flipflop = of.tasks.FlipFlop(batch_size=10)
    e = 10 if quick else 40
    log(f"vmap: {K} erf flip-flop overlap runs")
    out[f"overlaps erf rank 1 flip-flop, {e} epochs"] = _loop_vs_batch(
        lambda k: of.train(of.OverlapEngine(), erf, flipflop, S0s[k], 5e-2, e).history,
        lambda: of.train_batch(of.OverlapEngine(), erf, flipflop, S0s, 5e-2, e).history,
        K,
        repeats,
    )

    thetas = jnp.stack([rnn.init(jax.random.key(k), 500) for k in range(K)])
    e = 200 if quick else 1000
    log(f"vmap: {K} networks N=500")
    out[f"networks N=500 filter, {e} epochs"] = _loop_vs_batch(
        lambda k: of.train(of.NetworkEngine(), rnn, task, thetas[k], LR, e).history,
        lambda: of.train_batch(of.NetworkEngine(), rnn, task, thetas, LR, e).history,
        K,
        repeats,
    )
    return out


BENCH_CONFIG = """
name = "bench"
N = 200
dtype = "float64"
seed = 0
[network]
rank = 1
[[phases]]
epochs = 200
lr = 5e-3
[phases.task]
kind = "exponential_filter"
c = 0.2
[engines]
network = true
overlaps = "exact"
"""


def sweep_overhead(quick: bool, log) -> dict:
    """Seconds per point a Dask sweep adds over running its points one after the other here.

    Both sides are warm: one point runs first in this process, and a first sweep warms the two
    workers of the cluster the timed sweep then uses (JAX import and compilation are not counted).
    """
    from dask.distributed import Client, LocalCluster

    from overlapflow.experiments import load_config_text, run_experiment, run_sweep

    points = 4 if quick else 8
    config = lambda seed: BENCH_CONFIG.replace("seed = 0", f"seed = {seed}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_experiment(load_config_text(config(100)), tmp / "warm")
        log(f"sweep: {points} points in-process")
        t0 = time.perf_counter()
        for seed in range(points):
            run_experiment(load_config_text(config(seed)), tmp / f"direct{seed}")
        direct = time.perf_counter() - t0
        (tmp / "base.toml").write_text(BENCH_CONFIG)

        def sweep_file(name: str, seeds: list[int]) -> Path:
            path = tmp / f"{name}.toml"
            path.write_text(f'base = "base.toml"\noutput = "{tmp / name}"\n[grid]\nseed = {seeds}\n')
            return path

        with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
            run_sweep(sweep_file("warm", [100, 101]), scheduler=client)
            log(f"sweep: {points} points on a warm local Dask cluster (2 workers)")
            wall, _, _ = _timed(lambda: run_sweep(sweep_file("timed", list(range(points))), scheduler=client))
    return {
        "points": points,
        "direct_s": direct,
        "sweep_s": wall,
        "direct_per_point_s": direct / points,
        "sweep_per_point_s": wall / points,
        "overhead_per_point_s": (wall - direct / 2) / points,
        "note": "overhead = (sweep wall - in-process time / 2 workers) / points, both warm",
    }


# ---------------------------------------------------------------------------- output
def _s(x: float) -> str:
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def tables(res: dict) -> list:
    out = []
    rows = [
        [name, str(r["epochs"]), _s(r["compiled_s"]), f"{r['epochs_per_s']:.4g}", _s(r["first_s"])]
        for name, r in res["overlaps"].items()
    ]
    out.append(("Overlap theory (exact), compiled", ["network", "epochs", "compiled", "epochs/s", "first call"], rows))
    net = res["network"]
    rows = [
        [N, str(r["epochs"]), _s(r["compiled_s"]), f"{r['epochs_per_s']:.4g}", _s(r["per_epoch_s"])]
        for N, r in net["by_N"].items()
    ]
    rows.append(["fitted exponent of cost per epoch in N", "", "", "", f"{net['exponent']:.2f}"])
    out.append(("Full network, filter task, float32", ["N", "epochs", "compiled", "epochs/s", "per epoch"], rows))
    rows = [
        [name, str(r["K"]), _s(r["loop_s"]), _s(r["batch_s"]), f"{r['batch_runs_per_s']:.3g}", f"{r['speedup']:.2f}x"]
        for name, r in res["vmap"].items()
    ]
    out.append(
        (
            "vmap: K runs in one call vs a loop of compiled single runs",
            ["runs", "K", "loop", "batch", "runs/s", "speed-up"],
            rows,
        )
    )
    if "sweep" in res:
        r = res["sweep"]
        rows = [
            [
                str(r["points"]),
                _s(r["direct_s"]),
                _s(r["sweep_s"]),
                _s(r["direct_per_point_s"]),
                _s(r["overhead_per_point_s"]),
            ]
        ]
        out.append(
            (
                "Dask sweep (2 local workers) vs the same points in-process",
                ["points", "in-process", "sweep", "per point", "overhead/point"],
                rows,
            )
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of a minute or two")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write all results as JSON to PATH")
    parser.add_argument("--plain", action="store_true", help="plain-text tables instead of rich")
    parser.add_argument("--no-sweep", action="store_true", help="skip the Dask sweep overhead")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    jnp.zeros(1).block_until_ready()
    res = {
        "overlaps": overlap_throughput(args.quick, log),
        "network": network_scaling(args.quick, log),
        "vmap": vmap_throughput(args.quick, log),
    }
    if not args.no_sweep:
        res["sweep"] = sweep_overhead(args.quick, log)
    res["machine"] = machine_info() | {"loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    res["total_s"] = time.perf_counter() - t0
    show_tables(tables(res), args.plain)
    load = f"load average before {_load(load_before)}, after {_load(os.getloadavg())}"
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()})"
    print(f"total {res['total_s']:.1f} s on {os.cpu_count()} CPUs, JAX device {device}; {load}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
