r"""Memory of training history in invisible overlaps, and decoding that history.

The A/B -> C protocol (paper figs 4d-f, 9, 10): twin pairs start from the same overlaps; one
member learns task A (flip-flop), the other task B (decision making); then both learn task C
(a teacher network). Afterwards both members solve C, so their visible overlaps agree, but the
invisible ones can still tell which of A or B came first. :func:`decode_history` measures this
with logistic regression (scikit-learn) under the paper's cross-validation:

    8 training pairs, 2 test pairs, 50 resamplings; features standardised on the training set;
    optional Gaussian noise (std 0 or 0.3) added to the training features.

Expected shape: at the start nothing is decodable (the members are identical: accuracy 1/2);
after A/B both visible and invisible overlaps decode the history; after C only invisible ones do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .._extras import require
from ..engines import OverlapEngine
from ..gauge import function_coordinates, gauge_coordinates
from ..history import phase_ends, phase_names, rnn_from_history
from ..model import LowRankRNN
from ..optimizers import Optimizer
from ..overlaps import check_gram, parse_pair, sample_params
from ..precision import float64
from ..tasks import DecisionMaking, FlipFlop, Teacher
from ..training import train_batch
from .curriculum import Phase, run_curriculum

STAGES = ("start", "after_AB", "after_C")

#: Feature sets decoded from: visible and invisible overlaps, and the visible ones split into function
#: coordinates (gauge-invariant) and gauge coordinates (:mod:`overlapflow.gauge`).
FEATURE_SETS = ("visible", "invisible", "function", "gauge")


def random_initial_overlaps(
    rnn: LowRankRNN, key: jax.Array, cross_std: float = 0.4, norm_range=(0.5, 2.0), tries: int = 1000
):
    """A random valid overlap matrix: squared norms U(norm_range), off-diagonal |N(0, cross_std^2)|
    (the paper's A/B -> C initialisation); redrawn until positive definite."""
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    P = rnn.n_vectors
    for _ in range(tries):
        off = np.abs(rng.normal(0.0, cross_std, (P, P)))
        S = np.triu(off, 1)
        S = S + S.T + np.diag(rng.uniform(*norm_range, P))
        if np.linalg.eigvalsh(S)[0] > 1e-6:
            check_gram(S)
            return S
    raise ValueError(f"cross_std = {cross_std}, norm_range = {norm_range}: no positive-definite draw in {tries} tries")


def pair_keys(key: jax.Array, pair: int) -> tuple[jax.Array, jax.Array]:
    """(key of pair p, key of its curriculum) of the A/B -> C protocol: S0 comes from the first
    (and, for the network engine, theta0 from ``fold_in(first, 1)``), and the batches of phase j
    (0: A or B, 1: C) from ``fold_in(second, j)``."""
    pair_key = jax.random.fold_in(key, pair)
    return pair_key, jax.random.fold_in(pair_key, 2)


def ab_to_c_phases(
    epochs: int = 30000,
    lr: float = 0.01,
    batch_size: int = 128,
    lr_drop=(0.015, 5.0),
    c_epochs: int | None = None,
    c_lr: float = 0.001,
    readout: str = "before",
):
    """The three tasks of the A/B -> C protocol as Phases, as the authors' code runs them.

    A: flip-flop (the authors' generator: waits U(1, 2) after each pulse's 2 s masked delay, input
    amplitude 2, target 1); B: perceptual decision making (input noise std 0.05); each at ``lr``,
    divided by ``lr_drop[1]`` from the first epoch whose loss is below ``lr_drop[0]`` (a fresh
    schedule in each phase). C: the paper's teacher (a rank-1 erf network reading out ``readout``
    the step, driven by noise std 1.5 plus flip-flop pulses x2) with loss dt sum_t (y - y*)^2
    averaged over trials (their mean * T dt), at the constant rate ``c_lr``.
    """
    drop = None if lr_drop is None else dict(lr_drop_below=lr_drop[0], lr_drop_factor=lr_drop[1])
    opt = Optimizer("sgd", **(drop or {}))
    A = FlipFlop(batch_size=batch_size, wait_range=(1.0, 2.0), input_amp=2.0, target_amp=1.0)
    B = DecisionMaking(batch_size=batch_size, noise_std=0.05)
    teacher = LowRankRNN(rank=1, phi="erf", readout=readout)
    C = Teacher.paper(batch_size=batch_size, rnn=teacher, loss_kind="sum_sq_dt")
    return {
        "A": Phase(A, epochs, lr, optimizer=opt, name="A"),
        "B": Phase(B, epochs, lr, optimizer=opt, name="B"),
        "C": Phase(C, epochs if c_epochs is None else c_epochs, c_lr, optimizer=Optimizer("sgd"), name="C"),
    }


@float64
def run_ab_to_c(
    n_pairs: int = 10,
    epochs: int = 30000,
    lr: float = 0.01,
    batch_size: int = 128,
    engine: str = "overlaps",
    rnn: LowRankRNN | None = None,
    key: jax.Array | None = None,
    N: int = 1000,
    progress: bool = False,
    particle_options: dict | None = None,
    pairs=None,
    c_epochs: int | None = None,
    c_lr: float = 0.001,
    lr_drop=(0.015, 5.0),
) -> xr.Dataset:
    """Run the A/B -> C protocol on ``n_pairs`` twin pairs with one engine.

    Args:
        engine: ``"overlaps"`` (the reduced Gaussian-closure theory, as in the paper),
            ``"particles"`` (the exact infinite-N limit) or ``"network"`` (full networks of N neurons).
        rnn: the student architecture (default rank 1, erf, reading out before the step as the
            authors' erf network does); the teacher reads out as the student does.
        epochs: epochs of phases A and B (the paper: 30000), at ``lr`` with the drop ``lr_drop``
            (threshold, factor), or None for none.
        c_epochs: epochs of phase C (default ``epochs``), at the constant ``c_lr``.
        pairs: which pair indices to run (default ``range(n_pairs)``). Pair p depends only on
            ``key`` and p, so a long run can be split into pieces (processes, machines, sessions)
            and the pieces joined with :func:`join_pairs`.

    Returns:
        Dataset with ``overlaps`` (stage, pair, member, row, col) for stage in ("start", "after_AB",
        "after_C") and member in ("A", "B"), ``loss`` (pair, member, epoch), ``visible`` (row, col).
    """
    rnn = rnn or LowRankRNN(rank=1, phi="erf", readout="before")
    key = jax.random.key(0) if key is None else key
    phases = ab_to_c_phases(epochs, lr, batch_size, lr_drop, c_epochs, c_lr, rnn.readout)
    total = epochs + phases["C"].epochs
    pairs = list(range(n_pairs) if pairs is None else pairs)
    keys = [pair_keys(key, pair) for pair in pairs]
    S0s = np.stack([random_initial_overlaps(rnn, pair_key) for pair_key, _ in keys])
    if engine == "overlaps":
        curriculum_keys = [curriculum_key for _, curriculum_key in keys]
        overlaps, losses, visible = _members_in_overlap_space(rnn, phases, S0s, curriculum_keys, progress)
    else:
        overlaps = np.zeros((len(pairs), 2, total + 1, rnn.n_vectors, rnn.n_vectors))
        losses = np.zeros((len(pairs), 2, total + 1))
        for slot, ((pair_key, curriculum_key), S0) in enumerate(zip(keys, S0s, strict=True)):
            theta0 = sample_params(rnn, S0, N, jax.random.fold_in(pair_key, 1)) if engine == "network" else None
            for m, first in enumerate("AB"):
                history = run_curriculum(
                    rnn,
                    [phases[first], phases["C"]],
                    theta0=theta0,
                    S0=S0,
                    engines=(engine,),
                    key=curriculum_key,
                    progress=progress,
                    particle_options=particle_options,
                )[engine]
                overlaps[slot, m], losses[slot, m], visible = (
                    history.overlaps.values,
                    history.loss.values,
                    history.visible,
                )
    stages = np.moveaxis(overlaps[:, :, [0, epochs, total]], 2, 0)
    names = list(rnn.vector_names)
    return xr.Dataset(
        {
            "overlaps": (("stage", "pair", "member", "row", "col"), stages),
            "loss": (("pair", "member", "epoch"), losses),
            "visible": visible,
        },
        coords={
            "stage": list(STAGES),
            "pair": pairs,
            "member": ["A", "B"],
            "row": names,
            "col": names,
            "epoch": np.arange(total + 1),
        },
        attrs={
            "engine": engine,
            "epochs_per_phase": epochs,
            "c_epochs": int(phases["C"].epochs),
            "lr": lr,
            "c_lr": c_lr,
            "batch_size": batch_size,
            **({"N": N} if engine == "network" else {}),
            **{f"rnn_{k}": v for k, v in rnn.describe().items()},
        },
    )


def join_pairs(pieces) -> xr.Dataset:
    """One A/B -> C result from pieces of :func:`run_ab_to_c` run on disjoint ``pairs`` (same
    settings), sorted by pair."""
    pieces = list(pieces)
    pairs = np.concatenate([piece.pair.values for piece in pieces])
    if len(set(pairs.tolist())) != len(pairs):
        raise ValueError(f"pairs {sorted(pairs.tolist())}: the pieces overlap; each pair may come from one piece only")
    joined = xr.concat([piece.drop_vars("visible") for piece in pieces], dim="pair", combine_attrs="drop_conflicts")
    return joined.assign(visible=pieces[0].visible).sortby("pair")


def _members_in_overlap_space(rnn, phases, S0s, curriculum_keys, progress):
    """Both members of every pair in overlap space, each phase one vmapped call over the pairs
    (:func:`~overlapflow.train_batch` with a key per pair): the same runs, with
    the same batches, as :func:`run_curriculum` on each member.

    Returns overlaps (pair, member, epoch, P, P), losses (pair, member, epoch) and ``visible``."""
    K = len(S0s)
    phase_keys = lambda j: jnp.stack([jax.random.fold_in(k, j) for k in curriculum_keys])

    def run_phase(phase, S, keys):
        engine = OverlapEngine(phase.optimizer)
        return train_batch(
            engine, rnn, phase.training_task, S, phase.lr, phase.epochs, key=keys, progress=progress
        ).history

    first = [run_phase(phases[name], S0s, phase_keys(0)) for name in "AB"]
    second = run_phase(
        phases["C"], np.concatenate([h.overlaps.values[:, -1] for h in first]), jnp.concatenate([phase_keys(1)] * 2)
    )
    joined = lambda var: np.stack(
        [np.concatenate([first[m][var].values, second[var].values[m * K : (m + 1) * K, 1:]], axis=1) for m in range(2)],
        axis=1,
    )
    return joined("overlaps"), joined("loss"), first[0].visible


def result_rnn(result: xr.Dataset) -> LowRankRNN:
    """The architecture of an A/B -> C result: from its ``rnn_*`` attrs, else from its vector names (phi
    ``"erf"``, or ``"linear"`` when the ``visible`` mask leaves S[B, B] out)."""
    names = tuple(str(n) for n in result.row.values)
    a = result.attrs
    if "rnn_rank" in a:
        rnn = rnn_from_history(result)
    else:
        counts = {prefix: sum(n[0] == prefix for n in names) for prefix in "muvz"}
        u = names.index("u" if counts["u"] == 1 else "u1") if counts["u"] else None
        linear = u is not None and not bool(result.visible.values[u, u])
        rnn = LowRankRNN(counts["u"], counts["m"], counts["z"], "linear" if linear else "erf")
    if rnn.vector_names != names:
        raise ValueError(f"result.row = {list(names)}: does not match the network {rnn.describe()}")
    return rnn


def overlap_features(result: xr.Dataset, stage: str, which: str) -> tuple[np.ndarray, list[str]]:
    """Features (pair, member, F) at a stage, and their labels, for ``which`` in :data:`FEATURE_SETS`:
    the visible or invisible overlaps, or the visible ones split into gauge-invariant function
    coordinates and gauge coordinates (:mod:`overlapflow.gauge`)."""
    if stage not in STAGES:
        raise ValueError(f"stage = {stage!r}: allowed {list(STAGES)}")
    if which not in FEATURE_SETS:
        raise ValueError(f"which = {which!r}: allowed {list(FEATURE_SETS)}")
    S = result.overlaps.sel(stage=stage).values
    if which in ("function", "gauge"):
        coordinates = function_coordinates if which == "function" else gauge_coordinates
        values, labels = coordinates(result_rnn(result), S)
        return np.asarray(values), labels
    names = tuple(result.row.values)
    mask = result.visible.values
    P = len(names)
    labels = [
        names[i] + names[j]
        for i in range(P - 1, -1, -1)
        for j in range(i + 1)
        if bool(mask[i, j]) == (which == "visible")
    ]
    index = [parse_pair(names, label) for label in labels]
    return np.stack([S[..., i, j] for i, j in index], axis=-1), labels


#: Cross-validation conventions of :func:`decoding_table`: the authors' (figures.ipynb, cell 12),
#: or both members of a pair always on the same side with noise in standardised units.
CONVENTIONS = ("authors", "pairs")


def decode_history(
    result: xr.Dataset,
    stage: str,
    which: str,
    n_train_pairs: int = 8,
    resamples: int = 50,
    feature_noise: float = 0.0,
    seed: int = 0,
    split: str = "pairs",
    noise_units: str = "standardised",
) -> tuple[float, float]:
    """Accuracy (mean, std over resamplings) of decoding A vs B from one feature set of
    :data:`FEATURE_SETS` at one stage with logistic regression (see :func:`decode_pairs`)."""
    features, _ = overlap_features(result, stage, which)
    return decode_pairs(features, n_train_pairs, resamples, feature_noise, seed, split, noise_units)


def decode_pairs(
    features,
    n_train_pairs: int = 8,
    resamples: int = 50,
    feature_noise: float = 0.0,
    seed: int = 0,
    split: str = "pairs",
    noise_units: str = "standardised",
) -> tuple[float, float]:
    """Cross-validated logistic-regression accuracy (mean, std) of member A (0) vs B (1) from
    features (pair, member, F).

    Each resampling trains on ``n_train_pairs`` members of each class and tests on the others:

    - ``split="pairs"``: ``n_train_pairs`` whole pairs train (both members), the other pairs test;
      the classifier never sees the twin of a test member.
    - ``split="members"``: the members of each class are split independently (a stratified split
      of the 2 n_pairs members, as the authors' ``train_test_split(..., stratify=y)``), so the twin
      of a test member may be in the training set.

    Gaussian noise of std ``feature_noise`` is added to the training features, in
    ``"standardised"`` units (after scaling with the training set's mean and std) or in ``"raw"``
    overlap units before the scaling (the authors').

    Needs scikit-learn (``pip install 'overlapflow[decode]'``).
    """
    require("decode", "decoding the training history")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if split not in ("pairs", "members"):
        raise ValueError(f"split = {split!r}: unknown; allowed: ['pairs', 'members']")
    if noise_units not in ("standardised", "raw"):
        raise ValueError(f"noise_units = {noise_units!r}: unknown; allowed: ['standardised', 'raw']")
    features = np.asarray(features, dtype=float)
    n_pairs = features.shape[0]
    if not 1 <= n_train_pairs < n_pairs:
        raise ValueError(f"n_train_pairs = {n_train_pairs}: must be in [1, {n_pairs - 1}] for {n_pairs} pairs")
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(resamples):
        orders = [rng.permutation(n_pairs)] * 2 if split == "pairs" else [rng.permutation(n_pairs) for _ in range(2)]
        x_train, x_test = (
            np.concatenate([features[order[part], member] for member, order in enumerate(orders)])
            for part in (slice(None, n_train_pairs), slice(n_train_pairs, None))
        )
        y_train = np.repeat([0, 1], n_train_pairs)
        y_test = np.repeat([0, 1], n_pairs - n_train_pairs)
        if noise_units == "raw":
            x_train = x_train + feature_noise * rng.normal(size=x_train.shape)
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        if noise_units == "standardised":
            x_train = x_train + feature_noise * rng.normal(size=x_train.shape)
        if np.allclose(x_train, x_train[0]):  # nothing to learn: the classifier can only guess
            scores.append(0.5)
            continue
        model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
        scores.append(float(np.mean(model.predict(x_test) == y_test)))
    return float(np.mean(scores)), float(np.std(scores))


def decoding_table(result: xr.Dataset, noise_levels=(0.0, 0.3), convention: str = "authors", **options) -> xr.DataArray:
    """Decoding accuracy (stage, features, noise) for each feature set of :data:`FEATURE_SETS`.

    ``convention="authors"`` decodes as the paper's code does: at the start pairs are split whole,
    after A/B and after C the members are split by class (``split="members"``), and the feature
    noise is in raw overlap units. ``"pairs"`` splits whole pairs at every stage and adds the noise
    in standardised units. ``options`` go to :func:`decode_history` (n_train_pairs, resamples, seed).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention = {convention!r}: unknown; allowed: {list(CONVENTIONS)}")
    table = np.zeros((len(STAGES), len(FEATURE_SETS), len(noise_levels)))
    for s, stage in enumerate(STAGES):
        split = "members" if convention == "authors" and stage != "start" else "pairs"
        units = "raw" if convention == "authors" else "standardised"
        for f, which in enumerate(FEATURE_SETS):
            for k, noise in enumerate(noise_levels):
                accuracy, _ = decode_history(
                    result, stage, which, feature_noise=noise, split=split, noise_units=units, **options
                )
                table[s, f, k] = accuracy
    return xr.DataArray(
        table,
        dims=("stage", "features", "noise"),
        coords={"stage": list(STAGES), "features": list(FEATURE_SETS), "noise": list(noise_levels)},
        name="accuracy",
        attrs={"convention": convention},
    )


def phase_end_states(history: xr.Dataset) -> dict[str, np.ndarray]:
    """Overlaps (P, P) at the end of each phase of a curriculum History, by phase name (and "start")."""
    names, ends = phase_names(history), phase_ends(history)
    states = {"start": history.overlaps.values[0]}
    states.update({name: history.overlaps.values[end] for name, end in zip(names, ends, strict=True)})
    return states


def aba_memory_report(
    history: xr.Dataset, before: str = "A", during: str = "B1", after: str = "A2", rtol: float = 0.1
) -> xr.Dataset:
    r"""Did each invisible overlap return to its pre-B value after A -> B -> A?

    For each invisible overlap sigma: ``change`` = sigma(end of B) - sigma(end of A) and
    ``residual`` = sigma(end of A2) - sigma(end of A); it ``returned`` if |residual| <= rtol |change|.
    The explanation is in the invariants tr((J S)^k) (:mod:`overlapflow.invariants`): exactly
    conserved by gradient flow, drifting O(eta^2) per step under GD and diffusing under noise. The
    visible overlaps return to A's solution; the invisible ones are then pinned by the (nearly)
    conserved invariants, so they come back up to the invariants' drift, which is the trace B
    leaves. The report carries ``invariant_drift`` (k) between the two A states.
    """
    from ..history import overlap_labels, rnn_from_history
    from ..invariants import conserved_quantities

    states = phase_end_states(history)
    for name in (before, during, after):
        if name not in states:
            raise ValueError(f"phase {name!r}: not in this History; its phases are {list(states)}")
    names = tuple(history.row.values)
    labels = overlap_labels(history, "invisible")
    index = [parse_pair(names, label) for label in labels]
    value = {k: np.array([states[k][i, j] for i, j in index]) for k in (before, during, after)}
    change, residual = value[during] - value[before], value[after] - value[before]
    rnn = rnn_from_history(history)
    inv_before, inv_after = (conserved_quantities(rnn, states[k]) for k in (before, after))
    powers = sorted(inv_before)
    return xr.Dataset(
        {
            "before": ("overlap", value[before]),
            "during": ("overlap", value[during]),
            "after": ("overlap", value[after]),
            "change": ("overlap", change),
            "residual": ("overlap", residual),
            "returned": ("overlap", np.abs(residual) <= rtol * np.abs(change)),
            "invariant_drift": ("power", np.array([float(inv_after[k] - inv_before[k]) for k in powers])),
        },
        coords={"overlap": labels, "power": powers},
        attrs={"rtol": rtol, "phases": f"{before} -> {during} -> {after}"},
    )
