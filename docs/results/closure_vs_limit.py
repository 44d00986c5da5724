"""How far is the Gaussian closure from the exact infinite-N limit on the paper's nonlinear runs?

    python docs/results/closure_vs_limit.py OUT [--pairs 0,1,2,3] [--seeds 3] [--epochs 1000] [--workers 2] [--quick]

Runs, each as one job in a worker process (a job's result is kept in OUT; a stopped run continues):

- fig 8 (paper settings: rank-1 erf, flip-flop, dt 0.025, T 800, batch 10, lr 0.05, 2000 epochs,
  read out before the step; S0 of the fig 8 config's N = 600 network): the closure, the limit
  (particles, split rule 6 x 3, run as its mirrored half), a finer limit (7 x 4) for the limit's
  own accuracy, and ``--seeds`` networks of N = 1000 (rows with Gram matrix exactly S0);
- A/B -> C with the paper's settings (batch 128, T 400, lr 0.01 then C at 0.001, the paper's random
  initial overlaps, pairs ``--pairs``) but ``--epochs`` epochs per phase (default 1000, not 30000:
  the limit costs 0.2 s per member-epoch here, docs/closure_vs_limit.md): both members of each
  pair on the closure and on the limit (split rule 6 x 3; checked against 8 x 3 over the first
  ``CHECK_EPOCHS`` epochs of A and B of the first pair), and a network of N = 1000 for each member
  of the first pair over the first ``NETWORK_EPOCHS`` epochs of A and B.

Then writes, next to this script, ``closure_vs_limit.json`` (per experiment: the largest distance of
the closure from the limit in overlaps, loss and function coordinates, when it first exceeds the
spread of N = 1000 networks, the N at which a network is as close to the limit as the closure, and
the paper's conclusions on both) and ``closure_vs_limit.png``. ``--quick`` shrinks every run (a
smoke test of this script).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
import xarray as xr

HERE = Path(__file__).resolve().parent
FLIPFLOP_RULE = {"rule": "split", "nodes": 6, "right_nodes": 3}
FLIPFLOP_FINER = {"rule": "split", "nodes": 7, "right_nodes": 4}
ABC_RULE = {"rule": "split", "nodes": 6, "right_nodes": 3}
ABC_FINER = {"rule": "split", "nodes": 8, "right_nodes": 3}
CHECK_EPOCHS = 200
NETWORK_EPOCHS = 300
NETWORK_N = 1000


# ---------------------------------------------------------------------------- the runs (jobs)
def flipflop_setup(quick: bool):
    import overlapflow as of
    from overlapflow.experiments.commands import shipped_configs
    from overlapflow.experiments.config import load_config

    config = load_config(shipped_configs()["flipflop"])
    rnn = config.build_network()
    phase = config.build_phases(rnn)[0]
    theta = rnn.init(jax.random.key(config.seed), N=config.N, dtype=config.dtype)  # the fig 8 run's S0
    S0 = np.asarray(of.Overlaps.from_params(rnn, theta).matrix)
    epochs = 40 if quick else phase.epochs
    return rnn, phase.training_task, S0, phase.lr, epochs, jax.random.key(config.seed)


def flipflop_job(out: str, what: str, quick: bool) -> str:
    import overlapflow as of
    from overlapflow.engines import NetworkEngine, ParticleEngine
    from overlapflow.training import overlap_engine

    rnn, task, S0, lr, epochs, key = flipflop_setup(quick)
    if what == "closure":
        engine, start = overlap_engine("exact"), S0
    elif what in ("limit", "limit-finer"):
        engine, start = (
            ParticleEngine(of.Optimizer("sgd"), **(FLIPFLOP_RULE if what == "limit" else FLIPFLOP_FINER)),
            S0,
        )
    else:  # network<seed>
        seed = int(what.removeprefix("network"))
        N = 200 if quick else NETWORK_N
        engine, start = NetworkEngine(), of.sample_params(rnn, S0, N, jax.random.fold_in(jax.random.key(1000), seed))
    started = time.perf_counter()
    history = of.train(engine, rnn, task, start, lr, epochs, key=key).history
    history.attrs["wall_s"] = time.perf_counter() - started
    path = Path(out) / f"flipflop_{what}.nc"
    history.to_netcdf(path)
    return str(path)


def abc_setup(pair: int, member: str, epochs: int, quick: bool):
    """(rnn, phases [member's task, C], S0, curriculum key) of one member of an A/B -> C pair: the
    paper's settings and the keys of :func:`~overlapflow.phenomena.memory.run_ab_to_c`."""
    from overlapflow.experiments.ab_to_c import ABtoCSettings
    from overlapflow.phenomena.memory import pair_keys, random_initial_overlaps

    settings = ABtoCSettings(epochs=30 if quick else epochs, batch_size=16 if quick else 128)
    rnn, phases = settings.rnn, settings.phases()
    pair_key, curriculum_key = pair_keys(jax.random.key(settings.seed), pair)
    return rnn, [phases[member], phases["C"]], random_initial_overlaps(rnn, pair_key), curriculum_key, pair_key


def abc_job(out: str, pair: int, member: str, what: str, epochs: int, quick: bool) -> str:
    import dataclasses

    import overlapflow as of
    from overlapflow.phenomena.curriculum import run_curriculum

    rnn, phases, S0, key, pair_key = abc_setup(pair, member, epochs, quick)
    started = time.perf_counter()
    if what in ("closure", "limit"):
        history = run_curriculum(
            rnn,
            phases,
            S0=S0,
            engines=("overlaps" if what == "closure" else "particles",),
            key=key,
            particle_options=ABC_RULE,
        )
    else:  # the first epochs of the member's task: a finer limit, or a network of N = 1000
        first = dataclasses.replace(
            phases[0], epochs=min(CHECK_EPOCHS if what == "limit-finer" else NETWORK_EPOCHS, phases[0].epochs)
        )
        theta0 = of.sample_params(rnn, S0, 100 if quick else NETWORK_N, jax.random.fold_in(pair_key, 1))
        history = run_curriculum(
            rnn,
            [first],
            theta0=theta0 if what == "network" else None,
            S0=S0,
            engines=("particles" if what == "limit-finer" else "network",),
            key=key,
            particle_options=ABC_FINER,
        )
    history = next(iter(history.values()))
    history.attrs["wall_s"] = time.perf_counter() - started
    path = Path(out) / f"abc_pair{pair}_{member}_{what}.nc"
    history.to_netcdf(path)
    return str(path)


def job_file(job) -> str:
    if job[0] is flipflop_job:
        return f"flipflop_{job[2]}.nc"
    return f"abc_pair{job[2]}_{job[3]}_{job[4]}.nc"


def run_jobs(out: Path, pairs, seeds: int, epochs: int, workers: int, quick: bool) -> None:
    from overlapflow.worker_pool import worker_pool

    jobs = [(abc_job, str(out), p, m, "limit", epochs, quick) for p in pairs for m in "AB"]
    jobs += [(flipflop_job, str(out), f"network{s}", quick) for s in range(seeds)]
    jobs += [(abc_job, str(out), pairs[0], m, "network", epochs, quick) for m in "AB"]
    jobs += [(abc_job, str(out), p, m, "closure", epochs, quick) for p in pairs for m in "AB"]
    jobs += [(abc_job, str(out), pairs[0], m, "limit-finer", epochs, quick) for m in "AB"]
    jobs += [(flipflop_job, str(out), w, quick) for w in ("limit", "limit-finer", "closure")]
    pending = [job for job in jobs if not (out / job_file(job)).is_file()]
    print(f"{len(pending)} of {len(jobs)} jobs to run, {workers} workers", flush=True)
    with worker_pool(workers) as pool:
        futures = [pool.submit(job[0], *job[1:]) for job in pending]
        for future in concurrent.futures.as_completed(futures):
            print(f"{time.strftime('%H:%M:%S')} done {future.result()}", flush=True)


# ---------------------------------------------------------------------------- the numbers
def _load(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as stored:
        return stored.load()


def _function(rnn, S) -> np.ndarray:
    from overlapflow.gauge import function_coordinates

    return np.asarray(function_coordinates(rnn, np.asarray(S))[0])


def flipflop_numbers(out: Path, seeds: int, quick: bool) -> tuple[dict, dict]:
    rnn = flipflop_setup(quick)[0]
    closure, limit, finer = (_load(out / f"flipflop_{w}.nc") for w in ("closure", "limit", "limit-finer"))
    nets = [_load(out / f"flipflop_network{s}.nc") for s in range(seeds)]
    S_c, S_l = closure.overlaps.values, limit.overlaps.values
    closure_dev = np.abs(S_c - S_l).max(axis=(1, 2))
    net_dev = np.stack([np.abs(n.overlaps.values - S_l).max(axis=(1, 2)) for n in nets])  # (seed, epoch)
    spread = net_dev.mean(axis=0)
    beyond = np.nonzero(closure_dev[1:] > spread[1:])[0]
    f_c, f_l = _function(rnn, S_c), _function(rnn, S_l)
    f_nets = np.stack([_function(rnn, n.overlaps.values) for n in nets])
    N_net = int(nets[0].attrs.get("N", NETWORK_N))
    numbers = {
        "settings": "rank-1 erf flip-flop, dt 0.025, T 800, batch 10, lr 0.05, read out before the step",
        "epochs": int(closure.epoch.size - 1),
        "limit_rule": f"split {FLIPFLOP_RULE['nodes']} x {FLIPFLOP_RULE['right_nodes']} "
        f"({limit.attrs['n_particles']} particles)",
        "limit_error_vs_finer_rule": float(np.abs(S_l - finer.overlaps.values).max()),
        "max_closure_error": {
            "overlaps": float(closure_dev.max()),
            "loss": float(np.abs(closure.loss.values - limit.loss.values).max()),
            "loss_relative": float((np.abs(closure.loss.values - limit.loss.values) / np.abs(limit.loss.values)).max()),
            "function_coordinates": float(np.abs(f_c - f_l).max()),
        },
        "network_N": N_net,
        "network_seeds": seeds,
        "max_network_deviation_mean_over_seeds": float(net_dev.max(axis=1).mean()),
        "max_network_function_deviation_mean_over_seeds": float(np.abs(f_nets - f_l).max(axis=(1, 2)).mean()),
        "first_epoch_closure_beyond_network_spread": int(beyond[0] + 1) if beyond.size else None,
        "epochs_closure_beyond_network_spread": int(beyond.size),
        # networks approach the limit like N^-1/2 (validate-theory): c N^-1/2 = closure error at
        "N_as_close_as_the_closure": float(N_net * (net_dev.max(axis=1).mean() / closure_dev.max()) ** 2),
        "final_loss": {
            "closure": float(closure.loss.values[-1]),
            "limit": float(limit.loss.values[-1]),
            "networks": [float(n.loss.values[-1]) for n in nets],
        },
        "wall_s": {
            "closure": closure.attrs["wall_s"],
            "limit": limit.attrs["wall_s"],
            "network": float(np.mean([n.attrs["wall_s"] for n in nets])),
        },
    }
    curves = {
        "closure": closure_dev,
        "networks": net_dev,
        "limit_vs_finer": np.abs(S_l - finer.overlaps.values).max(axis=(1, 2)),
    }
    return numbers, curves


def abc_numbers(out: Path, pairs, epochs: int, quick: bool) -> tuple[dict, dict]:
    from overlapflow.overlaps import visible_mask

    rnn, phases, *_ = abc_setup(pairs[0], "A", epochs, quick)
    visible = np.asarray(visible_mask(rnn))
    end_of_first = phases[0].epochs
    per_member, curves, ends = {}, {}, {}
    for p in pairs:
        for m in "AB":
            closure, limit = (_load(out / f"abc_pair{p}_{m}_{e}.nc") for e in ("closure", "limit"))
            S_c, S_l = closure.overlaps.values, limit.overlaps.values
            dev = np.abs(S_c - S_l).max(axis=(1, 2))
            f_dev = np.abs(
                _function(rnn, S_c[:: max(1, epochs // 100)]) - _function(rnn, S_l[:: max(1, epochs // 100)])
            )
            entry = {
                "max_closure_error": {
                    "overlaps": float(dev.max()),
                    "overlaps_end_of_first_task": float(dev[end_of_first]),
                    "overlaps_end": float(dev[-1]),
                    "loss": float(np.abs(closure.loss.values - limit.loss.values).max()),
                    "loss_relative": float((np.abs(closure.loss.values - limit.loss.values) / limit.loss.values).max()),
                    "function_coordinates": float(f_dev.max()),
                },
                "final_loss": {"closure": float(closure.loss.values[-1]), "limit": float(limit.loss.values[-1])},
                "wall_s": {"closure": closure.attrs["wall_s"], "limit": limit.attrs["wall_s"]},
            }
            if p == pairs[0]:
                finer = _load(out / f"abc_pair{p}_{m}_limit-finer.nc").overlaps.values
                network = _load(out / f"abc_pair{p}_{m}_network.nc")
                net = network.overlaps.values
                finer_dev = np.abs(finer - S_l[: len(finer)]).max(axis=(1, 2))
                entry["limit_error_vs_finer_rule"] = float(finer_dev.max())
                curves[f"limit vs finer rule, pair {p} member {m}"] = finer_dev
                net_dev = np.abs(net - S_l[: len(net)]).max(axis=(1, 2))
                beyond = np.nonzero(dev[1 : len(net)] > net_dev[1:])[0]
                entry["network_N"] = int(network.attrs["N"])
                entry["network_epochs"] = len(net) - 1
                entry["max_network_deviation"] = float(net_dev.max())
                entry["closure_error_at_network_epochs"] = float(dev[: len(net)].max())
                entry["first_epoch_closure_beyond_network"] = int(beyond[0] + 1) if beyond.size else None
                entry["N_as_close_as_the_closure"] = float(
                    entry["network_N"] * (net_dev.max() / dev[: len(net)].max()) ** 2
                )
                curves[f"network, pair {p} member {m}"] = net_dev
            per_member[f"pair {p} member {m}"] = entry
            curves[f"pair {p} member {m}"] = dev
            ends[(p, m)] = (S_c[-1], S_l[-1])

    def after_c(which: int) -> dict:  # the paper's conclusion, on each pair: the members after C
        out = {}
        for p in pairs:
            d = np.abs(ends[(p, "A")][which] - ends[(p, "B")][which])
            out[str(p)] = {"visible": float(d[visible].max()), "invisible": float(d[~visible].max())}
        return out

    worst = lambda key: max(v["max_closure_error"][key] for v in per_member.values())
    numbers = {
        "settings": "the paper's A/B -> C settings (rank-1 erf, batch 128, T 400, lr 0.01 with the drop, "
        f"C at 0.001), {phases[0].epochs} + {phases[1].epochs} epochs per member (the paper: 30000 + 30000)",
        "pairs": list(pairs),
        "limit_rule": f"split {ABC_RULE['nodes']} x {ABC_RULE['right_nodes']}",
        "finer_rule": f"split {ABC_FINER['nodes']} x {ABC_FINER['right_nodes']} over the first {CHECK_EPOCHS} epochs",
        "max_closure_error": {k: worst(k) for k in ("overlaps", "loss", "loss_relative", "function_coordinates")},
        "members_after_C": {"closure": after_c(0), "limit": after_c(1)},
        "per_member": per_member,
    }
    return numbers, curves


def figure(flipflop_curves, abc_curves, end_of_first: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(flipflop_curves["closure"].size)
    for s, dev in enumerate(flipflop_curves["networks"]):
        label = f"networks, N = {NETWORK_N}" if s == 0 else None
        a.plot(epochs[1:], dev[1:], color="C0", alpha=0.5, lw=0.8, label=label)
    a.plot(epochs[1:], flipflop_curves["closure"][1:], color="C3", label="Gaussian closure")
    a.plot(epochs[1:], flipflop_curves["limit_vs_finer"][1:], color="0.5", ls=":", label="limit vs a finer rule")
    a.set(yscale="log", xlabel="epoch", ylabel="max |S - S_limit|", title="Fig 8 (flip-flop): distance from the limit")
    a.legend(fontsize=8)
    k = 0
    for name, dev in abc_curves.items():
        network, check = name.startswith("network"), name.startswith("limit vs")
        style = (
            {"color": "C0", "alpha": 0.6}
            if network
            else {"color": "0.4", "ls": ":"}
            if check
            else {"color": f"C{1 + k % 9}"}
        )
        b.plot(np.arange(1, dev.size), dev[1:], lw=0.7, label=name if network or check or k < 2 else None, **style)
        k += not (network or check)
    b.axvline(end_of_first, color="0.6", lw=0.8)
    b.set(
        yscale="log",
        xlabel="epoch (A or B, then C)",
        ylabel="max |S - S_limit|",
        title="A/B -> C: closure (colours) and N = 1000 networks (blue)",
    )
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pairs", default="0,1,2,3")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1000, help="A/B -> C epochs per phase")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=HERE / "closure_vs_limit.json")
    parser.add_argument("--figure", type=Path, default=HERE / "closure_vs_limit.png")
    args = parser.parse_args(argv)
    from overlapflow.precision import enable_globally

    enable_globally()
    import overlapflow as of

    pairs = [int(p) for p in args.pairs.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    run_jobs(args.out, pairs, args.seeds, args.epochs, args.workers, args.quick)
    wall = time.perf_counter() - started
    flipflop, flipflop_curves = flipflop_numbers(args.out, args.seeds, args.quick)
    abc, abc_curves = abc_numbers(args.out, pairs, args.epochs, args.quick)
    result = {
        "command": "python docs/results/closure_vs_limit.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "overlapflow_version": of.__version__,
        "jax_version": jax.__version__,
        "wall_s_this_call": wall,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "experiments": {"fig8_flipflop": flipflop, "ab_to_c": abc},
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    end_of_first = abc_setup(pairs[0], "A", args.epochs, args.quick)[1][0].epochs
    figure(flipflop_curves, abc_curves, end_of_first, args.figure)
    print(f"wrote {args.json}, {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
