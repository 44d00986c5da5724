r"""Twin networks: the same loss-visible overlaps, different invisible ones (theory section 7, paper fig 2).

Two networks theta_1, theta_2 (N, P) are *twins* when their overlap matrices S_1, S_2 (P, P) agree on
every loss-visible entry (``overlapflow.visible_mask``) and differ only on invisible ones. The reduced
activity reads visible overlaps alone, so twins have the same latent trajectory k_t, the same output
and the same loss (exactly, at any N, for a linear network). Gradient descent, however, moves S by
dS = -2 eta (S Gamma + Gamma S): the invisible entries of S enter the velocity of the visible ones,
and twins trained on the same task separate (:func:`learning_separation`).

Noise injected into the activity (:func:`noise_response`), linear network. With
h_{t+1} = h_t + alpha(-h_t + U V^T h_t / N + M x_t) + xi_t, xi_t ~ N(0, s^2 I_N) i.i.d., write
h_t = B k_t + e_t (k_t the noiseless latent). The noise part e_t feeds the output only through
a_t = A^T e_t / N (A = [V | Z]), which obeys the closed recursion

    a_{t+1} = G a_t + eta_t,   G = (1 - alpha) I + alpha [ S[A, U] | 0 ],   eta_t = A^T xi_t / N,
    y_t     = y_t(noiseless) + a_{t+1}[Z]

with eta_t ~ N(0, s^2 S[A, A] / N) i.i.d. Hence (what holds, measured in tests/test_twins.py):

1. Twins that share the readout vectors A = [V | Z] (``twin_network(..., keep="A")``; they may differ in
   every invisible overlap of S[B, B], as the paper's twin does) give *identical outputs for the same
   noise realisation* xi (to round-off).
2. Twins with independently drawn vectors but equal S[A, A] (any change confined to S[B, B]) see
   different noise projections A^T xi / N, so their noisy outputs differ trial by trial; but the output
   distribution is identical (Gaussian, mean = noiseless output, covariance from the recursion above,
   :func:`noise_output_variance`).
3. Twins that differ in S[A, A] (zz, vv, zv: invisible to the loss) respond differently to neuron-space
   noise: the output variance grows with S[A, A] / N. Noise injected into h thus exposes S[A, A] at
   O(s^2 / N), while S[B, B] stays hidden.
4. Noise injected in the latent coordinates, h <- h + B zeta_t (``space="latent"``), keeps h in the span
   of B and gives identical outputs for every pair of twins under the same zeta (everything then runs on
   visible overlaps).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..engines import NetworkEngine
from ..meanfield import meanfield_forward
from ..model import LowRankRNN
from ..network import network_forward
from ..overlaps import (
    Overlaps,
    canonical_pairs,
    check_gram,
    invisible_names,
    pair_label,
    parse_pair,
    sample_params,
    visible_mask,
)
from ..precision import float64
from ..tasks import AbstractTask
from ..training import train

NOISE_SPACES = ("neuron", "latent")
KEEP = (None, "A", "B")
_PSD_TOL = 1e-12  # relative to max(1, max |S|): smallest eigenvalue allowed below 0


# ---------------------------------------------------------------------------- helpers
def _gram_of(rnn: LowRankRNN, S, field: str = "S") -> np.ndarray:
    """S as a validated float64 (P, P) numpy array (from an Overlaps or an array)."""
    S = S.matrix if isinstance(S, Overlaps) else S
    S = np.asarray(S, dtype=np.float64)
    P = rnn.n_vectors
    if S.shape != (P, P):
        raise ValueError(f"{field}: shape {S.shape}; must be ({P}, {P}) for this network")
    check_gram(S, field)
    return (S + S.T) / 2


def _scale(S: np.ndarray) -> float:
    return max(1.0, float(np.max(np.abs(S))))


def _is_psd(S: np.ndarray) -> bool:
    return bool(np.linalg.eigvalsh(S)[0] >= -_PSD_TOL * _scale(S))


def _theta_of(rnn: LowRankRNN, theta, field: str) -> jax.Array:
    theta = jnp.asarray(theta)
    if theta.ndim != 2 or theta.shape[1] != rnn.n_vectors or not jnp.issubdtype(theta.dtype, jnp.floating):
        raise ValueError(
            f"{field}: shape {theta.shape}, dtype {theta.dtype}; must be a float (N, P) array with P = {rnn.n_vectors}"
        )
    return theta


def _parse_requests(rnn: LowRankRNN, invisible) -> dict[tuple[int, int], float]:
    """Requested invisible overlaps as {(i, j) with i >= j: value}, validated."""
    if not isinstance(invisible, Mapping):
        raise TypeError(f"invisible = {invisible!r}: must be a dict of overlap label -> value, e.g. {{'uu': 2.0}}")
    names, mask = rnn.vector_names, visible_mask(rnn)
    allowed = invisible_names(rnn)
    requests: dict[tuple[int, int], float] = {}
    for label, value in invisible.items():
        try:
            i, j = parse_pair(names, label)
        except ValueError as error:
            raise ValueError(
                f"invisible[{label!r}]: unknown overlap ({error}); allowed (invisible): {allowed}"
            ) from None
        i, j = max(i, j), min(i, j)
        canonical = pair_label(rnn, i, j)
        if mask[i, j]:
            raise ValueError(
                f"invisible[{label!r}]: {canonical!r} is loss-visible for this network "
                f"(phi = {rnn.nonlinearity.name}); "
                f"a twin keeps every visible overlap; allowed (invisible): {allowed}"
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value)
        ):
            raise ValueError(f"invisible[{label!r}] = {value!r}: must be a finite real number")
        if (i, j) in requests:
            raise ValueError(
                f"invisible[{label!r}]: overlap {canonical!r} is given twice (labels read in either order)"
            )
        requests[(i, j)] = float(value)
    return requests


def _line_interval(S: np.ndarray, i: int, j: int) -> tuple[float, float] | None:
    r"""The values t of S[i, j] = S[j, i] for which S stays positive semi-definite, the other entries fixed.

    Schur complement over the remaining indices R (S_RR^+ a pseudo-inverse):

    - diagonal (i = j): S >= 0  iff  S_RR >= 0, c = S[R, i] in range(S_RR) and t >= c^T S_RR^+ c,
      so the range is [c^T S_RR^+ c, inf).
    - off-diagonal: S >= 0  iff  S_RR >= 0, C = S[R, (i, j)] in range(S_RR) and the 2 x 2 complement
      [[a, t - c], [t - c, b]] >= 0 with a = S_ii - c_i^T S_RR^+ c_i, b = S_jj - c_j^T S_RR^+ c_j,
      c = c_i^T S_RR^+ c_j; so a, b >= 0 and t in [c - sqrt(ab), c + sqrt(ab)].

    Returns (low, high) (high may be inf), or None when no value works.
    """
    P, tol = S.shape[0], 1e-10 * _scale(S)
    rest = [k for k in range(P) if k not in (i, j)]
    R = S[np.ix_(rest, rest)]
    if rest and np.linalg.eigvalsh(R)[0] < -tol:
        return None
    Rp = np.linalg.pinv(R, hermitian=True) if rest else np.zeros((0, 0))
    cols = S[np.ix_(rest, sorted({i, j}))]
    if rest and np.max(np.abs(R @ Rp @ cols - cols), initial=0.0) > 1e-8 * _scale(S):
        return None
    if i == j:
        c = S[rest, i]
        return float(c @ Rp @ c), math.inf
    ci, cj = S[rest, i], S[rest, j]
    a, b, c = S[i, i] - ci @ Rp @ ci, S[j, j] - cj @ Rp @ cj, ci @ Rp @ cj
    if a < -tol or b < -tol:
        return None
    r = math.sqrt(max(a, 0.0) * max(b, 0.0))
    return float(c - r), float(c + r)


def _format_range(interval) -> str:
    if interval is None:
        return "empty (no value keeps S positive semi-definite with the others fixed)"
    low, high = interval
    return f"feasible range [{low:.6g}, inf)" if math.isinf(high) else f"feasible range [{low:.6g}, {high:.6g}]"


# ---------------------------------------------------------------------------- twin overlaps
def feasible_range(rnn: LowRankRNN, S, label: str) -> tuple[float, float] | None:
    r"""Interval of values of one overlap for which S stays positive semi-definite, all others fixed.

    Along one symmetric entry, S(t) = S + (t - S_ij)(e_i e_j^T + e_j e_i^T), the positive
    semi-definite set is an interval (convex); it is computed analytically by a Schur complement
    (see the module's ``_line_interval``): [c^T S_RR^+ c, inf) for a diagonal entry,
    [c - sqrt(ab), c + sqrt(ab)] for an off-diagonal one.

    Args:
        S: (P, P) overlaps (an :class:`~overlapflow.Overlaps` or array; the entry at ``label`` is ignored).
        label: any overlap label, e.g. ``"uu"``, ``"mu"`` (visible ones too).

    Returns:
        (low, high), high = inf for a squared norm; or None when no value is feasible.
    """
    S = np.asarray(S.matrix if isinstance(S, Overlaps) else S, dtype=np.float64)
    if S.shape != (rnn.n_vectors, rnn.n_vectors):
        raise ValueError(f"S: shape {S.shape}; must be ({rnn.n_vectors}, {rnn.n_vectors}) for this network")
    i, j = parse_pair(rnn.vector_names, label)
    return _line_interval((S + S.T) / 2, max(i, j), min(i, j))


@float64
def twin_overlaps(rnn: LowRankRNN, S, invisible: dict[str, float]) -> Overlaps:
    r"""The overlaps of a twin: S with some loss-invisible overlaps replaced.

    S_2[a, b] = invisible[ab] for each requested pair, S_2 = S elsewhere (every visible overlap and
    every invisible one not requested). Labels are read in either order (``"um"`` = ``"mu"``).

    Args:
        S: (P, P) overlaps of the first network (:class:`~overlapflow.Overlaps` or a symmetric PSD array).
        invisible: {label: value} of invisible overlaps, e.g. ``{"uu": 2.048, "mu": 0.8}`` (rank 1,
            linear: labels among ``invisible_names(rnn)`` = zv, zz, vv, um, uu, mm).

    Returns:
        :class:`~overlapflow.Overlaps` S_2 (float64).

    Raises:
        ValueError: a label that is unknown or loss-visible (the message lists the invisible ones), a
            pair given twice, a non-finite value, or values that leave S_2 not positive semi-definite
            (no vectors have these overlaps); the message then gives, for each requested value, its
            feasible range with the other entries of S_2 fixed.
    """
    S = _gram_of(rnn, S)
    requests = _parse_requests(rnn, invisible)
    S2 = S.copy()
    for (i, j), value in requests.items():
        S2[i, j] = S2[j, i] = value
    if not _is_psd(S2):
        low = float(np.linalg.eigvalsh(S2)[0])
        ranges = "; ".join(
            f"{pair_label(rnn, i, j)} = {v:.6g}: {_format_range(_line_interval(S2, i, j))}"
            for (i, j), v in requests.items()
        )
        raise ValueError(
            f"invisible = {dict(invisible)!r}: the twin's overlap matrix is not positive semi-definite "
            f"(smallest eigenvalue {low:.6g}), so no network has these overlaps. "
            f"With the other overlaps fixed: {ranges}"
        )
    return Overlaps(jnp.asarray(S2), rnn.vector_names)


# ---------------------------------------------------------------------------- twin networks
def _orthonormal_complement_sample(K: np.ndarray, r: int, key) -> np.ndarray:
    """(N, r) orthonormal columns, uniformly oriented in the orthogonal complement of span(K)."""
    N = K.shape[0]
    U_K, sv, _ = np.linalg.svd(K, full_matrices=False)
    U_K = U_K[:, sv > 1e-12 * max(1.0, float(sv.max(initial=0.0)))]
    G = np.asarray(jax.random.normal(key, (N, r), dtype=jnp.float64))
    for _ in range(2):  # project twice (re-orthogonalisation)
        G = G - U_K @ (U_K.T @ G)
    Q, R = np.linalg.qr(G)
    return Q * np.sign(np.diag(R))


def _redraw(theta: np.ndarray, S2: np.ndarray, keep: slice, redraw: slice, key) -> np.ndarray:
    r"""theta_2 with the columns ``keep`` of theta unchanged and ``redraw`` drawn afresh with Gram S2.

    R = K C + sqrt(N) Q L with K the kept columns, C = S_kk^+ S_kr (the part in span(K), fixed by the
    cross overlaps), Q (N, r) orthonormal in the complement of span(K), L the symmetric square root of
    the Schur complement S_rr - S_kr^T S_kk^+ S_kr.
    """
    N = theta.shape[0]
    K = theta[:, keep]
    S_kk, S_kr, S_rr = S2[keep, keep], S2[keep, redraw], S2[redraw, redraw]
    pinv = np.linalg.pinv(S_kk, hermitian=True)
    C = pinv @ S_kr
    schur = S_rr - S_kr.T @ C
    lam, E = np.linalg.eigh((schur + schur.T) / 2)
    L = (E * np.sqrt(np.clip(lam, 0.0, None))) @ E.T
    Q = _orthonormal_complement_sample(K, S_rr.shape[0], key)
    theta2 = theta.copy()
    theta2[:, redraw] = K @ C + math.sqrt(N) * Q @ L
    return theta2


@float64
def twin_network(
    rnn: LowRankRNN, theta, invisible: dict[str, float], key: jax.Array, keep: str | None = None
) -> jax.Array:
    r"""A twin of theta: vectors theta_2 (N, P) with the same visible and the requested invisible overlaps.

    theta_2^T theta_2 / N = :func:`twin_overlaps` (S, invisible) exactly (to round-off, ~1e-15), with
    S = theta^T theta / N in float64. Two constructions:

    - ``keep=None``: fresh vectors from :func:`~overlapflow.sample_params` (theta_2 = sqrt(N) Q diag(sqrt(lambda)) E^T,
      Q a uniformly oriented (N, P) orthonormal frame): no column is shared with theta.
    - ``keep="A"`` (or ``"B"``): the readout vectors A = [V | Z] (or the activity vectors B = [M | U]) are
      kept as they are and the other block is redrawn, R = K C + sqrt(N) Q L (the part in span(K) fixed by
      the cross overlaps, Q orthonormal in the complement of span(K), L L = the Schur complement). Only the
      overlaps within the redrawn block may then change. ``keep="A"`` makes twins that respond identically
      to the same noise injected into the activity (module docstring).

    Example (paper fig 2, rank 1 linear, N = 500): ``twin_network(rnn, theta, {"uu": 2.048, "mu": 0.8}, key)``.

    Args:
        theta: (N, P) connectivity of the first network (any float dtype; read in float64).
        invisible: {label: value} of invisible overlaps (see :func:`twin_overlaps`).
        key: JAX random key for the new vectors.
        keep: None, ``"A"`` or ``"B"``.

    Returns:
        theta_2, (N, P) float64.
    """
    theta = _theta_of(rnn, theta, "theta")
    N, P = theta.shape
    if N < P:
        raise ValueError(
            f"theta: N = {N} neurons < P = {P} vectors; a twin needs N >= P (room for P independent vectors)"
        )
    if keep not in KEEP:
        raise ValueError(
            f"keep = {keep!r}: allowed {list(KEEP)} (None: fresh vectors; 'A': keep [V | Z]; 'B': keep [M | U])"
        )
    theta64 = np.asarray(theta, dtype=np.float64)
    S2 = twin_overlaps(rnn, theta64.T @ theta64 / N, invisible).matrix
    if keep is None:
        return sample_params(rnn, S2, N, key)
    sl = rnn.slices
    kept, redrawn = sl[keep], sl["B" if keep == "A" else "A"]
    idx = range(P)
    kept_idx = set(idx[kept])
    for label in invisible:
        i, j = parse_pair(rnn.vector_names, label)
        if i in kept_idx or j in kept_idx:
            names = [rnn.vector_names[k] for k in sorted(kept_idx)]
            raise ValueError(
                f"invisible[{label!r}] with keep = {keep!r}: the kept vectors {names} and so every overlap "
                f"that involves one "
                f"of them stay as they are; only overlaps within the redrawn block can change (use keep=None)"
            )
    return jnp.asarray(_redraw(theta64, np.asarray(S2), kept, redrawn, key))


# ---------------------------------------------------------------------------- learning separates twins
@functools.partial(jax.jit, static_argnames=("rnn",))
def _rms_distance_chunk(Sa, Sb, inputs, *, rnn):
    """RMS over (B, T, n_out) of meanfield_forward(S_a) - meanfield_forward(S_b) for stacks (C, P, P) -> (C,)."""

    def one(pair):
        a, b = pair
        return jnp.sqrt(jnp.mean((meanfield_forward(rnn, a, inputs) - meanfield_forward(rnn, b, inputs)) ** 2))

    return jax.lax.map(one, (Sa, Sb))


def _rms_distance_series(rnn, overlaps_a, overlaps_b, inputs, chunk: int = 128) -> np.ndarray:
    """Output distance per record (E,), in compiled chunks of fixed length (the last one padded)."""
    E = len(overlaps_a)
    chunk = max(1, min(chunk, E))
    out = []
    for start in range(0, E, chunk):
        idx = np.minimum(np.arange(start, start + chunk), E - 1)  # pad by repeating the last record
        d = _rms_distance_chunk(jnp.asarray(overlaps_a[idx]), jnp.asarray(overlaps_b[idx]), inputs, rnn=rnn)
        out.append(np.asarray(d)[: min(chunk, E - start)])
    return np.concatenate(out) if out else np.zeros(0)


def _pair_distances(rnn, Sa: np.ndarray, Sb: np.ndarray) -> dict[str, np.ndarray]:
    """Euclidean distance over the distinct overlaps (all, visible, invisible) per record."""
    mask = visible_mask(rnn)
    pairs = canonical_pairs(rnn.n_vectors)
    rows, cols = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    diff = (Sa - Sb)[:, rows, cols]
    vis = mask[rows, cols]
    return {
        "overlap_distance": np.sqrt(np.sum(diff**2, axis=1)),
        "visible_distance": np.sqrt(np.sum(diff[:, vis] ** 2, axis=1)),
        "invisible_distance": np.sqrt(np.sum(diff[:, ~vis] ** 2, axis=1)),
    }


@float64
def learning_separation(
    rnn: LowRankRNN,
    task: AbstractTask,
    theta_a,
    theta_b,
    lr: float,
    epochs: int,
    key: jax.Array | None = None,
    optimizer="sgd",
) -> xr.Dataset:
    r"""How strongly learning separates two networks: train both on one task, compare them every epoch.

    Both are trained by :func:`~overlapflow.train` with a :class:`~overlapflow.NetworkEngine` (same task,
    lr, optimiser and batches). Per
    record k = 0..epochs (the state after k updates):

    - ``output_distance``: RMS over (B, T, n_out) of y_a - y_b on one fixed evaluation batch (epoch 0's,
      ``task.sample(fold_in(key, 0), dt)``), from the recorded overlaps by ``meanfield_forward``: exact for
      a linear network (its output is a function of the visible overlaps), the large-N Gaussian closure
      otherwise (``attrs["output_distance_method"]`` says which).
    - ``loss_a``, ``loss_b``: each network's training loss (from its History).
    - ``overlap_distance``, ``visible_distance``, ``invisible_distance``: Euclidean norm of S_a - S_b over the
      distinct overlaps (all / loss-visible / loss-invisible). Twins start at visible_distance = 0.
    - ``overlaps_a``, ``overlaps_b`` (epoch, row, col) and ``visible`` (row, col), as in a History.

    ``attrs["output_distance_final"]`` is the RMS output difference of the two *full* trained networks
    (``network_forward`` on the evaluation batch), and ``output_distance_initial`` the same before training.

    Args:
        theta_a: (N_a, P) initial connectivity of the first network; float64 recommended.
        theta_b: (N_b, P) initial connectivity of the second (N may differ).
        lr: overlap-scale learning rate eta.
        epochs: number of updates.
        key: batches (default ``jax.random.key(0)``), shared by both runs.
        optimizer: as in :class:`~overlapflow.NetworkEngine`.

    Returns:
        xarray.Dataset over ``epoch`` (epochs + 1 records).
    """
    theta_a = _theta_of(rnn, theta_a, "theta_a")
    theta_b = _theta_of(rnn, theta_b, "theta_b")
    key = jax.random.key(0) if key is None else key
    run_a = train(NetworkEngine(optimizer), rnn, task, theta_a, lr, epochs, key=key)
    run_b = train(NetworkEngine(optimizer), rnn, task, theta_b, lr, epochs, key=key)
    (hist_a, final_a), (hist_b, final_b) = (run_a.history, run_a.params), (run_b.history, run_b.params)
    batch = task.sample(jax.random.fold_in(key, 0), rnn.dt)
    Sa, Sb = hist_a.overlaps.values, hist_b.overlaps.values
    distance = _rms_distance_series(rnn, Sa, Sb, jnp.asarray(batch.inputs, dtype=jnp.float64))

    def full_distance(ta, tb):
        ya, yb = network_forward(rnn, ta, batch.inputs), network_forward(rnn, tb, batch.inputs)
        return float(jnp.sqrt(jnp.mean((ya.astype(jnp.float64) - yb.astype(jnp.float64)) ** 2)))

    data = {
        "output_distance": ("epoch", distance),
        "loss_a": ("epoch", hist_a.loss.values),
        "loss_b": ("epoch", hist_b.loss.values),
        **{name: ("epoch", value) for name, value in _pair_distances(rnn, Sa, Sb).items()},
        "overlaps_a": (("epoch", "row", "col"), Sa),
        "overlaps_b": (("epoch", "row", "col"), Sb),
        "visible": (("row", "col"), visible_mask(rnn)),
    }
    attrs = {
        "output_distance_final": full_distance(final_a, final_b),
        "output_distance_initial": full_distance(theta_a, theta_b),
        "output_distance_method": "meanfield (exact, linear)"
        if rnn.is_linear
        else "meanfield (large-N Gaussian closure)",
        "lr": float(lr),
        "epochs": int(epochs),
        "task": task.describe(),
        "optimizer": hist_a.attrs.get("optimizer", str(optimizer)),
        "N_a": int(theta_a.shape[0]),
        "N_b": int(theta_b.shape[0]),
        **{f"rnn_{k}": v for k, v in rnn.describe().items()},
    }
    return xr.Dataset(
        data,
        coords={"epoch": hist_a.epoch.values, "row": list(rnn.vector_names), "col": list(rnn.vector_names)},
        attrs=attrs,
    )


# ---------------------------------------------------------------------------- noise injected into the activity
@float64
def noise_response(
    rnn: LowRankRNN,
    theta,
    inputs,
    noise_std: float,
    key: jax.Array,
    space: str = "neuron",
    return_activity: bool = False,
    unroll: int = 1,
):
    r"""Outputs of the full network with Gaussian noise added to the activity h at every step.

        h_0     = 0
        h_{t+1} = h_t + alpha (-h_t + U (V^T phi(h_t)) / N + M x_t) + noise_t
        y_t     = Z^T phi(h_{t+1}) / N       (Z^T phi(h_t) / N with rnn.readout "before")

    - ``space="neuron"``: noise_t = s xi_t, xi_t ~ N(0, I_N) i.i.d. per neuron, trial and step.
    - ``space="latent"``: noise_t = s B zeta_t, zeta_t ~ N(0, I_{n_in + R}) (B = [M | U]): noise in the
      latent coordinates k of h = B k.

    The noise of step t is drawn from ``fold_in(key, t)`` with shape (batch, N) (neuron) or
    (batch, n_in + R) (latent): the same key, batch size and N give the same realisation for any theta.
    Only low-rank products are formed (O(batch N P) per step), never an N x N matrix.

    What twins share under this noise (module docstring; linear phi): identical outputs for the same
    neuron-space noise if they share A = [V | Z] (``twin_network(..., keep="A")``); otherwise identical
    output *statistics* as long as S[A, A] agrees (:func:`noise_output_variance`); identical outputs for
    the same latent-space noise always.

    Args:
        theta: (N, P) connectivity; the run's dtype is theta's.
        inputs: (batch, T, n_in).
        noise_std: s >= 0, the standard deviation added per step.
        key: JAX random key.
        space: ``"neuron"`` or ``"latent"``.
        return_activity: also return h (batch, T, N), the states h_{t+1}.
        unroll: ``lax.scan`` unrolling (1 compiles fastest; the noise draw makes unrolled bodies large).

    Returns:
        y (batch, T, n_out); with ``return_activity``, the pair (h, y).
    """
    theta = _theta_of(rnn, theta, "theta")
    if space not in NOISE_SPACES:
        raise ValueError(f"space = {space!r}: allowed {list(NOISE_SPACES)}")
    if (
        isinstance(noise_std, bool)
        or not isinstance(noise_std, (int, float))
        or not (noise_std >= 0 and math.isfinite(noise_std))
    ):
        raise ValueError(f"noise_std = {noise_std!r}: must be a finite number >= 0")
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[-1] != rnn.n_in:
        raise ValueError(f"inputs: shape {inputs.shape}; must be (batch, T, n_in) with n_in = {rnn.n_in}")
    return _noisy_run(
        theta,
        inputs.astype(theta.dtype),
        noise_std,
        key,
        rnn=rnn,
        space=space,
        keep_states=return_activity,
        unroll=unroll,
    )


@functools.partial(jax.jit, static_argnames=("rnn", "space", "keep_states", "unroll"))
def _noisy_run(theta, inputs, noise_std, key, *, rnn, space, keep_states, unroll):
    sl, phi, alpha = rnn.slices, rnn.nonlinearity.phi, rnn.alpha
    N, dtype = theta.shape[0], theta.dtype
    M, U, V, Z, Bv = (theta[:, sl[k]] for k in ("M", "U", "V", "Z", "B"))
    batch, T = inputs.shape[0], inputs.shape[1]

    def noise(t):
        k = jax.random.fold_in(key, t)
        if space == "neuron":
            return noise_std * jax.random.normal(k, (batch, N), dtype=dtype)
        return noise_std * jax.random.normal(k, (batch, rnn.n_left), dtype=dtype) @ Bv.T

    def step(h, tx):
        t, x_t = tx
        rates = phi(h)
        h = h + alpha * (-h + ((rates @ V) / N) @ U.T + x_t @ M.T) + noise(t)
        y = ((rates if rnn.readout == "before" else phi(h)) @ Z) / N
        return h, ((h, y) if keep_states else y)

    h0 = jnp.zeros((batch, N), dtype=dtype)
    _, out = jax.lax.scan(step, h0, (jnp.arange(T), jnp.swapaxes(inputs, 0, 1)), unroll=unroll)
    if keep_states:
        h, y = out
        return jnp.swapaxes(h, 0, 1), jnp.swapaxes(y, 0, 1)
    return jnp.swapaxes(out, 0, 1)


def noise_output_variance(rnn: LowRankRNN, S, T: int, noise_std: float, N: int) -> np.ndarray:
    r"""Exact output variance of a linear network under neuron-space noise (``noise_response``).

    The noise part of the output is a_{t+1}[Z] with a_{t+1} = G a_t + eta_t, a_0 = 0,
    G = (1 - alpha) I + alpha [S[A, U] | 0] (columns V then Z of A = [V | Z]), eta_t ~ N(0, s^2 S[A, A] / N).
    Its covariance C_{t+1} = G C_t G^T + s^2 S[A, A] / N; the output mean is the noiseless output.
    It depends on the visible S[A, U] and on the invisible S[A, A] (not on S[B, B]).

    Args:
        S: (P, P) overlaps; T: number of steps; noise_std: s; N: number of neurons.

    Returns:
        (T, n_out) variance of y_t, t = 0..T-1 (float64).
    """
    if not rnn.is_linear:
        raise ValueError(
            f"rnn.phi = {rnn.nonlinearity.name!r}: noise_output_variance is exact for linear networks only"
        )
    S = _gram_of(rnn, S)
    for field, value, low in (("T", T, 1), ("N", N, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{field} = {value!r}: must be an integer >= {low}")
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not noise_std >= 0:
        raise ValueError(f"noise_std = {noise_std!r}: must be a number >= 0")
    sl, alpha, R = rnn.slices, rnn.alpha, rnn.rank
    S_AA, S_AU = S[sl["A"], sl["A"]], S[sl["A"], sl["U"]]
    n_A = S_AA.shape[0]
    G = (1 - alpha) * np.eye(n_A)
    G[:, :R] += alpha * S_AU
    Q = noise_std**2 * S_AA / N
    C = np.zeros((n_A, n_A))
    out = np.empty((T, rnn.n_out))
    for t in range(T):
        C = G @ C @ G.T + Q
        out[t] = np.diag(C)[R:]
    return out
