"""The exact infinite-N limit against the Gaussian closure: cost per epoch, and the limit's accuracy.

    python benchmarks/bench_limit.py [--quick] [--json out.json] [--plain]

For the paper's nonlinear settings (erf, readout before the step), rank 1 and rank 2:

- flip-flop (fig 8: batch 10, T = 800, lr 0.05), from a random network's overlaps;
- the three tasks of A/B -> C (figs 9-10: batch 128, T = 400; A flip-flop and B decision making at
  lr 0.01, C the teacher at lr 0.001), from pair 0's random overlaps;

it measures, in one process (compare ratios; absolute times move with the machine's load):

1. compiled milliseconds per epoch of the closure (``OverlapEngine("exact")``) and of the particle
   limit (``ParticleEngine(rule="split")`` with the nodes of ``RULES``, run as its mirrored half),
   and their ratio;
2. the limit's accuracy: the largest distance over a run (200 epochs for the flip-flop, 50 per
   A/B -> C task at rank 1 and 5 at rank 2; ``--quick``: 40, 10 and 2) of its overlaps and loss from
   a finer rule (``FINER``).

The rules: the flip-flop starts from a random network's overlaps (norms about 1), where 4 x 2
nodes reach 1e-6; A/B -> C from the paper's random overlaps (squared norms up to 2, cross overlaps
|N(0, 0.4^2)|), where erf saturates on much of the Gaussian's mass and Gauss-Hermite converges
slowly (about 5x per two more nodes; docs/closure_vs_limit.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np
from bench_core import _load, machine_info, show_tables

import overlapflow as of
from overlapflow.engines import ParticleEngine
from overlapflow.experiments.ab_to_c import ABtoCSettings
from overlapflow.phenomena.memory import random_initial_overlaps
from overlapflow.precision import enable_globally
from overlapflow.training import overlap_engine

#: The split rule per (experiment, rank): Gauss-Hermite nodes per direction inside phi, and outside it.
RULES = {("flip-flop", 1): (4, 2), ("flip-flop", 2): (4, 2), ("A/B->C", 1): (8, 3), ("A/B->C", 2): (6, 2)}
#: The finer rule each is checked against.
FINER = {("flip-flop", 1): (6, 3), ("flip-flop", 2): (6, 3), ("A/B->C", 1): (10, 4), ("A/B->C", 2): (8, 3)}


def cases(quick: bool):
    """(name, (experiment, rank), rnn, task, S0, lr, accuracy epochs) of every case."""
    from overlapflow.tasks import FlipFlop

    out = []
    for rank in (1, 2):
        rnn = of.LowRankRNN(rank=rank, phi="erf", dt=0.025, readout="before")
        S0 = np.asarray(of.Overlaps.from_params(rnn, rnn.init(jax.random.key(0), N=600)).matrix)
        out.append(
            (
                f"flip-flop, rank {rank}",
                ("flip-flop", rank),
                rnn,
                FlipFlop(batch_size=10, t_max=20.0),
                S0,
                5e-2,
                40 if quick else 200,
            )
        )
        settings = ABtoCSettings()
        rnn = of.LowRankRNN(rank=rank, phi="erf", readout=settings.readout)
        S0 = random_initial_overlaps(rnn, jax.random.fold_in(jax.random.key(settings.seed), 0))
        phases = settings.phases()
        for name in "ABC":
            phase = phases[name]
            epochs = (10 if quick else 50) if rank == 1 else (2 if quick else 5)
            out.append(
                (f"A/B->C task {name}, rank {rank}", ("A/B->C", rank), rnn, phase.training_task, S0, phase.lr, epochs)
            )
    return out


def ms_per_epoch(engine, rnn, task, S0, lr, epochs: int) -> float:
    """Compiled milliseconds per epoch (a first call compiles the chunk, a second is timed)."""
    of.train(engine, rnn, task, S0, lr, epochs, chunk=epochs)
    t0 = time.perf_counter()
    jax.block_until_ready(of.train(engine, rnn, task, S0, lr, epochs, chunk=epochs).state)
    return (time.perf_counter() - t0) / epochs * 1e3


def measure(name, family, rnn, task, S0, lr, accuracy_epochs, timing_epochs, log) -> dict:
    (nodes, right), (finer_nodes, finer_right) = RULES[family], FINER[family]
    limit = ParticleEngine(of.Optimizer("sgd"), rule="split", nodes=nodes, right_nodes=right)
    finer = ParticleEngine(of.Optimizer("sgd"), rule="split", nodes=finer_nodes, right_nodes=finer_right)
    log(f"{name}: timing")
    closure_ms = ms_per_epoch(overlap_engine("exact"), rnn, task, S0, lr, timing_epochs)
    limit_ms = ms_per_epoch(limit, rnn, task, S0, lr, timing_epochs)
    log(f"{name}: accuracy over {accuracy_epochs} epochs")
    run = of.train(limit, rnn, task, S0, lr, accuracy_epochs)
    a = run.history
    b = of.train(finer, rnn, task, S0, lr, accuracy_epochs).history
    return {
        "closure_ms": closure_ms,
        "limit_ms": limit_ms,
        "ratio": limit_ms / closure_ms,
        "rule": f"split {nodes} x {right}",
        "particles": int(a.attrs["n_particles"]),
        "particles_run": int(run.state.engine.theta.shape[0]),  # the mirrored half
        "finer_particles": int(b.attrs["n_particles"]),
        "accuracy_epochs": accuracy_epochs,
        "max_overlap_error": float(np.abs(a.overlaps.values - b.overlaps.values).max()),
        "max_loss_error": float(np.abs(a.loss.values - b.loss.values).max()),
        "overlaps_moved": float(np.abs(a.overlaps.values[-1] - a.overlaps.values[0]).max()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (CI)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write all results as JSON to PATH")
    parser.add_argument("--plain", action="store_true", help="plain-text tables instead of rich")
    parser.add_argument("--only", default=None, help="only the cases whose name contains this (e.g. flip-flop)")
    args = parser.parse_args(argv)
    enable_globally()  # a benchmark is its own process: float64 throughout
    log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = {}
    for name, family, rnn, task, S0, lr, accuracy_epochs in cases(args.quick):
        if args.only and args.only not in name:
            continue
        results[name] = measure(name, family, rnn, task, S0, lr, accuracy_epochs, 5 if args.quick else 20, log)
    res = {
        "cases": results,
        "rules": {f"{e}, rank {r}": f"split {n} x {m}" for (e, r), (n, m) in RULES.items()},
        "wall_s": time.perf_counter() - started,
        "machine": machine_info() | {"loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "version": of.__version__,
        "command": "python benchmarks/bench_limit.py"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else ""),
    }
    rows = [
        [
            name,
            r["rule"],
            f"{r['particles']} ({r['particles_run']} run)",
            f"{r['closure_ms']:.2f}",
            f"{r['limit_ms']:.2f}",
            f"{r['ratio']:.1f}x",
            f"{r['max_overlap_error']:.1e}",
            f"{r['max_loss_error']:.1e}",
            f"{r['overlaps_moved']:.2f}",
        ]
        for name, r in results.items()
    ]
    header = [
        "case",
        "rule",
        "particles",
        "closure ms",
        "limit ms",
        "limit / closure",
        "|dS| vs finer",
        "|dL|",
        "S moved",
    ]
    show_tables([("the limit against the closure, per epoch (compiled)", header, rows)], args.plain)
    print(
        f"load average (1, 5, 15 min) before {_load(load_before)}, after {_load(res['machine']['loadavg_after'])}; "
        f"{res['wall_s']:.0f} s"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
