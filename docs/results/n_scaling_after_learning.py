"""After learning, do finite networks go to the exact N -> infinity limit or to the Gaussian closure?

    overlapflow validate-theory --task flipflop --start fig8 --epochs 2000 \\
        --sizes 1000,2000,4000,8000,16000 --seeds 3,3,3,1,1 --workers 2 --out RUN
    overlapflow validate-theory --task flipflop --start fig8 --epochs 200 \
        --sizes 1000,2000,4000,8000,16000 --seeds 3 --dtype float64 --workers 2 --out EARLY
    python docs/results/n_scaling_after_learning.py RUN [--rules 8x4,8x5] [--early EARLY]

reads ``RUN/validation.nc`` (fig 8 at the paper's settings: networks at each N, the particle limit and
the closure on the same batches, :func:`overlapflow.validation.validate_theory`) and writes, next to
this script, ``n_scaling_after_learning.json`` (per N, the mean over seeds of the largest distance from
the limit and from the closure over the learned epochs, in overlaps and in function coordinates; the
exponents fitted over the learned and the early epochs; the closure's own distance from the limit; the
N at which the fitted law meets it; the limit's own error against a finer rule; the float32
round-off; the wall time, load and command of the run) and ``n_scaling_after_learning.png``.

``--rules`` also runs the limit on finer split rules (``NODESxRIGHT``, one job each in ``RUN/rules``,
kept like the study's jobs) and reports, per rule, its distance from the study's limit and its finer
limit, and the networks' distance from it over the learned epochs: how much of the networks' distance
is the limit's own error. ``--early`` takes the early epochs from a float64 study of them (the
float32 networks' round-off, about 5e-7 over the first 200 epochs, is within a factor 15 of the
largest networks' distance there): ``exponent_early`` and ``early_distance_to_limit`` then come from
it, and the main run's own values are kept under ``early_float32``.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import numpy as np
import xarray as xr

HERE = Path(__file__).resolve().parent


def _per_N(result: xr.Dataset, name: str) -> dict:
    """{N: mean over seeds} of an (N, seed) variable (sizes may have fewer seeds: NaN)."""
    return {str(int(N)): float(np.nanmean(row)) for N, row in zip(result.N.values, result[name].values, strict=True)}


def _crossover(prefactor: float, exponent: float, level: float) -> float | None:
    """The N where prefactor N^exponent = level (None unless the law falls)."""
    return float((level / prefactor) ** (1 / exponent)) if exponent < 0 and prefactor > 0 else None


def fig8_study(settings: dict, nodes: int, right_nodes: int):
    """The fig 8 study (``validate-theory --start fig8``) with the limit on split ``nodes x right_nodes``;
    its settings must be the run's but for the rule."""
    import jax

    from overlapflow.experiments.commands import shipped_configs
    from overlapflow.experiments.config import load_config
    from overlapflow.overlaps import Overlaps
    from overlapflow.validation import make_study

    config = load_config(shipped_configs()["flipflop"])
    rnn = config.build_network()
    phase = config.build_phases(rnn)[0]
    S0 = Overlaps.from_params(rnn, rnn.init(jax.random.key(config.seed), N=config.N, dtype=config.dtype)).matrix
    key = jax.random.key(0)  # --seed 0
    study = make_study(
        rnn,
        phase.training_task,
        S0,
        settings["lr"],
        settings["epochs"],
        key,
        "split",
        nodes,
        right_nodes=right_nodes,
        network_dtype=settings["network_dtype"],
    )
    mine = json.loads(json.dumps(study.settings()))
    different = [k for k in settings if k != "limit" and mine[k] != settings[k]]
    if different:
        raise SystemExit(f"--rules: the fig 8 study differs from the run in {different}")
    return study


def rule_checks(run: Path, result: xr.Dataset, settings: dict, rules: list[tuple[int, int]]) -> dict:
    """Run (or reuse) the limit on each split rule in ``run/rules``; per rule: its distance from the
    study's limit and finer limit (over the run and the learned epochs), and the networks' (N: mean over
    seeds of the max over the learned epochs)."""
    from overlapflow.validation_jobs import Job, load_job, run_job
    from overlapflow.worker_pool import worker_pool

    studies = {f"{n}x{m}": fig8_study(settings, n, m) for n, m in rules}
    with worker_pool(len(studies)) as pool:
        for future in [pool.submit(run_job, str(run / "rules" / name), s, Job("limit")) for name, s in studies.items()]:
            future.result()
    learned = int(result.attrs["learned_from"])

    def gap(S, other):  # max over overlaps, per epoch
        return np.abs(S - other).max(axis=(1, 2))

    networks = {
        int(N): [load_job(run, Job("network", int(N), s, settings["network_dtype"]))["overlaps"] for s in range(k)]
        for N, k in zip(result.N.values, result.seeds.values, strict=True)
    }
    checks = {}
    for name in studies:
        S = load_job(run / "rules" / name, Job("limit"))["overlaps"]
        to_limit, to_finer = gap(S, result.overlaps_particles.values), gap(S, result.overlaps_finer_limit.values)
        checks[name] = {
            "from_limit": {"run": float(to_limit.max()), "learned": float(to_limit[learned:].max())},
            "from_finer_limit": {"run": float(to_finer.max()), "learned": float(to_finer[learned:].max())},
            "networks_learned_distance": {
                str(N): float(np.mean([gap(net, S)[learned:].max() for net in nets])) for N, nets in networks.items()
            },
        }
    return checks


def numbers(result: xr.Dataset, settings: dict, calls: list[dict]) -> dict:
    """The JSON's values (module docstring); ``calls``: the run's calls that ran jobs (``calls.jsonl``)."""
    from overlapflow.validation import fit_power_law

    a = result.attrs
    sizes = [int(N) for N in result.N.values]
    learned = int(a["learned_from"])
    to_limit, to_closure = _per_N(result, "learned_distance_to_limit"), _per_N(result, "learned_distance_to_closure")
    closer = [N for N in sizes if to_limit[str(N)] < to_closure[str(N)]]
    final = np.nanmean(result.distance_to_limit.values[..., -1], axis=1)
    return {
        "N": sizes,
        "seeds": {str(N): int(k) for N, k in zip(sizes, result.seeds.values, strict=True)},
        "distance_to_limit": to_limit,
        "distance_to_closure": to_closure,
        "exponent_learned": a["exponent_learned"],
        "exponent_early": a["exponent_early"],
        "closure_to_limit": a["closure_to_limit"],
        "wall_s": a["study_wall_s"],
        "command": a["command"],
        "overlapflow_version": settings["overlapflow_version"],
        "settings": settings["settings"],
        "load_average": {
            "mean": float(np.average([c["load_average_mean"] for c in calls], weights=[c["wall_s"] for c in calls])),
            "max": max(c["load_average_max"] for c in calls),
            "sampled": "1-minute load average, once a minute during each call",
        },
        "calls": calls,
        "learned_from_epoch": learned,
        "learned_from_rule": f"first epoch where the limit's loss is below {a['learned_factor']:g}x its final value",
        "early_epochs": int(a["early_epochs"]),
        "prefactor_learned": a["prefactor_learned"],
        "prefactor_early": a["prefactor_early"],
        "N_where_fitted_distance_to_limit_equals_closure_to_limit": _crossover(
            a["prefactor_learned"], a["exponent_learned"], a["closure_to_limit"]
        ),
        "N_closer_to_limit_than_to_closure": closer,
        "function_coordinates": {
            "distance_to_limit": _per_N(result, "function_learned_distance_to_limit"),
            "distance_to_closure": _per_N(result, "function_learned_distance_to_closure"),
            "exponent_learned": a["exponent_learned_function"],
            "closure_to_limit": a["closure_to_limit_function"],
        },
        "early_distance_to_limit": _per_N(result, "early_distance_to_limit"),
        "exponent_learned_without_smallest_N": fit_power_law(sizes[1:], [to_limit[str(N)] for N in sizes[1:]])[0],
        "exponent_learned_distance_to_closure": fit_power_law(sizes, list(to_closure.values()))[0],
        "distance_to_limit_at_the_last_epoch": {str(N): float(d) for N, d in zip(sizes, final, strict=True)},
        "exponent_at_the_last_epoch": fit_power_law(sizes, final)[0],
        "limit_error": {
            "against": a["finer_particles"],
            "max_over_run": a["limit_error_max"],
            "max_over_learned": a["limit_error_learned"],
        },
        "distance_to_finer_limit": _per_N(result, "learned_distance_to_finer_limit"),
        "per_seed": {
            name: {
                str(N): [float(x) for x in row if np.isfinite(x)]
                for N, row in zip(sizes, result[name].values, strict=True)
            }
            for name in ("learned_distance_to_limit", "learned_distance_to_closure")
        },
        "float32_round_off": {
            "N": a.get("float32_round_off_N"),
            "max_over_run": a.get("float32_round_off"),
            "max_over_learned": float(result.float32_round_off.values[learned:].max()),
            "max_over_early": float(result.float32_round_off.values[: int(a["early_epochs"]) + 1].max()),
        },
        "final_loss": {
            "limit": float(result.loss_particles.values[-1]),
            "closure": float(result.loss_closure.values[-1]),
            "networks": {str(N): float(x) for N, x in zip(sizes, result.loss_network.values[:, -1], strict=True)},
        },
        "job_wall_s": {
            "networks": {
                str(N): float(np.nansum(row)) for N, row in zip(sizes, result.network_wall_s.values, strict=True)
            },
            "limit": a["limit_wall_s"],
            "closure": a["closure_wall_s"],
        },
    }


def early_numbers(early: xr.Dataset, values: dict) -> dict:
    """Replace the early-epoch values by those of a float64 study of the early epochs (``--early``)."""
    if int(early.attrs["early_epochs"]) != values["early_epochs"]:
        raise SystemExit(f"--early: a study of {early.attrs['early_epochs']} epochs, not {values['early_epochs']}")
    values["early_float32"] = {
        "exponent": values["exponent_early"],
        "distance_to_limit": values["early_distance_to_limit"],
        "seeds": values["seeds"],
    }
    values["exponent_early"] = early.attrs["exponent_early"]
    values["prefactor_early"] = early.attrs["prefactor_early"]
    values["early_distance_to_limit"] = _per_N(early, "early_distance_to_limit")
    values["early_study"] = {
        "command": early.attrs["command"],
        "seeds": {str(int(N)): int(k) for N, k in zip(early.N.values, early.seeds.values, strict=True)},
        "network_dtype": early.attrs["network_dtype"],
        "wall_s": early.attrs["study_wall_s"],
    }
    return values


def caption(values: dict) -> str:
    """What the figure shows, in words, from the numbers."""
    sizes, z = values["N"], values["closure_to_limit"]
    closer = values["N_closer_to_limit_than_to_closure"]
    largest = str(sizes[-1])
    text = (
        f"After learning (epochs {values['learned_from_epoch']}-), networks approach the limit as "
        f"N^{values['exponent_learned']:.2f} ({values['exponent_learned_without_smallest_N']:.2f} without "
        f"N = {sizes[0]}; N^{values['exponent_early']:.2f} over the first {values['early_epochs']} epochs). "
    )
    if closer:
        text += f"From N = {closer[0]}, they are closer to the limit than to the closure. "
    text += (
        f"Their distance from the closure goes as N^{values['exponent_learned_distance_to_closure']:.2f}: it stays "
        "about the closure's own distance from the limit. "
    )
    if not closer:
        text += f"Up to N = {largest} they are still closer to the closure than to the limit. "
    text += (
        f"At N = {largest}: {values['distance_to_limit'][largest]:.3g} from the limit, "
        f"{values['distance_to_closure'][largest]:.3g} from the closure; the closure is {z:.3g} from the limit."
    )
    return text


def figure(result: xr.Dataset, values: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = np.asarray(values["N"], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 6.2))
    panels = (
        ("overlaps: max |S - S_ref|", "learned_distance_to_limit", "learned_distance_to_closure", ""),
        (
            "function coordinates (gauge-free)",
            "function_learned_distance_to_limit",
            "function_learned_distance_to_closure",
            "_function",
        ),
    )
    for ax, (title, limit_name, closure_name, suffix) in zip(axes, panels, strict=True):
        for name, colour, label in ((limit_name, "C0", "from the limit"), (closure_name, "C3", "from the closure")):
            per_seed = result[name].values
            for s in range(per_seed.shape[1]):
                ax.scatter(sizes, per_seed[:, s], s=14, color=colour, alpha=0.45)
            ax.plot(sizes, np.nanmean(per_seed, axis=1), "o-", color=colour, label=f"networks {label} (seed mean)")
        gap = result.attrs[f"closure_to_limit{suffix}"]
        ax.axhline(gap, color="0.3", ls="--", lw=1, label=f"closure from the limit ({gap:.3g})")
        if not suffix:
            error = result.attrs["limit_error_learned"]
            ax.axhline(error, color="0.5", ls="-.", lw=1, label=f"the limit's own error ({error:.2g})")
            for name, check in list(values.get("limit_rules", {}).items())[-1:]:  # the finest rule given
                finest = [check["networks_learned_distance"][str(int(N))] for N in sizes]
                ax.plot(sizes, finest, "s:", mfc="none", color="C0", label=f"networks from the limit on split {name}")
        p, c = result.attrs[f"exponent_learned{suffix}"], result.attrs[f"prefactor_learned{suffix}"]
        meet = _crossover(c, p, gap)
        end = sizes[-1] * 2 if meet is None or meet > 100 * sizes[-1] else max(sizes[-1] * 2, 1.5 * meet)
        grid = np.geomspace(sizes[0], end, 50)
        ax.plot(grid, c * grid**p, color="C0", ls="--", lw=1, label=f"fit {c:.2g} N^{p:.2f}")
        start = np.nanmean(result[limit_name].values[0])
        ax.plot(grid, start * (grid / sizes[0]) ** -0.5, color="0.6", ls=":", label="N^-1/2 from the smallest N")
        ax.set(xscale="log", yscale="log", xlabel="N (neurons)", ylabel="max over learned epochs", title=title)
        ax.set_xticks(sizes, [str(int(N)) for N in sizes])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle(
        "Fig 8 flip-flop after learning: finite networks vs the exact N -> infinity limit and the Gaussian closure",
        fontsize=10,
    )
    fig.text(0.5, 0.01, textwrap.fill(caption(values), 170), ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the --out folder of the validate-theory run")
    parser.add_argument("--json", type=Path, default=HERE / "n_scaling_after_learning.json")
    parser.add_argument("--figure", type=Path, default=HERE / "n_scaling_after_learning.png")
    parser.add_argument("--rules", default="", help="finer split rules for the limit, e.g. 8x4,8x5")
    parser.add_argument("--early", type=Path, help="the --out folder of a float64 study of the early epochs")
    args = parser.parse_args(argv)
    import overlapflow as of

    with xr.open_dataset(args.run / "validation.nc") as stored:
        result = stored.load()
    settings = {
        "overlapflow_version": of.__version__,
        "settings": json.loads((args.run / "settings.json").read_text(encoding="utf-8")),
    }
    from overlapflow.validation_jobs import read_calls

    values = numbers(result, settings, read_calls(args.run))
    if args.rules:
        rules = [tuple(int(x) for x in rule.split("x")) for rule in args.rules.split(",")]
        values["limit_rules"] = rule_checks(args.run, result, settings["settings"], rules)
    if args.early:
        with xr.open_dataset(args.early / "validation.nc") as stored:
            values = early_numbers(stored.load(), values)
    args.json.write_text(json.dumps(values, indent=2, default=lambda x: x.item()) + "\n")  # numpy scalars
    figure(result, values, args.figure)
    print(caption(values))
    print(f"wrote {args.json}, {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
