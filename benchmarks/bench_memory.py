"""The paper-scale A/B -> C protocol (figs 4d-f, 9, 10): cost per job and the projected wall time.

    python benchmarks/bench_memory.py [--quick] [--json out.json] [--plain] [--run OUT]

Measures, in one process (compare ratios; absolute times move with the machine's load):

1. Compiled milliseconds per epoch of each kind of job of
   :mod:`overlapflow.experiments.ab_to_c` at the paper's settings (rank-1 erf closure, batch 128,
   T = 400): member A on the flip-flop, member B on decision making, and both members of a pair on
   the teacher (one vmapped call, one batch for the two).
2. The wall time of the paper-scale run (10 pairs, 30000 + 30000 epochs) these costs project
   for 1 and 2 worker processes.

With ``--run OUT`` it then runs the paper-scale protocol in OUT with one worker per core (or
continues it there) and reports its wall time next to the projection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
from bench_core import _load, machine_info, show_tables

from overlapflow.experiments.ab_to_c import ABtoCSettings, run_ab_to_c_parallel, run_job
from overlapflow.precision import enable_globally


def job_costs(epochs: int, log) -> dict:
    """Compiled ms per epoch of the A, B and C jobs (a first run compiles, a second is timed)."""
    settings = ABtoCSettings(n_pairs=1, epochs=epochs, segment=epochs)
    costs = {}
    for repeat in range(2):
        with tempfile.TemporaryDirectory() as out:
            for phase in "ABC":
                log(f"job {phase}, {epochs} epochs ({'timed' if repeat else 'compiling'})")
                t0 = time.perf_counter()
                run_job(out, settings, 0, phase)
                costs[phase] = (time.perf_counter() - t0) / epochs * 1e3
    return costs


def projection(costs: dict, settings: ABtoCSettings) -> dict:
    """Single-core seconds of the whole run, and the wall for 1 and 2 workers (work / workers,
    plus the last C job alone on its core)."""
    E = settings.phase_epochs
    pair = sum(costs[phase] * E[phase] for phase in "ABC") / 1e3
    work = settings.n_pairs * pair
    return {
        "pair_s": pair,
        "work_s": work,
        "wall_1_worker_s": work,
        "wall_2_workers_s": work / 2 + costs["C"] * E["C"] / 1e3 / 2,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="time 200 epochs per job instead of 2000")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write all results as JSON to PATH")
    parser.add_argument("--plain", action="store_true", help="plain-text tables instead of rich")
    parser.add_argument("--run", metavar="OUT", default=None, help="then run the paper-scale protocol in OUT")
    args = parser.parse_args(argv)
    enable_globally()  # a benchmark is its own process: float64 throughout, as before

    log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    paper = ABtoCSettings()
    costs = job_costs(200 if args.quick else 2000, log)
    res = {"ms_per_epoch": costs, "projection": projection(costs, paper), "settings": paper.as_dict()}
    res["loadavg_after_timing"] = os.getloadavg()
    if args.run:
        log(f"running the paper-scale protocol in {args.run}")
        t0 = time.perf_counter()
        run_ab_to_c_parallel(paper, args.run, progress=True)
        res["run"] = {"out": args.run, "wall_s": time.perf_counter() - t0, "loadavg_after": os.getloadavg()}
    res["machine"] = machine_info() | {"loadavg_before": load_before}
    p = res["projection"]
    rows = [[f"job {phase}", f"{costs[phase]:.2f}"] for phase in "ABC"]
    tables = [
        ("ms per epoch (compiled)", ["job", "ms"], rows),
        (
            "paper-scale A/B -> C (10 pairs, 30000 + 30000 epochs), projected",
            ["", "minutes"],
            [
                ["one pair, one core", f"{p['pair_s'] / 60:.1f}"],
                ["1 worker", f"{p['wall_1_worker_s'] / 60:.1f}"],
                ["2 workers", f"{p['wall_2_workers_s'] / 60:.1f}"],
            ]
            + ([["2 workers, measured", f"{res['run']['wall_s'] / 60:.1f}"]] if args.run else []),
        ),
    ]
    show_tables(tables, args.plain)
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()})"
    print(
        f"JAX device {device}; load average (1, 5, 15 min) before {_load(load_before)}, "
        f"after timing {_load(res['loadavg_after_timing'])}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
