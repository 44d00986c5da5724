"""Core speed benchmark of overlapflow: overlap-space training vs the full network.

    python benchmarks/bench_core.py [--quick] [--json out.json] [--no-flow]

Measures, in one process (ratios matter more than absolute times on a noisy machine):

1. The overlap-space run of the demo (rank-1 linear network, ExponentialFilter(c=0.2), lr 5e-3,
   2000 epochs) for methods "exact", "euler" and "flow": the first call (trace + compile + run)
   and the compiled run (median of further identical calls, which reuse the jitted chunk).
   The compiled exact run is also repeated from S0 of networks of different N (N-independence).
2. The full network (``NetworkEngine``, float32 from ``rnn.init``) at N = 500, 2000, 8000: first
   call, compiled run, cost per epoch, and the log-log least-squares exponent of per-epoch cost vs N.
3. Ratios (network N=500 / overlap run; per-epoch cost at the largest / smallest N).
4. Speed-ups against the reference code of the paper and whether the project's targets are met.

Every timing also records the seconds JAX spent tracing/lowering/compiling inside that call
(``jax.monitoring`` events), so a "compiled" run that silently recompiles shows up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager

import jax
import jax.numpy as jnp
import numpy as np

import overlapflow as of
from overlapflow.precision import enable_globally

# ---------------------------------------------------------------------------- reference numbers
# From the issue: the paper's own code (github.com/yoavger/learning_reveals_invisible_structure_lr_rnns)
# on the project's 2-core machine, and the project's targets.
REFERENCE = {
    "paper_overlap_run_s": 151.0,  # 10-D overlap theory, 2000 epochs
    "paper_network_N500_s": 328.0,  # full network N=500, 2000 epochs
    "paper_network_N4000_s_per_epoch": 17.0,
    "target_overlap_compiled_s": 0.15,
    "target_network_N500_s": 6.0,
    "target_network_exponent_max": 1.2,  # "cost ~ linear in N" (sub-linear counts as met)
    "target_overlap_N_spread_max": 1.5,  # max/min compiled overlap time over S0 from different N
}

LR = 5e-3
COMPILE_EVENTS = (
    "/jax/core/compile/backend_compile_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/jaxpr_trace_duration",
)


# ---------------------------------------------------------------------------- timing helpers
class _CompileMeter:
    """Sums JAX's trace/lower/compile durations reported while a block runs."""

    def __init__(self):
        self.seconds = 0.0
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, name, duration, **kwargs):
        if self.active and name in COMPILE_EVENTS:
            self.seconds += duration

    @contextmanager
    def measure(self):
        self.seconds, self.active = 0.0, True
        try:
            yield self
        finally:
            self.active = False


METER = _CompileMeter()


def _timed(fn):
    """(wall seconds, compile seconds inside, process CPU seconds) of one call of fn()."""
    with METER.measure() as meter:
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, meter.seconds, cpu


def time_first_and_compiled(fn, repeats: int) -> dict:
    """First call, then ``repeats`` further calls; returns first/median/min times and compile seconds."""
    first, first_compile, first_cpu = _timed(fn)
    runs = [_timed(fn) for _ in range(repeats)]
    out = {"first_s": first, "first_compile_s": first_compile, "first_cpu_s": first_cpu, "repeats": repeats}
    if runs:
        walls = [w for w, _, _ in runs]
        out.update(
            compiled_s=statistics.median(walls),
            compiled_min_s=min(walls),
            compiled_all_s=walls,
            compiled_compile_s=statistics.median(c for _, c, _ in runs),
            compiled_cpu_s=statistics.median(c for _, _, c in runs),
        )
    return out


# ---------------------------------------------------------------------------- the benchmark
def run(quick: bool, flow: bool, log) -> dict:
    rnn = of.LowRankRNN(rank=1)
    task = of.tasks.ExponentialFilter(c=0.2)
    epochs = 2000  # the overlap run is cheap once compiled; compile time does not depend on epochs
    overlap_repeats = 3 if quick else 5
    flow_repeats = 1 if quick else 3
    Ns = (500, 1000, 2000) if quick else (500, 2000, 8000)
    net_epochs = {N: (100 if quick else 2000) for N in Ns}
    net_repeats = {N: (1 if quick else (3 if N <= 2000 else 1)) for N in Ns}
    N_ref = 500

    jnp.zeros(1).block_until_ready()  # backend start-up outside every measurement
    results: dict = {"overlaps": {}, "overlaps_vs_N": {}, "network": {}}

    # 1. overlap space -------------------------------------------------------------------
    S0 = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(0), N_ref))
    methods = ("exact", "euler") + (("flow",) if flow else ())
    for method in methods:
        log(f"overlaps: method={method}, {epochs} epochs")
        reps = flow_repeats if method == "flow" else overlap_repeats
        fn = lambda m=method: of.train(of.engines.overlap_engine(m), rnn, task, S0, LR, epochs).history
        results["overlaps"][method] = time_first_and_compiled(fn, reps) | {"epochs": epochs}

    for N in Ns:  # same compiled function (shapes do not depend on N): only S0's values change
        S0_N = of.Overlaps.from_params(rnn, rnn.init(jax.random.key(1), N))
        fn = lambda S=S0_N: of.train(of.OverlapEngine(), rnn, task, S, LR, epochs).history
        runs = [_timed(fn) for _ in range(overlap_repeats)]
        results["overlaps_vs_N"][str(N)] = {  # min: the least noisy estimate of a ~50 ms call
            "compiled_s": min(w for w, _, _ in runs),
            "compiled_compile_s": statistics.median(c for _, c, _ in runs),
        }

    # 2. full network -------------------------------------------------------------------
    for N in Ns:
        log(f"network: N={N}, {net_epochs[N]} epochs")
        theta = rnn.init(jax.random.key(0), N)
        fn = lambda th=theta, e=net_epochs[N]: of.train(of.NetworkEngine(), rnn, task, th, LR, e).history
        r = time_first_and_compiled(fn, net_repeats[N])
        r.update(
            epochs=net_epochs[N],
            per_epoch_s=r["compiled_s"] / net_epochs[N],
            per_epoch_cpu_s=r["compiled_cpu_s"] / net_epochs[N],
            dtype=str(theta.dtype),
        )
        results["network"][str(N)] = r

    # 3. fit and ratios -------------------------------------------------------------------
    logN = np.log([float(N) for N in Ns])
    logc = np.log([results["network"][str(N)]["per_epoch_s"] for N in Ns])
    slope, intercept = np.polyfit(logN, logc, 1)
    slope_cpu = np.polyfit(logN, np.log([results["network"][str(N)]["per_epoch_cpu_s"] for N in Ns]), 1)[0]
    per_epoch_at = lambda N: float(math.exp(intercept + slope * math.log(N)))
    exact = results["overlaps"]["exact"]
    net_ref = results["network"][str(N_ref)]
    net_ref_2000 = net_ref["compiled_s"] * 2000 / net_ref["epochs"]  # as if 2000 epochs (quick mode)
    net_ref_first_2000 = net_ref["first_s"] + net_ref_2000 - net_ref["compiled_s"]  # compile + 2000 epochs
    vsN = [v["compiled_s"] for v in results["overlaps_vs_N"].values()]
    results["fit"] = {
        "per_epoch_exponent": float(slope),
        "per_epoch_exponent_cpu_time": float(slope_cpu),
        "per_epoch_s_at_4000_fitted": per_epoch_at(4000),
    }
    results["ratios"] = {
        f"network_N{N_ref}_over_overlap_exact_compiled": net_ref["compiled_s"] / exact["compiled_s"],
        f"network_N{N_ref}_over_overlap_exact_first": net_ref["first_s"] / exact["first_s"],
        f"per_epoch_N{Ns[-1]}_over_N{Ns[0]}": results["network"][str(Ns[-1])]["per_epoch_s"]
        / results["network"][str(Ns[0])]["per_epoch_s"],
        f"N_ratio_{Ns[-1]}_over_{Ns[0]}": Ns[-1] / Ns[0],
        "overlap_exact_max_over_min_vs_N": max(vsN) / min(vsN),
    }

    # 4. reference numbers and targets --------------------------------------------------------
    ref = REFERENCE
    exact_2000 = exact["compiled_s"] * 2000 / epochs
    exact_first = exact["first_s"]
    results["vs_reference"] = {
        "overlap_run_speedup_compiled": ref["paper_overlap_run_s"] / exact_2000,
        "overlap_run_speedup_first_call": ref["paper_overlap_run_s"] / exact_first,
        "network_N500_speedup_compiled": ref["paper_network_N500_s"] / net_ref_2000,
        "network_N500_speedup_first_call": ref["paper_network_N500_s"] / net_ref_first_2000,
        "network_N4000_per_epoch_speedup": ref["paper_network_N4000_s_per_epoch"] / per_epoch_at(4000),
    }
    results["targets"] = {
        "overlap_compiled_lt_0.15s": bool(exact_2000 < ref["target_overlap_compiled_s"]),
        "network_N500_compiled_lt_6s": bool(net_ref_2000 < ref["target_network_N500_s"]),
        "network_N500_first_call_lt_6s": bool(net_ref_first_2000 < ref["target_network_N500_s"]),
        "network_cost_about_linear_in_N": bool(slope <= ref["target_network_exponent_max"]),
        "overlap_run_independent_of_N": bool(max(vsN) / min(vsN) < ref["target_overlap_N_spread_max"]),
    }
    results["settings"] = {
        "quick": quick,
        "lr": LR,
        "overlap_epochs": epochs,
        "network_N": list(Ns),
        "network_epochs": {str(k): v for k, v in net_epochs.items()},
        "N_ref": N_ref,
        "network_N500_s_2000_epochs": {"compiled": net_ref_2000, "first_call": net_ref_first_2000},
        "note": "network times from fewer than 2000 epochs are scaled to 2000 before comparing with the references",
    }
    return results


# ---------------------------------------------------------------------------- output
def _fmt(x, unit="s"):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if unit == "s":
        return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"
    if unit == "x":
        return f"{x:.3g}x"
    return f"{x:.3g}"


def _tables(res: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    tables = []
    rows = []
    for m, r in res["overlaps"].items():
        rows.append(
            [
                f"overlaps {m}",
                str(r["epochs"]),
                _fmt(r["first_s"]),
                _fmt(r["first_compile_s"]),
                _fmt(r.get("compiled_s")),
                _fmt(r.get("compiled_cpu_s")),
                _fmt(r.get("compiled_compile_s")),
                str(r["repeats"]),
                "",
            ]
        )
    for N, r in res["network"].items():
        rows.append(
            [
                f"network N={N} ({r['dtype']})",
                str(r["epochs"]),
                _fmt(r["first_s"]),
                _fmt(r["first_compile_s"]),
                _fmt(r["compiled_s"]),
                _fmt(r["compiled_cpu_s"]),
                _fmt(r["compiled_compile_s"]),
                str(r["repeats"]),
                _fmt(r["per_epoch_s"]),
            ]
        )
    title = (
        "Timings: wall clock; compiled = median of repeats; cpu = process CPU time (all threads; less sensitive "
        "to other load); compile = JAX trace+lower+compile time inside the call (0 = cache hit)"
    )
    header = ["run", "epochs", "first call", "compile", "compiled", "cpu", "compile", "repeats", "per epoch"]
    tables.append((title, header, rows))

    rows = [
        [f"S0 from N={N}", _fmt(r["compiled_s"]), _fmt(r["compiled_compile_s"])]
        for N, r in res["overlaps_vs_N"].items()
    ]
    tables.append(("Overlap run (exact, compiled, min) vs N of S0", ["S0", "compiled", "compile"], rows))

    fit = res["fit"]
    rows = [
        ["per-epoch cost exponent (log-log fit vs N)", _fmt(fit["per_epoch_exponent"], "")],
        ["same, from CPU time", _fmt(fit["per_epoch_exponent_cpu_time"], "")],
        ["fitted per-epoch cost at N=4000", _fmt(fit["per_epoch_s_at_4000_fitted"])],
    ]
    rows += [[k, _fmt(v, "x")] for k, v in res["ratios"].items()]
    tables.append(("Scaling and ratios", ["quantity", "value"], rows))

    ref, vs, tg, st = REFERENCE, res["vs_reference"], res["targets"], res["settings"]
    exact = res["overlaps"]["exact"]
    net = res["network"][str(st["N_ref"])]
    net2000 = st["network_N500_s_2000_epochs"]
    scaled = "" if net["epochs"] == 2000 else f" [from {net['epochs']} ep]"
    paper_ov, paper_net = _fmt(ref["paper_overlap_run_s"]), _fmt(ref["paper_network_N500_s"])
    t_net = f"< {ref['target_network_N500_s']} s"
    rows = [
        [
            "overlap run (compiled)",
            _fmt(exact["compiled_s"] * 2000 / exact["epochs"]),
            paper_ov,
            _fmt(vs["overlap_run_speedup_compiled"], "x"),
            f"< {ref['target_overlap_compiled_s']} s",
            _fmt(tg["overlap_compiled_lt_0.15s"]),
        ],
        [
            "overlap run (first call)",
            _fmt(exact["first_s"]),
            paper_ov,
            _fmt(vs["overlap_run_speedup_first_call"], "x"),
            "",
            "",
        ],
        [
            f"network N={st['N_ref']} (compiled){scaled}",
            _fmt(net2000["compiled"]),
            paper_net,
            _fmt(vs["network_N500_speedup_compiled"], "x"),
            t_net,
            _fmt(tg["network_N500_compiled_lt_6s"]),
        ],
        [
            f"network N={st['N_ref']} (first call){scaled}",
            _fmt(net2000["first_call"]),
            paper_net,
            _fmt(vs["network_N500_speedup_first_call"], "x"),
            t_net,
            _fmt(tg["network_N500_first_call_lt_6s"]),
        ],
        [
            "network per epoch, N=4000 (fitted)",
            _fmt(fit["per_epoch_s_at_4000_fitted"]),
            _fmt(ref["paper_network_N4000_s_per_epoch"]),
            _fmt(vs["network_N4000_per_epoch_speedup"], "x"),
            "",
            "",
        ],
        [
            "network cost exponent in N",
            _fmt(fit["per_epoch_exponent"], ""),
            "",
            "",
            f"<= {ref['target_network_exponent_max']}",
            _fmt(tg["network_cost_about_linear_in_N"]),
        ],
        [
            "overlap run max/min over N",
            _fmt(res["ratios"]["overlap_exact_max_over_min_vs_N"], "x"),
            "",
            "",
            f"< {ref['target_overlap_N_spread_max']}x",
            _fmt(tg["overlap_run_independent_of_N"]),
        ],
    ]
    tables.append(
        (
            "Against the paper's code (2-core machine) and the targets (times scaled to 2000 epochs)",
            ["quantity", "here", "paper code", "speed-up", "target", "met"],
            rows,
        )
    )
    return tables


def print_tables(res: dict, plain: bool) -> None:
    show_tables(_tables(res), plain)


def show_tables(tables: list[tuple[str, list[str], list[list[str]]]], plain: bool) -> None:
    """Print (title, header, rows) tables with rich, or as plain text."""
    try:
        if plain:
            raise ImportError
        from rich.console import Console
        from rich.table import Table

        console = Console(width=None if sys.stdout.isatty() else 132)
        for title, header, rows in tables:
            table = Table(title=title, title_justify="left")
            for i, h in enumerate(header):
                table.add_column(h, justify="left" if i == 0 else "right")
            for row in rows:
                table.add_row(*row)
            console.print(table)
    except ImportError:
        for title, header, rows in tables:
            widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
            print(f"\n{title}")
            print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
            print("  ".join("-" * w for w in widths))
            for row in rows:
                print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def _load(values) -> str:
    return "n/a" if values is None else " ".join(f"{v:.1f}" for v in values)


def machine_info() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "overlapflow": of.__version__,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes/epochs: a smoke test, well under a minute")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write all results as JSON to PATH")
    parser.add_argument("--no-flow", action="store_true", help="skip method='flow' (diffrax; the slowest to compile)")
    parser.add_argument("--flow", action="store_true", help="with --quick: include method='flow' (skipped there)")
    parser.add_argument("--plain", action="store_true", help="plain-text tables instead of rich")
    args = parser.parse_args(argv)
    enable_globally()  # a benchmark is its own process: float64 throughout, as before

    log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    res = run(args.quick, not args.no_flow and (args.flow or not args.quick), log)
    load_after = os.getloadavg() if load_before else None
    res["machine"] = machine_info() | {"loadavg_before": load_before, "loadavg_after": load_after}
    res["reference"] = REFERENCE
    res["total_s"] = time.perf_counter() - t0
    print_tables(res, args.plain)
    print(
        f"total benchmark time {res['total_s']:.1f} s on {os.cpu_count()} CPUs, JAX device "
        f"{jax.devices()[0].device_kind} ({jax.default_backend()}); load average (1, 5, 15 min) "
        f"before {_load(load_before)}, after {_load(load_after)}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, default=float)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
