"""Make docs/results/memory_paper_scale.json from a finished paper-scale A/B -> C run.

    overlapflow reproduce 9 --out RUN                 # the run (about 30 to 60 minutes on 2 cores)
    python docs/results/memory_paper_scale.py RUN [--log RUN.log] [--longer-c RUN2/ab_to_c.nc]

Reads RUN/ab_to_c.nc (written by ``reproduce 9``) and writes, next to this script, the JSON the
docs page ``docs/memory_result.md`` quotes: the settings, decoding accuracies
``decoding[stage][features]["noise x"]`` for the four feature sets at the three stages (the
authors' cross-validation; ``decoding_whole_pairs``: whole pairs split, noise in standardised
units; feature noise 0 and 0.3), the members' distances per feature set, final losses, when the
learning-rate drop fired, and each member's distance from the teacher in function coordinates.
``--log`` is the run's log with ``start <unix time>`` and ``end <unix time>`` lines (the wall
time); ``--longer-c`` adds the same numbers for the run with C continued (``longer_C``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import jax
import numpy as np
import xarray as xr

import overlapflow as of
from overlapflow.experiments.figures.memory import _member_distance, teacher_function_distance
from overlapflow.phenomena.memory import STAGES, decoding_table

HERE = Path(__file__).resolve().parent


def wall_time(log: Path | None) -> dict:
    if log is None or not log.is_file():
        return {}
    text = log.read_text()
    stamps = {k: re.search(rf"^{k} (\d+) .*load ([\d.]+) ([\d.]+) ([\d.]+)", text, re.M) for k in ("start", "end")}
    if not all(stamps.values()):
        return {}
    start, end = (int(stamps[k].group(1)) for k in ("start", "end"))
    return {
        "wall_s": end - start,
        "loadavg_start": [float(stamps["start"].group(i)) for i in (2, 3, 4)],
        "loadavg_end": [float(stamps["end"].group(i)) for i in (2, 3, 4)],
    }


def summary(table: xr.DataArray) -> dict:
    """decoding[stage][features]["noise x"] as plain numbers."""
    return {
        stage: {
            str(f): {f"noise {n:g}": float(table.sel(stage=stage, features=f, noise=n)) for n in table.noise.values}
            for f in table.features.values
        }
        for stage in STAGES
    }


def convergence(result: xr.Dataset) -> dict:
    """How the members' function coordinates approach the teacher's and each other during C, from
    the stored trajectory: the median over pairs of each member's largest relative distance from
    the teacher, and the RMS over pairs and coordinates of f(A) - f(B), at a few epochs of C, and
    the exponential rate of the gap fitted over the second half of C."""
    if "trajectory" not in result:
        return {}
    E = int(result.attrs["epochs_per_phase"])
    during_c = result.record.values >= E
    epochs = result.record.values[during_c] - E
    distance, f, _ = teacher_function_distance(result, result.trajectory.values[:, :, during_c])
    gap = np.sqrt(np.mean((f[:, 0] - f[:, 1]) ** 2, axis=(0, -1)))  # (record,)
    late = epochs >= epochs[-1] / 2
    rate = -np.polyfit(epochs[late], np.log(gap[late]), 1)[0]
    marks = [e for e in (0, 1000, 3000, 10000, 20000, int(epochs[-1])) if e <= epochs[-1]]
    index = [int(np.argmin(np.abs(epochs - e))) for e in marks]
    return {
        "c_epoch": marks,
        "teacher_distance_median": {
            m: [float(np.median(distance[:, i, k])) for k in index] for i, m in enumerate("AB")
        },
        "member_gap_rms_function": [float(gap[k]) for k in index],
        "member_gap_decay_rate_per_epoch": float(rate),
        "epochs_for_gap_to_fall_10x": float(np.log(10) / rate) if rate > 0 else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the folder of `overlapflow reproduce 9 --out RUN`")
    parser.add_argument("--log", type=Path, default=None, help="the run's log, for the wall time")
    parser.add_argument("--out", type=Path, default=HERE / "memory_paper_scale.json")
    parser.add_argument("--longer-c", type=Path, default=None, help="an ab_to_c.nc of the same run with a longer C")
    args = parser.parse_args(argv)

    with xr.open_dataset(args.run / "ab_to_c.nc") as stored:
        result = stored.load()
    settings = json.loads(result.attrs["figure_settings"])
    E = int(result.attrs["epochs_per_phase"])
    noise = (0.0, 0.3)
    decoding = {
        convention: decoding_table(result, noise_levels=noise, convention=convention, resamples=50)
        for convention in ("authors", "pairs")
    }
    distance = _member_distance(result)
    teacher, f_after_c, labels = teacher_function_distance(result)
    _, f_teacher, _ = teacher_function_distance(result, of.tasks.Teacher.paper().overlap_matrix.matrix)
    loss = result.loss.values  # (pair, member, epoch)
    drop = [
        [int(np.argmax(loss[p, m, :E] < 0.015)) if (loss[p, m, :E] < 0.015).any() else None for m in (0, 1)]
        for p in range(loss.shape[0])
    ]
    out = {
        "command": f"overlapflow reproduce 9 --out {args.run.name}; python docs/results/memory_paper_scale.py "
        f"{args.run.name} --log {args.run.name}.log --longer-c <C continued>/ab_to_c.nc (docs/memory_result.md)",
        "overlapflow_version": of.__version__,
        "jax_version": jax.__version__,
        "settings": settings
        | {"epochs": E, "c_epochs": int(result.attrs["c_epochs"]), "lr_drop": [0.015, 5.0], "phi": "erf", "rank": 1},
        "decoding": summary(decoding["authors"]),
        "decoding_whole_pairs": summary(decoding["pairs"]),
        "member_distance_rms": {
            stage: {str(f): float(distance.sel(stage=stage, features=f)) for f in distance.features.values}
            for stage in STAGES
        },
        "final_loss": {
            "after_AB": {m: loss[:, i, E].tolist() for i, m in enumerate("AB")},
            "after_C": {m: loss[:, i, -1].tolist() for i, m in enumerate("AB")},
        },
        "lr_drop_epoch": {m: [d[i] for d in drop] for i, m in enumerate("AB")},
        "function_coordinates": {
            "labels": labels,
            "teacher": np.asarray(f_teacher).tolist(),
            "after_C": {m: np.asarray(f_after_c)[:, i].tolist() for i, m in enumerate("AB")},
            "max_relative_distance_from_teacher": {m: teacher[:, i].tolist() for i, m in enumerate("AB")},
        },
        "convergence_of_C": convergence(result),
        "run": wall_time(args.log) | {"cpu_count": 2},
    }
    if args.longer_c:
        with xr.open_dataset(args.longer_c) as stored:
            longer = stored.load()
        longer_distance = _member_distance(longer).sel(stage="after_C")
        out["longer_C"] = {
            "c_epochs": int(longer.attrs["c_epochs"]),
            "how": "the same run with phase C continued (run_ab_to_c_parallel with a larger c_epochs in its folder)",
            "decoding": summary(decoding_table(longer, noise_levels=noise, convention="authors", resamples=50)),
            "decoding_whole_pairs": summary(
                decoding_table(longer, noise_levels=noise, convention="pairs", resamples=50)
            ),
            "member_distance_rms": {
                str(f): float(longer_distance.sel(features=f)) for f in longer_distance.features.values
            },
            "final_loss_after_C": {m: longer.loss.values[:, i, -1].tolist() for i, m in enumerate("AB")},
            "max_relative_distance_from_teacher": {
                m: teacher_function_distance(longer)[0][:, i].tolist() for i, m in enumerate("AB")
            },
            "convergence_of_C": convergence(longer),
        }
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
