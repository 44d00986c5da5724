"""Figs 4d-f, 9 and 10: the A/B -> C protocol and decoding the training history from visible vs
invisible overlaps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ...precision import float64
from .data import stored, write_data
from .drawing import plain_log_labels
from .spec import KeyNumber


@dataclasses.dataclass(frozen=True)
class MemorySettings:
    """Figs 4d-f, 9 and 10: the A/B -> C protocol and the decoding of each pair's history
    (:func:`~overlapflow.phenomena.memory.decoding_table`), with the paper's values and the authors'
    conventions (:func:`~overlapflow.phenomena.memory.ab_to_c_phases`): 10 twin pairs on the reduced
    10-D theory (engine ``"overlaps"``), rank-1 erf reading out before the step, 30000 epochs of A or
    B at lr 0.01 (divided by 5 once the loss is below 0.015), then 30000 epochs of C at lr 0.001,
    batch 128; decoding with 8 training and 2 test pairs, 50 resamplings, feature noise 0 and 0.3.

    Engine ``"overlaps"`` runs in ``workers`` processes (default one per core; 0: in this process)
    with :func:`~overlapflow.experiments.ab_to_c.run_ab_to_c_parallel`: about 33 minutes on a
    quiet 2-core machine at the paper's settings (``benchmarks/bench_memory.py``), checkpointed
    every 2500 epochs of each job, so running the figure again after a stop continues where it
    was. Engines ``"particles"`` and ``"network"`` run pair by pair in this process (each pair is
    stored when done)."""

    n_pairs: int = 10
    epochs: int = 30000
    c_epochs: int | None = None
    lr: float = 0.01
    c_lr: float = 0.001
    batch_size: int = 128
    engine: str = "overlaps"
    seed: int = 0
    readout: str = "before"
    workers: int | None = None
    n_train_pairs: int = 8
    resamples: int = 50
    noise_levels: tuple[float, ...] = (0.0, 0.3)

    def protocol(self) -> dict:
        """The settings of the protocol run (the decoding's aside): what ``ab_to_c.nc`` was computed with."""
        keys = ("n_pairs", "epochs", "c_epochs", "lr", "c_lr", "batch_size", "engine", "seed", "readout")
        return {key: getattr(self, key) for key in keys}

    def ab_to_c(self):
        """The protocol's settings as an :class:`~overlapflow.experiments.ab_to_c.ABtoCSettings` (the
        fields the two share; the rest are the paper's)."""
        from ..ab_to_c import ABtoCSettings

        shared = {field.name for field in dataclasses.fields(ABtoCSettings)}
        return ABtoCSettings(**{k: v for k, v in dataclasses.asdict(self).items() if k in shared})


@float64
def run_memory(settings: MemorySettings, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Figs 9 and 10's data: the A/B -> C protocol (``ab_to_c.nc``, reused when computed with the same
    protocol settings) and the decoding accuracies (``decoding.nc``: stage, features, noise). Needs the
    ``decode`` extra (scikit-learn), checked before anything runs."""
    from ..._extras import require
    from ...phenomena.memory import decoding_table, join_pairs

    require("decode", "figures 4, 9 and 10 (decoding the training history)")
    from ..ab_to_c import run_ab_to_c_parallel

    run = settings.ab_to_c()

    def protocol() -> xr.Dataset:
        if settings.engine == "overlaps":
            return run_ab_to_c_parallel(run, out / "ab_to_c_jobs", settings.workers, progress)
        # one stored piece per pair: a stopped run loses at most one pair
        pieces = [
            stored(
                out, f"ab_to_c_pair{p}", settings.protocol(), lambda p=p: run.in_process(settings.engine, [p], progress)
            )
            for p in range(settings.n_pairs)
        ]
        return join_pairs(pieces)

    result = stored(out, "ab_to_c", settings.protocol(), protocol)
    for piece in out.glob("ab_to_c_pair*.nc"):
        piece.unlink()
    table = decoding_table(
        result,
        noise_levels=settings.noise_levels,
        n_train_pairs=settings.n_train_pairs,
        resamples=settings.resamples,
    )
    decoding = table.to_dataset().assign_attrs(n_train_pairs=settings.n_train_pairs, resamples=settings.resamples)
    return {"ab_to_c": result, "decoding": write_data(out, "decoding", decoding)}


_STAGE_LABELS = {"start": "start", "after_AB": "after A / B", "after_C": "after C"}


def _member_distance(result: xr.Dataset) -> xr.DataArray:
    """RMS over pairs and features of f(member A) - f(member B), for each feature set: (stage, features)."""
    from ...phenomena.memory import FEATURE_SETS, STAGES, overlap_features

    values = [
        [
            float(np.sqrt(np.mean(np.diff(overlap_features(result, stage, which)[0], axis=1) ** 2)))
            for which in FEATURE_SETS
        ]
        for stage in STAGES
    ]
    return xr.DataArray(
        values, dims=("stage", "features"), coords={"stage": list(STAGES), "features": list(FEATURE_SETS)}
    )


@float64
def teacher_function_distance(result: xr.Dataset, overlaps=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """How far each member computes from the teacher of task C, in function coordinates
    (:func:`~overlapflow.gauge.function_coordinates`, gauge-invariant).

    Args:
        overlaps: (..., P, P) states (default: the states after C, (pair, member, P, P)).

    Returns:
        (distance (...): max over coordinates of |f - f*| / |f*|; f (..., F); the coordinate labels),
        with f* the teacher's coordinates.
    """
    from ...gauge import function_coordinates
    from ...phenomena.memory import result_rnn
    from ...tasks import Teacher

    rnn = result_rnn(result)
    S = result.overlaps.sel(stage="after_C").values if overlaps is None else overlaps
    f_star, labels = function_coordinates(rnn, Teacher.paper(rnn=rnn).overlap_matrix.matrix)
    f, _ = function_coordinates(rnn, S)
    f, f_star = np.asarray(f), np.asarray(f_star)
    return np.max(np.abs(f - f_star) / np.abs(f_star), axis=-1), f, labels


def _draw_memory_loss(ax, result: xr.Dataset) -> None:
    epochs, E = result.epoch.values, int(result.attrs["epochs_per_phase"])
    for member, color in (("A", "C1"), ("B", "C2")):
        loss = result.loss.sel(member=member).values
        for curve in loss:
            ax.plot(epochs, curve, color=color, lw=0.5, alpha=0.35)
        task = "flip-flop" if member == "A" else "decision making"
        ax.plot(epochs, np.exp(np.mean(np.log(loss), axis=0)), color=color, lw=2, label=f"member {member}: {task}, C")
    ax.axvspan(E, epochs[-1], color="0.93", zorder=-1)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (shaded: task C)")
    ax.set_ylabel("loss")
    engine = {"overlaps": "overlap theory", "particles": "particles"}.get(str(result.attrs.get("engine")), "network")
    ax.set_title(f"loss of the {result.sizes['pair']} pairs, {engine} (thick: geometric mean)", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper right")


def _draw_member_distance(ax, distance: xr.DataArray) -> None:
    x = np.arange(distance.sizes["stage"])
    for k, which in enumerate(distance.features.values):
        ax.plot(x, distance.sel(features=which).values, "o-", color=f"C{k}", label=f"{which}")
    ax.set_xticks(x, [_STAGE_LABELS[s] for s in distance.stage.values])
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(0, 2 * max(float(distance.max()), 1e-3))
    ax.set_xlabel("stage of the protocol")
    ax.set_ylabel("RMS over pairs of f(A) - f(B) (dimensionless)")
    ax.set_title("how far apart the two members are, per feature set", fontsize="medium")
    ax.legend(fontsize="x-small")


def _draw_teacher_distance(ax, result: xr.Dataset) -> None:
    """Distance of each member's function from the teacher's during C (every recorded epoch, when the
    result has a ``trajectory``; else at the three stages)."""
    E = int(result.attrs["epochs_per_phase"])
    if "trajectory" in result:
        during_c = result.record.values >= E
        epochs = result.record.values[during_c] - E
        distance, _, _ = teacher_function_distance(result, result.trajectory.values[:, :, during_c])
    else:
        epochs = np.array([0, int(result.attrs["c_epochs"])])
        distance, _, _ = teacher_function_distance(result, result.overlaps.sel(stage=["after_AB", "after_C"]).values)
        distance = np.moveaxis(distance, 0, -1)
    for m, (member, color) in enumerate((("A", "C1"), ("B", "C2"))):
        for curve in distance[:, m]:
            ax.plot(epochs, curve, color=color, lw=0.7, alpha=0.6)
        ax.plot([], [], color=color, label=f"member {member} ({'flip-flop' if member == 'A' else 'decision'} first)")
    ax.set_yscale("log")
    plain_log_labels(ax, [distance])
    ax.set_xlabel("epoch of task C")
    ax.set_ylabel("max |f - f*| / |f*|")
    ax.set_title("function coordinates vs the teacher's during C", fontsize="medium")
    ax.legend(fontsize="x-small")


def _draw_final_losses(ax, result: xr.Dataset) -> None:
    final = result.loss.isel(epoch=-1)
    a, b = final.sel(member="A").values, final.sel(member="B").values
    ax.loglog(a, b, "o", color="C3")
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    plain_log_labels(ax, [a, b], "x")
    plain_log_labels(ax, [a, b], "y")
    ax.set_xlabel("final loss on C, member A (flip-flop first)")
    ax.set_ylabel("final loss on C, member B")
    ax.set_title("does C converge equally for both histories?", fontsize="medium")


def _draw_decoding(ax, decoding: xr.Dataset, noise: float) -> None:
    accuracy = decoding.accuracy.sel(noise=noise)
    x, sets = np.arange(accuracy.sizes["stage"]), list(accuracy.features.values)
    width = 0.8 / len(sets)
    for k, which in enumerate(sets):
        offset = (k - (len(sets) - 1) / 2) * width
        ax.bar(x + offset, accuracy.sel(features=which).values, width, color=f"C{k}", label=which)
    ax.axhline(0.5, color="k", lw=0.8, linestyle="--", label="chance")
    ax.set_xticks(x, [_STAGE_LABELS[s] for s in accuracy.stage.values])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("stage of the protocol")
    ax.set_ylabel("decoding accuracy, A vs B first (fraction correct)")
    ax.set_title(f"decoding the history, feature noise {noise:g}", fontsize="medium")
    ax.legend(fontsize="x-small", loc="lower left")


def _distance_numbers(result: xr.Dataset) -> list[KeyNumber]:
    distance = _member_distance(result)
    paper = {
        ("start", "visible"): "0 (same start)",
        ("start", "invisible"): "0 (same start)",
        ("after_AB", "visible"): "> 0",
        ("after_AB", "invisible"): "> 0",
        ("after_C", "visible"): "~0 (both solve C)",
        ("after_C", "invisible"): "> 0 (memory of A / B)",
    }
    paper.update({(stage, "function"): paper[stage, "visible"] for stage in ("start", "after_AB", "after_C")})
    paper.update(
        {("start", "gauge"): "0 (same start)", ("after_AB", "gauge"): "> 0", ("after_C", "gauge"): "not in the paper"}
    )
    numbers = [
        KeyNumber(
            f"RMS f(A) - f(B), {which} features, {_STAGE_LABELS[stage]}",
            float(distance.sel(stage=stage, features=which)),
            paper[stage, which],
            _training_note(result, stage),
        )
        for stage in distance.stage.values
        for which in distance.features.values
    ]
    after_c = distance.sel(stage="after_C")
    numbers.append(
        KeyNumber(
            "invisible / visible distance after C",
            float(after_c.sel(features="invisible") / after_c.sel(features="visible")),
            ">> 1",
            _training_note(result, "after_C"),
        )
    )
    teacher, _, _ = teacher_function_distance(result)
    for m, member in enumerate("AB"):
        numbers.append(
            KeyNumber(
                f"function coordinates after C, member {member}: max |f - f*| / |f*| (median over pairs)",
                float(np.median(teacher[:, m])),
                "~0 (computes the teacher's function)",
                _training_note(result, "after_C"),
            )
        )
    final = result.loss.isel(epoch=-1)
    for member in ("A", "B"):
        numbers.append(
            KeyNumber(
                f"final loss on C, member {member} (median over pairs)",
                float(final.sel(member=member).median()),
                "~0 (learns C)",
                _training_note(result, "after_C"),
            )
        )
    return numbers


_EXPECTED_ACCURACY = {
    ("start", "visible"): 0.5,
    ("start", "invisible"): 0.5,
    ("after_AB", "visible"): "high",
    ("after_AB", "invisible"): "high",
    ("after_C", "visible"): "chance (0.5)",
    ("after_C", "invisible"): "above chance",
    ("start", "function"): 0.5,
    ("start", "gauge"): 0.5,
    ("after_AB", "function"): "high",
    ("after_AB", "gauge"): "not in the paper",
    ("after_C", "function"): "chance (0.5): both compute the teacher",
    ("after_C", "gauge"): "not in the paper",
}


def _training_note(result: xr.Dataset, stage: str) -> str:
    """For the stage after C: how long C was trained, next to the paper's epochs."""
    epochs = int(result.attrs["epochs_per_phase"])
    paper = MemorySettings().epochs
    return "" if stage != "after_C" or epochs == paper else f"{epochs} epochs per phase (paper: {paper})"


def _decoding_numbers(data, noise_levels) -> list[KeyNumber]:
    decoding, accuracy = data["decoding"], data["decoding"].accuracy
    setup = (
        f"{decoding.attrs['resamples']} resamplings, {decoding.attrs['n_train_pairs']} training pairs, "
        f"{decoding.accuracy.attrs.get('convention', 'authors')}' cross-validation"
    )
    return [
        KeyNumber(
            f"decoding accuracy, {which} features, {_STAGE_LABELS[stage]}, noise {noise:g}",
            float(accuracy.sel(stage=stage, features=which, noise=noise)),
            _EXPECTED_ACCURACY[stage, which],
            "; ".join(filter(None, (setup, _training_note(data["ab_to_c"], stage)))),
        )
        for noise in noise_levels
        for stage in accuracy.stage.values
        for which in accuracy.features.values
    ]


@float64
def draw_fig9(data, settings: MemorySettings, out):
    from ...phenomena.memory import FEATURE_SETS, STAGES, overlap_features

    result = data["ab_to_c"]
    fig = Figure(figsize=(20, 17), layout="constrained")
    axes = fig.subplots(len(FEATURE_SETS), 4)
    for row, which in enumerate(FEATURE_SETS):
        for col, stage in enumerate(STAGES):
            ax = axes[row, col + 1]
            features, labels = overlap_features(result, stage, which)
            for k, label in enumerate(labels):
                ax.plot(features[:, 0, k], features[:, 1, k], "o", ms=4, color=f"C{k % 10}", label=label)
            lo, hi = np.min(features), np.max(features)
            ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, zorder=0)
            ax.set_xlabel("feature value, member A (flip-flop first)")
            ax.set_ylabel("feature value, member B (decision making first)")
            ax.set_title(f"{which} features, {_STAGE_LABELS[stage]}", fontsize="medium")
            ax.legend(fontsize="xx-small", ncol=2, loc="upper left")
    _draw_memory_loss(axes[0, 0], result)
    _draw_member_distance(axes[1, 0], _member_distance(result))
    _draw_teacher_distance(axes[2, 0], result)
    _draw_final_losses(axes[3, 0], result)
    c_epochs = int(result.attrs.get("c_epochs", settings.epochs))
    fig.suptitle(
        f"Fig 9: A/B -> C on {result.sizes['pair']} twin pairs ({settings.engine}, {settings.epochs} epochs of A or B "
        f"at lr {settings.lr:g} with the drop, {c_epochs} of C at lr {settings.c_lr:g}, batch {settings.batch_size}); "
        "the paper: after C the visible overlaps agree and the invisible ones differ"
    )
    return fig, _distance_numbers(result)


@float64
def draw_fig10(data, settings: MemorySettings, out):
    decoding = data["decoding"]
    fig = Figure(figsize=(6 * len(settings.noise_levels), 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(settings.noise_levels)))
    for ax, noise in zip(axes, settings.noise_levels, strict=True):
        _draw_decoding(ax, decoding, noise)
    fig.suptitle(
        f"Fig 10: decoding the training history (A or B first) by logistic regression, "
        f"{settings.n_train_pairs} of {data['ab_to_c'].sizes['pair']} pairs to train, {settings.resamples} resamplings"
    )
    return fig, _decoding_numbers(data, settings.noise_levels)
